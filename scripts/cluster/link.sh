#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Takes a node's link down or up: `down` cuts the node off from the other nodes and the host (its
# end of the link, in the link's namespace, goes down), as a node lost to the network; its
# processes and pods keep running and nothing reaches them. `up` brings it back.
# Usage: link.sh NODE down|up (not the first node: it runs the control plane).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
node="${1:-}" state="${2:-}"
[[ -n "$node" && ( "$state" == down || "$state" == up ) ]] || die "usage: link.sh NODE down|up"
check_paths
[[ "$(id -u)" == 0 ]] || die "link.sh needs root (it changes the cluster's link namespace)"
ours "$RUN" && [[ -f "$RUN/node-count" ]] || die "no cluster at CLUSTER_RUN=$RUN: run make cluster first"
nodes="$(cat "$RUN/node-count")"
for ((n = 1; n <= nodes; n++)); do
  [[ "$(node_name "$n")" == "$node" ]] && break
done
((n <= nodes)) || die "no node $node in this cluster (kco-node-1 to $(node_name "$nodes"))"
((n > 1)) || die "$node runs the control plane: cutting it off stops the cluster, it does not lose a node"
ip -n "$LINK_NETNS" link set "$(node_port "$n")" "$state"
ok "$node: link $state"
