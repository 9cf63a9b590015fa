#!/usr/bin/env bash
# The Makefile's cluster targets, each one call of this script:
#
#   scripts/deploy.sh deploy ENV       make deploy-ENV
#   scripts/deploy.sh delete ENV       make delete-ENV
#   scripts/deploy.sh reset ENV        make reset-ENV
#   scripts/deploy.sh check-env ENV    fails naming the environments unless ENV is one
#   scripts/deploy.sh get-url | open | status | clean | purge
#   scripts/deploy.sh start-minikube | minikube-env | docker-pointer
#
# make hands every variable over through the environment as the text given (never expanded, see
# the Makefile), and here each one reaches its command as one argument (scripts/kube.sh): a
# `$(...)`, a backquote, a `;` or a line break in a value stays characters. What cannot be an
# environment or a namespace name is refused before any kubectl call, and every kubectl call
# names one context (on another cluster without KUBE_CONTEXT, the current one, pinned).
set -euo pipefail

# shellcheck source=scripts/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"
# shellcheck source=scripts/kube.sh
source "$(dirname "${BASH_SOURCE[0]}")/kube.sh"

DEPLOY_ENV="${DEPLOY_ENV:-dev}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-180s}"
DOCKER="${DOCKER:-docker}"

# Prints the usage text.
usage() {
  cat <<EOF
usage: scripts/deploy.sh COMMAND [ENV]

The cluster targets of the Makefile (make runs each as one call of this script):
  deploy ENV      kubectl apply --server-side the overlay k8s/overlays/ENV (with NAMESPACE:
                  manifest-gen render --namespace NAMESPACE); its image must be in the cluster
  delete ENV      delete the app objects of ENV (scripts/namespaces.sh delete-app)
  reset ENV       delete, then scripts/run_system.sh --env ENV (an outage, on purpose)
  check-env ENV   exit 2 naming the environments unless ENV is one
  get-url         print the service URL of DEPLOY_ENV (default dev)
  open            open the service of DEPLOY_ENV in the browser (minikube only)
  status          pods, services, deployments, HPA and PDB of every environment
  clean           delete the app objects of every environment (namespaces kept)
  purge           delete every environment's namespace (only this project's) and, on
                  minikube, the $APP images in its daemon
  start-minikube, minikube-env, docker-pointer   (minikube only)

Environments here: $(environments). Environment: NAMESPACE, DEPLOY_ENV, CLUSTER_KIND,
KUBE_CONTEXT, KUBECONFIG, KUBECTL, MINIKUBE_PROFILE, MINIKUBE_DRIVER, ROLLOUT_TIMEOUT (180s),
MANIFEST_GEN (scripts/kube.sh, docs/deploy.md).
EOF
}

# Prepares every kubectl call: the cluster variables, kubectl itself, the pinned context.
cluster() {
  kube_init
  require_kubectl
  kube_pin
}

# Exits 2 unless the cluster is minikube: target $1 exists only there; $2 says what to use.
minikube_only() {
  kube_init
  [[ "$CLUSTER_KIND" == minikube ]] || {
    printf '%serror: %s is minikube only (CLUSTER_KIND=%s): %s%s\n' "$C_RED" "$1" "$CLUSTER_KIND" "$2" "$C_OFF" >&2
    exit 2
  }
}

# The namespaces of every environment (NAMESPACE alone when set), one per line, each checked.
all_namespaces() {
  local env
  for env in $(environments); do
    is_env "$env" || continue
    namespace_of "$env"
  done | sort -u
}

# deploy ENV: the committed overlay as it is (kubectl apply -k), or rendered into NAMESPACE.
deploy() {
  local env="$1" ns manifest
  require_env "$env"
  ns="$(namespace_of "$env")"
  if [[ -f "k8s/overlays/$env/secret.env.example" && ! -f "k8s/overlays/$env/secret.env" ]]; then
    die "k8s/overlays/$env/secret.env is missing: create it with one line API_KEY=<random token>, umask 077 first (see docs/deploy.md), or run make auto-deploy-$env, which creates a random one"
  fi
  cluster
  "$ROOT/scripts/namespaces.sh" check "$ns"
  create_namespace "$ns"
  if [[ -n "${NAMESPACE:-}" ]]; then
    # The rendered stream holds the Secret: a private temporary file, removed on exit.
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    manifest="$WORK/manifest.yaml"
    manifest_gen render --env "$env" --namespace "$ns" >"$manifest" ||
      die "manifest-gen render --env $env --namespace $ns failed (see above); nothing was applied"
    kc apply -f "$manifest" --server-side --field-manager="$FIELD_MANAGER"
  else
    kc apply -k "k8s/overlays/$env" --server-side --field-manager="$FIELD_MANAGER"
  fi
  kc rollout status "deployment/$APP" -n "$ns" --timeout="$ROLLOUT_TIMEOUT"
}

# delete ENV: the app's objects in its namespace, the namespace kept.
delete() {
  local ns
  require_env "$1"
  ns="$(namespace_of "$1")"
  cluster
  "$ROOT/scripts/namespaces.sh" delete-app "$ns"
}

# get-url: minikube service, or the node's InternalIP and the NodePort.
get_url() {
  local ns
  require_env "$DEPLOY_ENV"
  ns="$(namespace_of "$DEPLOY_ENV")"
  kube_init
  if [[ "$CLUSTER_KIND" == minikube ]]; then
    mk service "$APP" -n "$ns" --url
    return
  fi
  require_kubectl
  kube_pin
  node_url "$ns" ||
    die "no URL: the first node's InternalIP or the nodePort of service $APP in $ns could not be read; see $(kc_hint) get nodes -o wide, and get service $APP -n $ns"
}

# status: the app's objects in every environment's namespace.
status() {
  local namespaces ns
  namespaces="$(all_namespaces)"
  cluster
  while IFS= read -r ns; do
    echo "== namespace $ns"
    kc get deploy,rs,pods,svc,hpa,pdb -n "$ns" -l "$SELECTOR" -o wide 2>&1 || true
  done <<<"$namespaces"
}

# clean and purge: scripts/namespaces.sh on every environment's namespace.
namespaces() {
  local out list=()
  out="$(all_namespaces)"
  [[ -n "$out" ]] || die "no environment in k8s/overlays"
  mapfile -t list <<<"$out"
  cluster
  "$ROOT/scripts/namespaces.sh" "$1" "${list[@]}"
}

# purge: the namespaces, then on minikube the images in its docker daemon.
purge() {
  local name ids=()
  namespaces delete
  if [[ "$CLUSTER_KIND" != minikube ]]; then
    echo "the $APP images imported into the cluster's runtime are left there (no portable way to remove them; e.g. ctr -n k8s.io images rm)"
    return
  fi
  name="${IMAGE_NAME:-$(sed -n 's/^IMAGE_NAME=//p' "$ROOT/image.env")}"
  eval "$(mk docker-env --shell bash)"
  mapfile -t ids < <("$DOCKER" images -q "$name" | sort -u)
  if [[ ${#ids[@]} -gt 0 && -n "${ids[0]}" ]]; then
    "$DOCKER" image rm -f "${ids[@]}"
  else
    echo "no $name images in minikube"
  fi
}

main() {
  [[ $# -ge 1 ]] || {
    usage >&2
    exit 2
  }
  local cmd="$1"
  shift
  cd "$ROOT"
  case "$cmd" in
    deploy | delete | reset | check-env)
      [[ $# -eq 1 ]] || die "$cmd needs one environment name (one of: $(environments))"
      ;;
    *) [[ $# -eq 0 ]] || die "$cmd takes no argument (DEPLOY_ENV and NAMESPACE come from the environment)" ;;
  esac
  case "$cmd" in
    -h | --help) usage ;;
    deploy) deploy "$1" ;;
    delete) delete "$1" ;;
    reset)
      delete "$1"
      "$ROOT/scripts/run_system.sh" --env "$1"
      ;;
    check-env) require_env "$1" ;;
    get-url) get_url ;;
    open)
      minikube_only open "print the URL with make get-url DEPLOY_ENV=$DEPLOY_ENV"
      require_env "$DEPLOY_ENV"
      mk service "$APP" -n "$(namespace_of "$DEPLOY_ENV")"
      ;;
    status) status ;;
    clean) namespaces delete-app ;;
    purge) purge ;;
    start-minikube)
      minikube_only start-minikube "the cluster is started by whoever runs it, e.g. make cluster"
      ensure_minikube
      ;;
    minikube-env)
      minikube_only minikube-env "there is no docker-env; the image reaches the cluster through IMAGE_IMPORT"
      mk docker-env
      ;;
    docker-pointer)
      minikube_only docker-pointer "build with make build and import make image-save's archive with IMAGE_IMPORT"
      local profile
      profile="$(printf '%q -p %q' "${MINIKUBE:-minikube}" "$MINIKUBE_PROFILE")"
      echo 'make runs in a child process and cannot change your shell; run:'
      echo "  eval \"\$($profile docker-env)\"     # then: make build, make images"
      echo "  eval \"\$($profile docker-env --unset)\"   # to point back at the local daemon"
      ;;
    *)
      printf 'error: unknown command %s\n\n' "$cmd" >&2
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
