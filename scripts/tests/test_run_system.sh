# shellcheck shell=bash
# Tests of scripts/run_system.sh against stand-in minikube/kubectl/docker/manifest-gen.

# A first dev deploy starts minikube, builds into minikube's daemon, then applies; no delete.
test_dev_deploy_builds_into_minikube_before_apply_and_never_deletes() {
  new_sandbox
  deploy --dev
  assert_eq "$RC" 0 "exit code"
  assert_before "$LOG" '^minikube -p minikube status' '^minikube -p minikube start'
  assert_before "$LOG" '^minikube -p minikube start' '^docker .* build '
  assert_before "$LOG" '^docker .* build ' '^kubectl .* apply '
  assert_before "$LOG" '^kubectl .* apply -f /' '^kubectl .* rollout status deployment/hello-k8s -n hello-k8s-dev'
  assert_file_contains "$LOG" "docker DOCKER_HOST=tcp://192.0.2.49:2376 build"
  assert_file_lacks "$LOG" " delete"
  assert_file_contains "$LOG" "manifest-gen render --env dev --image $(last_built_tag)"
  assert_file_contains "$OUT" "URL: http://192.0.2.49:31181"
  assert_file_contains "$OUT" "kubectl get all -n hello-k8s-dev"
}

# Every kubectl call names the minikube context: a deploy never lands on another cluster.
test_every_kubectl_call_is_pinned_to_the_minikube_context() {
  new_sandbox
  deploy --prod
  assert_eq "$RC" 0 "exit code"
  if grep '^kubectl ' "$LOG" | grep -v '^kubectl --context minikube ' >&2; then
    fail "kubectl calls without --context minikube (above)"
  fi
}

# The driver is minikube's choice unless MINIKUBE_DRIVER names one.
test_minikube_driver_comes_from_the_environment_only() {
  new_sandbox
  deploy --dev
  assert_file_contains "$LOG" "minikube -p minikube start"
  assert_file_lacks "$LOG" "--driver"
  new_sandbox
  MINIKUBE_DRIVER=docker deploy --dev
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$LOG" "minikube -p minikube start --driver=docker"
}

# A running minikube is left alone.
test_running_minikube_is_not_restarted() {
  new_sandbox
  mkdir -p "$STANDIN_STATE" && touch "$STANDIN_STATE/minikube.running"
  deploy --dev
  assert_eq "$RC" 0 "exit code"
  assert_file_lacks "$LOG" "minikube -p minikube start"
  assert_file_contains "$OUT" "already running"
}

# A second run without changes builds nothing, applies unchanged objects and says so.
test_second_run_without_changes_skips_the_build_and_reports_unchanged() {
  new_sandbox
  deploy --dev
  assert_eq "$RC" 0 "first run exit code"
  assert_eq "$(grep -c ' build ' "$LOG")" 1 "builds after the first run"
  deploy --dev
  assert_eq "$RC" 0 "second run exit code"
  assert_eq "$(grep -c ' build ' "$LOG")" 1 "builds after the second run"
  assert_file_contains "$OUT" "image $(last_built_tag) already built, nothing to rebuild"
  assert_file_contains "$OUT" "kubectl apply: unchanged"
  assert_file_lacks "$OUT" "changes applied"
  assert_file_lacks "$LOG" " delete"
}

# The tag follows the content: clean tree = IMAGE_TAG-rev; any edit, new file or commit changes it.
test_image_tag_changes_whenever_the_source_changes() {
  new_sandbox
  local rev clean edited untracked reverted committed
  rev="$(git -C "$REPO" rev-parse --short=12 HEAD)"
  deploy --dev
  clean="$(last_built_tag)"
  assert_eq "$clean" "hello-k8s:0.1.0-$rev" "tag of a clean tree"

  printf 'fn main() { println!("changed"); }\n' >"$REPO/service/src/main.rs"
  deploy --dev
  edited="$(last_built_tag)"
  assert_ne "$edited" "$clean" "tag after editing a tracked file"
  [[ "$edited" =~ ^hello-k8s:0\.1\.0-$rev-[0-9a-f]{12}$ ]] || fail "dirty tag has the wrong form: $edited"
  assert_eq "$(grep -c ' build ' "$LOG")" 2 "a changed source is built"
  assert_file_contains "$LOG" "manifest-gen render --env dev --image $edited"

  printf 'pub fn extra() {}\n' >"$REPO/service/src/extra.rs"
  deploy --dev
  untracked="$(last_built_tag)"
  assert_ne "$untracked" "$edited" "tag after adding an untracked file"

  printf 'pub fn extra() { }\n' >"$REPO/service/src/extra.rs"
  deploy --dev
  assert_ne "$(last_built_tag)" "$untracked" "tag after editing an untracked file"

  git -C "$REPO" checkout -q -- service/src/main.rs
  rm "$REPO/service/src/extra.rs"
  deploy --dev
  reverted="$(grep -oE 'content tag: [^ ]+' "$OUT" | cut -d' ' -f3)"
  assert_eq "$reverted" "$clean" "tag after reverting every change"
  assert_file_contains "$OUT" "already built, nothing to rebuild"

  printf '# changed\n' >>"$REPO/Dockerfile"
  git_commit "change the Dockerfile"
  deploy --dev
  committed="$(last_built_tag)"
  assert_eq "$committed" "hello-k8s:0.1.0-$(git -C "$REPO" rev-parse --short=12 HEAD)" "tag after a commit"
  assert_ne "$committed" "$clean" "a commit yields a new tag"
}

# A git-ignored file (prod's secret) does not change the tag.
test_git_ignored_files_do_not_change_the_tag() {
  new_sandbox
  deploy --dev
  local before
  before="$(last_built_tag)"
  mkdir -p "$REPO/k8s/overlays/prod"
  printf 'API_KEY=abc\n' >"$REPO/k8s/overlays/prod/secret.env"
  deploy --dev
  assert_file_contains "$OUT" "image $before already built"
}

# A failed rollout exits non-zero and prints describe, events and the unready pod's logs.
test_failed_rollout_exits_nonzero_with_diagnostics() {
  new_sandbox
  STANDIN_ROLLOUT_FAIL=1 deploy --prod
  assert_ne "$RC" 0 "exit code of a failed rollout"
  assert_file_contains "$LOG" "kubectl --context minikube describe deployment hello-k8s -n hello-k8s-prod"
  assert_file_contains "$LOG" "kubectl --context minikube get events -n hello-k8s-prod"
  assert_file_contains "$LOG" "kubectl --context minikube logs hello-k8s-5d8f-aaaa1 -n hello-k8s-prod --all-containers"
  assert_file_lacks "$LOG" "logs hello-k8s-5d8f-bbbb2"
  assert_file_contains "$OUT" "stand-in describe"
  assert_file_contains "$OUT" "stand-in events"
  assert_file_contains "$OUT" "stand-in log line of hello-k8s-5d8f-aaaa1"
  assert_file_contains "$OUT" "rollout undo deployment/hello-k8s"
  assert_file_lacks "$OUT" "URL:"
  assert_file_lacks "$LOG" " delete"
}

# A missing minikube, kubectl or docker stops the script up front with the install hint.
test_missing_tool_gives_the_install_hint_and_runs_nothing() {
  local tool
  for tool in minikube kubectl docker; do
    new_sandbox
    rm "$SANDBOX/bin/$tool"
    deploy --dev
    assert_eq "$RC" 1 "exit code without $tool"
    assert_file_contains "$OUT" "missing required tool(s): $tool"
    assert_file_contains "$OUT" "make install-k8s_env"
    [[ ! -s "$LOG" ]] || fail "tools were called although $tool is missing: $(cat "$LOG")"
  done
}

# Without MANIFEST_GEN the generator runs through cargo, so cargo is then required.
test_missing_cargo_is_reported_when_manifest_gen_is_not_given() {
  new_sandbox
  MANIFEST_GEN="" deploy --dev
  assert_eq "$RC" 1 "exit code"
  assert_file_contains "$OUT" "cargo (or set MANIFEST_GEN"
}

# prod creates a random API_KEY file with mode 600, never shows it, keeps it on later runs.
test_prod_secret_is_created_private_random_and_never_printed() {
  new_sandbox
  local file key
  file="$REPO/k8s/overlays/prod/secret.env"
  deploy --prod
  assert_eq "$RC" 0 "exit code"
  [[ -f "$file" ]] || fail "$file was not created"
  assert_eq "$(stat -c %a "$file")" 600 "mode of secret.env"
  grep -qE '^API_KEY=[0-9a-f]{64}$' "$file" || fail "secret.env should hold one API_KEY of 64 hex digits"
  key="$(sed -n 's/^API_KEY=//p' "$file")"
  assert_file_lacks "$OUT" "$key"
  assert_file_lacks "$OUT" "$(printf '%s' "$key" | base64 -w0)"
  assert_file_lacks "$LOG" "$key"
  [[ -z "$(git -C "$REPO" status --porcelain)" ]] || fail "secret.env is not git-ignored"
  assert_file_contains "$LOG" "minikube -p minikube addons enable metrics-server"
  assert_before "$LOG" 'addons enable metrics-server' '^kubectl .* apply -f /'

  deploy --prod
  assert_eq "$(sed -n 's/^API_KEY=//p' "$file")" "$key" "the key is kept on a second run"
  assert_file_lacks "$OUT" "$key"
  local left
  left="$(find "$(dirname "$file")" -mindepth 1 ! -name secret.env ! -name secret.env.example ! -name kustomization.yaml)"
  [[ -z "$left" ]] || fail "temporary files left beside secret.env: $left"
}

# dev needs no secret and no metrics-server.
test_dev_writes_no_secret_and_enables_no_addon() {
  new_sandbox
  deploy --dev
  [[ ! -e "$REPO/k8s/overlays/prod/secret.env" ]] || fail "dev created prod's secret"
  assert_file_lacks "$LOG" "addons enable"
}

# A failed build stops before anything is applied.
test_failed_build_applies_nothing() {
  new_sandbox
  STANDIN_DOCKER_BUILD_FAIL=1 deploy --dev
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "docker build of hello-k8s:0.1.0-"
  assert_file_lacks "$LOG" " apply "
  assert_file_lacks "$LOG" " create "
}

# A failed render applies nothing (the stream is rendered completely before kubectl sees it).
test_failed_render_applies_nothing() {
  new_sandbox
  STANDIN_RENDER_FAIL=1 deploy --dev
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "nothing was applied"
  assert_file_lacks "$LOG" " apply "
}

# NAMESPACE overrides the environment's namespace everywhere.
test_namespace_override_reaches_render_apply_and_rollout() {
  new_sandbox
  NAMESPACE=demo deploy --dev
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$LOG" "--namespace demo"
  assert_file_contains "$LOG" "create namespace demo"
  assert_file_contains "$LOG" "rollout status deployment/hello-k8s -n demo"
}

# --help prints usage and exits 0; no or unknown arguments exit 2 with usage.
test_usage_and_argument_errors() {
  new_sandbox
  deploy --help
  assert_eq "$RC" 0 "--help exit code"
  assert_file_contains "$OUT" "usage: scripts/run_system.sh --env NAME | --dev | --prod"
  assert_file_contains "$OUT" "environments here: dev prod"
  deploy
  assert_eq "$RC" 2 "exit code without arguments"
  assert_file_contains "$OUT" "an environment is needed: --env NAME (one of: dev prod)"
  deploy --staging
  assert_eq "$RC" 2 "exit code of an unknown argument"
  assert_file_contains "$OUT" "unknown argument --staging"
  deploy --env
  assert_eq "$RC" 2 "exit code of --env without a name"
  deploy --dev --prod
  assert_eq "$RC" 2 "exit code of two environments"
  assert_file_contains "$OUT" "unexpected argument --prod"
  [[ ! -s "$LOG" ]] || fail "tools were called on bad arguments"
}

# The real generator's stream (the real kubectl kustomize on the tree it writes) reaches the
# stand-in kubectl's apply: the content-tagged image, prod's objects, the random key only inside
# the applied Secret (base64), never in the output.
test_prod_deploy_applies_the_real_manifest_gen_render() {
  # MANIFEST_GEN_BIN: the binary make test's test build made (a build of manifest-gen alone
  # resolves other features, so it would compile its dependencies a second time).
  local real="${MANIFEST_GEN_BIN:-$PROJECT_ROOT/target/debug/manifest-gen}" applied key kustomize
  kustomize="$(command -v kubectl)" || skip "kubectl is not installed (render runs kubectl kustomize; make install-k8s_env)"
  if [[ -z "${MANIFEST_GEN_BIN:-}" ]]; then
    (cd "$PROJECT_ROOT" && cargo build --quiet --locked -p manifest-gen) || fail "cargo build -p manifest-gen failed"
  fi
  [[ -x "$real" ]] || fail "no manifest-gen binary at $real"
  new_sandbox
  STANDIN_KUSTOMIZE="$kustomize" MANIFEST_GEN="$real" deploy --prod
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$LOG" "kubectl kustomize /"
  applied="$STANDIN_STATE/kubectl.applied"
  assert_file_contains "$applied" "image: $(last_built_tag)"
  local kind
  for kind in namespace configmap secret service deployment poddisruptionbudget horizontalpodautoscaler networkpolicy; do
    assert_file_contains "$OUT" "$kind/hello-k8s"
  done
  key="$(sed -n 's/^API_KEY=//p' "$REPO/k8s/overlays/prod/secret.env")"
  # kustomize folds long base64 values; the first 40 characters sit on one line.
  assert_file_contains "$applied" "$(printf '%s' "$key" | base64 -w0 | cut -c1-40)"
  assert_file_lacks "$OUT" "$key"
  assert_file_lacks "$OUT" "$(printf '%s' "$key" | base64 -w0)"
}

# Without buildx the BuildKit build cannot run: say so before starting anything.
test_missing_buildx_is_reported_before_anything_runs() {
  new_sandbox
  STANDIN_DOCKER_NO_BUILDX=1 deploy --dev
  assert_eq "$RC" 1 "exit code"
  assert_file_contains "$OUT" "docker buildx is missing"
  assert_file_lacks "$LOG" "minikube"
}

# --env NAME takes any overlay under k8s/overlays: a new one needs no edit of the script, and its
# namespace is the overlay's own `namespace:`.
test_env_option_deploys_any_overlay_under_k8s_overlays() {
  new_sandbox
  mkdir -p "$REPO/k8s/overlays/staging"
  printf 'kind: Kustomization\nnamespace: hello-k8s-staging\n' >"$REPO/k8s/overlays/staging/kustomization.yaml"
  git_commit "staging overlay"
  deploy --help
  assert_file_contains "$OUT" "environments here: dev prod staging"
  deploy --env staging
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$LOG" "manifest-gen render --env staging --image $(last_built_tag)"
  assert_file_contains "$LOG" "rollout status deployment/hello-k8s -n hello-k8s-staging"
  assert_file_contains "$OUT" "staging needs no secret file"
  assert_file_lacks "$LOG" "addons enable"
  deploy --env=dev
  assert_eq "$RC" 0 "exit code of --env=dev"
  assert_file_contains "$LOG" "rollout status deployment/hello-k8s -n hello-k8s-dev"
}

# An environment without an overlay, or a name that is not one, is refused with the list.
test_env_option_refuses_an_environment_without_an_overlay() {
  new_sandbox
  local bad
  for bad in staging ../overlays/prod Prod ""; do
    deploy --env "$bad"
    assert_eq "$RC" 2 "exit code of --env '$bad'"
    assert_file_contains "$OUT" "unknown environment '$bad'"
    assert_file_contains "$OUT" "the environments are: dev prod"
  done
  [[ ! -s "$LOG" ]] || fail "tools were called for an unknown environment"
}

# An overlay with a secret.env.example whose secret.env git would not ignore gets no secret.
test_secret_is_not_written_where_git_would_not_ignore_it() {
  new_sandbox
  mkdir -p "$REPO/k8s/overlays/staging"
  printf 'kind: Kustomization\nnamespace: hello-k8s-staging\n' >"$REPO/k8s/overlays/staging/kustomization.yaml"
  printf 'API_KEY=<random>\n' >"$REPO/k8s/overlays/staging/secret.env.example"
  git_commit "staging overlay with a secret"
  deploy --env staging
  if git -C "$REPO" check-ignore -q k8s/overlays/staging/secret.env; then
    assert_eq "$RC" 0 "exit code (secret.env is git-ignored here)"
  else
    assert_eq "$RC" 1 "exit code"
    assert_file_contains "$OUT" "k8s/overlays/staging/secret.env is not git-ignored"
    [[ ! -e "$REPO/k8s/overlays/staging/secret.env" ]] || fail "a secret was written where git does not ignore it"
    assert_file_lacks "$LOG" " apply "
  fi
}
