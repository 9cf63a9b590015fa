#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Imports an image archive (docker-archive or OCI, e.g. `make image-save`'s) into the cluster's
# containerd (namespace k8s.io), the cluster having no registry. Names podman gave a
# `localhost/` prefix are also tagged as the kubelet resolves the manifests' plain names
# (hello-k8s:0.1.0 -> docker.io/library/hello-k8s:0.1.0). Usage: image-import.sh ARCHIVE
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
archive="${1:?usage: image-import.sh ARCHIVE}"
[[ -f "$archive" ]] || die "image archive $archive not found (make image-save writes one)"
[[ -S "$CONTAINERD_SOCK" ]] || die "no cluster runtime at $CONTAINERD_SOCK: run make cluster first"
ctr=(ctr --address "$CONTAINERD_SOCK" -n k8s.io)
"${ctr[@]}" images import "$archive" >/dev/null
while read -r ref; do
  [[ "$ref" == localhost/* ]] || continue
  plain="${ref#localhost/}"
  [[ "$plain" == */* ]] || plain="library/$plain"
  "${ctr[@]}" images tag --force "$ref" "docker.io/$plain" >/dev/null
  info "imported $ref as docker.io/$plain"
done < <("${ctr[@]}" images ls -q)
ok "imported $archive into the cluster's containerd"
