# The real single-node cluster's facts, in one place (sourced by scripts/cluster/*.sh).
# Everything the cluster makes lives under STATE (disk) and RUN (sockets, namespaces), every
# address in the node's own network namespace; `scripts/cluster/down.sh` removes all of it.
# shellcheck shell=bash source-path=SCRIPTDIR disable=SC2034

# shellcheck source=../log.sh
source "$(dirname "${BASH_SOURCE[0]}")/../log.sh"

CLUSTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The pinned Kubernetes version: cluster/kube/go.mod requires it, the build stamps it.
K8S_VERSION="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p; s/^\tk8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$CLUSTER_ROOT/cluster/kube/go.mod" | sed -n 1p)"
# Built binaries are cached outside the clone, keyed by the Go modules' content.
CLUSTER_CACHE="${CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubecloudorchestrator/cluster}"
STATE="${CLUSTER_STATE:-/var/lib/kco-cluster}"
RUN="${CLUSTER_RUN:-/run/kco-cluster}"
NETNS=kco-node
NODE_NAME=kco-node
# The link between the host and the node: host end kco-host, node end eth0.
HOST_IF=kco-host
HOST_IP=192.168.250.1
NODE_IP=192.168.250.2
LINK_PREFIX=24
POD_CIDR=10.250.0.0/24
SERVICE_CIDR=10.251.0.0/24
KUBERNETES_SERVICE_IP=10.251.0.1
API_PORT=6443
CONTEXT=kco
KUBECONFIG_FILE="$STATE/admin.kubeconfig"
CONTAINERD_SOCK="$RUN/containerd/containerd.sock"
MNTNS="$RUN/ns/mnt"
PAUSE_IMAGE=kco.local/pause:1.0
# Pod and system cgroups go under this parent in every cgroup v1 hierarchy.
CGROUP_PARENT=kco

# The directory of the binaries built from cluster/ for the current modules.
cluster_bin_dir() {
  local key
  key="$(cat "$CLUSTER_ROOT"/cluster/*/go.mod "$CLUSTER_ROOT"/cluster/*/go.sum "$CLUSTER_ROOT"/cluster/kube/*.go \
    "$CLUSTER_ROOT"/cluster/pause/* "$CLUSTER_ROOT/scripts/cluster/build.sh" | sha256sum | cut -c1-16)"
  printf '%s/%s-%s/bin\n' "$CLUSTER_CACHE" "$K8S_VERSION" "$key"
}

# Runs a command inside the node: its network and mount namespaces.
in_node() {
  nsenter --mount="$MNTNS" --net="/run/netns/$NETNS" -- "$@"
}
