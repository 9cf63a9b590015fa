#!/usr/bin/env bash
# Times the README's two commands as a new user meets them: clones HEAD into a temporary
# directory (one clone per command), then prints
#   - make run: seconds from `make run` to the first 200 from GET / on 127.0.0.1;
#   - make test: its wall time, as make venv + make test-tools + the make test recipe, with the
#     recipe's own phases (build: the test build; release build: beside it, from the start;
#     cargo test run and scripts/tests/run.sh: side by side, from the end of the test build);
# each beside its budget, read from the clone's docs/testing.md ("Budgets"), and the conditions
# (cores, load average before and after, which caches outside the clone were warm).
#
#   scripts/fresh-clone-timings.sh [--only run|test] [--keep]      (make timings)
#
# The clones share the machine's caches outside them (cargo's downloaded crates, uv's wheels,
# tools in the cargo home) as a second clone on the same machine does; nothing inside a clone is
# reused. Uncommitted changes are not in the clone. Exit code: 0 when make test passed and make
# run served; over-budget phases are reported (OVER), not failed: the machine is shared, so the
# numbers are noisy. Environment: REPO (default: this checkout), RUN_TIMEOUT (seconds, 900).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="${REPO:-$ROOT}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
MAKE="${MAKE:-make}"

# shellcheck source=scripts/log.sh
source "$ROOT/scripts/log.sh"

WORK=""
SERVER_PGID=""
KEEP=0

# Stops the make run this script started (its own process group): SIGINT (the service stops
# without the drain delay), SIGTERM after 10 s (a background job may ignore SIGINT), SIGKILL
# after 10 s more.
stop_server() {
  [[ -n "$SERVER_PGID" ]] || return 0
  local sig tries
  for sig in INT TERM KILL; do
    kill -"$sig" -- "-$SERVER_PGID" 2>/dev/null || break
    for ((tries = 0; tries < 40; tries++)); do
      kill -0 -- "-$SERVER_PGID" 2>/dev/null || break 2
      sleep 0.25
    done
  done
  wait "$SERVER_PGID" 2>/dev/null || true
  SERVER_PGID=""
}

# Stops the server, removes the clones (unless --keep).
cleanup() {
  stop_server
  if [[ -n "$WORK" && $KEEP -eq 0 ]]; then
    rm -rf "$WORK"
  elif [[ -n "$WORK" ]]; then
    say "kept the clones and logs in $WORK"
  fi
}

# Seconds since the epoch, with tenths.
now() {
  date +%s.%N
}

# Seconds between two `now` values, one decimal.
elapsed() {
  awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'
}

# The budget in seconds of phase $1 from the Budgets table of the clone's docs/testing.md
# (`| <phase> | <seconds> s | ...`); "" when the table has no such row.
budget() {
  awk -F'|' -v phase="$1" '
    /^## Budgets/ {inside = 1; next}
    /^## / {inside = 0}
    inside && NF > 3 {
      name = $2; gsub(/^ +| +$/, "", name); gsub(/`/, "", name)
      if (name == phase) {value = $3; gsub(/[^0-9]/, "", value); print value; exit}
    }' "$2"
}

# One line: phase, seconds, budget, verdict.
report() {
  local phase="$1" seconds="$2" docs="$3" limit verdict
  limit="$(budget "$phase" "$docs")"
  if [[ "$seconds" == "?" ]]; then
    verdict="not measured (see the logs: --keep)"
  elif [[ -z "$limit" ]]; then
    verdict="(no budget in docs/testing.md)"
  elif awk -v s="$seconds" -v l="$limit" 'BEGIN {exit !(s <= l)}'; then
    verdict="within ${limit} s"
  else
    verdict="OVER its ${limit} s budget"
  fi
  printf '  %-24s %7s s   %s\n' "$phase" "$seconds" "$verdict"
}

# Clones REPO's HEAD into $WORK/$1 and prints the clone's path.
clone() {
  local dir="$WORK/$1"
  git clone --quiet "$REPO" "$dir" || die "git clone $REPO failed"
  printf '%s\n' "$dir"
}

# make run in a fresh clone: seconds to the first 200 on 127.0.0.1; sets RUN_SECONDS.
time_run() {
  local dir port start code="" pid
  dir="$(clone run)"
  port="$("$ROOT/scripts/free-port.sh")"
  say "make run (fresh clone, PORT=$port): waiting for the first 200 on http://127.0.0.1:$port/ (at most $RUN_TIMEOUT s)"
  start="$(now)"
  local -a timer=()
  [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -q -f '%U %S' -o "$WORK/cpu-run")
  # A background job of a script starts with SIGINT ignored; `env --default-signal=INT` gives
  # it back, so stop_server's SIGINT stops make run at once rather than after its 10 s wait.
  setsid env --default-signal=INT "${timer[@]}" "$MAKE" --no-print-directory -C "$dir" run PORT="$port" \
    </dev/null >"$WORK/run.log" 2>&1 &
  pid=$!
  SERVER_PGID="$pid"
  while :; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/" || true)"
    [[ "$code" == 200 ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$WORK/run.log" >&2
      die "make run exited before it served (log above)"
    fi
    if awk -v s="$(elapsed "$start" "$(now)")" -v t="$RUN_TIMEOUT" 'BEGIN {exit !(s > t)}'; then
      tail -n 30 "$WORK/run.log" >&2
      die "make run served no 200 within $RUN_TIMEOUT s (log above)"
    fi
    sleep 0.25
  done
  RUN_SECONDS="$(elapsed "$start" "$(now)")"
  stop_server
}

# Runs `make $1` in clone $2, logging to $WORK/test-$1.log; prints its wall seconds; returns its
# status. With GNU time, the CPU seconds it used (user + system, all processes) go to CPU[$1].
timed_make() {
  local target="$1" dir="$2" start rc=0
  local -a timer=()
  [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -q -f '%U %S' -o "$WORK/cpu-$target")
  start="$(now)"
  "${timer[@]}" "$MAKE" --no-print-directory -C "$dir" "$target" </dev/null >"$WORK/test-$target.log" 2>&1 || rc=$?
  elapsed "$start" "$(now)"
  return "$rc"
}

# The CPU seconds `make $1` used ("?" without GNU time).
cpu_of() {
  awk '{printf "%.0f", $1 + $2; found = 1} END {if (!found) printf "?"}' "$WORK/cpu-$1" 2>/dev/null || printf '?'
}

# make test in a fresh clone, by phase; sets TEST_SECONDS, TEST_STATUS and the PHASE map.
time_test() {
  local dir target seconds line rc
  dir="$(clone test)"
  TEST_STATUS=0
  TEST_SECONDS=0
  declare -gA PHASE=()
  for target in venv test-tools test; do
    say "make $target (fresh clone)"
    rc=0
    seconds="$(timed_make "$target" "$dir")" || rc=$?
    PHASE[$target]="$seconds"
    TEST_SECONDS="$(awk -v a="$TEST_SECONDS" -v b="$seconds" 'BEGIN {printf "%.1f", a + b}')"
    if [[ $rc -ne 0 ]]; then
      TEST_STATUS=$rc
      tail -n 40 "$WORK/test-$target.log" >&2
      warn "make $target failed (exit $rc, log above)"
      [[ "$target" == test ]] || break
    fi
  done
  line="$(grep '^make test phases: ' "$WORK/test-test.log" 2>/dev/null | tail -n 1 || true)"
  if [[ "$line" =~ phases:\ build\ ([0-9]+)\ s.*,\ cargo\ test\ run\ ([0-9]+)\ s,\ scripts/tests/run\.sh\ ([0-9]+)\ s ]]; then
    PHASE[build]="${BASH_REMATCH[1]}"
    PHASE[cargo-run]="${BASH_REMATCH[2]}"
    PHASE[scripts]="${BASH_REMATCH[3]}"
  fi
  if [[ "$line" =~ build-release\.sh\ beside\ it\ took\ ([0-9]+)\ s ]]; then
    PHASE[release]="${BASH_REMATCH[1]}"
  fi
  TEST_SUMMARY="$(grep -E '^test result: |^[0-9]+ passed, [0-9]+ failed' "$WORK/test-test.log" 2>/dev/null \
    | awk '/^test result/ {p += $4; f += $6; i += $8} /passed, / {sp = $1; sf = $3; ss = $5}
      END {printf "cargo: %d passed, %d failed, %d ignored; scripts: %d passed, %d failed, %d skipped", p, f, i, sp, sf, ss}')"
}

main() {
  local only=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --only)
        [[ "${2:-}" == run || "${2:-}" == test ]] || die "--only takes run or test, got '${2:-}'"
        only="$2"
        shift 2
        ;;
      --keep)
        KEEP=1
        shift
        ;;
      -h | --help)
        awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"
        return 0
        ;;
      *) die "unexpected argument '$1' (expected --only run|test, --keep; see --help)" ;;
    esac
  done
  [[ "$RUN_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "RUN_TIMEOUT=$RUN_TIMEOUT: expected a whole number of seconds"
  local tool
  for tool in git "$MAKE" curl python3 setsid awk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (needed to clone, build and probe)"
  done
  git -C "$REPO" rev-parse --verify -q HEAD >/dev/null || die "$REPO is not a git checkout with a commit"

  WORK="$(mktemp -d "${TMPDIR:-/tmp}/fresh-clone-timings.XXXXXX")"
  trap cleanup EXIT
  local commit load_before dirty="" warm=()
  commit="$(git -C "$REPO" log -1 --format='%h %s' | cut -c1-72)"
  [[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]] || dirty=" (the checkout has uncommitted changes; the clone does not)"
  load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  [[ -d "${CARGO_HOME:-$HOME/.cargo}/registry/cache" ]] && warm+=("cargo's downloaded crates")
  [[ -d "${UV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/uv}" ]] && warm+=("uv's wheel cache")

  RUN_SECONDS=""
  TEST_SECONDS=""
  TEST_STATUS=0
  [[ "$only" == test ]] || time_run
  [[ "$only" == run ]] || time_test

  local docs="$WORK/${only:-run}/docs/testing.md"
  [[ -f "$docs" ]] || docs="$WORK/test/docs/testing.md"
  echo
  echo "fresh-clone timings of $commit$dirty"
  echo "  machine: $(nproc) cores; load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  echo "  warm caches outside the clones: ${warm[*]:-none}"
  if [[ -n "$RUN_SECONDS" ]]; then
    report "make run (first 200)" "$RUN_SECONDS" "$docs"
    echo "  CPU time of make run (its build, then serving one request): $(cpu_of run) s"
  fi
  if [[ -n "$TEST_SECONDS" ]]; then
    report "make test" "$TEST_SECONDS" "$docs"
    report "venv" "${PHASE[venv]:-?}" "$docs"
    report "test-tools" "${PHASE[test-tools]:-?}" "$docs"
    report "build" "${PHASE[build]:-?}" "$docs"
    report "release build" "${PHASE[release]:-?}" "$docs"
    report "cargo test run" "${PHASE[cargo-run]:-?}" "$docs"
    report "scripts/tests/run.sh" "${PHASE[scripts]:-?}" "$docs"
    echo "  CPU time (user + system; 2 cores give at most 2 CPU seconds a second, less when shared):" \
      "venv $(cpu_of venv) s, test-tools $(cpu_of test-tools) s, the make test recipe $(cpu_of test) s"
    echo "  $TEST_SUMMARY; make test exit $TEST_STATUS"
  fi
  [[ $TEST_STATUS -eq 0 ]] || die "make test failed in the fresh clone (exit $TEST_STATUS)"
}

main "$@"
