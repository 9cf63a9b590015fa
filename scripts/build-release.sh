#!/usr/bin/env bash
# Builds the fully static release binary of hello-k8s and prints its path on stdout.
#
# The one release build command of the project: the Dockerfile, `make release`,
# `make run RUN_PROFILE=release`, `make image-test`, e2e and bench all call this script, so they
# cannot diverge. Its output is the binary users deploy (fat LTO, [profile.release]).
# Static glibc (crt-static) rather than musl: no musl target is available to every builder,
# and a static binary runs in distroless/static or an empty root with nothing beside it.
# `--target` is explicit so RUSTFLAGS reach only the binary, not build scripts or proc macros,
# and the triple comes from rustc, so the same command works on amd64 and arm64 hosts.
# RELEASE_PACKAGE builds another binary of the workspace the same way (the bench's actix-floor,
# which must be built as the service is to be compared with it).
set -euo pipefail

CARGO="${CARGO:-cargo}"
PACKAGE="${RELEASE_PACKAGE:-hello-k8s}"

# Prints the host target triple of the rustc in use.
host_triple() {
  rustc -vV | sed -n 's/^host: //p'
}

main() {
  if [[ $# -gt 0 ]]; then
    case "$1" in
      -h | --help)
        echo "usage: [RELEASE_PACKAGE=NAME] scripts/build-release.sh   (builds $PACKAGE statically, prints the binary path)"
        return 0
        ;;
      *)
        echo "error: unexpected argument '$1' (this script takes none; see --help)" >&2
        return 2
        ;;
    esac
  fi
  local root triple
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  cd "$root"
  triple="$(host_triple)"
  if [[ -z "$triple" ]]; then
    echo "error: could not read the host triple from 'rustc -vV'" >&2
    return 1
  fi
  echo "building $PACKAGE (release, static, $triple)" >&2
  # jemalloc's C build (tikv-jemalloc-sys runs its configure and make) is the longest step of
  # this build, and two parts of it never reach the binary, which links libjemalloc_pic.a and
  # is stripped: the non-PIC copy of every object (libjemalloc.a), and the -g3 debug info its
  # configure adds. make takes a variable override from MAKEFLAGS, and cc passes CFLAGS_<target>
  # after configure's flags; the binary is byte for byte the same without both (docs/testing.md,
  # "Budgets"), about 25 CPU s less.
  local cflags_var="CFLAGS_${triple//-/_}"
  # cargo's own progress goes to stderr; stdout carries only the path.
  env RUSTFLAGS="-C target-feature=+crt-static" \
    MAKEFLAGS="${MAKEFLAGS:+$MAKEFLAGS }STATIC_LIBS=\$\$(objroot)lib/\$\$(LIBJEMALLOC)_pic.\$\$(A)" \
    "$cflags_var=${!cflags_var:+${!cflags_var} }-g0" \
    "$CARGO" build --release --locked -p "$PACKAGE" --target "$triple" >&2
  # cargo's own rule for where artifacts go: CARGO_TARGET_DIR (relative to here) or target/.
  local target_dir="${CARGO_TARGET_DIR:-target}"
  [[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
  local bin="$target_dir/$triple/release/$PACKAGE"
  if [[ ! -x "$bin" ]]; then
    echo "error: cargo succeeded but $bin is missing" >&2
    return 1
  fi
  printf '%s\n' "$bin"
}

main "$@"
