#!/usr/bin/env bash
# Installs what `make image-test` needs and is missing, from the distribution (Debian/Ubuntu):
# podman (with the buildah it builds with), runc, slirp4netns (the container's own network
# namespace with a port on 127.0.0.1, no host bridge or firewall rule), netavark and iptables
# (podman's bridge network, used where /dev/net/tun is missing) and ca-certificates (the
# stand-in base copies the CA bundle).
#
#   scripts/image-install.sh [--dry-run]       (make image-install; make image-test runs it)
#
# Never reinstalls, never edits a configuration file: the image test brings its own
# (containers/containers.conf). As root it runs apt-get itself, otherwise through sudo. Where it
# cannot install (no apt-get, no root and no sudo) it says so and exits 0, and the image test
# then skips loudly; under CI=true that is an error instead.
set -euo pipefail

DRY_RUN=0
# Directories searched besides PATH (runc lives in /usr/sbin, often not on a user's PATH).
SBIN_DIRS="${SBIN_DIRS-/usr/sbin:/sbin}"
# The Debian packages, and the command (or file) each one provides.
PACKAGES=(podman runc slirp4netns netavark iptables ca-certificates)
declare -A PROVIDES=([podman]=podman [runc]=runc [slirp4netns]=slirp4netns
  [netavark]="${NETAVARK:-/usr/lib/podman/netavark}" [iptables]=iptables
  [ca-certificates]="${IMAGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}")

# shellcheck source=scripts/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"

# True when a command (or, for a path, a file) is present; sbin directories included.
present() {
  if [[ "$1" == /* ]]; then
    [[ -e "$1" ]]
  else
    PATH="$PATH${SBIN_DIRS:+:$SBIN_DIRS}" command -v "$1" >/dev/null 2>&1
  fi
}

# Cannot install: fails under CI=true, otherwise warns and leaves the skip to the test.
cannot() {
  if [[ "${CI:-}" == true ]]; then
    die "$* (CI=true: the image test must run)"
  fi
  warn "$*; the image test will skip"
  exit 0
}

main() {
  case "${1:-}" in
    "") ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"
      return 0
      ;;
    *) die "unexpected argument '$1' (expected --dry-run or nothing; see --help)" ;;
  esac
  local pkg missing=()
  for pkg in "${PACKAGES[@]}"; do
    if present "${PROVIDES[$pkg]}"; then
      ok "$pkg: present"
    else
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    ok "nothing to install"
    return 0
  fi
  say "to install from the distribution: ${missing[*]}"
  if ((DRY_RUN)); then
    info "(dry run: nothing installed)"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || cannot "no apt-get: install ${missing[*]} with your package manager"
  local -a as_root=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || cannot "not root and no sudo: cannot install ${missing[*]}"
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update -qq || die "apt-get update failed"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
  for pkg in "${missing[@]}"; do
    present "${PROVIDES[$pkg]}" || die "$pkg was installed but ${PROVIDES[$pkg]} is still missing"
  done
  ok "installed: ${missing[*]}"
}

main "$@"
