#!/usr/bin/env bash
# make bench: hello-k8s beside the Flask origin (dev server and gunicorn) and the nginx ceiling.
#
# On a fresh machine it installs what is missing (wrk and nginx from the distribution; Flask,
# gunicorn and matplotlib from PyPI into the git-ignored bench/.work/venv), builds the release
# binary, runs bench/bench.py (every system on 127.0.0.1, interleaved, bounded in time) and
# renders the table, BENCHMARKS.md and the chart with bench/report.py.
#
# Three sections, all by default: `main` (bench/bench.py, about 5 minutes), `cpu` (bench/cpu.py:
# hello-k8s and nginx, each pinned to one CPU with wrk -t1 on the other, interleaved rounds at 32,
# 64 and 1,000 keep-alive connections: server CPU per request and req/s; about 4.5 minutes) and
# `scale` (bench/scale.py: the same pair under 1k, 5k and 10k keep-alive connections; about 2.5
# minutes). `bench/run.sh --only cpu` (or BENCH_SECTIONS=cpu) runs one alone; BENCHMARKS.md keeps
# the other sections' text from their last run.
#
# The goals (bench/goals.py: CPU per request and throughput against nginx from the cpu section,
# memory at 10k connections and the probes from the scale section) are printed last; the exit
# status is 1 when one is missed on a quiet machine (other work took at most 10% of the CPUs in
# every run it comes from), unless CI=true, where they are informational.
#
# Knobs (environment): BENCH_SECTIONS (main,cpu,scale), BENCH_BIN (a hello-k8s binary to measure
# instead of building this tree's; also --bin PATH), BENCH_ROUNDS (5), BENCH_DURATION (8s),
# BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_WORKERS (2), BENCH_STARTUP_RUNS (10),
# BENCH_MARKDOWN (BENCHMARKS.md), BENCH_CHART (docs/bench.png); for the cpu section
# BENCH_CPU_LEVELS (32,64,1000), BENCH_CPU_ROUNDS (10), BENCH_CPU_DURATION (4s) and
# BENCH_CPU_VARIANTS (LABEL=PATH,...: other hello-k8s builds measured in the same rounds, each
# judged by its paired ratio to this tree's), BENCH_CPU_FLOOR (0; 1 adds bench/floor, actix-web with
# nothing of hello-k8s, built as the service is, as the variant `floor`); for the scale
# section BENCH_SCALE_LEVELS (1000,5000,10000), BENCH_SCALE_DURATION (10s), BENCH_SCALE_CHART
# (docs/bench-scale.png) and BENCH_SCALE_VARIANTS (LABEL=PATH,...: other hello-k8s builds measured
# beside this tree's, e.g. an allocator experiment).
#
# Two more sections run only when asked. `flood` (`--only flood`; root and cgroup v1 needed): the
# release binary alone in a cgroup with the Deployment's limits (500m, 128Mi), `wrk -t2 -c10000`
# for BENCH_FLOOD_DURATION (120 s), probed every second with a 2 s timeout on the probe port
# and the HTTP port (bench/flood.py); its record goes to bench/.work/flood.json.
# `profile` (`--only profile`; perf from Debian's linux-perf, installed when missing, and inferno,
# `cargo install --locked inferno`): one pinned round of BENCH_PROFILE_CONNECTIONS (1000)
# connections for BENCH_PROFILE_DURATION (10s) with `perf record -g` attached to the server
# (BENCH_PROFILE_SYSTEM: hello-k8s or nginx-1w); the top BENCH_PROFILE_TOP (20) symbols by self
# time and the kernel/user split on stdout; perf.data, the report and a flame graph (SVG) under
# bench/.work/profile/ (bench/profiler.py). `--bin PATH` profiles another build, e.g. one with
# symbols; BENCH_PROFILE_LABEL names its files.
# `cachesim` (`--only cachesim`; valgrind from Debian, installed when missing): hello-k8s and
# nginx each under callgrind's cache simulation, at each of BENCH_CACHESIM_LEVELS (64,1000)
# connections a warm-up then two counted `wrk -t1` runs (4 s and BENCH_CACHESIM_DURATION, 12s),
# whose difference gives user-space instructions, D1 and last-level (this machine's L2) misses
# per request on open connections: counts that do not move with the machine's load as times do
# (bench/cachesim.py); raw results in bench/.work/cachesim.json.
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
BENCH_SECTIONS="${BENCH_SECTIONS:-main,cpu,scale}"
BENCH_BIN="${BENCH_BIN:-}"
BENCH_CPU_LEVELS="${BENCH_CPU_LEVELS:-32,64,1000}"
BENCH_CPU_ROUNDS="${BENCH_CPU_ROUNDS:-10}"
BENCH_CPU_DURATION="${BENCH_CPU_DURATION:-4s}"
BENCH_CPU_VARIANTS="${BENCH_CPU_VARIANTS:-}"
BENCH_CPU_FLOOR="${BENCH_CPU_FLOOR:-0}"
BENCH_SCALE_LEVELS="${BENCH_SCALE_LEVELS:-1000,5000,10000}"
BENCH_SCALE_DURATION="${BENCH_SCALE_DURATION:-10s}"
BENCH_SCALE_CHART="${BENCH_SCALE_CHART:-docs/bench-scale.png}"
BENCH_SCALE_VARIANTS="${BENCH_SCALE_VARIANTS:-}"
BENCH_FLOOD_DURATION="${BENCH_FLOOD_DURATION:-120}"
BENCH_PROFILE_CONNECTIONS="${BENCH_PROFILE_CONNECTIONS:-1000}"
BENCH_PROFILE_DURATION="${BENCH_PROFILE_DURATION:-10s}"
BENCH_PROFILE_TOP="${BENCH_PROFILE_TOP:-20}"
BENCH_PROFILE_SYSTEM="${BENCH_PROFILE_SYSTEM:-hello-k8s}"
BENCH_CACHESIM_LEVELS="${BENCH_CACHESIM_LEVELS:-64,1000}"
BENCH_CACHESIM_DURATION="${BENCH_CACHESIM_DURATION:-12s}"
BENCH_PROFILE_LABEL="${BENCH_PROFILE_LABEL:-}"

usage() {
  cat <<'USAGE'
usage: bench/run.sh [--only SECTION[,SECTION...]] [--bin PATH]
  main     hello-k8s beside the Flask origin and nginx (throughput, probes, start-up, memory)
  cpu      hello-k8s and nginx, one core each, at 32, 64 and 1,000 connections (server CPU per
           request, req/s); with the goals against nginx, judged on a quiet machine
  scale    hello-k8s and nginx under 1k, 5k and 10k keep-alive connections (req/s, RSS, 503s)
  flood    hello-k8s under 500m/128Mi (a cgroup v1 of its own, root), wrk -c10000 for 120 s,
           probed every second (timeline, failures, longest run); only when asked
  profile  one pinned round under perf record -g: top symbols, kernel/user split, flame graph
           under bench/.work/profile/; only when asked
  cachesim hello-k8s and nginx under callgrind's cache simulation at 64 and 1,000 connections:
           user-space instructions and cache misses per request; only when asked
Without --only, BENCH_SECTIONS (default main,cpu,scale) decides. --bin PATH (or BENCH_BIN)
measures that hello-k8s binary instead of building this tree's (e.g. a build with symbols for
the profile).
USAGE
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --only)
      [ "$#" -ge 2 ] || { usage >&2; exit 2; }
      BENCH_SECTIONS="$2"
      shift 2
      ;;
    --only=*)
      BENCH_SECTIONS="${1#--only=}"
      shift
      ;;
    --bin)
      [ "$#" -ge 2 ] || { usage >&2; exit 2; }
      BENCH_BIN="$2"
      shift 2
      ;;
    --bin=*)
      BENCH_BIN="${1#--bin=}"
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      printf 'bench: error: unexpected argument %s (expected --only SECTION[,SECTION...] or --bin PATH)\n' "$1" >&2
      usage >&2
      exit 2
      ;;
  esac
done
RUN_MAIN=false
RUN_CPU=false
RUN_SCALE=false
RUN_FLOOD=false
RUN_PROFILE=false
RUN_CACHESIM=false
IFS=',' read -r -a sections <<<"$BENCH_SECTIONS"
for section in "${sections[@]}"; do
  case "$section" in
    main) RUN_MAIN=true ;;
    cpu) RUN_CPU=true ;;
    scale) RUN_SCALE=true ;;
    flood) RUN_FLOOD=true ;;
    profile) RUN_PROFILE=true ;;
    cachesim) RUN_CACHESIM=true ;;
    *)
      printf 'bench: error: unknown section %s in BENCH_SECTIONS/--only (expected main, cpu, scale, flood, profile, cachesim or a comma-separated list)\n' "$section" >&2
      exit 2
      ;;
  esac
done

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
  if "$RUN_PROFILE"; then
    have perf || missing+=(linux-perf)
  fi
  if "$RUN_CACHESIM"; then
    have valgrind || missing+=(valgrind)
  fi
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
  if "$RUN_PROFILE"; then
    have perf || die "perf is still missing after the install (Debian: linux-perf)"
    PATH="$PATH:$HOME/.cargo/bin"
    for tool in inferno-collapse-perf inferno-flamegraph; do
      have "$tool" || die "$tool not found: the profile's flame graph needs inferno (cargo install --locked inferno)"
    done
  fi
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

# The static release binary, through the project's release build script when it exists, or the
# binary given with --bin/BENCH_BIN.
build_binary() {
  if [ -n "$BENCH_BIN" ]; then
    [ -f "$BENCH_BIN" ] && [ -x "$BENCH_BIN" ] || die "--bin/BENCH_BIN $BENCH_BIN: not an executable file (expected a hello-k8s binary)"
    BIN="$(cd "$(dirname "$BENCH_BIN")" && pwd)/$(basename "$BENCH_BIN")"
    say "measuring $BIN (given with --bin/BENCH_BIN; not built from this tree)"
    return
  fi
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

# Runs one measurement in the background so that cleanup can stop it on any exit.
measure() {
  "$@" &
  BENCH_PID=$!
  wait "$BENCH_PID"
  BENCH_PID=""
}

# The floods hold up to 10k sockets in the server and as many in wrk: raise the soft limit of
# open files to what the largest of the given comma-separated connection counts needs (the hard
# limit bounds it; no root needed).
raise_nofile() {
  local need hard largest
  largest="$(tr ',' '\n' <<<"$1" | sort -n | tail -1)"
  [[ "$largest" =~ ^[0-9]+$ ]] || die "connection counts '$1': expected comma-separated numbers"
  need=$((largest + 1024))
  hard="$(ulimit -Hn)"
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    die "$largest connections need $need open files, the hard limit is $hard: lower the connection counts or raise the limit (ulimit -Hn, as root)"
  fi
  if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need" ]; then
    ulimit -Sn "$need"
  fi
}

if "$RUN_MAIN"; then
  say "measuring the main section (about 5 minutes): rounds=$BENCH_ROUNDS duration=$BENCH_DURATION connections=$BENCH_CONNECTIONS workers=$BENCH_WORKERS"
  measure "$VENV/bin/python" bench/bench.py \
    --bin "$BIN" \
    --work "$WORK" \
    --rounds "$BENCH_ROUNDS" \
    --duration "$BENCH_DURATION" \
    --threads "$BENCH_THREADS" \
    --connections "$BENCH_CONNECTIONS" \
    --workers "$BENCH_WORKERS" \
    --startup-runs "$BENCH_STARTUP_RUNS"
fi

# Sets `variants` to the --variant arguments of a comma-separated LABEL=PATH list
# (BENCH_CPU_VARIANTS, BENCH_SCALE_VARIANTS).
variant_args() {
  variants=()
  local listed variant
  if [ -n "$1" ]; then
    IFS=',' read -r -a listed <<<"$1"
    for variant in "${listed[@]}"; do
      variants+=(--variant "$variant")
    done
  fi
}

if "$RUN_CPU"; then
  raise_nofile "$BENCH_CPU_LEVELS"
  say "measuring the cpu section (about 4.5 minutes with the defaults): levels=$BENCH_CPU_LEVELS rounds=$BENCH_CPU_ROUNDS duration=$BENCH_CPU_DURATION, each server pinned to one CPU, wrk -t1 on the other"
  cpu_variants="$BENCH_CPU_VARIANTS"
  case "$BENCH_CPU_FLOOR" in
    0) ;;
    1)
      say "building bench/floor (actix-web alone) as the service is built: RELEASE_PACKAGE=actix-floor scripts/build-release.sh"
      floor="$(RELEASE_PACKAGE=actix-floor scripts/build-release.sh)" || die "the build of bench/floor failed"
      cpu_variants="${cpu_variants:+$cpu_variants,}floor=$floor"
      ;;
    *) die "BENCH_CPU_FLOOR=$BENCH_CPU_FLOOR: expected 0 or 1" ;;
  esac
  variant_args "$cpu_variants"
  measure "$VENV/bin/python" bench/cpu.py \
    --bin "$BIN" \
    --work "$WORK" \
    --levels "$BENCH_CPU_LEVELS" \
    --rounds "$BENCH_CPU_ROUNDS" \
    --duration "$BENCH_CPU_DURATION" \
    "${variants[@]}"
fi

if "$RUN_SCALE"; then
  raise_nofile "$BENCH_SCALE_LEVELS"
  variant_args "$BENCH_SCALE_VARIANTS"
  say "measuring the scale section (about 2.5 minutes, plus a minute per variant): levels=$BENCH_SCALE_LEVELS duration=$BENCH_SCALE_DURATION, each server pinned to one CPU"
  measure "$VENV/bin/python" bench/scale.py \
    --bin "$BIN" \
    --work "$WORK" \
    --levels "$BENCH_SCALE_LEVELS" \
    --duration "$BENCH_SCALE_DURATION" \
    "${variants[@]}"
fi

if "$RUN_FLOOD"; then
  [ "$(id -u)" -eq 0 ] || die "the flood section makes a cgroup of its own: run it as root"
  say "measuring the flood section (about $((BENCH_FLOOD_DURATION + 20)) s): wrk -t2 -c10000 for ${BENCH_FLOOD_DURATION}s under 500m/128Mi"
  measure "$PYTHON" bench/flood.py --bin "$BIN" --duration "$BENCH_FLOOD_DURATION" --out "$WORK/flood.json"
fi

if "$RUN_PROFILE"; then
  raise_nofile "$BENCH_PROFILE_CONNECTIONS"
  say "profiling $BENCH_PROFILE_SYSTEM: one pinned round of $BENCH_PROFILE_CONNECTIONS connections for $BENCH_PROFILE_DURATION under perf record"
  measure "$VENV/bin/python" bench/profiler.py \
    --bin "$BIN" \
    --work "$WORK" \
    --system "$BENCH_PROFILE_SYSTEM" \
    --label "$BENCH_PROFILE_LABEL" \
    --connections "$BENCH_PROFILE_CONNECTIONS" \
    --duration "$BENCH_PROFILE_DURATION" \
    --top "$BENCH_PROFILE_TOP"
fi

if "$RUN_CACHESIM"; then
  raise_nofile "$BENCH_CACHESIM_LEVELS"
  say "counting the cachesim section (a few minutes: the servers run under valgrind): levels=$BENCH_CACHESIM_LEVELS duration=$BENCH_CACHESIM_DURATION"
  measure "$VENV/bin/python" bench/cachesim.py \
    --bin "$BIN" \
    --work "$WORK" \
    --levels "$BENCH_CACHESIM_LEVELS" \
    --duration "$BENCH_CACHESIM_DURATION"
fi

if ! "$RUN_MAIN" && ! "$RUN_CPU" && ! "$RUN_SCALE"; then
  exit 0
fi

# Only the sections measured now are rendered again; the others keep their text in the report.
report=("$VENV/bin/python" bench/report.py --markdown "$BENCH_MARKDOWN")
if "$RUN_MAIN"; then
  report+=(--results "$WORK/results.json" --chart "$BENCH_CHART")
fi
if "$RUN_CPU"; then
  report+=(--cpu "$WORK/cpu.json")
fi
if "$RUN_SCALE"; then
  report+=(--scale "$WORK/scale.json" --scale-chart "$BENCH_SCALE_CHART")
fi
# The last step: its exit status (1: a goal missed on a quiet machine, outside CI) is the bench's.
"${report[@]}"
