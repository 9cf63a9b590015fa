#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make cluster-down`: removes what `make cluster` made and nothing else. up.sh marks CLUSTER_STATE
# and CLUSTER_RUN as its own (a marker file) and records in RUN/made every namespace, link,
# cgroup, mount and mount point before it makes it; this script stops the processes up.sh
# recorded (by PID and start time), the containers' processes (in the cluster's cgroups) and
# every containerd shim started for one of the nodes' containerds (by its -address), then removes
# what the record names and the two directories. A CLUSTER_STATE or CLUSTER_RUN that exists
# without the marker is refused before anything is touched. Safe after a failed or half-made
# `make cluster`, twice in a row, and when nothing runs. --quiet: say nothing when there is
# nothing to remove.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
quiet=false
[[ "${1:-}" == --quiet ]] && quiet=true
removed=0
note() { removed=$((removed + 1)); $quiet || info "$*"; }

# ------------------------------------------------------------------ whose directories
check_paths
for var in CLUSTER_STATE CLUSTER_RUN; do
  if [[ "$var" == CLUSTER_STATE ]]; then dir="$STATE"; else dir="$RUN"; fi
  if [[ -e "$dir" ]] && ! ours "$dir"; then
    die "$var=$dir exists but make cluster did not make it (no $MARKER marker of scripts/cluster/up.sh in it): nothing is removed; point $var at a directory of its own"
  fi
done
[[ "$(id -u)" == 0 ]] || die "make cluster-down needs root (it removes namespaces, mounts and cgroups)"

# What up.sh recorded (read before RUN goes); each line's kind and name checked.
netnses=() links=() cgroups=() mountpoints=()
if [[ -f "$RUN/made" ]]; then
  while read -r kind name; do
    case "$kind $name" in
      "netns $LINK_NETNS" | "netns kco-node-"[0-9]*) netnses+=("$name") ;;
      "link $HOST_IF") links+=("$name") ;;
      "cgroup $CGROUP_PARENT") cgroups+=("$name") ;;
      "dir /run/containerd" | "dir /var/lib/cni") mountpoints+=("$name") ;;
      "mount $RUN/ns") ;;
      *) warn "ignored an unexpected line of $RUN/made: $kind $name" ;;
    esac
  done <"$RUN/made"
fi
sockets=()
for dir in "$RUN"/nodes/*/; do
  [[ -d "$dir" ]] && sockets+=("${dir}containerd/containerd.sock")
done

# alive PID STARTTIME: the process is still the one that was started (its start time unchanged).
alive() {
  [[ -r "/proc/$1/stat" ]] && [[ "$(cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null)" == "$2" ]]
}

# stop_group NAME...: SIGTERM to the recorded processes named (pids/NAME.pid, NAME may hold a
# node's directory), up to 10 s for all of them, then SIGKILL.
recorded=()
stop_group() {
  local name file pid st i left
  local -a group=()
  for name in "$@"; do
    for file in "$RUN"/pids/$name.pid; do
      [[ -f "$file" ]] || continue
      read -r pid st <"$file"
      recorded+=("$pid $st")
      if alive "$pid" "$st"; then
        kill -TERM "$pid" 2>/dev/null || true
        group+=("$pid $st ${file#"$RUN/pids/"}")
      fi
      rm -f "$file"
    done
  done
  ((${#group[@]} > 0)) || return 0
  for ((i = 0; i < 100; i++)); do
    left=0
    for entry in "${group[@]}"; do
      read -r pid st _ <<<"$entry"
      alive "$pid" "$st" && left=$((left + 1))
    done
    ((left == 0)) && break
    sleep 0.1
  done
  for entry in "${group[@]}"; do
    read -r pid st name <<<"$entry"
    if alive "$pid" "$st"; then
      kill -KILL "$pid" 2>/dev/null || true
      note "killed ${name%.pid} (pid $pid) after 10 s"
    else
      note "stopped ${name%.pid} (pid $pid)"
    fi
  done
}

# ------------------------------------------------------------------ 1. processes
if [[ -d "$RUN/pids" ]]; then
  stop_group metrics-server '*/kube-router' '*/kube-proxy' '*/kubelet'
  stop_group '*/containerd'
  stop_group kube-scheduler kube-controller-manager
  stop_group kube-apiserver
  stop_group etcd
fi

# Whatever else runs in the nodes' network namespaces is the cluster's too (a component whose
# recorded PID was lost, an orphan of an interrupted start): namespaces up.sh made.
in_netns() {
  local proc ns
  for proc in /proc/[0-9]*; do
    for ns in "$@"; do
      if [[ -e "/run/netns/$ns" && "$proc/ns/net" -ef "/run/netns/$ns" ]]; then
        printf '%s\n' "${proc#/proc/}"
        break
      fi
    done
  done
}
if ((${#netnses[@]} > 0)); then
  for ((i = 0; i < 50; i++)); do
    mapfile -t strays < <(in_netns "${netnses[@]}")
    ((${#strays[@]} == 0)) && break
    for pid in "${strays[@]}"; do
      kill -KILL "$pid" 2>/dev/null && note "killed process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60)) left in the nodes' namespaces"
    done
    sleep 0.1
  done
fi

# 2. The containers' processes (in the cluster's cgroups), then every shim of the nodes'
#    containerds, wherever it ended up (a shim outlives its containerd by design).
for parent in "${cgroups[@]}"; do
  for h in /sys/fs/cgroup/*/; do
    [[ -d "$h$parent" ]] || continue
    while read -r procs; do
      while read -r pid; do
        [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null && note "killed container process $pid"
      done <"$procs"
    done < <(find "$h$parent" -name cgroup.procs 2>/dev/null)
  done
done
if ((${#sockets[@]} > 0)); then
  for ((i = 0; i < 50; i++)); do
    mapfile -t shims < <(shims_of "${sockets[@]}")
    ((${#shims[@]} == 0)) && break
    for pid in "${shims[@]}"; do
      kill -KILL "$pid" 2>/dev/null && note "killed containerd shim $pid"
    done
    sleep 0.1
  done
fi

# 3. Mounts under RUN (the nodes' mount namespaces take their mounts with them), deepest first.
while read -r mnt; do
  [[ -n "$mnt" ]] || continue
  umount "$mnt" && note "unmounted $mnt"
done < <(mounts_under "$RUN" | sort -r)

# 4. Verified before they go: no process is left in the nodes' network namespaces.
if ((${#netnses[@]} > 0)); then
  mapfile -t strays < <(in_netns "${netnses[@]}")
  ((${#strays[@]} == 0)) || die "processes ${strays[*]} still run in the cluster's network namespaces"
fi
# Network namespaces (with them the veth pairs, the bridge, the routes and every node's
#    nftables, iptables and ipset rules) and the host's end of the link.
for ns in "${netnses[@]}"; do
  if [[ -e "/run/netns/$ns" ]]; then
    ip netns delete "$ns" && note "removed network namespace $ns"
  fi
done
for link in "${links[@]}"; do
  if ip link show "$link" >/dev/null 2>&1; then ip link delete "$link" && note "removed link $link"; fi
done

# 5. Cgroups, deepest first (a cgroup is removed once its processes are gone).
for parent in "${cgroups[@]}"; do
  for h in /sys/fs/cgroup/*/; do
    [[ -d "$h$parent" ]] || continue
    for ((i = 0; i < 50; i++)); do
      find "$h$parent" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d "$h$parent" ]] || break
      sleep 0.1
    done
    if [[ -d "$h$parent" ]]; then warn "cgroup $h$parent still busy"; else note "removed cgroup $h$parent"; fi
  done
done

# 6. The mount points up.sh made (empty; never a directory something else filled).
for dir in "${mountpoints[@]}"; do
  if [[ -d "$dir" ]]; then
    if rmdir "$dir" 2>/dev/null; then note "removed mount point $dir"; else warn "$dir is not empty: left as it is"; fi
  fi
done

# 7. The logs (when CLUSTER_KEEP_LOGS names a directory), then state and sockets.
if [[ -n "${CLUSTER_KEEP_LOGS:-}" && -d "$STATE/logs" ]]; then
  mkdir -p "$CLUSTER_KEEP_LOGS" && cp -r "$STATE/logs/." "$CLUSTER_KEEP_LOGS/" && info "cluster logs kept in $CLUSTER_KEEP_LOGS"
fi
for dir in "$RUN" "$STATE"; do
  [[ -e "$dir" ]] || continue
  ours "$dir" || die "$dir lost its marker while the cluster was taken down: left as it is"
  left_mounts="$(mounts_under "$dir" | sed -n 1,3p | tr '\n' ' ')"
  [[ -z "$left_mounts" ]] || die "mounts remain under $dir: $left_mounts"
  rm -rf -- "$dir" && note "removed $dir"
done

# 8. Verified, not assumed: nothing up.sh recorded is left, and no process of the cluster.
left=()
for ns in "${netnses[@]}"; do [[ -e "/run/netns/$ns" ]] && left+=("network namespace $ns"); done
for link in "${links[@]}"; do ip link show "$link" >/dev/null 2>&1 && left+=("link $link"); done
for parent in "${cgroups[@]}"; do
  for h in /sys/fs/cgroup/*/; do [[ -d "$h$parent" ]] && left+=("cgroup $h$parent"); done
done
for entry in "${recorded[@]}"; do
  read -r pid st <<<"$entry"
  alive "$pid" "$st" && left+=("process $pid")
done
if ((${#sockets[@]} > 0)); then
  while read -r pid; do [[ -n "$pid" ]] && left+=("containerd shim $pid"); done < <(shims_of "${sockets[@]}")
fi
for dir in "$RUN" "$STATE"; do
  [[ -n "$(mounts_under "$dir")" ]] && left+=("mounts under $dir")
  [[ -e "$dir" ]] && left+=("$dir")
done
((${#left[@]} == 0)) || die "the cluster left: ${left[*]}"
if $quiet; then
  (( removed == 0 )) || info "removed what an earlier cluster left ($removed items)"
else
  ok "cluster down: nothing of it is left (no process, shim, namespace, link, cgroup, mount or state)"
fi
