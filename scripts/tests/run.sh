#!/usr/bin/env bash
# Runs the script tests: scripts/tests/run.sh [NAME-FILTER]
#
# Each test_* function of the test_*.sh files runs in its own subshell with `set -euo pipefail`;
# a failed assertion exits that subshell. The last line is "N passed, M failed" (CI reads it);
# the exit code is non-zero when any test failed.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TESTS_DIR="$PROJECT_ROOT/scripts/tests"
FILTER="${1:-}"
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

passed=0
failed=0
failures=()
if [[ -t 1 ]]; then GREEN=$'\033[32m' RED=$'\033[31m' OFF=$'\033[0m'; else GREEN="" RED="" OFF=""; fi

while IFS= read -r name; do
  [[ -z "$FILTER" || "$name" == *"$FILTER"* ]] || continue
  out="$TEST_TMP/$name.out"
  rc=0
  (
    set -euo pipefail
    cd "$TEST_TMP"
    "$name"
  ) >"$out" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
    printf '%sok%s   %s\n' "$GREEN" "$OFF" "$name"
    # Notes a test chose to print (e.g. what the sandbox could enforce) stay visible.
    grep -E '^(NOTE|SKIP):' "$out" | sed 's/^/     /' || true
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '%sFAIL%s %s (exit %s)\n' "$RED" "$OFF" "$name" "$rc"
    tail -n 60 "$out" | sed 's/^/     | /'
  fi
done < <(declare -F | awk '{print $3}' | grep '^test_')

if [[ ${#failures[@]} -gt 0 ]]; then
  printf 'failed: %s\n' "${failures[*]}"
fi
printf '%s passed, %s failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]]
