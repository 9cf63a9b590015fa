#!/usr/bin/env bash
# Guards every deploy and delete so they touch only namespaces this project created:
#
#   scripts/namespaces.sh check NAMESPACE...        may a deploy go there?
#   scripts/namespaces.sh delete-app NAMESPACE...   delete the app's objects (namespaces kept)
#   scripts/namespaces.sh delete NAMESPACE...       delete the namespaces
#
# Run by scripts/deploy.sh (`make deploy-<env>`, `delete-<env>`, `k8s-clean`, `k8s-purge`) and
# scripts/run_system.sh.
# A namespace is this project's when the cluster says it carries the label
# app.kubernetes.io/managed-by=manifest-gen (the generator puts it on the Namespace it renders).
# The reserved namespaces (default and every kube-* name) are always refused, and so is what is
# not a namespace name, before any kubectl call. Every namespace named is checked before
# anything is deleted, so a refusal deletes nothing; a namespace that does not exist is skipped.
# A deploy may go to a namespace that does not exist yet or is this project's, never to another
# one (applying would label it as this project's, and a later purge would delete it).
set -euo pipefail

# shellcheck source=scripts/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"
# shellcheck source=scripts/kube.sh
source "$(dirname "${BASH_SOURCE[0]}")/kube.sh"

# Prints the usage text.
usage() {
  cat <<EOF
usage: scripts/namespaces.sh check | delete-app | delete NAMESPACE...

  check        exit 0 when a deploy may go to each NAMESPACE: not reserved, and either absent
               or labeled $OWNER_LABEL=$OWNER
  delete-app   delete the app's objects ($SELECTOR) in each NAMESPACE; namespaces kept
  delete       delete each NAMESPACE

Only namespaces labeled $OWNER_LABEL=$OWNER in the cluster are touched; reserved ones
(default and every kube-* name) are refused. Environment: KUBECTL (kubectl; arguments allowed, e.g.
"kubectl --kubeconfig /x"), KUBECONFIG, KUBE_CONTEXT (default: MINIKUBE_PROFILE on minikube,
else the kubeconfig's current context), CLUSTER_KIND (minikube or other), MINIKUBE_PROFILE
(minikube), SELECTOR.
EOF
}

# The owner label of a namespace: "-" when it has none, "" when the namespace does not exist.
owner_of() {
  local ns="$1" out
  out="$(kc get namespace "$ns" --ignore-not-found \
    -o jsonpath='{.metadata.name}{"|"}{.metadata.labels.app\.kubernetes\.io/managed-by}' 2>&1)" ||
    die "could not read namespace $ns through $(kube_where): $out"
  if [[ -z "$out" ]]; then
    echo ""
  elif [[ "$out" == "$ns|" ]]; then
    echo "-"
  elif [[ "$out" == "$ns|"* ]]; then
    echo "${out#"$ns|"}"
  else
    die "unexpected answer from kubectl get namespace $ns: $out"
  fi
}

# The label line of the refusal for a namespace this project did not create.
not_ours() {
  local ns="$1" owner="$2"
  if [[ "$owner" == - ]]; then
    printf 'namespace %s has no %s label' "$ns" "$OWNER_LABEL"
  else
    printf 'namespace %s is labeled %s=%s' "$ns" "$OWNER_LABEL" "$owner"
  fi
}

# check: a deploy may create the namespace or reuse one of this project's.
check() {
  local ns owner
  for ns in "$@"; do
    owner="$(owner_of "$ns")"
    if [[ -n "$owner" && "$owner" != "$OWNER" ]]; then
      die "$(not_ours "$ns" "$owner"), expected $OWNER: it was not created by this project, and a deploy would take it over; choose another NAMESPACE (if it really is yours: kubectl label namespace $ns $OWNER_LABEL=$OWNER)"
    fi
  done
  ok "namespace(s) $* may receive the deploy"
}

# Checks every namespace, then prints the ones that exist (all this project's), one per line.
owned_existing() {
  local ns owner refused=()
  for ns in "$@"; do
    owner="$(owner_of "$ns")"
    if [[ -z "$owner" ]]; then
      info "namespace $ns does not exist: nothing to delete there"
    elif [[ "$owner" == "$OWNER" ]]; then
      echo "$ns"
    else
      refused+=("$(not_ours "$ns" "$owner")")
    fi
  done
  if [[ ${#refused[@]} -gt 0 ]]; then
    printf '%serror: refusing to delete anything: %s, expected %s=%s: not created by this project%s\n' \
      "$C_RED" "$(
        IFS=';'
        echo "${refused[*]}"
      )" "$OWNER_LABEL" "$OWNER" "$C_OFF" >&2
    exit 1
  fi
}

main() {
  [[ $# -ge 1 ]] || {
    usage >&2
    exit 2
  }
  local cmd="$1" ns
  shift
  case "$cmd" in
    -h | --help)
      usage
      return 0
      ;;
    check | delete-app | delete) ;;
    *)
      printf 'error: unknown command %s (expected check, delete-app or delete)\n\n' "$cmd" >&2
      usage >&2
      exit 2
      ;;
  esac
  [[ $# -ge 1 ]] || die "$cmd needs at least one NAMESPACE"
  for ns in "$@"; do
    require_namespace "$ns"
  done
  kube_init
  require_kubectl
  kube_pin
  if [[ "$cmd" == check ]]; then
    check "$@"
    return
  fi
  local owned
  owned="$(owned_existing "$@")"
  [[ -n "$owned" ]] || return 0
  while IFS= read -r ns; do
    if [[ "$cmd" == delete ]]; then
      kc delete namespace "$ns" --ignore-not-found >&2
      ok "namespace $ns deleted"
    else
      kc delete deploy,rs,svc,cm,secret,hpa,pdb,networkpolicy -n "$ns" \
        -l "$SELECTOR,$OWNER_LABEL=$OWNER" --ignore-not-found >&2
      ok "app objects in $ns deleted (namespace kept)"
    fi
  done <<<"$owned"
}

main "$@"
