#!/usr/bin/env bash
# Fails unless the ELF file given is statically linked: no program interpreter (PT_INTERP) and
# no NEEDED shared libraries. The runtime image (distroless/static) has no libc and no loader,
# so a dynamic binary would build fine and then fail to start with a confusing "not found".
# Used by the Dockerfile's builder stage and by the image test (scripts/image-lib.sh), which
# puts the binary where the builder stage would.
set -euo pipefail

main() {
  if [[ $# -ne 1 || "$1" == -* ]]; then
    echo "usage: scripts/check-static.sh PATH-TO-ELF" >&2
    return 2
  fi
  local bin="$1" headers dynamic
  if ! command -v readelf >/dev/null 2>&1; then
    echo "error: readelf not found (install binutils)" >&2
    return 1
  fi
  # Captured first: a pipe into `grep -q` could hide readelf's own failure under pipefail.
  headers="$(readelf --program-headers --wide "$bin")"
  dynamic="$(readelf --dynamic --wide "$bin")"
  if grep -q 'INTERP' <<<"$headers"; then
    echo "error: $bin is dynamically linked (it requests a program interpreter)" >&2
    return 1
  fi
  if grep -q '(NEEDED)' <<<"$dynamic"; then
    echo "error: $bin needs shared libraries: $(grep '(NEEDED)' <<<"$dynamic" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')" >&2
    return 1
  fi
  echo "$bin: statically linked" >&2
}

main "$@"
