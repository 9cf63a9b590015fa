# shellcheck shell=bash
# Tests of the browser gate's scripts around the browser: scripts/browser-install.sh (make
# browser-install) with a stand-in apt-get that records its calls and "installs" a package by
# creating its command, and scripts/browser-test.sh's skip when a tool is missing. The gate
# itself (Chromium on the real page) is make browser-test, which CI runs.

# A bin directory with a stand-in apt-get (unless $1 = no-apt); CHROMIUM and CHROMEDRIVER point
# into it, absent until "installed". Sets BBIN and BLOG.
browser_install_sandbox() {
  local dir
  dir="$(mktemp -d "$TEST_TMP/browser-install.XXXXXX")" || fail "no temporary directory"
  BBIN="$dir/bin" BLOG="$dir/apt.log"
  mkdir -p "$BBIN"
  : >"$BLOG"
  export CHROMIUM="$BBIN/chromium" CHROMEDRIVER="$BBIN/chromedriver" BBIN BLOG
  if [[ "${1:-}" != no-apt ]]; then
    cat >"$BBIN/apt-get" <<'SH'
#!/usr/bin/env bash
# Stand-in apt-get: records its arguments; `install` creates each package's command.
echo "apt-get $*" >>"$BLOG"
if [[ " $* " == *" install "* ]]; then
  for arg in "$@"; do
    case "$arg" in
      chromium) printf '#!/bin/sh\nexit 0\n' >"$BBIN/chromium" && chmod +x "$BBIN/chromium" ;;
      chromium-driver) printf '#!/bin/sh\nexit 0\n' >"$BBIN/chromedriver" && chmod +x "$BBIN/chromedriver" ;;
    esac
  done
fi
SH
    chmod +x "$BBIN/apt-get"
  fi
  # The system bin has no apt-get and no sudo (make_sysbin).
  export PATH="$BBIN:$SYSBIN"
}

test_browser_install_installs_only_what_is_missing_after_apt_get_update() {
  [[ $EUID -eq 0 ]] || skip "the installer runs apt-get directly only as root (otherwise through sudo)"
  browser_install_sandbox
  printf '#!/bin/sh\nexit 0\n' >"$BBIN/chromium" && chmod +x "$BBIN/chromium"
  local out="$TEST_TMP/install.out"
  "$PROJECT_ROOT/scripts/browser-install.sh" >"$out" 2>&1 || { cat "$out" >&2; fail "browser-install.sh failed"; }
  assert_eq "$(cat "$BLOG")" "apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium-driver" "apt-get calls"
  assert_file_contains "$out" "chromium: present"
  # Everything is there now: a second run calls apt-get no more.
  : >"$BLOG"
  "$PROJECT_ROOT/scripts/browser-install.sh" >"$out" 2>&1 || fail "second run failed"
  assert_eq "$(cat "$BLOG")" "" "apt-get calls of a second run"
  assert_file_contains "$out" "nothing to install"
}

test_browser_install_without_apt_get_fails_under_ci_and_warns_otherwise() {
  browser_install_sandbox no-apt
  local out="$TEST_TMP/install.out" rc=0
  CI=true "$PROJECT_ROOT/scripts/browser-install.sh" >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code without apt-get under CI=true"
  assert_file_contains "$out" "no apt-get: install chromium chromium-driver"
  rc=0
  CI="" "$PROJECT_ROOT/scripts/browser-install.sh" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code without apt-get outside CI"
  assert_file_contains "$out" "the browser test will skip"
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
