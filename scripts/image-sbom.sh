#!/usr/bin/env bash
# Writes the SBOM of the release binary: the crates linked into hello-k8s (no dev or build-only
# dependencies), as CycloneDX 1.5 JSON, beside the image outputs, and prints its path:
#
#   scripts/image-sbom.sh        -> target/image/hello-k8s-<IMAGE_TAG>.cdx.json   (make sbom)
#
# Made by cargo-cyclonedx (crates.io, the CycloneDX project's cargo subcommand), pinned to
# CYCLONEDX_VERSION. No registry publishes it prebuilt (PyPI and npm have no package of it), so
# when the cargo home lacks that release it is compiled once with `cargo install --locked`, into
# the cargo home, outside every clone, and reused by all of them (docs/testing.md, "Tools"). cargo-cyclonedx writes one file beside
# every workspace member's Cargo.toml, so it runs on a copy of the workspace under
# target/image/, never in the checkout. The timestamp is the last commit's (SOURCE_DATE_EPOCH),
# so the same commit gives the same SBOM.
set -euo pipefail

CARGO="${CARGO:-cargo}"
PACKAGE="hello-k8s"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${IMAGE_OUT_DIR:-$ROOT/target/image}"
CYCLONEDX_VERSION="0.5.9"

# shellcheck source=scripts/log.sh
source "$ROOT/scripts/log.sh"

# Prints the version of the cargo-cyclonedx cargo finds ("" when none).
cyclonedx_version() {
  # Not installed yet: cargo exits 101, which must not end the script under pipefail.
  { "$CARGO" cyclonedx --version 2>/dev/null || true; } | awk 'NR == 1 {print $NF}'
}

# Installs cargo-cyclonedx CYCLONEDX_VERSION unless that release is there; checks --version after.
ensure_cyclonedx() {
  local have
  have="$(cyclonedx_version)"
  [[ "$have" == "$CYCLONEDX_VERSION" ]] && return 0
  say "installing cargo-cyclonedx $CYCLONEDX_VERSION${have:+ (found $have)}: cargo install --locked, from crates.io, once (a few minutes)"
  "$CARGO" install --locked "cargo-cyclonedx@$CYCLONEDX_VERSION" >&2 \
    || die "cargo install cargo-cyclonedx@$CYCLONEDX_VERSION failed (it needs crates.io)"
  have="$(cyclonedx_version)"
  [[ "$have" == "$CYCLONEDX_VERSION" ]] \
    || die "after the install, cargo cyclonedx --version says [${have:-nothing}], expected $CYCLONEDX_VERSION (another cargo-cyclonedx earlier on PATH?)"
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
