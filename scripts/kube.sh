# What the deploy scripts share (sourced by run_system.sh, deploy.sh and namespaces.sh, after
# log.sh): the environments and their namespaces, the checks of names, and the cluster.
#
# Every value is used as one argument ("$VAR"), never split, evaluated or pasted into a command
# line; the one exception is KUBECTL, a command with arguments, split on blanks by `read -a`
# (its words are still never evaluated). What cannot be an environment or a namespace name is
# refused before any kubectl call. Every kubectl call goes through kc, so each one carries the
# same KUBECTL arguments, the same --context and, through the environment, the same KUBECONFIG.
#
#   CLUSTER_KIND      minikube (default) or other: any cluster reached through KUBECONFIG and
#                     KUBE_CONTEXT. Unset: other when KUBE_CONTEXT names a context other than
#                     MINIKUBE_PROFILE, else minikube. (Not CLUSTER: shells and CI often hold a
#                     cluster's name in that.)
#   MINIKUBE_PROFILE  the minikube profile (minikube); on minikube also the default context.
#   KUBE_CONTEXT      the kubectl context of every call (a name may hold blanks, ':', '/', '@').
#                     Default: MINIKUBE_PROFILE on minikube; on other the kubeconfig's current
#                     context, read once and pinned for every later call (kube_pin).
#   KUBECONFIG        read by kubectl itself, never rewritten here.
#   KUBECTL           the kubectl command, arguments allowed ("kubectl --kubeconfig /x"); split
#                     on blanks into an array (a path with a blank in it: use KUBECONFIG instead).
#   NAMESPACE         deploy or delete in this namespace instead of the environment's own.
#   MANIFEST_GEN      a built manifest-gen; empty: `cargo run -p manifest-gen`.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="hello-k8s"
SELECTOR="${SELECTOR:-app.kubernetes.io/name=$APP}"
# The server-side apply field manager of every deploy.
FIELD_MANAGER="hello-k8s-deploy"
# The label that marks a namespace as this project's (the generator's Namespace carries it too).
OWNER_LABEL="app.kubernetes.io/managed-by"
OWNER="manifest-gen"

# The environments: the overlay directories of k8s/overlays, space-separated.
environments() {
  local file names=()
  for file in "$ROOT"/k8s/overlays/*/kustomization.yaml; do
    [[ -f "$file" ]] && names+=("$(basename "$(dirname "$file")")")
  done
  echo "${names[*]:-(none)}"
}

# Succeeds when $1 is an environment: a DNS-1123 label with an overlay in k8s/overlays.
is_env() {
  [[ "$1" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ && -f "$ROOT/k8s/overlays/$1/kustomization.yaml" ]]
}

# Exits 2 naming the environments unless $1 is one.
require_env() {
  is_env "$1" || {
    printf "%serror: no environment '%s': k8s/overlays/%s/kustomization.yaml does not exist; the environments are: %s%s\n" \
      "$C_RED" "$1" "$1" "$(environments)" "$C_OFF" >&2
    exit 2
  }
}

# Exits 1 unless $1 may be a namespace of this project: a DNS-1123 label, neither `default` nor
# a kube-* name (Kubernetes reserves the prefix), as manifest-gen's own rule.
require_namespace() {
  local ns="$1"
  [[ "$ns" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
    die "'$ns' is not a namespace name (lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
  [[ "$ns" != default && "$ns" != kube-* ]] ||
    die "namespace $ns is reserved by Kubernetes (default and every kube-* name): this project never deploys to or deletes it; choose another NAMESPACE"
}

# The namespace of environment $1 (an environment already): NAMESPACE when set, else the
# overlay's `namespace:`, else APP-ENV; refused unless it may be this project's.
namespace_of() {
  local declared ns
  declared="$(sed -n 's/^namespace: *//p' "$ROOT/k8s/overlays/$1/kustomization.yaml" | sed -n 1p)"
  ns="${NAMESPACE:-${declared:-$APP-$1}}"
  require_namespace "$ns"
  echo "$ns"
}

# Validates CLUSTER_KIND and KUBECTL and sets MINIKUBE_PROFILE, KUBE_CONTEXT and the
# KUBECTL_CMD array; calls nothing.
kube_init() {
  MINIKUBE_PROFILE="${MINIKUBE_PROFILE:-minikube}"
  KUBE_CONTEXT="${KUBE_CONTEXT:-}"
  if [[ -z "${CLUSTER_KIND:-}" ]]; then
    if [[ -n "$KUBE_CONTEXT" && "$KUBE_CONTEXT" != "$MINIKUBE_PROFILE" ]]; then
      CLUSTER_KIND=other
    else
      CLUSTER_KIND=minikube
    fi
  fi
  case "$CLUSTER_KIND" in
    minikube | other) ;;
    *) die "CLUSTER_KIND=$CLUSTER_KIND: expected minikube (the default) or other (any cluster reached through KUBECONFIG and KUBE_CONTEXT)" ;;
  esac
  if [[ "$CLUSTER_KIND" == minikube && -z "$KUBE_CONTEXT" ]]; then
    KUBE_CONTEXT="$MINIKUBE_PROFILE"
  fi
  [[ "${KUBECTL:-}" != *$'\n'* ]] ||
    die "KUBECTL holds a line break: expected one command line, the kubectl command and its arguments"
  KUBECTL_CMD=()
  read -r -a KUBECTL_CMD <<<"${KUBECTL:-kubectl}"
  [[ ${#KUBECTL_CMD[@]} -gt 0 ]] || KUBECTL_CMD=(kubectl)
}

# Exits 1 with the install hint unless KUBECTL's command exists.
require_kubectl() {
  command -v "${KUBECTL_CMD[0]}" >/dev/null 2>&1 ||
    die "missing required tool: ${KUBECTL_CMD[0]} (KUBECTL); install kubectl with: make install-k8s_env"
}

# kubectl with KUBECTL's arguments and the context: the one way this project calls kubectl.
kc() {
  if [[ -n "$KUBE_CONTEXT" ]]; then
    "${KUBECTL_CMD[@]}" --context "$KUBE_CONTEXT" "$@"
  else
    "${KUBECTL_CMD[@]}" "$@"
  fi
}

# On a cluster other than minikube without KUBE_CONTEXT: pins the kubeconfig's current context,
# so every later call (and every script started after, through the environment) goes to the
# same cluster. Exported either way.
kube_pin() {
  if [[ -z "$KUBE_CONTEXT" ]]; then
    KUBE_CONTEXT="$(kc config current-context 2>/dev/null)" && [[ -n "$KUBE_CONTEXT" ]] ||
      die "the kubeconfig${KUBECONFIG:+ $KUBECONFIG} has no current context: set KUBE_CONTEXT to one of: $(kc config get-contexts -o name 2>/dev/null | tr '\n' ' ')"
    info "KUBE_CONTEXT not set: using the kubeconfig's current context $KUBE_CONTEXT for every call"
  fi
  export KUBE_CONTEXT CLUSTER_KIND
}

# The kubectl command line a user can paste to reach the same cluster (for hints).
kc_hint() {
  printf '%s' "${KUBECTL_CMD[*]}"
  [[ -z "$KUBE_CONTEXT" ]] || printf ' --context %q' "$KUBE_CONTEXT"
}

# Where the calls go, for messages: the context and, when set, the kubeconfig.
kube_where() {
  local context="the kubeconfig's current one"
  printf 'kubectl context %s%s' "${KUBE_CONTEXT:-$context}" "${KUBECONFIG:+ (KUBECONFIG=$KUBECONFIG)}"
}

# minikube on the chosen profile (MINIKUBE: the minikube command).
mk() {
  "${MINIKUBE:-minikube}" -p "$MINIKUBE_PROFILE" "$@"
}

# Starts minikube unless it is already running; the driver is minikube's choice unless
# MINIKUBE_DRIVER names one.
ensure_minikube() {
  if mk status >/dev/null 2>&1; then
    ok "minikube ($MINIKUBE_PROFILE) is already running"
    return
  fi
  local args=(start)
  if [[ -n "${MINIKUBE_DRIVER:-}" ]]; then
    args+=("--driver=$MINIKUBE_DRIVER")
    info "starting minikube with driver $MINIKUBE_DRIVER"
  else
    info "starting minikube (driver: minikube's choice; set MINIKUBE_DRIVER to force one)"
  fi
  mk "${args[@]}" >&2 || die "minikube start failed (see above); try MINIKUBE_DRIVER=docker"
  ok "minikube started"
}

# Creates namespace $1 labeled as this project's (as the generator's Namespace is), so a failed
# apply after it leaves no stranger. Its own field manager: under the deploy's, this label-only
# Namespace would strip the labels the rendered Namespace adds (Pod Security).
create_namespace() {
  local out
  out="$(kc create namespace "$1" --dry-run=client -o yaml |
    kc label --local -f - "$OWNER_LABEL=$OWNER" -o yaml |
    kc apply -f - --server-side --field-manager="$FIELD_MANAGER-namespace" 2>&1)" ||
    die "could not create namespace $1: $out"
}

# The NodePort URL of namespace $1 without minikube: the first node's InternalIP and the
# Service's nodePort of its port named http (the NodePort answers on every node).
node_url() {
  local ip port
  ip="$(kc get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null)" || return 1
  port="$(kc get service "$APP" -n "$1" -o jsonpath='{.spec.ports[?(@.name=="http")].nodePort}' 2>/dev/null)" || return 1
  [[ -n "$ip" && -n "$port" ]] || return 1
  [[ "$ip" == *:* ]] && ip="[$ip]"
  printf 'http://%s:%s\n' "$ip" "$port"
}

# Runs manifest-gen, prebuilt (MANIFEST_GEN) or through cargo, in the repository.
manifest_gen() {
  if [[ -n "${MANIFEST_GEN:-}" ]]; then
    (cd "$ROOT" && "$MANIFEST_GEN" "$@")
  else
    (cd "$ROOT" && cargo run --quiet --locked -p manifest-gen -- "$@")
  fi
}
