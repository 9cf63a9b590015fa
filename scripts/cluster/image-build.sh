#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the project's image for a cluster that can pull nothing (make cluster's): the
# Dockerfile's runtime stage, its text unchanged, on the local STAND-IN of its distroless base,
# with the release binary of scripts/build-release.sh in place of the builder stage (the same
# recipe as make image-test, scripts/image-lib.sh), in a podman store of its own. Saves it as a
# docker archive and prints the archive's path. Usage: image-build.sh [REF [ARCHIVE]]
# (default hello-k8s:IMAGE_TAG and target/image/NAME-TAG.tar); run_system.sh calls it as its
# IMAGE_BUILD on the cluster of make cluster.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
# shellcheck source=../image-lib.sh
source "$CLUSTER_ROOT/scripts/image-lib.sh"
# shellcheck source=../../image.env
source "$CLUSTER_ROOT/image.env"
ref="${1:-$IMAGE_NAME:$IMAGE_TAG}"
tag="${ref##*:}"
name="${ref%:*}"
archive="${2:-$CLUSTER_ROOT/target/image/${name##*/}-$tag.tar}"
mkdir -p "$(dirname "$archive")"
bin="$("$CLUSTER_ROOT/scripts/build-release.sh")"
# podman wants its run root short (under 50 characters).
store="$(mktemp -d /tmp/kco-image.XXXXXX)"
chmod 0755 "$store"
image_podman_init "$store/state"
trap 'image_podman_cleanup; rm -rf "$store"' EXIT
warn "the image's base is a STAND-IN ($IMAGE_STANDIN_NOTE): no registry can be reached here"
image_standin_build "$ref" "$bin" \
  --build-arg VERSION="$tag" --build-arg REVISION="$(git -C "$CLUSTER_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
rm -f "$archive.tmp"
"${PODMAN[@]}" save --quiet --format docker-archive --output "$archive.tmp" "$ref"
mv "$archive.tmp" "$archive"
ok "built $ref ($archive)"
printf '%s\n' "$archive"
