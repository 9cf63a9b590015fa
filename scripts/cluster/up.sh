#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make cluster`: a real Kubernetes of NODES nodes (default 3) on this machine, of the minor
# KUBE_MINOR (default: the one the generator types; cluster/kube/ lists the supported ones),
# every component upstream and unmodified (scripts/cluster/build.sh builds them). Each node is a network and a
# mount namespace of its own with its own containerd, kubelet, kube-proxy and kube-router (the
# NetworkPolicy enforcer, its firewall alone); the control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, metrics-server) runs in the first. Debian provides
# containerd, runc, the CNI plugins, nftables, iptables, ipset and podman
# (scripts/cluster/install.sh); nothing is pulled: the pause and client images are imported.
#
# Addresses (docs/cluster.md draws them): the nodes and the host's end share LINK_NET on a bridge
# in a namespace of the harness's own; each node gets a /24 of CLUSTER_CIDR from the
# controller-manager, and this script routes it to that node, on the host and on every other
# node. No node has a default route and the host's forwarding is left as it is, so nothing
# leaves the namespaces this script makes.
#
# Everything made is recorded in RUN/made before it is made, and STATE and RUN carry a marker:
# down.sh (run first, and by make cluster-down) removes exactly that, whatever was left.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
# shellcheck source=certs.sh
source "$here/certs.sh"
t0=$SECONDS

# ------------------------------------------------------------------ input, before anything
check_paths
check_kube_minor
[[ "$NODES" =~ ^[1-9][0-9]{0,2}$ ]] || die "NODES=$NODES: expected a whole number of nodes, 1 or more (default 3)"
cores="$(nproc)"
avail_mib=$(($(sed -n 's/^MemAvailable: *\([0-9]*\) kB$/\1/p' /proc/meminfo) / 1024))
max_by_memory=$(((avail_mib - CONTROL_PLANE_MEMORY_MIB) / NODE_MEMORY_MIB))
max_by_cpu=$((cores * NODES_PER_CORE))
max_nodes=$max_by_memory
((max_by_cpu < max_nodes)) && max_nodes=$max_by_cpu
if ((NODES > max_nodes)); then
  die "NODES=$NODES: this machine holds at most $max_nodes nodes ($cores cores at $NODES_PER_CORE nodes a core; $avail_mib MiB available at $NODE_MEMORY_MIB MiB a node plus $CONTROL_PLANE_MEMORY_MIB MiB for the control plane)"
fi

fail() {
  # Under CI=true a precondition that cannot be met fails; elsewhere too: there is no cluster.
  die "$* (make cluster needs Linux, root and the packages of scripts/cluster/install.sh; docs/cluster.md)"
}
[[ "$(uname -s)" == Linux ]] || fail "not Linux"
[[ "$(id -u)" == 0 ]] || fail "not root: the nodes' namespaces, cgroups and containerds need root"
for tool in ip nsenter unshare openssl containerd containerd-shim-runc-v2 runc ctr nft iptables ipset curl; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
for plugin in ptp host-local loopback; do
  [[ -x "/usr/lib/cni/$plugin" ]] || fail "CNI plugin /usr/lib/cni/$plugin not found (package containernetworking-plugins)"
done
[[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/pids ]] || fail "cgroup v1 memory and pids hierarchies not mounted under /sys/fs/cgroup (this harness drives cgroup v1 with the cgroupfs driver)"
nofile="$(ulimit -Hn)"
(( nofile >= 16384 )) || fail "the hard open-files limit is $nofile; the nodes' components need at least 16384"
ulimit -Sn "$nofile"

"$here/down.sh" --quiet
bin="$("$here/build.sh")"

# ------------------------------------------------------------------ what is made, recorded first
# The names the cluster takes must be free: what an earlier cluster left is gone (down.sh), so
# anything left under these names is someone else's.
taken=()
for name in "$LINK_NETNS" $(for ((n = 1; n <= NODES; n++)); do node_name "$n"; done); do
  [[ -e "/run/netns/$name" ]] && taken+=("network namespace $name")
done
ip link show "$HOST_IF" >/dev/null 2>&1 && taken+=("link $HOST_IF")
for h in /sys/fs/cgroup/*/; do [[ -d "$h$CGROUP_PARENT" ]] && taken+=("cgroup $h$CGROUP_PARENT"); done
for dir in "$STATE" "$RUN"; do [[ -e "$dir" ]] && taken+=("$dir"); done
((${#taken[@]} == 0)) || die "not made by this cluster, and in its way: ${taken[*]}"

mkdir -m 700 "$RUN" 2>/dev/null || die "cannot make CLUSTER_RUN=$RUN (its parent must exist)"
printf '%s\n' "$MARKER_TEXT" >"$RUN/$MARKER"
mkdir -m 700 "$STATE" 2>/dev/null || die "cannot make CLUSTER_STATE=$STATE (its parent must exist)"
printf '%s\n' "$MARKER_TEXT" >"$STATE/$MARKER"
MADE="$RUN/made"
# made KIND NAME: recorded before it is made (down.sh removes it if it exists).
made() { printf '%s %s\n' "$1" "$2" >>"$MADE"; }
PKI="$STATE/pki"
LOGS="$STATE/logs"
PIDS="$RUN/pids"
mkdir -p "$LOGS" "$PIDS" "$RUN/ns"
say "Starting $NODES node(s) ($K8S_VERSION)"

# start NAME N COMMAND...: runs COMMAND inside node N, logs to $LOGS/NAME.log, records its PID
# and start time (down.sh stops exactly that process).
start() {
  local name="$1" n="$2"; shift 2
  set -m
  nsenter --mount="$(node_mntns "$n")" --net="/run/netns/$(node_name "$n")" -- "$@" >"$LOGS/$name.log" 2>&1 &
  local pid=$!
  set +m
  printf '%s %s\n' "$pid" "$(cut -d' ' -f22 "/proc/$pid/stat")" >"$PIDS/$name.pid"
  info "$name started (pid $pid, log $LOGS/$name.log)"
}

# wait_for WHAT SECONDS LOG COMMAND...: polls COMMAND every 0.5 s; on time-out, the log's last lines.
wait_for() {
  local what="$1" limit="$2" log="$3"; shift 3
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      warn "last lines of $LOGS/$log.log:"; tail -n 25 "$LOGS/$log.log" >&2 || true
      die "$what not within $limit s"
    fi
    sleep 0.5
  done
  ok "$what ($((SECONDS - t0)) s)"
}

# write_if_changed FILE: stdin to FILE only when it differs (kube-proxy exits when its config
# file is rewritten).
write_if_changed() {
  local tmp; tmp="$(mktemp "$1.XXXXXX")"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# ------------------------------------------------------------------ the link
made netns "$LINK_NETNS"
ip netns add "$LINK_NETNS"
ip -n "$LINK_NETNS" link set lo up
ip -n "$LINK_NETNS" link add "$BRIDGE" type bridge
ip -n "$LINK_NETNS" link set "$BRIDGE" up
made link "$HOST_IF"
ip link add "$HOST_IF" type veth peer name host netns "$LINK_NETNS"
ip -n "$LINK_NETNS" link set host master "$BRIDGE" up
ip addr add "$HOST_IP/$LINK_PREFIX" dev "$HOST_IF"
ip link set "$HOST_IF" up

# ------------------------------------------------------------------ the nodes' namespaces
# The nodes' mount namespaces are files under RUN/ns, a private mount of its own.
made mount "$RUN/ns"
mount --bind "$RUN/ns" "$RUN/ns"
mount --make-private "$RUN/ns"
# Paths containerd and its CNI plugins use whatever the configuration says (the shims' sockets
# and runc's state under /run/containerd, libcni's cache under /var/lib/cni): each node mounts a
# directory of its own there, so nothing is written into the host's. A missing mount point is
# made (empty) and removed again by down.sh.
private_paths=(/run/containerd /var/lib/cni)
for path in "${private_paths[@]}"; do
  if [[ ! -e "$path" ]]; then
    made dir "$path"
    mkdir "$path"
  fi
done
sysctl_views=()
for pair in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  key="${pair%%=*}" want="${pair#*=}"
  if [[ "$(cat "/proc/sys/$key")" != "$want" ]]; then
    mkdir -p "$RUN/sysctl"
    echo "$want" >"$RUN/sysctl/${key//\//.}"
    sysctl_views+=("$key")
    info "nodes' view: /proc/sys/$key=$want (the machine keeps $(cat "/proc/sys/$key"))"
  fi
done
made cgroup "$CGROUP_PARENT"
for h in /sys/fs/cgroup/*/; do
  [[ -f "$h/cgroup.procs" ]] || continue
  mkdir -p "$h$CGROUP_PARENT"
  if [[ -f "$h/cpuset.cpus" ]]; then
    cat "$h/cpuset.cpus" >"$h$CGROUP_PARENT/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h$CGROUP_PARENT/cpuset.mems"
  fi
done
for ((n = 1; n <= NODES; n++)); do
  name="$(node_name "$n")" ip_n="$(node_ip "$n")" port="$(node_port "$n")"
  nstate="$(node_state "$n")" nrun="$(node_run "$n")"
  mkdir -p "$nstate/cni/net.d" "$nstate/cni/ipam" "$nstate/cni/cache" "$nstate/kubelet" "$nstate/pod-logs" \
    "$nrun/containerd" "$nrun/run-containerd" "$LOGS/$name" "$PIDS/$name"
  made netns "$name"
  ip netns add "$name"
  ip -n "$LINK_NETNS" link add "$port" type veth peer name eth0 netns "$name"
  ip -n "$LINK_NETNS" link set "$port" master "$BRIDGE" up
  ip -n "$name" link set lo up
  ip -n "$name" addr add "$ip_n/$LINK_PREFIX" dev eth0
  ip -n "$name" link set eth0 up
  # Forwarding inside the node only (pods <-> node <-> Services); net.* is per network namespace.
  ip netns exec "$name" sysctl -qw net.ipv4.ip_forward=1
  if ip -n "$name" route show default | grep -q .; then die "node $name has a default route"; fi
  # The node's mount namespace: its containerd, kubelet and kube-router share it (volumes,
  # rootfs), the host does not see their mounts, and all of them vanish with it.
  mntns="$(node_mntns "$n")"
  touch "$mntns"
  unshare --mount="$mntns" --propagation slave true
  nsenter --mount="$mntns" -- mount --bind "$nrun/run-containerd" /run/containerd
  nsenter --mount="$mntns" -- mount --bind "$nstate/cni/cache" /var/lib/cni
  # The kubelet sets six kernel tunables it wants (vm.overcommit_memory=1, kernel.panic=10, ...)
  # machine-wide when they differ: the node sees read-only files with the values it wants.
  for key in "${sysctl_views[@]}"; do
    nsenter --mount="$mntns" -- mount --bind -o ro "$RUN/sysctl/${key//\//.}" "/proc/sys/$key"
  done
  # The node's cgroup: its pods and its processes' children go below it.
  for h in /sys/fs/cgroup/*/; do
    [[ -d "$h$CGROUP_PARENT" ]] || continue
    mkdir -p "$h$CGROUP_PARENT/$name"
    if [[ -f "$h/cpuset.cpus" ]]; then
      cat "$h/cpuset.cpus" >"$h$CGROUP_PARENT/$name/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h$CGROUP_PARENT/$name/cpuset.mems"
    fi
  done
done
printf '%s\n' "$NODES" >"$RUN/node-count"

# ------------------------------------------------------------------ PKI and configuration
pki_all
for ((n = 1; n <= NODES; n++)); do
  name="$(node_name "$n")" ip_n="$(node_ip "$n")" nstate="$(node_state "$n")" nrun="$(node_run "$n")"
  : >"$nstate/resolv.conf"
  # containerd writes the node's CNI configuration from this template once the kubelet hands it
  # the node's pod CIDR (the one the controller-manager allocated).
  cat >"$nstate/cni/template" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "kco",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$nstate/cni/ipam"
      }
    }
  ]
}
JSON
  cat >"$nstate/containerd.toml" <<TOML
version = 2
root = "$nstate/containerd"
state = "$nrun/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$nrun/containerd/containerd.sock"
[ttrpc]
  address = "$nrun/containerd/ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$nstate/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: runc cannot lower a container's oom_score_adj below the shim's.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$nrun/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$nstate/cni/net.d"
    conf_template = "$nstate/cni/template"
TOML
  # The same configuration for every minor (docs/cluster.md, "Versions"): from 1.35 the kubelet
  # refuses a cgroup v1 host unless failCgroupV1 is false (1.34 accepts the field); containerd
  # 1.6 has no CRI RuntimeConfig call, so the kubelet falls back to this cgroupDriver.
  cat >"$nstate/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip_n
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_PARENT/$name
failCgroupV1: false
containerRuntimeEndpoint: unix://$nrun/containerd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving-$name.crt
tlsPrivateKeyFile: $PKI/kubelet-serving-$name.key
failSwapOn: false
resolvConf: $nstate/resolv.conf
podLogsDir: $nstate/pod-logs
clusterDomain: cluster.local
oomScoreAdj: 0
maxPods: 40
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
YAML
  write_if_changed "$nstate/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $name
clusterCIDR: $CLUSTER_CIDR
nodePortAddresses: ["$ip_n/32"]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# 0: leave the machine-wide conntrack table size and timeouts as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
done

# ------------------------------------------------------------------ control plane (node 1)
NODE1_IP="$(node_ip 1)"
start etcd 1 "$bin/etcd" --name "$(node_name 1)" --data-dir "$STATE/etcd" \
  --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster "$(node_name 1)=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
  --cert-file "$PKI/etcd.crt" --key-file "$PKI/etcd.key" --trusted-ca-file "$PKI/ca.crt" \
  --client-cert-auth --log-level warn
wait_for "etcd healthy" 60 etcd in_node 1 curl -sf http://127.0.0.1:2381/health

start kube-apiserver 1 "$bin/kube-apiserver" \
  --advertise-address="$NODE1_IP" --bind-address="$NODE1_IP" --secure-port="$API_PORT" \
  --etcd-servers=https://127.0.0.1:2379 --etcd-cafile="$PKI/ca.crt" \
  --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
  --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --anonymous-auth=false \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --enable-aggregator-routing=true --profiling=false
KUBECTL=("$bin/kubectl" --kubeconfig "$KUBECONFIG_FILE")
wait_for "kube-apiserver ready" 120 kube-apiserver "${KUBECTL[@]}" get --raw /readyz

start kube-controller-manager 1 "$bin/kube-controller-manager" \
  --kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --cluster-name=kco \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --use-service-account-credentials=true \
  --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size="$NODE_CIDR_MASK" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" --profiling=false
start kube-scheduler 1 "$bin/kube-scheduler" \
  --kubeconfig="$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false

# kube-router's rights: what its network-policy controller watches (its upstream ClusterRole).
"${KUBECTL[@]}" apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:kube-router"}
rules:
- {apiGroups: [""], resources: [namespaces, pods, services, nodes, endpoints], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [get, list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}]
YAML

# ------------------------------------------------------------------ nodes
for ((n = 1; n <= NODES; n++)); do
  name="$(node_name "$n")"
  start "$name/containerd" "$n" containerd --config "$(node_state "$n")/containerd.toml"
done
for ((n = 1; n <= NODES; n++)); do
  name="$(node_name "$n")" sock="$(node_containerd_sock "$n")"
  wait_for "$name: containerd serving" 60 "$name/containerd" ctr --address "$sock" version
  for image in pause client; do
    ctr --address "$sock" -n k8s.io images import "$bin/$image.tar" >/dev/null
  done
  start "$name/kubelet" "$n" "$bin/kubelet" --config="$(node_state "$n")/kubelet.yaml" \
    --kubeconfig="$STATE/kubelet-$name.kubeconfig" \
    --root-dir="$(node_state "$n")/kubelet" --cert-dir="$(node_state "$n")/kubelet/pki" \
    --hostname-override="$name" --node-ip="$(node_ip "$n")"
  start "$name/kube-proxy" "$n" "$bin/kube-proxy" --config="$(node_state "$n")/kube-proxy.yaml"
done
info "images $PAUSE_IMAGE and $CLIENT_IMAGE imported into every node's containerd"

# Each node's pod CIDR, as the controller-manager allocated it, routed to that node on the host
# and on every other node: the routes a cluster without a routing daemon is given by hand.
pod_cidr() {
  "${KUBECTL[@]}" get node "$1" -o jsonpath='{.spec.podCIDR}' 2>/dev/null
}
has_pod_cidr() {
  [[ -n "$(pod_cidr "$1")" ]]
}
declare -A cidrs=()
for ((n = 1; n <= NODES; n++)); do
  name="$(node_name "$n")"
  wait_for "$name registered with a pod CIDR" 120 "$name/kubelet" has_pod_cidr "$name"
  cidrs[$n]="$(pod_cidr "$name")"
done
for ((n = 1; n <= NODES; n++)); do
  ip route add "${cidrs[$n]}" via "$(node_ip "$n")" dev "$HOST_IF"
  for ((m = 1; m <= NODES; m++)); do
    ((m == n)) && continue
    ip -n "$(node_name "$m")" route add "${cidrs[$n]}" via "$(node_ip "$n")" dev eth0
  done
  info "$(node_name "$n"): pods ${cidrs[$n]} via $(node_ip "$n")"
done

# kube-router's network-policy controller on every node (it reads its node's object at start).
for ((n = 1; n <= NODES; n++)); do
  name="$(node_name "$n")"
  start "$name/kube-router" "$n" env NODE_NAME="$name" "$bin/kube-router" \
    --kubeconfig="$STATE/kube-router.kubeconfig" --hostname-override="$name" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --enable-ipv4=true --enable-ipv6=false \
    --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
    --metrics-port=0 --health-port=20244
done
node_ready() {
  [[ "$("${KUBECTL[@]}" get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
router_synced() {
  in_node "$1" curl -sf http://127.0.0.1:20244/healthz
}
for ((n = 1; n <= NODES; n++)); do
  name="$(node_name "$n")"
  wait_for "$name Ready" 120 "$name/kubelet" node_ready "$name"
  wait_for "$name: kube-router healthy" 60 "$name/kube-router" router_synced "$n"
done

# ------------------------------------------------------------------ metrics-server (HPA)
"${KUBECTL[@]}" apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
- {apiGroups: [""], resources: [nodes/metrics], verbs: [get]}
- {apiGroups: [""], resources: [pods, nodes], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-server:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "metrics-server-auth-reader", namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec:
  ports: [{name: https, port: 443, targetPort: 4443, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: metrics-server}
addressType: IPv4
ports: [{name: https, port: 4443, protocol: TCP}]
endpoints: [{addresses: ["$NODE1_IP"], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: 443}
  caBundle: $(base64 -w0 "$PKI/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
start metrics-server 1 "$bin/metrics-server" --kubeconfig="$STATE/metrics-server.kubeconfig" \
  --authentication-kubeconfig="$STATE/metrics-server.kubeconfig" \
  --authorization-kubeconfig="$STATE/metrics-server.kubeconfig" \
  --bind-address="$NODE1_IP" --secure-port=4443 \
  --tls-cert-file="$PKI/metrics-server.crt" --tls-private-key-file="$PKI/metrics-server.key" \
  --kubelet-preferred-address-types=InternalIP --kubelet-certificate-authority="$PKI/ca.crt" \
  --metric-resolution=15s
metrics_available() {
  [[ "$("${KUBECTL[@]}" get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" == True ]]
}
wait_for "metrics.k8s.io available" 120 metrics-server metrics_available

# ------------------------------------------------------------------ for users and the tests
node_names="" node_ips="" sockets=""
for ((n = 1; n <= NODES; n++)); do
  node_names+="${node_names:+ }$(node_name "$n")"
  node_ips+="${node_ips:+ }$(node_ip "$n")"
  sockets+="${sockets:+ }$(node_containerd_sock "$n")"
done
cat >"$STATE/env" <<ENV
# Written by make cluster ($K8S_VERSION, $NODES nodes): source it, or pass these to make deploy-<env>.
KUBE_MINOR=$KUBE_MINOR
export KUBECONFIG=$KUBECONFIG_FILE
KUBE_CONTEXT=$CONTEXT
KUBECTL=$bin/kubectl
CLUSTER_KIND=other
CONTAINER=podman
IMAGE_BUILD=$here/image-build.sh
IMAGE_IMPORT=$here/image-import.sh
NODE_IP=$NODE1_IP
NODE_NAMES="$node_names"
NODE_IPS="$node_ips"
CONTAINERD_ADDRESSES="$sockets"
HOST_IP=$HOST_IP
CLIENT_IMAGE=$CLIENT_IMAGE
CLUSTER_STATE=$STATE
CLUSTER_RUN=$RUN
CLUSTER_SCRIPTS=$here
ENV
ok "cluster of $NODES node(s) up in $((SECONDS - t0)) s; the deploy variables are in $STATE/env:"
sed -n 's/^\(export \)\{0,1\}\([A-Z_]*=\)/  \2/p' "$STATE/env" >&2
