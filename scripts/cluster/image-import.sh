#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Imports an image archive (docker-archive or OCI, e.g. `make image-save`'s) into the containerd
# of every node of the cluster (namespace k8s.io), the cluster having no registry: a pod may be
# scheduled on any node. Names podman gave a `localhost/` prefix are also tagged as the kubelet
# resolves the manifests' plain names (hello-k8s:0.1.0 -> docker.io/library/hello-k8s:0.1.0).
# Usage: image-import.sh ARCHIVE
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
archive="${1:?usage: image-import.sh ARCHIVE}"
[[ -f "$archive" ]] || die "image archive $archive not found (make image-save writes one)"
check_paths
ours "$RUN" && [[ -f "$RUN/node-count" ]] || die "no cluster at CLUSTER_RUN=$RUN: run make cluster first"
nodes="$(cat "$RUN/node-count")"
for ((n = 1; n <= nodes; n++)); do
  sock="$(node_containerd_sock "$n")"
  [[ -S "$sock" ]] || die "no runtime at $sock ($(node_name "$n")): is the cluster running?"
  ctr=(ctr --address "$sock" -n k8s.io)
  "${ctr[@]}" images import "$archive" >/dev/null
  while read -r ref; do
    [[ "$ref" == localhost/* ]] || continue
    plain="${ref#localhost/}"
    [[ "$plain" == */* ]] || plain="library/$plain"
    "${ctr[@]}" images tag --force "$ref" "docker.io/$plain" >/dev/null
  done < <("${ctr[@]}" images ls -q)
done
ok "imported $archive into the containerd of each of the $nodes node(s)"
