# shellcheck shell=bash
# Tests of the deploy on a cluster other than minikube (CLUSTER_KIND=other, KUBE_CONTEXT, KUBECONFIG,
# KUBECTL with arguments, CONTAINER=podman, IMAGE_IMPORT), through scripts/run_system.sh and the
# Makefile's deploy targets, against the stand-in kubectl, podman, ctr, docker and minikube of
# scripts/tests/stand-ins: they record every call; no cluster is reached.

# The import command of these tests: the stand-in ctr, as a containerd node would take it.
IMPORT_STANDIN="ctr -n k8s.io images import"

# Commits the project's containers.conf into the sandbox, as the real tree has it.
sandbox_containers_conf() {
  mkdir -p "$REPO/containers"
  cp "$PROJECT_ROOT/containers/containers.conf" "$REPO/containers/"
  git_commit "containers.conf"
}

# Fails unless every kubectl call in the log starts with the prefix $1 (then a command).
assert_every_kubectl_call_starts_with() {
  local calls
  calls="$(grep -c '^kubectl ' "$LOG" || true)"
  [[ "$calls" -gt 0 ]] || fail "no kubectl call in $LOG"
  if grep '^kubectl ' "$LOG" | grep -vF -- "$1 " >&2; then
    fail "kubectl calls without [$1] (above), of $calls"
  fi
}

# Copies the Makefile and mk/ into the sandbox repository, so make runs the sandbox's scripts.
sandbox_makefile() {
  cp "$PROJECT_ROOT/Makefile" "$PROJECT_ROOT/image.env" "$REPO/"
  cp -r "$PROJECT_ROOT/mk" "$REPO/"
  git_commit "Makefile"
}

# Runs make in the sandbox repository; output in $OUT, exit code in RC.
# shellcheck disable=SC2034 # OUT and RC are read by the tests
sandbox_make() {
  MAKE_RUNS=$((${MAKE_RUNS:-0} + 1))
  OUT="$SANDBOX/make.$MAKE_RUNS"
  RC=0
  make --no-print-directory -C "$REPO" "$@" >"$OUT" 2>&1 </dev/null || RC=$?
}

# The whole deploy on another cluster: no minikube call at all; podman builds the fully
# qualified content tag with the project's containers.conf, saves it under target/image/, the
# import command gets the archive as its last argument, all before the server-side apply; the
# URL is the node's InternalIP and the NodePort.
test_other_cluster_deploy_builds_with_podman_imports_the_archive_and_calls_no_minikube() {
  new_sandbox
  sandbox_containers_conf
  local rev ref archive
  rev="$(git -C "$REPO" rev-parse --short=12 HEAD)"
  ref="docker.io/library/hello-k8s:0.1.0-$rev"
  archive="$REPO/target/image/hello-k8s-0.1.0-$rev.tar"
  CLUSTER_KIND=other KUBE_CONTEXT=node-1 CONTAINER=podman PODMAN_FLAGS="--runtime runc --cgroup-manager cgroupfs" \
    IMAGE_IMPORT="$IMPORT_STANDIN" deploy --prod
  assert_eq "$RC" 0 "exit code"
  echo "NOTE: kubectl, podman and ctr here are stand-ins (scripts/tests/stand-ins): their calls are asserted, no cluster is reached"
  assert_file_lacks "$LOG" "minikube"
  assert_file_lacks "$OUT" "docker-env"
  assert_file_contains "$LOG" "podman CONTAINERS_CONF=$REPO/containers/containers.conf --runtime runc --cgroup-manager cgroupfs build --format docker"
  assert_eq "$(last_built_tag podman)" "$ref" "the built tag"
  assert_file_contains "$LOG" "podman CONTAINERS_CONF=$REPO/containers/containers.conf --runtime runc --cgroup-manager cgroupfs save --output $archive.tmp $ref"
  assert_file_contains "$LOG" "ctr -n k8s.io images import $archive"
  [[ -s "$archive" && ! -e "$archive.tmp" ]] || fail "the archive $archive was not saved whole"
  assert_file_contains "$STANDIN_STATE/ctr.imported" "stand-in image archive of $ref"
  assert_before "$LOG" '^podman .* build ' '^podman .* save '
  assert_before "$LOG" '^podman .* save ' '^ctr '
  assert_before "$LOG" '^ctr ' '^kubectl .* apply -f /'
  assert_file_contains "$LOG" "manifest-gen render --env prod --image $ref"
  assert_file_contains "$LOG" "kubectl --context node-1 apply -f $(dirname "$(grep -o 'apply -f /[^ ]*manifest.yaml' "$LOG" | sed -n 1p | cut -d' ' -f3)")/manifest.yaml --server-side --field-manager=hello-k8s-deploy"
  assert_file_contains "$OUT" "the cluster serves metrics.k8s.io"
  assert_file_contains "$OUT" "URL: http://192.0.2.50:31181"
  assert_file_contains "$OUT" "kubectl --context node-1 get all -n hello-k8s-prod"
  assert_file_lacks "$OUT" "minikube service"
  [[ -z "$(git -C "$REPO" status --porcelain)" ]] || fail "the archive is not git-ignored: $(git -C "$REPO" status --porcelain)"

  # A second run rebuilds nothing and saves nothing, but imports again (the node may have lost it).
  deploy_again() { CLUSTER_KIND=other KUBE_CONTEXT=node-1 CONTAINER=podman IMAGE_IMPORT="$IMPORT_STANDIN" deploy --prod; }
  deploy_again
  assert_eq "$RC" 0 "second run exit code"
  assert_eq "$(grep -c '^podman .* build ' "$LOG")" 1 "builds after the second run"
  assert_eq "$(grep -c '^podman .* save ' "$LOG")" 1 "saves after the second run"
  assert_eq "$(grep -c '^ctr ' "$LOG")" 2 "imports after the second run"
  assert_file_contains "$OUT" "already built, nothing to rebuild"
  assert_file_contains "$OUT" "kubectl apply: unchanged"
}

# Every kubectl call of a deploy, its failure diagnostics and the namespace guard carries
# KUBECONFIG, KUBECTL's own arguments and the context, in that order.
test_every_kubectl_call_carries_kubeconfig_kubectl_arguments_and_context() {
  new_sandbox
  local prefix="kubectl KUBECONFIG=$SANDBOX/kubeconfig --kubeconfig $SANDBOX/other.yaml --request-timeout=20s --context node-1"
  KUBECONFIG="$SANDBOX/kubeconfig" KUBECTL="kubectl --kubeconfig $SANDBOX/other.yaml --request-timeout=20s" \
    KUBE_CONTEXT=node-1 IMAGE_IMPORT="$IMPORT_STANDIN" deploy --prod
  assert_eq "$RC" 0 "exit code (CLUSTER_KIND unset: other, since KUBE_CONTEXT is not the minikube profile)"
  assert_file_lacks "$LOG" "minikube"
  assert_file_contains "$LOG" "get namespace hello-k8s-prod"
  assert_every_kubectl_call_starts_with "$prefix"
  : >"$LOG"
  KUBECONFIG="$SANDBOX/kubeconfig" KUBECTL="kubectl --kubeconfig $SANDBOX/other.yaml --request-timeout=20s" \
    KUBE_CONTEXT=node-1 IMAGE_IMPORT="$IMPORT_STANDIN" STANDIN_ROLLOUT_FAIL=1 deploy --prod
  assert_ne "$RC" 0 "exit code of the failed rollout"
  assert_file_contains "$LOG" "logs hello-k8s-5d8f-aaaa1"
  assert_every_kubectl_call_starts_with "$prefix"
  assert_file_contains "$OUT" "to go back: kubectl --kubeconfig $SANDBOX/other.yaml --request-timeout=20s --context node-1 rollout undo deployment/hello-k8s -n hello-k8s-prod"
}

# The make targets pass the same to every kubectl call: deploy (server-side), delete, status,
# purge; get-url reads the node and the Service; the minikube-only targets refuse another cluster.
test_make_deploy_targets_reach_any_cluster_through_kubeconfig_and_context() {
  new_sandbox
  sandbox_makefile
  local prefix="kubectl KUBECONFIG=$SANDBOX/kubeconfig --kubeconfig $SANDBOX/other.yaml --context node-1" target
  local -a vars=(KUBECONFIG="$SANDBOX/kubeconfig" KUBECTL="kubectl --kubeconfig $SANDBOX/other.yaml" KUBE_CONTEXT=node-1)
  sandbox_make deploy-dev "${vars[@]}"
  assert_eq "$RC" 0 "make deploy-dev exit code: $(cat "$OUT")"
  assert_file_contains "$LOG" "apply -k k8s/overlays/dev --server-side --field-manager=hello-k8s-deploy"
  assert_file_contains "$LOG" "apply -f - --server-side --field-manager=hello-k8s-deploy-namespace"
  assert_file_contains "$LOG" "rollout status deployment/hello-k8s -n hello-k8s-dev"
  sandbox_make delete-dev "${vars[@]}"
  assert_eq "$RC" 0 "make delete-dev exit code: $(cat "$OUT")"
  sandbox_make status "${vars[@]}"
  sandbox_make k8s-purge "${vars[@]}"
  assert_eq "$RC" 0 "make k8s-purge exit code: $(cat "$OUT")"
  assert_file_contains "$LOG" "delete namespace hello-k8s-dev"
  assert_file_contains "$OUT" "images imported into the cluster's runtime are left there"
  sandbox_make -s get-url DEPLOY_ENV=dev "${vars[@]}"
  assert_eq "$RC" 0 "make get-url exit code: $(cat "$OUT")"
  assert_eq "$(cat "$OUT")" "http://192.0.2.50:31180" "make get-url on another cluster"
  assert_every_kubectl_call_starts_with "$prefix"
  assert_file_lacks "$LOG" "minikube"
  assert_file_lacks "$LOG" "docker"
  for target in open start-minikube minikube-env docker-pointer; do
    sandbox_make "$target" "${vars[@]}"
    assert_eq "$RC" 2 "make $target exit code on another cluster"
    assert_file_contains "$OUT" "error: $target is minikube only (CLUSTER_KIND=other)"
  done
  assert_file_lacks "$LOG" "minikube"
  # The default stays minikube: its profile's context, minikube service.
  sandbox_make -s get-url
  assert_eq "$(cat "$OUT")" "http://192.0.2.49:31181" "make get-url on minikube"
  sandbox_make deploy-dev
  assert_file_contains "$LOG" "kubectl --context minikube apply -k k8s/overlays/dev --server-side"
}

# make auto-deploy-<env> hands CLUSTER_KIND, KUBE_CONTEXT, KUBECONFIG, KUBECTL, CONTAINER and
# IMAGE_IMPORT, given on its command line, to the deploy script.
test_make_auto_deploy_passes_the_cluster_variables_to_the_deploy_script() {
  new_sandbox
  sandbox_makefile
  sandbox_make auto-deploy-prod CLUSTER_KIND=other KUBECONFIG="$SANDBOX/kubeconfig" KUBECTL="kubectl --request-timeout=20s" \
    KUBE_CONTEXT=node-1 CONTAINER=podman IMAGE_IMPORT="$IMPORT_STANDIN"
  assert_eq "$RC" 0 "make auto-deploy-prod exit code: $(tail -n 30 "$OUT")"
  assert_every_kubectl_call_starts_with "kubectl KUBECONFIG=$SANDBOX/kubeconfig --request-timeout=20s --context node-1"
  assert_file_contains "$LOG" "ctr -n k8s.io images import $REPO/target/image/hello-k8s-0.1.0-"
  assert_file_lacks "$LOG" "minikube"
  assert_file_contains "$OUT" "URL: http://192.0.2.50:31181"
}

# Without KUBE_CONTEXT, another cluster's deploy pins the kubeconfig's current context for every
# later call; without a current context it stops before building or applying.
test_other_cluster_without_context_pins_the_current_one_or_stops() {
  new_sandbox
  CLUSTER_KIND=other STANDIN_CURRENT_CONTEXT=standin-a IMAGE_IMPORT="$IMPORT_STANDIN" deploy --dev
  assert_eq "$RC" 0 "exit code"
  assert_eq "$(grep -m 1 '^kubectl ' "$LOG")" "kubectl config current-context" "the first kubectl call"
  sed -i '0,/^kubectl config current-context$/{/^kubectl config current-context$/d}' "$LOG"
  assert_every_kubectl_call_starts_with "kubectl --context standin-a"
  assert_file_contains "$OUT" "using the kubeconfig's current context standin-a"
  new_sandbox
  CLUSTER_KIND=other IMAGE_IMPORT="$IMPORT_STANDIN" deploy --dev
  assert_eq "$RC" 1 "exit code without a current context"
  assert_file_contains "$OUT" "has no current context: set KUBE_CONTEXT to one of: standin-a standin-b"
  assert_file_lacks "$LOG" " build "
  assert_file_lacks "$LOG" " apply "
}

# Another cluster without IMAGE_IMPORT, or an unknown CLUSTER_KIND, stops before any tool runs.
test_other_cluster_needs_an_import_command_and_cluster_is_checked() {
  new_sandbox
  CLUSTER_KIND=other KUBE_CONTEXT=node-1 deploy --dev
  assert_eq "$RC" 1 "exit code without IMAGE_IMPORT"
  assert_file_contains "$OUT" "IMAGE_IMPORT is not set"
  assert_file_contains "$OUT" "sudo ctr -a /run/containerd/containerd.sock -n k8s.io images import"
  [[ ! -s "$LOG" ]] || fail "tools were called without IMAGE_IMPORT: $(cat "$LOG")"
  CLUSTER_KIND=kind deploy --dev
  assert_eq "$RC" 1 "exit code of CLUSTER_KIND=kind"
  assert_file_contains "$OUT" "CLUSTER_KIND=kind: expected minikube (the default) or other"
  [[ ! -s "$LOG" ]] || fail "tools were called for CLUSTER_KIND=kind: $(cat "$LOG")"
  CLUSTER_KIND=other KUBE_CONTEXT=node-1 IMAGE_IMPORT="no-such-import-tool load" deploy --dev
  assert_eq "$RC" 1 "exit code of a missing import tool"
  assert_file_contains "$OUT" "missing required tool(s): no-such-import-tool"
  makefile_copy
  local rc=0 out="$SANDBOX/make-kind.out"
  make --no-print-directory -C "$MK_DIR" status CLUSTER_KIND=kind >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "make exit code of CLUSTER_KIND=kind"
  assert_file_contains "$out" "CLUSTER_KIND=kind: expected minikube (the default) or other"
}

# A failed import stops before anything is applied.
test_failed_import_applies_nothing() {
  new_sandbox
  CLUSTER_KIND=other KUBE_CONTEXT=node-1 IMAGE_IMPORT="$IMPORT_STANDIN" STANDIN_IMPORT_FAIL=1 deploy --dev
  assert_eq "$RC" 1 "exit code"
  assert_file_contains "$OUT" "the image import failed: ctr -n k8s.io images import"
  assert_file_contains "$OUT" "ctr: failed to import (stand-in)"
  assert_file_lacks "$LOG" " apply "
}

# minikube with podman (or any IMAGE_IMPORT): no docker-env; podman builds, `minikube image load`
# (minikube only) takes the archive.
test_minikube_with_podman_loads_the_archive_with_minikube_image_load() {
  new_sandbox
  CONTAINER=podman deploy --dev
  assert_eq "$RC" 0 "exit code"
  assert_file_lacks "$LOG" "docker-env"
  assert_file_lacks "$LOG" "^docker "
  assert_file_contains "$LOG" "minikube -p minikube image load $REPO/target/image/hello-k8s-0.1.0-"
  assert_before "$LOG" '^minikube -p minikube start' '^podman .* build '
  assert_before "$LOG" '^minikube -p minikube image load' '^kubectl .* apply -f /'
  assert_every_kubectl_call_starts_with "kubectl --context minikube"
  assert_file_contains "$OUT" "URL: http://192.0.2.49:31181"
}

# Every apply is server-side under the deploy's field manager (the label-only Namespace under its
# own); a conflict (a field another manager owns, such as the HPA's replicas) is refused with
# the reason and nothing overwritten.
test_apply_is_server_side_and_a_conflict_is_refused_with_the_reason() {
  new_sandbox
  deploy --prod
  assert_eq "$RC" 0 "exit code"
  if grep -E '^kubectl .* apply ' "$LOG" | grep -vE -- '--server-side --field-manager=hello-k8s-deploy(-namespace|-replicas --validate=false)?$' >&2; then
    fail "applies that are not server-side under the deploy's field manager (above)"
  fi
  assert_file_contains "$LOG" "diff -f "
  assert_file_contains "$OUT" "serverside-applied"
  # The first deploy finds no live Deployment: nothing to hand over.
  assert_file_lacks "$LOG" "field-manager=hello-k8s-deploy-replicas"
  STANDIN_APPLY_CONFLICT=1 deploy --prod
  assert_eq "$RC" 1 "exit code of a conflict"
  assert_file_contains "$OUT" "conflict with \"kube-controller-manager\" using apps/v1: .spec.replicas (stand-in)"
  assert_file_contains "$OUT" "another field manager owns a field"
  assert_file_contains "$OUT" "Nothing was overwritten"
  assert_file_lacks "$LOG" "force-conflicts"
  assert_file_lacks "$OUT" "rolled out"
}

# No metrics.k8s.io on another cluster: a warning, not a failure, and no minikube addon.
test_other_cluster_without_metrics_api_warns_about_the_hpa() {
  new_sandbox
  CLUSTER_KIND=other KUBE_CONTEXT=node-1 IMAGE_IMPORT="$IMPORT_STANDIN" STANDIN_NO_METRICS=1 deploy --prod
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "the cluster serves no metrics.k8s.io: the HPA will show cpu <unknown>"
  assert_file_lacks "$LOG" "addons"
}

# A rendered Deployment without `replicas` (the stand-in's, like prod's real one) over a live
# Deployment: the live count is applied first under a field manager of its own, so the deploy
# dropping the field cannot scale the app in; a Deployment that declares replicas skips it.
test_a_deployment_without_replicas_keeps_the_live_count() {
  new_sandbox
  deploy --prod
  assert_eq "$RC" 0 "first deploy exit code"
  assert_file_lacks "$LOG" "hello-k8s-deploy-replicas"
  deploy --prod
  assert_eq "$RC" 0 "second deploy exit code"
  assert_file_contains "$LOG" "get deployment hello-k8s -n hello-k8s-prod --ignore-not-found -o jsonpath={.spec.replicas}"
  assert_file_contains "$LOG" "apply -f - --server-side --field-manager=hello-k8s-deploy-replicas --validate=false"
  assert_file_contains "$STANDIN_STATE/kubectl.applied" 'spec:\n  replicas: 3\n'
  assert_file_contains "$OUT" "the live count (3) stays"
  assert_file_contains "$OUT" "kubectl apply: unchanged"
  local handover main
  handover="$(grep -n 'field-manager=hello-k8s-deploy-replicas' "$LOG" | tail -n 1 | cut -d: -f1)"
  main="$(grep -n 'apply -f /.*--field-manager=hello-k8s-deploy$' "$LOG" | tail -n 1 | cut -d: -f1)"
  ((handover < main)) || fail "the handover (line $handover) should come before the apply (line $main)"
  # A Deployment that declares replicas keeps owning them: no handover.
  new_sandbox
  deploy --prod
  printf '#!/usr/bin/env bash\n"%s" "$@" | sed "s/^spec:$/spec:\\n  replicas: 2/"\n' "$SANDBOX/bin/manifest-gen" >"$SANDBOX/bin/manifest-gen-replicas"
  chmod +x "$SANDBOX/bin/manifest-gen-replicas"
  MANIFEST_GEN="$SANDBOX/bin/manifest-gen-replicas" deploy --prod
  assert_eq "$RC" 0 "exit code with replicas declared"
  assert_file_lacks "$LOG" "hello-k8s-deploy-replicas"
}
