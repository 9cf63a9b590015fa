#!/usr/bin/env bash
# Installs the Debian packages a target needs and the machine lacks, from the distribution
# (Debian/Ubuntu), never reinstalling and never editing a configuration file:
#
#   scripts/apt-install.sh [--dry-run] --for "the image test" PACKAGE=PROVIDES...
#
# A script that installs its packages through it passes --usage-of "${BASH_SOURCE[0]}" and its
# own arguments after `--`: there, only --dry-run and --help (that script's header) are taken.
# PROVIDES is the command (or, when absolute, the file) a package provides: a package whose
# PROVIDES is present counts as installed (commands are also looked up in SBIN_DIRS). As root
# it runs apt-get itself, otherwise through sudo, waiting up to APT_LOCK_SECONDS for another
# apt-get's lock. Where it cannot install (no apt-get, no root and no sudo) it says so and
# exits 0, and the target's test then skips loudly; under CI=true that is an error instead.
# scripts/image-install.sh and scripts/browser-install.sh call it with their packages.
set -euo pipefail

# Directories searched besides PATH (runc lives in /usr/sbin, often not on a user's PATH).
SBIN_DIRS="${SBIN_DIRS-/usr/sbin:/sbin}"
# How long apt-get waits for another apt-get's lock (another install may be running beside).
APT_LOCK_SECONDS="${APT_LOCK_SECONDS:-300}"

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

main() {
  local dry_run=0 purpose="" usage_of="" callers=0
  local -a packages=()
  local -A provides=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dry-run) dry_run=1 ;;
      --usage-of)
        ((!callers)) || die "unexpected argument '$1' (expected --dry-run or nothing; see --help)"
        [[ $# -ge 2 ]] || die "--usage-of needs the calling script"
        usage_of="$2"
        shift
        ;;
      --for)
        ((!callers)) || die "unexpected argument '$1' (expected --dry-run or nothing; see --help)"
        [[ $# -ge 2 ]] || die "--for needs what the packages are for"
        purpose="$2"
        shift
        ;;
      -h | --help)
        awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${usage_of:-${BASH_SOURCE[0]}}"
        return 0
        ;;
      --) callers=1 ;;
      *=?*)
        ((!callers)) || die "unexpected argument '$1' (expected --dry-run or nothing; see --help)"
        packages+=("${1%%=*}")
        provides[${1%%=*}]="${1#*=}"
        ;;
      *)
        ((!callers)) || die "unexpected argument '$1' (expected --dry-run or nothing; see --help)"
        die "unexpected argument '$1' (expected --dry-run, --for WHAT or PACKAGE=PROVIDES; see --help)"
        ;;
    esac
    shift
  done
  [[ -n "$purpose" && ${#packages[@]} -gt 0 ]] || die "expected --for WHAT and at least one PACKAGE=PROVIDES"
  local pkg missing=()
  for pkg in "${packages[@]}"; do
    if present "${provides[$pkg]}"; then
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
  if ((dry_run)); then
    info "(dry run: nothing installed)"
    return 0
  fi
  # Cannot install: fails under CI=true, otherwise warns and leaves the skip to the test.
  cannot() {
    [[ "${CI:-}" == true ]] && die "$* (CI=true: $purpose must run)"
    warn "$*; $purpose will skip"
    exit 0
  }
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
    present "${provides[$pkg]}" || die "$pkg was installed but ${provides[$pkg]} is still missing"
  done
  ok "installed: ${missing[*]}"
}

main "$@"
