# The cluster the deploy and delete scripts talk to (sourced by run_system.sh and namespaces.sh,
# after log.sh). Every kubectl call goes through kc, so each one carries the same KUBECTL
# arguments, the same --context and, through the environment, the same KUBECONFIG.
#
#   CLUSTER_KIND      minikube (default) or other: any cluster reached through KUBECONFIG and
#                     KUBE_CONTEXT. Unset: other when KUBE_CONTEXT names a context other than
#                     MINIKUBE_PROFILE, else minikube. (Not CLUSTER: shells and CI often hold a
#                     cluster's name in that.)
#   MINIKUBE_PROFILE  the minikube profile (minikube); on minikube also the default context.
#   KUBE_CONTEXT      the kubectl context of every call. Default: MINIKUBE_PROFILE on minikube;
#                     on other the kubeconfig's current context (run_system.sh pins it at start).
#   KUBECONFIG        read by kubectl itself, never rewritten here.
#   KUBECTL           the kubectl command, arguments allowed ("kubectl --kubeconfig /x"); split
#                     on blanks into an array (a path with a blank in it: use KUBECONFIG instead).
# shellcheck shell=bash

# Validates CLUSTER_KIND and sets MINIKUBE_PROFILE, KUBE_CONTEXT and the KUBECTL_CMD array.
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
  KUBECTL_CMD=()
  read -r -a KUBECTL_CMD <<<"${KUBECTL:-kubectl}"
  [[ ${#KUBECTL_CMD[@]} -gt 0 ]] || KUBECTL_CMD=(kubectl)
}

# kubectl with KUBECTL's arguments and the context: the one way this project calls kubectl.
kc() {
  if [[ -n "$KUBE_CONTEXT" ]]; then
    "${KUBECTL_CMD[@]}" --context "$KUBE_CONTEXT" "$@"
  else
    "${KUBECTL_CMD[@]}" "$@"
  fi
}

# The kubectl command line a user can paste to reach the same cluster (for hints).
kc_hint() {
  printf '%s' "${KUBECTL_CMD[*]}${KUBE_CONTEXT:+ --context $KUBE_CONTEXT}"
}

# Where the calls go, for messages: the context and, when set, the kubeconfig.
kube_where() {
  local context="the kubeconfig's current one"
  printf 'kubectl context %s%s' "${KUBE_CONTEXT:-$context}" "${KUBECONFIG:+ (KUBECONFIG=$KUBECONFIG)}"
}
