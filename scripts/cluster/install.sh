#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs what `make cluster` takes from Debian when missing (never reinstalls): containerd,
# runc, the CNI plugins, nftables, iptables and ipset (kube-router's network-policy rules),
# iproute2, openssl, curl, podman (builds the pause and client images), gcc (builds the pause
# binary), busybox-static (the client image's one binary) and wrk (the e2e suites' floods and
# the HPA's load, run from the host: `make e2e-cluster` installs through this script). Go comes
# with the machine (the cluster is built from source).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
declare -A want=(
  [containerd]=containerd [runc]=runc [/usr/lib/cni/ptp]=containernetworking-plugins
  [nft]=nftables [iptables]=iptables [ipset]=ipset [ip]=iproute2 [openssl]=openssl [curl]=curl
  [podman]=podman [gcc]=gcc [busybox]=busybox-static [wrk]=wrk
)
missing=()
for tool in "${!want[@]}"; do
  if [[ "$tool" == /* ]]; then [[ -x "$tool" ]] && continue; else command -v "$tool" >/dev/null && continue; fi
  missing+=("${want[$tool]}")
done
if ((${#missing[@]} == 0)); then
  info "cluster packages present"
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "missing ${missing[*]}: install them as root (apt-get install ${missing[*]})"
command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your distribution's tools"
say "Installing ${missing[*]} from the distribution"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
ok "installed ${missing[*]}"
