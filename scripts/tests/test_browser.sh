# shellcheck shell=bash
# Tests of the browser gate's scripts around the browser: the packages scripts/browser-install.sh
# (make browser-install) asks for (how they are installed is apt-install.sh's, tested in
# test_apt_install.sh), and scripts/browser-test.sh's skip when a tool is missing. The gate
# itself (Chromium on the real page) is make browser-test, which CI runs.

test_browser_install_asks_for_chromium_and_its_driver() {
  local out="$TEST_TMP/install.out"
  CHROMIUM="$TEST_TMP/absent/chromium" CHROMEDRIVER="$TEST_TMP/absent/chromedriver" \
    "$PROJECT_ROOT/scripts/browser-install.sh" --dry-run >"$out" 2>&1 || fail "--dry-run failed"
  assert_file_contains "$out" "to install from the distribution: chromium chromium-driver"
  CHROMIUM="$TEST_TMP/absent/chromium" CHROMEDRIVER="$PROJECT_ROOT/scripts/browser-install.sh" \
    "$PROJECT_ROOT/scripts/browser-install.sh" --dry-run >"$out" 2>&1 || fail "--dry-run failed"
  assert_file_contains "$out" "chromium-driver: present"
  assert_file_contains "$out" "to install from the distribution: chromium"
}

test_browser_test_without_chromium_skips_loudly_and_fails_under_ci() {
  local log="$TEST_TMP/skips.log" out="$TEST_TMP/browser-test.out" rc=0
  : >"$log"
  CHROMIUM="$TEST_TMP/absent/chromium" SKIP_LOG="$log" CI="" \
    "$PROJECT_ROOT/scripts/browser-test.sh" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of the skip outside CI"
  assert_file_contains "$out" "SKIP: browser-test: $TEST_TMP/absent/chromium not found (install: make browser-install"
  assert_eq "$(cat "$log")" "browser-test: $TEST_TMP/absent/chromium not found (install: make browser-install, or apt-get install chromium)" "SKIP_LOG"
  rc=0
  CHROMIUM="$TEST_TMP/absent/chromium" SKIP_LOG="$log" CI=true \
    "$PROJECT_ROOT/scripts/browser-test.sh" >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code under CI=true"
  assert_file_contains "$out" "the browser test cannot run under CI=true: $TEST_TMP/absent/chromium not found"
  assert_eq "$(wc -l <"$log")" 1 "SKIP_LOG lines after the CI=true run"
}

test_browser_install_takes_only_dry_run_and_help_of_its_own() {
  local out="$TEST_TMP/args.out" rc=0
  "$PROJECT_ROOT/scripts/browser-install.sh" --help >"$out" 2>&1 || fail "--help failed"
  assert_file_contains "$out" "Installs what \`make browser-test\` needs"
  "$PROJECT_ROOT/scripts/browser-install.sh" extra=package >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code of an unexpected argument"
  assert_file_contains "$out" "unexpected argument 'extra=package' (expected --dry-run or nothing; see --help)"
}
