#!/usr/bin/env bash
# make bench: hello-k8s beside the Flask origin (dev server and gunicorn) and the nginx ceiling.
#
# On a fresh machine it installs what is missing (wrk and nginx from the distribution; Flask,
# gunicorn and matplotlib from PyPI into the git-ignored bench/.work/venv), builds the release
# binary, runs bench/bench.py (every system on 127.0.0.1, interleaved, bounded in time) and
# renders the table, BENCHMARKS.md and the chart with bench/report.py.
#
# Knobs (environment): BENCH_ROUNDS (5), BENCH_DURATION (8s), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2), BENCH_WORKERS (2), BENCH_STARTUP_RUNS (10), BENCH_MARKDOWN (BENCHMARKS.md),
# BENCH_CHART (docs/bench.png).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WORK="${BENCH_WORK:-bench/.work}"
VENV="$WORK/venv"
PYTHON="${PYTHON:-python3}"
BENCH_ROUNDS="${BENCH_ROUNDS:-5}"
BENCH_DURATION="${BENCH_DURATION:-8s}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-64}"
BENCH_THREADS="${BENCH_THREADS:-2}"
BENCH_WORKERS="${BENCH_WORKERS:-2}"
BENCH_STARTUP_RUNS="${BENCH_STARTUP_RUNS:-10}"
BENCH_MARKDOWN="${BENCH_MARKDOWN:-BENCHMARKS.md}"
BENCH_CHART="${BENCH_CHART:-docs/bench.png}"

# Progress to stderr, so stdout carries only the results.
say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $* (install it by hand, or run as root)"
  fi
}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# wrk and nginx from the distribution, only when absent (apt-get update once, first).
install_system_tools() {
  local missing=()
  have wrk || missing+=(wrk)
  have nginx || missing+=(nginx-light)
  "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 ||
      die "missing ${missing[*]}: install them with your package manager (Debian/Ubuntu: apt-get install ${missing[*]})"
    say "installing ${missing[*]} from the distribution"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  have wrk || die "wrk is still missing after the install"
  have nginx || die "nginx is still missing after the install"
}

# The git-ignored venv with the origin's stack; reinstalled when bench/requirements.txt changes.
install_venv() {
  local stamp="$VENV/.installed"
  if [ -f "$stamp" ] && [ "$stamp" -nt bench/requirements.txt ]; then
    return
  fi
  say "creating $VENV (Flask, gunicorn, matplotlib from PyPI)"
  mkdir -p "$WORK"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
  touch "$stamp"
}

# The static release binary, through the project's release build script when it exists.
build_binary() {
  if [ -x scripts/build-release.sh ]; then
    say "building the release binary (scripts/build-release.sh)"
    BIN="$(scripts/build-release.sh)"
  else
    say "building the release binary (cargo build --release -p hello-k8s)"
    cargo build --release -p hello-k8s >&2
    BIN="$ROOT/target/release/hello-k8s"
  fi
  [ -x "$BIN" ] || die "the release build did not produce an executable (got: '$BIN')"
}

BENCH_PID=""
# Stops the measurement (which kills every server it started) on any exit of this script.
cleanup() {
  if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    wait "$BENCH_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3 (Debian: apt-get install python3)"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (https://rustup.rs)"

install_system_tools
install_venv
build_binary
PATH="$PATH:/usr/sbin"
export PATH

say "measuring (about 5 minutes): rounds=$BENCH_ROUNDS duration=$BENCH_DURATION connections=$BENCH_CONNECTIONS workers=$BENCH_WORKERS"
"$VENV/bin/python" bench/bench.py \
  --bin "$BIN" \
  --work "$WORK" \
  --rounds "$BENCH_ROUNDS" \
  --duration "$BENCH_DURATION" \
  --threads "$BENCH_THREADS" \
  --connections "$BENCH_CONNECTIONS" \
  --workers "$BENCH_WORKERS" \
  --startup-runs "$BENCH_STARTUP_RUNS" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=""

"$VENV/bin/python" bench/report.py "$WORK/results.json" --markdown "$BENCH_MARKDOWN" --chart "$BENCH_CHART"
