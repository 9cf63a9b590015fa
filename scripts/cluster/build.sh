#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the cluster's binaries from upstream source, through the project's Go modules in
# cluster/ (go.mod and go.sum pin every version): Kubernetes KUBE_MINOR (default: the minor the
# generator types) as one multicall binary (cluster/kube/main.go, built in that minor's module,
# cluster/kube/<minor>), etcd, metrics-server and kube-router as the upstream commands
# (cluster/etcd, cluster/metrics-server, cluster/kube-router, Go's `tool` directive), the pause
# image (cluster/pause) and the client image (cluster/client: Debian's static busybox).
# The result is cached outside the clone (CLUSTER_CACHE), a directory a minor, keyed by the
# modules' content: a second run prints the directory at once. Prints the bin directory on
# stdout, timings on stderr.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
check_kube_minor

bin="$(cluster_bin_dir)"
if [[ -x "$bin/kube" && -x "$bin/etcd" && -x "$bin/metrics-server" && -x "$bin/kube-router" && -f "$bin/pause.tar" && -f "$bin/client.tar" ]]; then
  info "cluster binaries cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi
command -v go >/dev/null || die "go not found: the cluster is built from source with Go >= 1.24 (the machine's go)"
command -v gcc >/dev/null || die "gcc not found: the pause binary is built with gcc -static"
busybox="$(command -v busybox || true)"
[[ -n "$busybox" ]] || die "busybox not found: the client image holds Debian's static busybox (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is linked dynamically: the client image needs the static one (apt-get install busybox-static)"; fi
mkdir -p "$CLUSTER_CACHE"
tmp="$(mktemp -d "$CLUSTER_CACHE/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$SECONDS

say "Kubernetes $K8S_VERSION (cluster/kube/$KUBE_MINOR: one binary, the component chosen by argv[0])"
t=$SECONDS
for module in "kube/$KUBE_MINOR" etcd metrics-server kube-router; do
  (cd "$CLUSTER_ROOT/cluster/$module" && go mod download && go mod verify >/dev/null)
done
info "modules downloaded and verified in $((SECONDS - t)) s"
t=$SECONDS
(cd "$KUBE_MODULE" && go build -trimpath -tags selinux,notest \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${KUBE_MINOR#1.} -X k8s.io/component-base/version.gitTreeState=clean" \
  -o "$tmp/kube" .)
info "kube built in $((SECONDS - t)) s"
for name in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -s kube "$tmp/$name"
done

t=$SECONDS
(cd "$CLUSTER_ROOT/cluster/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
(cd "$CLUSTER_ROOT/cluster/metrics-server" && go build -trimpath -ldflags "-s -w" -o "$tmp/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server)
info "etcd and metrics-server built in $((SECONDS - t)) s"
t=$SECONDS
router_version="$(sed -n 's/^\tgithub.com\/cloudnativelabs\/kube-router\/v2 \(v[0-9.]*\).*$/\1/p' "$CLUSTER_ROOT/cluster/kube-router/go.mod")"
(cd "$CLUSTER_ROOT/cluster/kube-router" && go build -trimpath \
  -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$router_version" \
  -o "$tmp/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
info "kube-router $router_version built in $((SECONDS - t)) s"

t=$SECONDS
gcc -static -Os -s -o "$tmp/pause" "$CLUSTER_ROOT/cluster/pause/pause.c"
command -v podman >/dev/null || die "podman not found: scripts/cluster/install.sh installs it (it builds the pause image)"
# shellcheck source=../image-lib.sh
source "$CLUSTER_ROOT/scripts/image-lib.sh"
ctx="$tmp/pause-ctx"; mkdir "$ctx"
cp "$tmp/pause" "$CLUSTER_ROOT/cluster/pause/Containerfile" "$ctx/"
# podman wants its run root short (under 50 characters).
store="$(mktemp -d /tmp/kco-pause.XXXXXX)"
image_podman_init "$store"
"${PODMAN[@]}" build --quiet --pull=never --format docker --tag "$PAUSE_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
"${PODMAN[@]}" save --quiet --format docker-archive --output "$tmp/pause.tar" "$PAUSE_IMAGE"
ctx="$tmp/client-ctx"; mkdir "$ctx"
cp "$busybox" "$ctx/busybox"
cp "$CLUSTER_ROOT/cluster/client/Containerfile" "$CLUSTER_ROOT/cluster/client/index.html" "$ctx/"
"${PODMAN[@]}" build --quiet --pull=never --format docker --tag "$CLIENT_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
"${PODMAN[@]}" save --quiet --format docker-archive --output "$tmp/client.tar" "$CLIENT_IMAGE"
image_podman_cleanup
rm -rf "$store"
rm -rf "$tmp/pause-ctx" "$ctx" "$tmp/pause"
info "pause and client images built in $((SECONDS - t)) s"

mkdir -p "$(dirname "$bin")"
rm -rf "$bin"
mv "$tmp" "$(dirname "$bin")/$(basename "$bin").new"
trap - EXIT
mv "$(dirname "$bin")/$(basename "$bin").new" "$bin"
"$bin/kubectl" version --client -o yaml 2>/dev/null | sed -n 's/^  gitVersion: /  kubectl: /p' >&2
ok "cluster binaries built in $((SECONDS - start)) s: $bin"
printf '%s\n' "$bin"
