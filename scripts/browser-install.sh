#!/usr/bin/env bash
# Installs what `make browser-test` needs and is missing, from the distribution (Debian/Ubuntu):
# chromium and chromium-driver (chromedriver), built from one source package, so the driver
# always speaks the browser's version.
#
#   scripts/browser-install.sh [--dry-run]     (make browser-install; make browser-test runs it)
#
# Never reinstalls. As root it runs apt-get itself, otherwise through sudo. Where it cannot
# install (no apt-get, no root and no sudo) it says so and exits 0, and the browser test then
# skips loudly; under CI=true that is an error instead.
set -euo pipefail

DRY_RUN=0
# The Debian packages, and the command each one provides.
PACKAGES=(chromium chromium-driver)
declare -A PROVIDES=([chromium]="${CHROMIUM:-chromium}" [chromium-driver]="${CHROMEDRIVER:-chromedriver}")
# How long apt-get waits for another apt-get's lock (another install may be running beside).
APT_LOCK_SECONDS="${APT_LOCK_SECONDS:-300}"

# shellcheck source=scripts/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"

# Cannot install: fails under CI=true, otherwise warns and leaves the skip to the test.
cannot() {
  if [[ "${CI:-}" == true ]]; then
    die "$* (CI=true: the browser test must run)"
  fi
  warn "$*; the browser test will skip"
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
    if command -v "${PROVIDES[$pkg]}" >/dev/null 2>&1; then
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
  local -a apt=(apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_SECONDS")
  "${as_root[@]}" "${apt[@]}" update -qq || die "apt-get update failed"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
  for pkg in "${missing[@]}"; do
    command -v "${PROVIDES[$pkg]}" >/dev/null 2>&1 || die "$pkg was installed but ${PROVIDES[$pkg]} is still missing"
  done
  ok "installed: ${missing[*]}"
}

main "$@"
