# shellcheck shell=bash
# Tests of the Makefile: `make help` is the default goal and lists every target (the
# per-environment ones once, as <prefix><env>), docs/deploy.md's generated table of targets is
# current, the per-environment rules follow k8s/overlays, `make clean` really cleans and
# `make test` reports the skipped tests.

# The targets `make help` lists, one per line (deploy-<env> etc. as such).
help_targets() {
  make --no-print-directory -C "${1:-$PROJECT_ROOT}" help | awk '/^  [^ ]/ {print $1}'
}

# The phony targets make knows after expanding the Makefile, one per line.
phony_targets() {
  make --no-print-directory -C "${1:-$PROJECT_ROOT}" -pRrq -f Makefile : 2>/dev/null |
    sed -n 's/^\.PHONY: //p' | tr ' ' '\n' | sed '/^$/d' | sort -u
}

test_make_without_a_goal_prints_the_help() {
  local default
  default="$(make --no-print-directory -C "$PROJECT_ROOT")"
  assert_eq "$default" "$(make --no-print-directory -C "$PROJECT_ROOT" help)" "make = make help"
}

# Every phony target has a help line: its own, or its <prefix><env> line for an overlay's.
test_every_phony_target_has_a_help_line() {
  local target env missing=() listed envs
  listed="$(help_targets)"
  envs="$(make --no-print-directory -C "$PROJECT_ROOT" help | sed -n 's/^<env> is an overlay in k8s\/overlays: //p')"
  [[ -n "$envs" ]] || fail "make help does not name the environments"
  while IFS= read -r target; do
    grep -qxF -- "$target" <<<"$listed" && continue
    for env in $envs; do
      [[ "$target" == *"-$env" ]] && grep -qxF -- "${target%"$env"}<env>" <<<"$listed" && continue 2
    done
    missing+=("$target")
  done < <(phony_targets)
  assert_eq "${missing[*]:-}" "" "targets without a ## help line"
  grep -qxF deploy-dev < <(phony_targets) || fail "deploy-dev is not a phony target"
}

# docs/deploy.md holds the table of `make help`, generated, and it is current.
test_docs_make_targets_block_is_current() {
  local out="$TEST_TMP/docs-check.out" rc=0
  "$PROJECT_ROOT/scripts/docs-make-targets.sh" --check >"$out" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || {
    cat "$out" >&2
    fail "docs/deploy.md's make-targets block is not current: run make docs"
  }
  local target
  while IFS= read -r target; do
    assert_file_contains "$PROJECT_ROOT/docs/deploy.md" "| \`$target\` |"
  done < <(help_targets)
}

# A target added to the Makefile makes the block stale (--check says so and changes nothing);
# --write brings it up to date, keeping the file's mode.
test_docs_make_targets_detects_and_fixes_drift() {
  makefile_copy
  mkdir -p "$MK_DIR/docs"
  cp "$PROJECT_ROOT/docs/deploy.md" "$MK_DIR/docs/"
  chmod 644 "$MK_DIR/docs/deploy.md"
  printf '\n.PHONY: frobnicate\nfrobnicate: ## Frobnicate | twice\n\t@true\n' >>"$MK_DIR/Makefile"
  local out="$TEST_TMP/drift.out" rc=0 before
  before="$(cat "$MK_DIR/docs/deploy.md")"
  "$PROJECT_ROOT/scripts/docs-make-targets.sh" --check --root "$MK_DIR" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 1 "--check exit code on a stale block"
  assert_file_contains "$out" "block make-targets is not current; run make docs"
  assert_file_contains "$out" "+| \`frobnicate\` | Frobnicate \\| twice |"
  assert_eq "$(cat "$MK_DIR/docs/deploy.md")" "$before" "--check changed the file"
  "$PROJECT_ROOT/scripts/docs-make-targets.sh" --write --root "$MK_DIR" >"$out" 2>&1 || fail "--write failed: $(cat "$out")"
  assert_file_contains "$MK_DIR/docs/deploy.md" "| \`frobnicate\` | Frobnicate \\| twice |"
  assert_eq "$(stat -c %a "$MK_DIR/docs/deploy.md")" 644 "mode after --write"
  "$PROJECT_ROOT/scripts/docs-make-targets.sh" --check --root "$MK_DIR" >"$out" 2>&1 || fail "--check after --write: $(cat "$out")"
  # Without a block anywhere, --check fails rather than passing on nothing.
  rm "$MK_DIR/docs/deploy.md"
  rc=0
  "$PROJECT_ROOT/scripts/docs-make-targets.sh" --check --root "$MK_DIR" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 1 "--check exit code without a block"
  assert_file_contains "$out" "no make-targets block"
}

# Copies the Makefile and what it reads (image.env, mk/, the deploy scripts, the overlays'
# kustomization.yaml and secret.env.example) into a throw-away directory; sets MK_DIR.
makefile_copy() {
  MK_DIR="$(mktemp -d "$TEST_TMP/make.XXXXXX")"
  cp "$PROJECT_ROOT/Makefile" "$PROJECT_ROOT/image.env" "$MK_DIR/"
  cp -r "$PROJECT_ROOT/mk" "$MK_DIR/"
  mkdir -p "$MK_DIR/scripts"
  cp "$PROJECT_ROOT/scripts/deploy.sh" "$PROJECT_ROOT/scripts/run_system.sh" "$PROJECT_ROOT/scripts/namespaces.sh" \
    "$PROJECT_ROOT/scripts/log.sh" "$PROJECT_ROOT/scripts/kube.sh" "$MK_DIR/scripts/"
  copy_overlays "$MK_DIR"
}

# `make clean` removes the static binary scripts/build-release.sh leaves in
# target/<triple>/release/, so a build after it really rebuilds (real cargo, on a tiny workspace
# with the project's package names).
test_make_clean_removes_the_static_release_binary() {
  makefile_copy
  local pkg triple
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  printf '[workspace]\nresolver = "3"\nmembers = ["hello-k8s", "manifest-gen", "contract", "e2e"]\n' >"$MK_DIR/Cargo.toml"
  for pkg in hello-k8s manifest-gen contract e2e; do
    cargo new --quiet --vcs none "$MK_DIR/$pkg" 2>/dev/null || fail "cargo new $pkg failed"
  done
  (
    unset CARGO_TARGET_DIR
    cd "$MK_DIR"
    cargo build --quiet --offline --release --target "$triple" -p hello-k8s
    cargo build --quiet --offline -p manifest-gen
  ) || fail "building the tiny workspace failed"
  [[ -x "$MK_DIR/target/$triple/release/hello-k8s" ]] || fail "the static binary was not built"
  mkdir -p "$MK_DIR/.venv"
  (unset CARGO_TARGET_DIR && make --no-print-directory -C "$MK_DIR" clean >"$MK_DIR/clean.out" 2>&1) || {
    cat "$MK_DIR/clean.out" >&2
    fail "make clean failed"
  }
  [[ ! -e "$MK_DIR/target/$triple/release/hello-k8s" ]] ||
    fail "make clean kept target/$triple/release/hello-k8s"
  [[ ! -e "$MK_DIR/target/debug/manifest-gen" ]] || fail "make clean kept target/debug/manifest-gen"
  [[ ! -e "$MK_DIR/.venv" ]] || fail "make clean kept .venv"
}

# A new overlay directory is a new environment for make: deploy-, delete-, auto-deploy- and
# reset-staging exist without an edit of the Makefile, help names it, and its namespace is the
# overlay's own (run against the stand-in tools). An overlay with a secret.env.example needs its
# secret.env first.
test_per_environment_targets_follow_k8s_overlays() {
  new_sandbox
  sandbox_makefile
  mkdir -p "$REPO/k8s/overlays/staging"
  printf 'kind: Kustomization\nnamespace: hello-k8s-staging\n' >"$REPO/k8s/overlays/staging/kustomization.yaml"
  git_commit "staging overlay"
  sandbox_make help
  assert_file_contains "$OUT" "<env> is an overlay in k8s/overlays: dev prod staging"
  assert_file_contains "$OUT" "  deploy-<env> "
  sandbox_make deploy-staging
  assert_eq "$RC" 0 "make deploy-staging exit code: $(cat "$OUT")"
  assert_file_contains "$LOG" "kubectl --context minikube get namespace hello-k8s-staging"
  assert_file_contains "$LOG" "kubectl --context minikube apply -k k8s/overlays/staging --server-side --field-manager=hello-k8s-deploy"
  assert_file_contains "$LOG" "kubectl --context minikube rollout status deployment/hello-k8s -n hello-k8s-staging"
  sandbox_make deploy-staging NAMESPACE=demo
  assert_eq "$RC" 0 "make deploy-staging NAMESPACE=demo exit code: $(cat "$OUT")"
  assert_file_contains "$LOG" "manifest-gen render --env staging --namespace demo"
  assert_file_contains "$LOG" "rollout status deployment/hello-k8s -n demo"
  sandbox_make delete-staging
  assert_file_contains "$LOG" "delete deploy,rs,svc,cm,secret,hpa,pdb,networkpolicy -n hello-k8s-staging"
  : >"$LOG"
  sandbox_make reset-staging
  assert_eq "$RC" 0 "make reset-staging exit code: $(tail -n 20 "$OUT")"
  assert_before "$LOG" ' delete deploy,rs' '^manifest-gen render --env staging --image '
  sandbox_make k8s-purge
  assert_eq "$RC" 0 "make k8s-purge exit code: $(cat "$OUT")"
  local env
  for env in dev prod staging; do
    assert_file_contains "$LOG" "get namespace hello-k8s-$env"
  done
  assert_file_contains "$LOG" "delete namespace hello-k8s-staging"

  : >"$LOG"
  local rc=0 out="$SANDBOX/make-secret.out"
  printf 'API_KEY=<random>\n' >"$REPO/k8s/overlays/staging/secret.env.example"
  make --no-print-directory -C "$REPO" deploy-staging >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 2 "exit code of deploy-staging without secret.env"
  assert_file_contains "$out" "error: k8s/overlays/staging/secret.env is missing"
  rc=0
  make --no-print-directory -C "$REPO" deploy-prod >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code of deploy-prod without secret.env"
  assert_file_contains "$out" "error: k8s/overlays/prod/secret.env is missing"
  [[ ! -s "$LOG" ]] || fail "tools were called without secret.env: $(cat "$LOG")"
}

# An environment without an overlay is an error naming the overlays, not "No rule to make target".
test_per_environment_targets_refuse_an_unknown_environment() {
  makefile_copy
  local out="$TEST_TMP/make.out" target rc
  for target in deploy-nope delete-nope auto-deploy-nope reset-nope; do
    rc=0
    make --no-print-directory -C "$MK_DIR" "$target" >"$out" 2>&1 || rc=$?
    assert_eq "$rc" 2 "exit code of make $target"
    assert_file_contains "$out" "error: no environment 'nope': k8s/overlays/nope/kustomization.yaml does not exist; the environments are: dev prod"
  done
}

# `make test` empties SKIP_LOG, runs cargo and the script tests (stand-ins that skip one test
# each here), then lists the skips at the end, also when a test failed.
test_make_test_lists_the_skipped_tests_at_the_end() {
  makefile_copy
  mkdir -p "$MK_DIR/target" "$MK_DIR/.venv" "$MK_DIR/scripts/tests"
  touch -d '-1 minute' "$MK_DIR/requirements-dev.txt"
  touch "$MK_DIR/.venv/.installed"
  printf 'stale: from an earlier run\n' >"$MK_DIR/target/test-skips.log"
  cat >"$MK_DIR/cargo" <<'STANDIN'
#!/usr/bin/env bash
# Stand-in for cargo test: one skipped test (when it runs the tests, not at --no-run), exit code
# from STANDIN_CARGO_RC.
[[ " $* " == *" --no-run "* ]] && exit 0
printf 'cli::kustomize_matches_render: kubectl is not installed\n' >>"$SKIP_LOG"
echo "test result: ok. 1 passed; 0 failed (stand-in cargo)"
exit "${STANDIN_CARGO_RC:-0}"
STANDIN
  cat >"$MK_DIR/scripts/tests/run.sh" <<'STANDIN'
#!/usr/bin/env bash
# Stand-in for the script tests: one skipped test.
printf 'test_image_runs: needs root\n' >>"$SKIP_LOG"
echo "0 passed, 0 failed, 1 skipped"
STANDIN
  chmod +x "$MK_DIR/cargo" "$MK_DIR/scripts/tests/run.sh"
  local out="$TEST_TMP/make-test.out" rc=0
  env -u SKIP_LOG make --no-print-directory -C "$MK_DIR" test CARGO="$MK_DIR/cargo" TEST_TOOLS= >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code"
  assert_eq "$(tail -n 3 "$out")" "SKIPPED: 2 test(s) did not run (see $MK_DIR/target/test-skips.log):
  cli::kustomize_matches_render: kubectl is not installed
  test_image_runs: needs root" "the end of make test's output"
  assert_file_lacks "$out" "stale"
  rc=0
  STANDIN_CARGO_RC=101 env -u SKIP_LOG make --no-print-directory -C "$MK_DIR" test CARGO="$MK_DIR/cargo" TEST_TOOLS= >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code when cargo test fails"
  assert_file_contains "$out" "SKIPPED: 2 test(s) did not run"
}

# lib.sh's skip: one `<test>: <reason>` line in SKIP_LOG and a SKIP line; under CI=true a failure.
test_skip_logs_the_reason_and_fails_under_ci() {
  local log="$TEST_TMP/skips.log" out="$TEST_TMP/skip.out" rc=0
  : >"$log"
  (CURRENT_TEST=test_example SKIP_LOG="$log" CI="" skip "podman is not installed") >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of a skip"
  assert_eq "$(cat "$log")" "test_example: podman is not installed" "SKIP_LOG"
  assert_file_contains "$out" "SKIP: test_example: podman is not installed"
  rc=0
  (CURRENT_TEST=test_example SKIP_LOG="$log" CI=true skip "podman is not installed") >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 1 "exit code of a skip under CI=true"
  assert_file_contains "$out" "test_example cannot be skipped under CI=true: podman is not installed"
  assert_eq "$(wc -l <"$log")" 1 "SKIP_LOG lines after the CI=true skip"
}
