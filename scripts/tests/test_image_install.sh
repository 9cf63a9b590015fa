# shellcheck shell=bash
# Tests of scripts/image-install.sh (make image-install) with a stand-in apt-get that records
# its calls and "installs" a package by creating its command: the real one is never run here.

# A PATH without podman, runc and slirp4netns, plus a stand-in apt-get (unless $1 = no-apt);
# sets IBIN, ILOG, and IMAGE_CA_BUNDLE (absent until ca-certificates is "installed").
image_install_sandbox() {
  local dir tool
  local -a links=()
  dir="$(mktemp -d "$TEST_TMP/image-install.XXXXXX")" || fail "no temporary directory"
  IBIN="$dir/bin" ILOG="$dir/apt.log"
  mkdir -p "$IBIN" "$dir/path"
  for tool in "$SYSBIN"/*; do
    case "${tool##*/}" in
      podman | runc | slirp4netns | iptables | buildah | crun) continue ;;
    esac
    links+=("$tool")
  done
  # Links to the system bin's links, all in one `ln` (thousands of tools).
  ln -s -t "$dir/path" -- "${links[@]}" || fail "could not link the system tools into $dir/path"
  export IMAGE_CA_BUNDLE="$dir/ca-certificates.crt" NETAVARK="$IBIN/netavark" SBIN_DIRS="" ILOG IBIN
  : >"$ILOG"
  if [[ "${1:-}" != no-apt ]]; then
    cat >"$IBIN/apt-get" <<'SH'
#!/usr/bin/env bash
# Stand-in apt-get: records its arguments; `install` creates each package's command.
echo "apt-get $*" >>"$ILOG"
if [[ " $* " == *" install "* ]]; then
  for arg in "$@"; do
    case "$arg" in
      podman | runc | slirp4netns | netavark | iptables) printf '#!/bin/sh\nexit 0\n' >"$IBIN/$arg" && chmod +x "$IBIN/$arg" ;;
      ca-certificates) : >"$IMAGE_CA_BUNDLE" ;;
    esac
  done
fi
SH
    chmod +x "$IBIN/apt-get"
  fi
  export PATH="$IBIN:$dir/path"
}

test_image_install_installs_only_what_is_missing_after_apt_get_update() {
  [[ $EUID -eq 0 ]] || skip "the installer runs apt-get directly only as root (otherwise through sudo)"
  image_install_sandbox
  printf '#!/bin/sh\nexit 0\n' >"$IBIN/runc" && chmod +x "$IBIN/runc"
  local out="$TEST_TMP/install.out"
  "$PROJECT_ROOT/scripts/image-install.sh" >"$out" 2>&1 || { cat "$out" >&2; fail "image-install.sh failed"; }
  assert_eq "$(cat "$ILOG")" "apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends podman slirp4netns netavark iptables ca-certificates" "apt-get calls"
  assert_file_contains "$out" "runc: present"
  # Everything is there now: a second run calls apt-get no more.
  : >"$ILOG"
  "$PROJECT_ROOT/scripts/image-install.sh" >"$out" 2>&1 || fail "second run failed"
  assert_eq "$(cat "$ILOG")" "" "apt-get calls of a second run"
  assert_file_contains "$out" "nothing to install"
}

test_image_install_dry_run_installs_nothing() {
  image_install_sandbox
  local out="$TEST_TMP/install.out"
  "$PROJECT_ROOT/scripts/image-install.sh" --dry-run >"$out" 2>&1 || fail "--dry-run failed"
  assert_file_contains "$out" "to install from the distribution: podman runc slirp4netns netavark iptables ca-certificates"
  assert_eq "$(cat "$ILOG")" "" "apt-get calls of a dry run"
}

test_image_install_without_apt_get_fails_under_ci_and_warns_otherwise() {
  image_install_sandbox no-apt
  local out="$TEST_TMP/install.out" rc=0
  CI=true "$PROJECT_ROOT/scripts/image-install.sh" >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code without apt-get under CI=true"
  assert_file_contains "$out" "no apt-get: install podman runc slirp4netns netavark iptables ca-certificates"
  rc=0
  CI="" "$PROJECT_ROOT/scripts/image-install.sh" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code without apt-get outside CI"
  assert_file_contains "$out" "the image test will skip"
}
