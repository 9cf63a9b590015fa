# The real cluster's facts, in one place (sourced by scripts/cluster/*.sh).
# Everything the cluster makes lives under STATE (disk) and RUN (sockets, namespaces, the record
# of what was made), every address in network namespaces the harness makes; `down.sh` removes
# what `up.sh` recorded and nothing else.
# shellcheck shell=bash source-path=SCRIPTDIR disable=SC2034

# shellcheck source=../log.sh
source "$(dirname "${BASH_SOURCE[0]}")/../log.sh"

CLUSTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The Kubernetes minors the cluster is built for: a Go module each, cluster/kube/<minor>/go.mod
# pinning its k8s.io/kubernetes release. The default is the minor the generator types its objects
# against (k8s-openapi's feature in the workspace Cargo.toml, `v1_34` for 1.34).
KUBE_MINOR_DEFAULT="$(sed -n 's/^k8s-openapi = .*"v1_\([0-9]*\)".*$/1.\1/p' "$CLUSTER_ROOT/Cargo.toml")"
KUBE_MINOR="${KUBE_MINOR:-$KUBE_MINOR_DEFAULT}"
# Built binaries are cached outside the clone, keyed by the Go modules' content.
CLUSTER_CACHE="${CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubecloudorchestrator/cluster}"
STATE="${CLUSTER_STATE:-/var/lib/kco-cluster}"
RUN="${CLUSTER_RUN:-/run/kco-cluster}"
# How many nodes make cluster starts (the control plane runs in the first).
NODES="${NODES:-3}"
# The file up.sh writes first into STATE and RUN: down.sh deletes a directory only if it holds it.
MARKER=.kco-cluster
MARKER_TEXT="made by make cluster (scripts/cluster/up.sh); make cluster-down deletes this directory whole"

# The link between the host and the nodes: a bridge in a network namespace of its own.
LINK_NETNS=kco-link
BRIDGE=br0
HOST_IF=kco-host
LINK_NET=192.168.250
HOST_IP="$LINK_NET.1"
LINK_PREFIX=24
# Pods: the controller-manager gives each node a /24 of CLUSTER_CIDR (--allocate-node-cidrs).
CLUSTER_CIDR=10.250.0.0/16
NODE_CIDR_MASK=24
SERVICE_CIDR=10.251.0.0/24
KUBERNETES_SERVICE_IP=10.251.0.1
API_PORT=6443
CONTEXT=kco
PAUSE_IMAGE=kco.local/pause:1.0
CLIENT_IMAGE=kco.local/client:1.0
# Pod and system cgroups go under this parent in every cgroup v1 hierarchy, one child per node.
CGROUP_PARENT=kco
# What a node needs to hold, measured with prod deployed (docs/cluster.md, "Memory"): the limit
# of NODES, with the control plane's share, against the machine's available memory.
NODE_MEMORY_MIB=450
CONTROL_PLANE_MEMORY_MIB=900
# Addresses and the pod CIDR's /24s bound the count too; beyond 2 nodes a core, the components'
# own upkeep (node status, probes, syncs) competes with the workload for CPU.
NODES_PER_CORE=2

# node_name N, node_ip N: the N-th node (1-based), its name, network namespace and address.
node_name() { printf 'kco-node-%d\n' "$1"; }
node_ip() { printf '%s.%d\n' "$LINK_NET" "$(($1 + 1))"; }
# The node's end of its link in the link namespace (interface names are at most 15 characters).
node_port() { printf 'node-%d\n' "$1"; }

# Paths of node N.
node_state() { printf '%s/nodes/%s\n' "$STATE" "$(node_name "$1")"; }
node_run() { printf '%s/nodes/%s\n' "$RUN" "$(node_name "$1")"; }
node_mntns() { printf '%s/ns/%s\n' "$RUN" "$(node_name "$1")"; }
node_containerd_sock() { printf '%s/containerd/containerd.sock\n' "$(node_run "$1")"; }

KUBECONFIG_FILE="$STATE/admin.kubeconfig"

# The supported minors (cluster/kube's directories), one a line.
kube_minors() {
  local dir
  for dir in "$CLUSTER_ROOT"/cluster/kube/*/go.mod; do
    dir="${dir%/go.mod}"
    printf '%s\n' "${dir##*/}"
  done
}

# check_kube_minor: KUBE_MINOR names a supported minor, or dies listing them; sets KUBE_MODULE
# (its Go module's directory) and K8S_VERSION (the release its go.mod pins, the build stamps).
check_kube_minor() {
  local supported
  supported="$(kube_minors | paste -sd ' ')"
  [[ "$KUBE_MINOR" =~ ^1\.[0-9]+$ && -f "$CLUSTER_ROOT/cluster/kube/$KUBE_MINOR/go.mod" ]] ||
    die "KUBE_MINOR=$KUBE_MINOR: expected one of the supported Kubernetes minors: $supported (default $KUBE_MINOR_DEFAULT; docs/cluster.md, \"Versions\")"
  KUBE_MODULE="$CLUSTER_ROOT/cluster/kube/$KUBE_MINOR"
  K8S_VERSION="$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$KUBE_MODULE/go.mod" | sed -n 1p)"
  [[ "$K8S_VERSION" == "v$KUBE_MINOR".* ]] ||
    die "$KUBE_MODULE/go.mod requires k8s.io/kubernetes '$K8S_VERSION': expected a v$KUBE_MINOR.x release"
}

# The directory of the binaries built from cluster/ for KUBE_MINOR (check_kube_minor first):
# keyed by the content of what its build reads, that minor's Go module and the others'.
cluster_bin_dir() {
  local key
  key="$(cat "$KUBE_MODULE/go.mod" "$KUBE_MODULE/go.sum" "$CLUSTER_ROOT"/cluster/kube/*.go \
    "$CLUSTER_ROOT"/cluster/{etcd,metrics-server,kube-router}/go.{mod,sum} \
    "$CLUSTER_ROOT"/cluster/pause/* "$CLUSTER_ROOT"/cluster/client/* "$CLUSTER_ROOT/scripts/cluster/build.sh" | sha256sum | cut -c1-16)"
  printf '%s/%s-%s/bin\n' "$CLUSTER_CACHE" "$K8S_VERSION" "$key"
}

# in_node N COMMAND...: runs COMMAND inside node N: its network and mount namespaces.
in_node() {
  local n="$1"; shift
  nsenter --mount="$(node_mntns "$n")" --net="/run/netns/$(node_name "$n")" -- "$@"
}

# checked_dir NAME VALUE: the directory a variable names, as the scripts use it (down.sh deletes
# it whole): an absolute path of plain characters, no trailing slash, no `.` or `..` part, not
# `/` and not a symbolic link. Dies naming the variable and what was expected otherwise.
checked_dir() {
  local name="$1" value="$2" path part
  [[ -n "$value" ]] || die "$name is empty: expected an absolute directory path"
  [[ "$value" == /* ]] || die "$name=$value: expected an absolute path (a relative one would depend on the directory make runs in)"
  [[ "$value" =~ ^[A-Za-z0-9._/+-]+$ ]] || die "$name=$value: expected a path of letters, digits and . _ + - / only"
  path="$value"
  while [[ "$path" == */ && "$path" != / ]]; do path="${path%/}"; done
  [[ "$path" != / ]] || die "$name=$value: the root directory cannot hold a cluster"
  local -a parts
  IFS=/ read -r -a parts <<<"$path"
  for part in "${parts[@]}"; do
    [[ "$part" != . && "$part" != .. ]] || die "$name=$value: expected a path without . or .. parts"
  done
  [[ ! -L "$path" ]] || die "$name=$value is a symbolic link (to $(readlink "$path")): name the directory itself"
  printf '%s\n' "$path"
}

# inside A B: path A is B or below it, after resolving symbolic links in both.
inside() {
  local a b
  a="$(realpath -m -- "$1")"
  b="$(realpath -m -- "$2")"
  [[ "$a" == "$b" || "$a" == "$b"/* ]]
}

# check_paths: STATE, RUN and CLUSTER_KEEP_LOGS checked and normalised before anything is done.
check_paths() {
  STATE="$(checked_dir CLUSTER_STATE "$STATE")"
  RUN="$(checked_dir CLUSTER_RUN "$RUN")"
  if inside "$STATE" "$RUN" || inside "$RUN" "$STATE"; then
    die "CLUSTER_STATE=$STATE and CLUSTER_RUN=$RUN: expected two separate directories, neither inside the other"
  fi
  if [[ -n "${CLUSTER_KEEP_LOGS:-}" ]]; then
    CLUSTER_KEEP_LOGS="$(checked_dir CLUSTER_KEEP_LOGS "$CLUSTER_KEEP_LOGS")"
    local dir
    for dir in "$STATE" "$RUN"; do
      if inside "$CLUSTER_KEEP_LOGS" "$dir"; then
        die "CLUSTER_KEEP_LOGS=$CLUSTER_KEEP_LOGS is inside $dir, which make cluster-down deletes: name a directory outside it"
      fi
    done
  fi
  KUBECONFIG_FILE="$STATE/admin.kubeconfig"
}

# ours DIR: DIR was made by up.sh: it holds the marker (a regular file) with the marker's text.
ours() {
  [[ -d "$1" && ! -L "$1" && -f "$1/$MARKER" && ! -L "$1/$MARKER" ]] &&
    [[ "$(sed -n 1p "$1/$MARKER")" == "$MARKER_TEXT" ]]
}

# mounts_under DIR: the mount points at DIR or below it (fixed strings, never a pattern).
mounts_under() {
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo
}

# shims_of SOCKET...: PIDs of the containerd shims started for one of these containerd sockets
# (their `-address` argument), however they ended up (reparented, in any cgroup).
shims_of() {
  local proc pid exe arg next want
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    exe="$(readlink "$proc/exe" 2>/dev/null)" || continue
    [[ "$exe" == */containerd-shim-runc-v2 || "$exe" == */containerd-shim-runc-v2" (deleted)" ]] || continue
    next=false
    while IFS= read -r -d '' arg; do
      if $next; then
        for want in "$@"; do
          [[ "$arg" == "$want" ]] && { printf '%s\n' "$pid"; break 2; }
        done
        break
      fi
      [[ "$arg" == -address ]] && next=true
    done <"$proc/cmdline" 2>/dev/null || true
  done
}
