# shellcheck shell=bash
# Hostile values through the Makefile's cluster targets (make in a sandbox repository, the
# stand-in kubectl, minikube, docker and manifest-gen of scripts/tests/stand-ins on PATH): every
# value reaches its command as one argument, never split or expanded, by make or by a shell;
# what cannot be a namespace or an environment name is refused before any kubectl call; the
# context is pinned on every call. The stand-in kubectl records each call's arguments one
# bracket each (kubectl.argv), so a test sees where one ends. A command that would run
# touches the canary file C.

# A sandbox repository with the Makefile; sets CANARY (an absolute path nothing may create).
quoting_sandbox() {
  new_sandbox
  sandbox_makefile
  CANARY="$SANDBOX/C"
  ARGV="$STANDIN_STATE/kubectl.argv"
}

# Fails when the canary was created, or C beside the Makefile (a relative `touch C`).
assert_no_canary() {
  [[ ! -e "$CANARY" && ! -e "$REPO/C" ]] || fail "a command in a value ran: the canary file exists"
}

# Fails unless no kubectl call happened.
assert_no_kubectl_call() {
  if grep '^kubectl' "$LOG" >&2; then
    fail "kubectl was called (above) although the value was refused"
  fi
}

# Runs `make ARGS...` in the sandbox and asserts it was refused with a message containing $1
# before any kubectl call, and that nothing in the value ran.
assert_make_refuses() {
  local says="$1"
  shift
  sandbox_make "$@"
  assert_ne "$RC" 0 "exit code of make $*"
  assert_file_contains "$OUT" "$says"
  assert_no_kubectl_call
  assert_no_canary
}

# Fails unless kubectl was called and every call's arguments start with the bracketed $1.
assert_every_call_starts_with() {
  local line n=0
  [[ -s "$ARGV" ]] || fail "kubectl was not called"
  while IFS= read -r line; do
    n=$((n + 1))
    [[ "$line" == "$1"* ]] || fail "kubectl call $n does not start with $1: $line"
  done <"$ARGV"
}

test_make_deploy_refuses_a_namespace_with_a_semicolon() {
  quoting_sandbox
  assert_make_refuses "is not a namespace name" deploy-dev "NAMESPACE=demo;touch $CANARY"
}

test_make_deploy_refuses_a_namespace_with_backquotes() {
  quoting_sandbox
  assert_make_refuses "is not a namespace name" deploy-dev "NAMESPACE=\`touch $CANARY\`"
}

test_make_deploy_refuses_a_namespace_with_a_line_break() {
  quoting_sandbox
  assert_make_refuses "is not a namespace name" deploy-dev "NAMESPACE=demo"$'\n'"touch $CANARY"
}

test_make_deploy_refuses_a_namespace_holding_a_make_function() {
  quoting_sandbox
  assert_make_refuses "'\$(shell touch $CANARY)' is not a namespace name" deploy-dev "NAMESPACE=\$(shell touch $CANARY)"
}

# The same from the environment: make does not expand what it inherits either.
test_make_deploy_refuses_a_namespace_from_the_environment_holding_a_make_function() {
  quoting_sandbox
  NAMESPACE="\$(shell touch $CANARY)" assert_make_refuses "is not a namespace name" deploy-dev
}

test_make_deploy_refuses_a_namespace_with_a_blank_before_any_call() {
  quoting_sandbox
  assert_make_refuses "'demo ns' is not a namespace name" deploy-dev "NAMESPACE=demo ns"
}

# A value that make would once expand to nothing is refused, not replaced by the overlay's own
# namespace, by every target that takes NAMESPACE.
test_make_refuses_a_namespace_that_expands_to_nothing_for_deploy_delete_and_clean() {
  quoting_sandbox
  local target
  for target in deploy-dev delete-dev k8s-clean k8s-purge status; do
    assert_make_refuses "'\$(x)' is not a namespace name" "$target" "NAMESPACE=\$(x)"
  done
}

test_make_delete_refuses_a_namespace_with_a_semicolon() {
  quoting_sandbox
  assert_make_refuses "is not a namespace name" delete-dev "NAMESPACE=demo;touch $CANARY"
}

test_make_get_url_refuses_an_environment_with_a_semicolon() {
  quoting_sandbox
  assert_make_refuses "error: no environment 'x;touch $CANARY;'" get-url "DEPLOY_ENV=x;touch $CANARY;"
}

test_make_refuses_a_goal_holding_a_command() {
  quoting_sandbox
  assert_make_refuses "error: no environment '\$(touch C)'" "deploy-\$(touch C)"
}

test_make_refuses_a_kubectl_command_that_is_not_installed() {
  quoting_sandbox
  assert_make_refuses "missing required tool: kubectl\";touch" deploy-dev "KUBECTL=kubectl\";touch $CANARY;\""
}

# KUBECTL is a command and its arguments: split on blanks, never evaluated.
test_make_passes_kubectl_arguments_as_words_never_evaluated() {
  quoting_sandbox
  sandbox_make deploy-dev "KUBECTL=kubectl \$(touch $CANARY)"
  assert_no_canary
  assert_file_contains "$ARGV" "[\$(touch][$CANARY)][--context][minikube]"
}

test_make_refuses_a_kubectl_command_with_a_line_break() {
  quoting_sandbox
  assert_make_refuses "KUBECTL holds a line break" status "KUBECTL=kubectl"$'\n'"touch $CANARY"
}

test_make_passes_a_context_with_backquotes_as_one_argument() {
  quoting_sandbox
  sandbox_make deploy-dev "KUBE_CONTEXT=\`touch $CANARY\`"
  assert_eq "$RC" 0 "exit code: $(cat "$OUT")"
  assert_no_canary
  assert_every_call_starts_with "[--context][\`touch $CANARY\`]"
}

test_make_passes_a_context_with_a_line_break_as_one_argument() {
  quoting_sandbox
  sandbox_make deploy-dev "KUBE_CONTEXT=ctx"$'\n'"touch $CANARY"
  assert_eq "$RC" 0 "exit code: $(cat "$OUT")"
  assert_no_canary
  assert_every_call_starts_with "[--context][ctx\\ntouch $CANARY]"
}

test_make_passes_a_context_holding_a_make_function_as_one_argument() {
  quoting_sandbox
  sandbox_make status "KUBE_CONTEXT=\$(shell touch $CANARY)"
  assert_eq "$RC" 0 "exit code: $(cat "$OUT")"
  assert_no_canary
  assert_every_call_starts_with "[--context][\$(shell touch $CANARY)]"
}

# A context that looks like a second --context stays one name: no call goes to ctx-evil, from
# deploy, delete, status or get-url.
test_make_targets_keep_a_context_with_blanks_as_one_name() {
  quoting_sandbox
  local target
  for target in deploy-dev delete-dev status get-url; do
    sandbox_make "$target" "KUBE_CONTEXT=ctx-good --context ctx-evil"
    assert_eq "$RC" 0 "make $target exit code: $(cat "$OUT")"
  done
  assert_every_call_starts_with "[--context][ctx-good --context ctx-evil]"
  # EKS's context names: an ARN, with ':', '/' and '@'.
  : >"$ARGV"
  sandbox_make status "KUBE_CONTEXT=arn:aws:eks:eu-west-1:123456789012:cluster/demo@team"
  assert_every_call_starts_with "[--context][arn:aws:eks:eu-west-1:123456789012:cluster/demo@team]"
}

test_make_passes_a_context_that_make_would_expand_to_nothing_as_written() {
  quoting_sandbox
  sandbox_make deploy-dev "KUBE_CONTEXT=\$(x)"
  assert_eq "$RC" 0 "exit code: $(cat "$OUT")"
  assert_every_call_starts_with "[--context][\$(x)]"
}

# On a cluster other than minikube without KUBE_CONTEXT, the current context is read once and
# named on every later call; without one, nothing is applied.
test_make_deploy_on_another_cluster_pins_the_current_context() {
  quoting_sandbox
  STANDIN_CURRENT_CONTEXT=standin-a sandbox_make deploy-dev CLUSTER_KIND=other
  assert_eq "$RC" 0 "exit code: $(cat "$OUT")"
  assert_eq "$(sed -n 1p "$ARGV")" "[config][current-context]" "the first kubectl call"
  sed -i 1d "$ARGV"
  assert_every_call_starts_with "[--context][standin-a]"
  assert_file_contains "$LOG" "apply -k k8s/overlays/dev"
  quoting_sandbox
  sandbox_make deploy-dev CLUSTER_KIND=other
  assert_ne "$RC" 0 "exit code without a current context"
  assert_file_contains "$OUT" "has no current context"
  assert_file_lacks "$LOG" " apply "
}
