# shellcheck shell=bash
# Tests that deploys and deletes touch only namespaces this project created (labeled
# app.kubernetes.io/managed-by=manifest-gen in the cluster), through the real Makefile targets and
# scripts/namespaces.sh against the stand-in kubectl, minikube and docker.

# Runs make in a copy of the Makefile with the stand-ins on PATH; output in $OUT, exit code in RC.
# shellcheck disable=SC2034 # OUT and RC are read by the tests
run_make() {
  MAKE_RUNS=$((${MAKE_RUNS:-0} + 1))
  OUT="$SANDBOX/make.$MAKE_RUNS"
  RC=0
  make --no-print-directory -C "$MK_DIR" "$@" >"$OUT" 2>&1 </dev/null || RC=$?
}

# A sandbox with stand-ins and a Makefile copy (MK_DIR).
new_make_sandbox() {
  new_sandbox
  makefile_copy
}

# The exact case of issue 12: a purge with NAMESPACE=team-shared (not labeled) deletes nothing.
test_purge_refuses_a_namespace_this_project_did_not_create() {
  new_make_sandbox
  standin_namespace team-shared
  run_make k8s-purge NAMESPACE=team-shared
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "refusing to delete anything: namespace team-shared has no app.kubernetes.io/managed-by label"
  assert_file_contains "$LOG" "kubectl --context minikube get namespace team-shared"
  assert_file_lacks "$LOG" " delete"
  assert_file_lacks "$LOG" "image rm"
  assert_file_contains "$STANDIN_STATE/kubectl.namespaces" "team-shared"
}

# Another owner's label is not ours either.
test_purge_refuses_a_namespace_managed_by_another_tool() {
  new_make_sandbox
  standin_namespace team-shared Helm
  run_make k8s-purge NAMESPACE=team-shared
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "namespace team-shared is labeled app.kubernetes.io/managed-by=Helm, expected app.kubernetes.io/managed-by=manifest-gen"
  assert_file_lacks "$LOG" " delete"
}

# Reserved namespaces are refused by name, even if someone labeled them, before asking the cluster.
test_reserved_namespaces_are_refused_for_purge_delete_and_deploy() {
  new_make_sandbox
  local ns
  for ns in kube-system kube-public kube-node-lease default; do
    standin_namespace "$ns" manifest-gen
    run_make k8s-purge NAMESPACE="$ns"
    assert_ne "$RC" 0 "purge exit code for $ns"
    assert_file_contains "$OUT" "namespace $ns is reserved by Kubernetes"
    run_make delete-dev NAMESPACE="$ns"
    assert_ne "$RC" 0 "delete-dev exit code for $ns"
    assert_file_contains "$OUT" "namespace $ns is reserved by Kubernetes"
    run_make deploy-dev NAMESPACE="$ns"
    assert_ne "$RC" 0 "deploy-dev exit code for $ns"
    assert_file_contains "$OUT" "namespace $ns is reserved by Kubernetes"
  done
  assert_file_lacks "$LOG" " delete"
  assert_file_lacks "$LOG" " apply"
  assert_file_lacks "$LOG" "get namespace kube-"
}

# The environments' own namespaces, labeled by the generator, are deleted; absent ones skipped.
test_purge_deletes_the_labeled_namespaces_and_skips_absent_ones() {
  new_make_sandbox
  standin_namespace hello-k8s-dev manifest-gen
  standin_namespace team-shared
  run_make k8s-purge
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$LOG" "kubectl --context minikube delete namespace hello-k8s-dev"
  assert_file_lacks "$LOG" "delete namespace hello-k8s-prod"
  assert_file_lacks "$LOG" "team-shared"
  assert_file_contains "$OUT" "namespace hello-k8s-prod does not exist: nothing to delete there"
  assert_file_contains "$LOG" "docker DOCKER_HOST=tcp://192.0.2.49:2376 images -q hello-k8s"
  assert_file_lacks "$STANDIN_STATE/kubectl.namespaces" "hello-k8s-dev"
  assert_file_contains "$STANDIN_STATE/kubectl.namespaces" "team-shared"
}

# One foreign namespace among several: checked first, so nothing at all is deleted.
test_delete_checks_every_namespace_before_deleting_any() {
  new_sandbox
  standin_namespace hello-k8s-dev manifest-gen
  standin_namespace team-shared
  local rc=0
  "$REPO/scripts/namespaces.sh" delete hello-k8s-dev team-shared >"$SANDBOX/out" 2>&1 || rc=$?
  assert_eq "$rc" 1 "exit code"
  assert_file_contains "$SANDBOX/out" "namespace team-shared has no app.kubernetes.io/managed-by label"
  assert_file_lacks "$LOG" " delete"
}

# delete-<env> deletes by the app's label and the owner label, in a namespace of ours only.
test_delete_env_deletes_app_objects_only_in_a_namespace_of_this_project() {
  new_make_sandbox
  standin_namespace hello-k8s-dev manifest-gen
  standin_namespace team-shared
  run_make delete-dev
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$LOG" "kubectl --context minikube delete deploy,rs,svc,cm,secret,hpa,pdb,networkpolicy -n hello-k8s-dev -l app.kubernetes.io/name=hello-k8s,app.kubernetes.io/managed-by=manifest-gen --ignore-not-found"
  assert_file_lacks "$LOG" "delete namespace"
  run_make delete-dev NAMESPACE=team-shared
  assert_ne "$RC" 0 "exit code in team-shared"
  assert_eq "$(grep -c ' delete ' "$LOG")" 1 "deletes after the refused one"
  run_make k8s-clean NAMESPACE=team-shared
  assert_ne "$RC" 0 "k8s-clean exit code in team-shared"
  assert_eq "$(grep -c ' delete ' "$LOG")" 1 "deletes after k8s-clean in team-shared"
}

# A deploy never takes over a namespace it did not create (that would label it as ours, and a
# later purge would delete it): make deploy-<env> and the deploy script both refuse.
test_deploy_refuses_an_existing_namespace_of_another_owner() {
  new_make_sandbox
  standin_namespace team-shared
  run_make deploy-dev NAMESPACE=team-shared
  assert_ne "$RC" 0 "make deploy-dev exit code"
  assert_file_contains "$OUT" "namespace team-shared has no app.kubernetes.io/managed-by label, expected manifest-gen"
  NAMESPACE=team-shared deploy --dev
  assert_eq "$RC" 1 "run_system.sh exit code"
  assert_file_contains "$OUT" "a deploy would take it over"
  assert_file_lacks "$LOG" " apply"
  assert_file_lacks "$LOG" " build "
  assert_file_lacks "$LOG" " create "
  standin_namespace demo manifest-gen
  NAMESPACE=demo deploy --dev
  assert_eq "$RC" 0 "exit code in a namespace of this project"
  assert_file_contains "$LOG" "rollout status deployment/hello-k8s -n demo"
}

# A namespace the deploy created carries the owner label even when the apply after it fails, so
# the next deploy and the purge still recognise it; a deploy then a purge removes it.
test_namespace_created_by_a_deploy_is_this_projects_even_after_a_failed_apply() {
  new_make_sandbox
  STANDIN_RENDER_FAIL=1 deploy --dev
  assert_ne "$RC" 0 "exit code of the failed deploy"
  # The failed render applies nothing; now a deploy whose rollout fails after the apply.
  STANDIN_ROLLOUT_FAIL=1 deploy --dev
  assert_ne "$RC" 0 "exit code of the failed rollout"
  assert_file_contains "$STANDIN_STATE/kubectl.namespaces" "hello-k8s-dev manifest-gen"
  deploy --dev
  assert_eq "$RC" 0 "exit code of the next deploy"
  run_make k8s-purge
  assert_eq "$RC" 0 "purge exit code"
  assert_file_contains "$LOG" "kubectl --context minikube delete namespace hello-k8s-dev"
}
