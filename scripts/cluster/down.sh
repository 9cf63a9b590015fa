#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make cluster-down`: stops every process `make cluster` started (by the PIDs it recorded, and
# the containers' processes by their cgroups under the cluster's own parent), then removes the
# node's mount and network namespaces (with them its veth, routes and nftables rules), its
# cgroups, its sockets and its state. Safe after a failed or half-made `make cluster`, and when
# nothing runs. --quiet: say nothing when there is nothing to remove.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
quiet=false
[[ "${1:-}" == --quiet ]] && quiet=true
PIDS="$RUN/pids"
removed=0
note() { removed=$((removed + 1)); $quiet || info "$*"; }

[[ "$(id -u)" == 0 ]] || die "make cluster-down needs root (it removes namespaces, mounts and cgroups)"

# alive PID STARTTIME: the process is still the one we started (its start time is unchanged).
alive() {
  [[ -r "/proc/$1/stat" ]] && [[ "$(cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null)" == "$2" ]]
}

# stop_pid PID STARTTIME NAME: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
  local pid="$1" st="$2" name="$3" i
  alive "$pid" "$st" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" "$st" || { note "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  note "killed $name (pid $pid) after 10 s"
}

# 1. The node's processes, last started first (metrics-server ... etcd).
if [[ -d "$PIDS" ]]; then
  for name in metrics-server kube-proxy kubelet containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [[ -f "$PIDS/$name.pid" ]] || continue
    read -r pid st <"$PIDS/$name.pid"
    stop_pid "$pid" "$st" "$name"
    rm -f "$PIDS/$name.pid"
  done
fi

# 2. The containers' processes (in the cluster's cgroups) and their shims (containerd's state).
for h in /sys/fs/cgroup/*/; do
  [[ -d "$h$CGROUP_PARENT" ]] || continue
  while read -r procs; do
    while read -r pid; do
      [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null && note "killed container process $pid"
    done <"$procs"
  done < <(find "$h$CGROUP_PARENT" -name cgroup.procs 2>/dev/null)
done
if [[ -d "$RUN/containerd/state" ]]; then
  while read -r file; do
    pid="$(cat "$file" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */containerd-shim-runc-v2 ]]; then
      kill -KILL "$pid" 2>/dev/null && note "killed containerd shim $pid"
    fi
  done < <(find "$RUN/containerd/state" -name shim.pid 2>/dev/null)
fi

# 3. Namespaces: the mount namespace takes the node's mounts with it; deleting the network
#    namespace deletes the veth pair, the routes and kube-proxy's nftables tables.
if grep -q " $MNTNS " /proc/self/mountinfo; then
  umount "$MNTNS" && note "removed the node's mount namespace"
fi
if grep -q " $RUN/ns " /proc/self/mountinfo; then umount "$RUN/ns"; fi
if ip netns list | grep -qw "^$NETNS"; then
  ip netns delete "$NETNS" && note "removed network namespace $NETNS"
fi
if ip link show "$HOST_IF" >/dev/null 2>&1; then ip link delete "$HOST_IF" && note "removed link $HOST_IF"; fi

# 4. Cgroups, deepest first (a cgroup is removed once its processes are gone).
for h in /sys/fs/cgroup/*/; do
  [[ -d "$h$CGROUP_PARENT" ]] || continue
  for ((i = 0; i < 50; i++)); do
    find "$h$CGROUP_PARENT" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d "$h$CGROUP_PARENT" ]] || break
    sleep 0.1
  done
  if [[ -d "$h$CGROUP_PARENT" ]]; then warn "cgroup $h$CGROUP_PARENT still busy"; else note "removed cgroup $h$CGROUP_PARENT"; fi
done

# 5. State and sockets (the logs first, when CLUSTER_KEEP_LOGS names a directory).
if [[ -n "${CLUSTER_KEEP_LOGS:-}" && -d "$STATE/logs" ]]; then
  mkdir -p "$CLUSTER_KEEP_LOGS" && cp -r "$STATE/logs/." "$CLUSTER_KEEP_LOGS/" && info "cluster logs kept in $CLUSTER_KEEP_LOGS"
fi
for dir in "$RUN" "$STATE"; do
  if [[ -e "$dir" ]]; then
    if grep -q " $dir/" /proc/self/mountinfo; then die "mounts remain under $dir: $(grep " $dir/" /proc/self/mountinfo | cut -d' ' -f5 | sed -n 1,3p | tr '\n' ' ')"; fi
    rm -rf "$dir" && note "removed $dir"
  fi
done
# 6. Verified, not assumed: no process, namespace, link, cgroup, mount or directory is left.
left=()
ip netns list | grep -qw "^$NETNS" && left+=("network namespace $NETNS")
ip link show "$HOST_IF" >/dev/null 2>&1 && left+=("link $HOST_IF")
for h in /sys/fs/cgroup/*/; do [[ -d "$h$CGROUP_PARENT" ]] && left+=("cgroup $h$CGROUP_PARENT"); done
grep -qE " ($RUN|$STATE)[/ ]" /proc/self/mountinfo && left+=("mounts under $RUN or $STATE")
for dir in "$RUN" "$STATE"; do [[ -e "$dir" ]] && left+=("$dir"); done
((${#left[@]} == 0)) || die "the cluster left: ${left[*]}"
if $quiet; then
  (( removed == 0 )) || info "removed what an earlier cluster left ($removed items)"
else
  ok "cluster down: nothing of it is left (no process, namespace, link, cgroup, mount or state)"
fi
