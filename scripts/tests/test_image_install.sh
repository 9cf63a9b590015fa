# shellcheck shell=bash
# Tests of scripts/image-install.sh (make image-install): the packages it asks for. How they are
# installed (only the missing ones, root or sudo, CI=true) is apt-install.sh's, tested in
# test_apt_install.sh.

# A PATH without podman, runc, slirp4netns and iptables; IMAGE_CA_BUNDLE and NETAVARK point at
# absent files. Sets IBIN.
image_install_sandbox() {
  local dir tool
  local -a links=()
  dir="$(mktemp -d "$TEST_TMP/image-install.XXXXXX")" || fail "no temporary directory"
  IBIN="$dir/bin"
  mkdir -p "$IBIN" "$dir/path"
  for tool in "$SYSBIN"/*; do
    case "${tool##*/}" in
      podman | runc | slirp4netns | iptables | buildah | crun) continue ;;
    esac
    links+=("$tool")
  done
  # Links to the system bin's links, all in one `ln` (thousands of tools).
  ln -s -t "$dir/path" -- "${links[@]}" || fail "could not link the system tools into $dir/path"
  export IMAGE_CA_BUNDLE="$dir/ca-certificates.crt" NETAVARK="$IBIN/netavark" SBIN_DIRS="" IBIN
  export PATH="$IBIN:$dir/path"
}

test_image_install_asks_for_podman_runc_their_network_tools_and_the_ca_bundle() {
  image_install_sandbox
  local out="$TEST_TMP/install.out"
  "$PROJECT_ROOT/scripts/image-install.sh" --dry-run >"$out" 2>&1 || fail "--dry-run failed"
  assert_file_contains "$out" "to install from the distribution: podman runc slirp4netns netavark iptables ca-certificates"
}

