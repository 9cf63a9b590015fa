#!/usr/bin/env bash
# Installs what `make browser-test` needs and is missing, from the distribution (Debian/Ubuntu):
# chromium and chromium-driver (chromedriver), built from one source package, so the driver
# always speaks the browser's version.
#
#   scripts/browser-install.sh [--dry-run]     (make browser-install; make browser-test runs it)
#
# The rules of the install (never reinstall, root or sudo, skip or fail under CI=true) are
# scripts/apt-install.sh's.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" --usage-of "${BASH_SOURCE[0]}" --for "the browser test" \
  chromium="${CHROMIUM:-chromium}" chromium-driver="${CHROMEDRIVER:-chromedriver}" \
  -- "$@"
