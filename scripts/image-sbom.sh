#!/usr/bin/env bash
# Writes the SBOM of the release binary: the crates linked into hello-k8s (no dev or build-only
# dependencies), as CycloneDX 1.5 JSON, beside the image outputs, and prints its path:
#
#   scripts/image-sbom.sh        -> target/image/hello-k8s-<IMAGE_TAG>.cdx.json   (make sbom)
#
# Made by cargo-cyclonedx (crates.io, the CycloneDX project's cargo subcommand), installed with
# `cargo install --locked cargo-cyclonedx` when missing. cargo-cyclonedx writes one file beside
# every workspace member's Cargo.toml, so it runs on a copy of the workspace under
# target/image/, never in the checkout. The timestamp is the last commit's (SOURCE_DATE_EPOCH),
# so the same commit gives the same SBOM.
set -euo pipefail

CARGO="${CARGO:-cargo}"
PACKAGE="hello-k8s"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${IMAGE_OUT_DIR:-$ROOT/target/image}"

# shellcheck source=scripts/log.sh
source "$ROOT/scripts/log.sh"

# Installs cargo-cyclonedx unless it is there.
ensure_cyclonedx() {
  if "$CARGO" cyclonedx --version >/dev/null 2>&1; then
    return 0
  fi
  say "installing cargo-cyclonedx (cargo install --locked cargo-cyclonedx, from crates.io)"
  "$CARGO" install --locked cargo-cyclonedx >&2 || die "cargo install cargo-cyclonedx failed (it needs crates.io)"
}

main() {
  if [[ $# -gt 0 ]]; then
    case "$1" in
      -h | --help)
        awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"
        return 0
        ;;
      *) die "unexpected argument '$1' (this script takes none; see --help)" ;;
    esac
  fi
  ensure_cyclonedx
  local tag triple copy out epoch
  tag="$(sed -n 's/^IMAGE_TAG=//p' "$ROOT/image.env")"
  [[ -n "$tag" ]] || die "no IMAGE_TAG=... in $ROOT/image.env"
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  [[ -n "$triple" ]] || die "could not read the host triple from 'rustc -vV'"
  epoch="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)"
  copy="$OUT_DIR/sbom-workspace"
  out="$OUT_DIR/$PACKAGE-$tag.cdx.json"
  mkdir -p "$OUT_DIR"
  rm -rf "$copy"
  mkdir "$copy"
  # The sources cargo reads (manifests, lock file, targets), without build outputs or secrets.
  tar -C "$ROOT" --exclude=./target --exclude=./.git --exclude=./.venv --exclude=./bench/.work \
    --exclude='secret.env' -cf - . | tar -C "$copy" -xf -
  say "SBOM of $PACKAGE ($triple, CycloneDX 1.5)"
  (cd "$copy" && SOURCE_DATE_EPOCH="$epoch" CARGO_TARGET_DIR="$ROOT/target" \
    "$CARGO" cyclonedx --quiet --manifest-path "$copy/service/Cargo.toml" --describe binaries \
    --no-build-deps --format json --spec-version 1.5 --target "$triple") >&2 \
    || die "cargo cyclonedx failed"
  local made="$copy/service/${PACKAGE}_bin.cdx.json"
  [[ -f "$made" ]] || die "cargo cyclonedx wrote no $made"
  # Atomic: a reader sees the old SBOM or the new one, never half of one.
  mv "$made" "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$copy"
  ok "$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$out") crates: $out"
  printf '%s\n' "$out"
}

main "$@"
