# shellcheck shell=bash
# Tests of scripts/apt-install.sh, the one installer image-install.sh and browser-install.sh
# call, with a stand-in apt-get that records its calls and "installs" a package by creating what
# it provides: the real apt-get is never run here. The packages are made-up names, so no real
# tool of the machine can make one look present.

# A bin directory with a stand-in apt-get (unless $1 = no-apt) in front of the tests' system
# bin (no apt-get, no sudo). Sets ABIN (where packages "install" their command), AFILE (the
# file kco-data provides) and ALOG (apt-get's calls).
apt_install_sandbox() {
  local dir
  dir="$(mktemp -d "$TEST_TMP/apt-install.XXXXXX")" || fail "no temporary directory"
  ABIN="$dir/bin" AFILE="$dir/share/kco-data.txt" ALOG="$dir/apt.log"
  mkdir -p "$ABIN"
  : >"$ALOG"
  export ABIN AFILE ALOG SBIN_DIRS=""
  if [[ "${1:-}" != no-apt ]]; then
    cat >"$ABIN/apt-get" <<'SH'
#!/usr/bin/env bash
# Stand-in apt-get: records its arguments; `install` creates what each package provides.
echo "apt-get $*" >>"$ALOG"
if [[ " $* " == *" install "* ]]; then
  for arg in "$@"; do
    case "$arg" in
      kco-alpha | kco-beta) printf '#!/bin/sh\nexit 0\n' >"$ABIN/$arg-cmd" && chmod +x "$ABIN/$arg-cmd" ;;
      kco-data) mkdir -p "${AFILE%/*}" && : >"$AFILE" ;;
    esac
  done
fi
SH
    chmod +x "$ABIN/apt-get"
  fi
  export PATH="$ABIN:$SYSBIN"
}

# The installer with three made-up packages: two commands and a file.
apt_install() {
  "$PROJECT_ROOT/scripts/apt-install.sh" "$@" --for "the kco test" \
    kco-alpha=kco-alpha-cmd kco-beta=kco-beta-cmd kco-data="$AFILE"
}

test_apt_install_installs_only_what_is_missing_after_apt_get_update_and_never_again() {
  [[ $EUID -eq 0 ]] || skip "the installer runs apt-get directly only as root (otherwise through sudo)"
  apt_install_sandbox
  printf '#!/bin/sh\nexit 0\n' >"$ABIN/kco-beta-cmd" && chmod +x "$ABIN/kco-beta-cmd"
  local out="$TEST_TMP/install.out"
  apt_install >"$out" 2>&1 || { cat "$out" >&2; fail "apt-install.sh failed"; }
  assert_eq "$(cat "$ALOG")" "apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends kco-alpha kco-data" "apt-get calls"
  assert_file_contains "$out" "kco-beta: present"
  assert_file_contains "$out" "installed: kco-alpha kco-data"
  # Everything is there now (the file by its absolute path): a second run calls apt-get no more.
  : >"$ALOG"
  apt_install >"$out" 2>&1 || fail "second run failed"
  assert_eq "$(cat "$ALOG")" "" "apt-get calls of a second run"
  assert_file_contains "$out" "nothing to install"
}

test_apt_install_dry_run_lists_what_is_missing_and_installs_nothing() {
  apt_install_sandbox
  local out="$TEST_TMP/install.out"
  apt_install --dry-run >"$out" 2>&1 || fail "--dry-run failed"
  assert_file_contains "$out" "to install from the distribution: kco-alpha kco-beta kco-data"
  assert_file_contains "$out" "dry run: nothing installed"
  assert_eq "$(cat "$ALOG")" "" "apt-get calls of a dry run"
}

test_apt_install_without_apt_get_fails_under_ci_and_warns_otherwise() {
  apt_install_sandbox no-apt
  local out="$TEST_TMP/install.out" rc=0
  CI=true apt_install >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code without apt-get under CI=true"
  assert_file_contains "$out" "no apt-get: install kco-alpha kco-beta kco-data"
  assert_file_contains "$out" "CI=true: the kco test must run"
  rc=0
  CI="" apt_install >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code without apt-get outside CI"
  assert_file_contains "$out" "the kco test will skip"
}

test_apt_install_fails_when_a_package_did_not_bring_what_it_provides() {
  [[ $EUID -eq 0 ]] || skip "the installer runs apt-get directly only as root (otherwise through sudo)"
  apt_install_sandbox
  local out="$TEST_TMP/install.out" rc=0
  "$PROJECT_ROOT/scripts/apt-install.sh" --for "the kco test" kco-alpha=kco-gamma-cmd >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code when the command is still missing after the install"
  assert_file_contains "$out" "kco-alpha was installed but kco-gamma-cmd is still missing"
}

test_apt_install_refuses_bad_arguments_naming_what_was_expected() {
  local out="$TEST_TMP/args.out" rc=0
  "$PROJECT_ROOT/scripts/apt-install.sh" --for "the kco test" kco-alpha >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code of a package without PROVIDES"
  assert_file_contains "$out" "unexpected argument 'kco-alpha' (expected --dry-run, --for WHAT or PACKAGE=PROVIDES"
  rc=0
  "$PROJECT_ROOT/scripts/apt-install.sh" kco-alpha=kco-alpha-cmd >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code without --for"
  assert_file_contains "$out" "expected --for WHAT and at least one PACKAGE=PROVIDES"
}
