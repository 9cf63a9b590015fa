#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make cluster`: a real single-node Kubernetes on this machine, every component upstream and
# unmodified (scripts/cluster/build.sh builds them), run as root processes inside a network and a
# mount namespace made for the node. Debian provides containerd, runc, the CNI plugins,
# nftables and podman (scripts/cluster/install.sh); nothing is pulled: the pause image and the
# project's image are imported into containerd.
#
# Addresses: the node is NODE_IP on a veth whose host end is HOST_IP; pods get POD_CIDR through
# the `ptp` plugin, Services SERVICE_CIDR. The node has no default route and the host's
# forwarding is left as it is (off), so nothing leaves the namespaces this script makes.
# An earlier cluster, running or half-made, is removed first (scripts/cluster/down.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
# shellcheck source=certs.sh
source "$here/certs.sh"
PKI="$STATE/pki"
LOGS="$STATE/logs"
PIDS="$RUN/pids"
t0=$SECONDS

# ------------------------------------------------------------------ preconditions
fail() {
  # Under CI=true a precondition that cannot be met fails; elsewhere too: there is no cluster.
  die "$* (make cluster needs Linux, root and the packages of scripts/cluster/install.sh; docs/cluster.md)"
}
[[ "$(uname -s)" == Linux ]] || fail "not Linux"
[[ "$(id -u)" == 0 ]] || fail "not root: the node's namespaces, cgroups and containerd need root"
for tool in ip nsenter unshare openssl containerd containerd-shim-runc-v2 runc ctr nft; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
for plugin in ptp host-local loopback; do
  [[ -x "/usr/lib/cni/$plugin" ]] || fail "CNI plugin /usr/lib/cni/$plugin not found (package containernetworking-plugins)"
done
[[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/pids ]] || fail "cgroup v1 memory and pids hierarchies not mounted under /sys/fs/cgroup (this harness drives cgroup v1 with the cgroupfs driver)"
nofile="$(ulimit -Hn)"
(( nofile >= 16384 )) || fail "the hard open-files limit is $nofile; the node's components need at least 16384"
ulimit -Sn "$nofile"

"$here/down.sh" --quiet
bin="$("$here/build.sh")"
say "Starting the node ($K8S_VERSION) in network namespace $NETNS"
mkdir -p "$STATE" "$LOGS" "$RUN" "$PIDS" "$STATE/cni/net.d" "$STATE/cni/ipam" "$STATE/kubelet" "$STATE/pod-logs"
chmod 700 "$STATE" "$RUN"

# start NAME COMMAND...: runs COMMAND inside the node, logs to $LOGS/NAME.log, records its PID
# and start time (down.sh stops exactly that process).
start() {
  local name="$1"; shift
  set -m
  nsenter --mount="$MNTNS" --net="/run/netns/$NETNS" -- "$@" >"$LOGS/$name.log" 2>&1 &
  local pid=$!
  set +m
  printf '%s %s\n' "$pid" "$(cut -d' ' -f22 "/proc/$pid/stat")" >"$PIDS/$name.pid"
  info "$name started (pid $pid, log $LOGS/$name.log)"
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.5 s; on time-out, the last log lines.
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

# ------------------------------------------------------------------ namespaces
ip netns add "$NETNS"
ip link add "$HOST_IF" type veth peer name eth0 netns "$NETNS"
ip addr add "$HOST_IP/$LINK_PREFIX" dev "$HOST_IF"
ip link set "$HOST_IF" up
ip -n "$NETNS" link set lo up
ip -n "$NETNS" addr add "$NODE_IP/$LINK_PREFIX" dev eth0
ip -n "$NETNS" link set eth0 up
# The host reaches the pods through the node (the tests probe pod IPs as the kubelet does).
ip route add "$POD_CIDR" via "$NODE_IP" dev "$HOST_IF"
# Forwarding inside the node only (pods <-> node <-> Services); net.* is per network namespace.
ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
if ip -n "$NETNS" route show default | grep -q .; then die "the node has a default route"; fi

# The node's mount namespace: kubelet and containerd share it (volumes, rootfs), the host does
# not see their mounts, and all of them vanish with it.
mkdir -p "$RUN/ns"
mount --bind "$RUN/ns" "$RUN/ns"
mount --make-private "$RUN/ns"
touch "$MNTNS"
unshare --mount="$MNTNS" --propagation slave true
# The kubelet sets six kernel tunables it wants (vm.overcommit_memory=1, kernel.panic=10, ...)
# machine-wide when they differ. The node's mount namespace shows it read-only files with the
# values it wants, so the machine's own settings are left as they are.
mkdir -p "$RUN/sysctl"
for pair in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  key="${pair%%=*}" want="${pair#*=}"
  if [[ "$(cat "/proc/sys/$key")" != "$want" ]]; then
    file="$RUN/sysctl/${key//\//.}"
    echo "$want" >"$file"
    nsenter --mount="$MNTNS" -- mount --bind -o ro "$file" "/proc/sys/$key"
    info "node view: /proc/sys/$key=$want (the machine keeps $(cat "/proc/sys/$key"))"
  fi
done

# The cgroup parent of pods and the node's processes, in every cgroup v1 hierarchy.
for h in /sys/fs/cgroup/*/; do
  [[ -f "$h/cgroup.procs" ]] || continue
  mkdir -p "$h$CGROUP_PARENT"
  if [[ -f "$h/cpuset.cpus" ]]; then
    cat "$h/cpuset.cpus" >"$h$CGROUP_PARENT/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h$CGROUP_PARENT/cpuset.mems"
  fi
done

# ------------------------------------------------------------------ PKI and configuration
make_pki
: >"$STATE/resolv.conf"
cat >"$STATE/cni/net.d/10-kco.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "kco",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE/cni/ipam"
      }
    }
  ]
}
JSON
cat >"$STATE/containerd.toml" <<TOML
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd/ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
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
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
TOML
cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_PARENT
failCgroupV1: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
failSwapOn: false
resolvConf: $STATE/resolv.conf
podLogsDir: $STATE/pod-logs
clusterDomain: cluster.local
oomScoreAdj: 0
maxPods: 40
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
YAML
write_if_changed "$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$NODE_IP/32"]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# 0: leave the machine-wide conntrack table size and timeouts as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML

# ------------------------------------------------------------------ control plane
start etcd "$bin/etcd" --name "$NODE_NAME" --data-dir "$STATE/etcd" \
  --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
  --cert-file "$PKI/etcd.crt" --key-file "$PKI/etcd.key" --trusted-ca-file "$PKI/ca.crt" \
  --client-cert-auth --log-level warn
wait_for "etcd healthy" 60 etcd in_node curl -sf http://127.0.0.1:2381/health

start kube-apiserver "$bin/kube-apiserver" \
  --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port="$API_PORT" \
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

start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --cluster-name=kco \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --use-service-account-credentials=true --allocate-node-cidrs=false \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" --profiling=false
start kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig="$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false

# ------------------------------------------------------------------ node
start containerd containerd --config "$STATE/containerd.toml"
wait_for "containerd serving" 60 containerd ctr --address "$CONTAINERD_SOCK" version
ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$bin/pause.tar" >/dev/null
info "pause image $PAUSE_IMAGE imported"
start kubelet "$bin/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
  --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
start kube-proxy "$bin/kube-proxy" --config="$STATE/kube-proxy.yaml"
node_ready() {
  [[ "$("${KUBECTL[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
wait_for "node $NODE_NAME Ready" 120 kubelet node_ready

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
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
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
start metrics-server "$bin/metrics-server" --kubeconfig="$STATE/metrics-server.kubeconfig" \
  --authentication-kubeconfig="$STATE/metrics-server.kubeconfig" \
  --authorization-kubeconfig="$STATE/metrics-server.kubeconfig" \
  --bind-address="$NODE_IP" --secure-port=4443 \
  --tls-cert-file="$PKI/metrics-server.crt" --tls-private-key-file="$PKI/metrics-server.key" \
  --kubelet-preferred-address-types=InternalIP --kubelet-certificate-authority="$PKI/ca.crt" \
  --metric-resolution=15s
metrics_available() {
  [[ "$("${KUBECTL[@]}" get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" == True ]]
}
wait_for "metrics.k8s.io available" 120 metrics-server metrics_available

# ------------------------------------------------------------------ for users and the tests
cat >"$STATE/env" <<ENV
# Written by make cluster ($K8S_VERSION): source it, or pass these to make deploy-<env>.
export KUBECONFIG=$KUBECONFIG_FILE
KUBE_CONTEXT=$CONTEXT
KUBECTL=$bin/kubectl
CLUSTER_KIND=other
CONTAINER=podman
IMAGE_BUILD=$here/image-build.sh
IMAGE_IMPORT=$here/image-import.sh
CONTAINERD_ADDRESS=$CONTAINERD_SOCK
NODE_IP=$NODE_IP
ENV
ok "cluster up in $((SECONDS - t0)) s; the deploy variables are in $STATE/env:"
sed -n 's/^\(export \)\{0,1\}\([A-Z_]*=\)/  \2/p' "$STATE/env" >&2
