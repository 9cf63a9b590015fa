# shellcheck shell=bash
# Assertions and sandbox helpers for the script tests (sourced by run.sh).
# A failed assertion prints what was expected and what was found, then exits the test's subshell.

# Fails the current test with a message.
fail() {
  printf 'ASSERTION FAILED: %s\n' "$*" >&2
  exit 1
}

# Skips the current test with a reason: appends `<test name>: <reason>` to $SKIP_LOG (which
# `make test` sets and summarises) and prints a SKIP line; under CI=true it fails instead.
skip() {
  local test="${CURRENT_TEST:-unknown test}"
  [[ "${CI:-}" != true ]] || fail "$test cannot be skipped under CI=true: $*"
  [[ -z "${SKIP_LOG:-}" ]] || printf '%s: %s\n' "$test" "$*" >>"$SKIP_LOG"
  printf 'SKIP: %s: %s\n' "$test" "$*"
  exit 0
}

# Asserts two strings are equal.
assert_eq() {
  [[ "$1" == "$2" ]] || fail "${3:-values differ}: expected [$2], got [$1]"
}

# Asserts two strings differ.
assert_ne() {
  [[ "$1" != "$2" ]] || fail "${3:-values are equal}: both are [$1]"
}

# Asserts a file contains a fixed string.
assert_file_contains() {
  grep -qF -- "$2" "$1" || {
    printf -- '--- %s:\n' "$1" >&2
    tail -n 40 "$1" >&2
    fail "$1 does not contain [$2]"
  }
}

# Asserts a file does not contain a fixed string.
assert_file_lacks() {
  if grep -nF -- "$2" "$1" >&2; then
    fail "$1 contains [$2] (lines above)"
  fi
}

# Line number of the first line of a file matching an extended regex (empty when none).
first_line() {
  grep -nE -- "$2" "$1" | sed -n 1p | cut -d: -f1
}

# Asserts the first line matching regex $2 comes before the first line matching regex $3.
assert_before() {
  local a b
  a="$(first_line "$1" "$2")"
  b="$(first_line "$1" "$3")"
  [[ -n "$a" ]] || fail "no line matching [$2] in $1"
  [[ -n "$b" ]] || fail "no line matching [$3] in $1"
  ((a < b)) || fail "[$2] (line $a) should come before [$3] (line $b) in $1"
}

# Builds, once per run, a directory of links to every tool on PATH except the ones the tests
# stand in for, so "missing tool" can be simulated even where the real tools are installed.
# One `ln` for all of them (a PATH holds thousands of tools; a fork each took seconds).
make_sysbin() {
  local dir="$1" entry tool
  mkdir -p "$dir"
  local -a path_dirs links=()
  local -A seen=()
  IFS=: read -r -a path_dirs <<<"$PATH"
  for entry in "${path_dirs[@]}"; do
    [[ -d "$entry" ]] || continue
    for tool in "$entry"/*; do
      [[ -f "$tool" && -x "$tool" ]] || continue
      case "${tool##*/}" in
        minikube | kubectl | docker | podman | ctr | manifest-gen | cargo | sudo | apt-get | apt-cache | curl | usermod) continue ;;
      esac
      # The first on PATH wins, as it would in a lookup.
      [[ -z "${seen[${tool##*/}]:-}" ]] || continue
      seen[${tool##*/}]=1
      links+=("$tool")
    done
  done
  ((${#links[@]} == 0)) || ln -s -t "$dir" -- "${links[@]}"
}

# Copies each overlay's kustomization.yaml and secret.env.example (never a real secret.env) into
# the k8s/overlays of directory $1.
copy_overlays() {
  local dir name
  for dir in "$PROJECT_ROOT"/k8s/overlays/*/; do
    name="$(basename "$dir")"
    [[ -f "$dir/kustomization.yaml" ]] || continue
    mkdir -p "$1/k8s/overlays/$name"
    cp "$dir/kustomization.yaml" "$1/k8s/overlays/$name/"
    if [[ -f "$dir/secret.env.example" ]]; then
      cp "$dir/secret.env.example" "$1/k8s/overlays/$name/"
    fi
  done
}

# Creates a throw-away git repository holding a copy of the deploy script and what it reads,
# plus the stand-in tools; exports the variables the stand-ins and the script use.
# Sets REPO, SANDBOX, LOG.
new_sandbox() {
  SANDBOX="$(mktemp -d "$TEST_TMP/sandbox.XXXXXX")"
  REPO="$SANDBOX/repo"
  LOG="$SANDBOX/calls.log"
  mkdir -p "$REPO/scripts" "$REPO/service/src" "$SANDBOX/bin" "$SANDBOX/home"
  cp "$PROJECT_ROOT/scripts/run_system.sh" "$PROJECT_ROOT/scripts/install_kubernetes_env.sh" \
    "$PROJECT_ROOT/scripts/namespaces.sh" "$PROJECT_ROOT/scripts/log.sh" "$PROJECT_ROOT/scripts/kube.sh" \
    "$PROJECT_ROOT/scripts/deploy.sh" "$REPO/scripts/"
  cp "$PROJECT_ROOT/image.env" "$PROJECT_ROOT/Dockerfile" "$PROJECT_ROOT/.gitignore" "$REPO/"
  copy_overlays "$REPO"
  printf 'fn main() {}\n' >"$REPO/service/src/main.rs"
  cp "$PROJECT_ROOT/scripts/tests/stand-ins/"* "$SANDBOX/bin/"
  git -C "$REPO" init -q
  git_commit "initial"
  : >"$LOG"
  export HOME="$SANDBOX/home"
  export PATH="$SANDBOX/bin:$SYSBIN"
  export STANDIN_LOG="$LOG" STANDIN_STATE="$SANDBOX/state"
  export MANIFEST_GEN="$SANDBOX/bin/manifest-gen"
  unset MINIKUBE_DRIVER NAMESPACE MINIKUBE_PROFILE DOCKER_HOST KUBECONFIG KUBE_CONTEXT CLUSTER_KIND KUBECTL \
    IMAGE_IMPORT CONTAINER PODMAN_FLAGS
}

# Tells the stand-in kubectl that namespace $1 exists, with managed-by label $2 ("-": none).
standin_namespace() {
  mkdir -p "$STANDIN_STATE"
  printf '%s %s\n' "$1" "${2:--}" >>"$STANDIN_STATE/kubectl.namespaces"
}

# Commits everything in the sandbox repository.
git_commit() {
  git -C "$REPO" add -A
  git -C "$REPO" -c user.name=test -c user.email=test@example.invalid commit -q -m "$1"
}

# Runs the sandbox's deploy script; stdout+stderr to $SANDBOX/out.<n>, exit code in RC.
# shellcheck disable=SC2034 # OUT and RC are read by the tests
deploy() {
  DEPLOY_RUNS=$((${DEPLOY_RUNS:-0} + 1))
  OUT="$SANDBOX/out.$DEPLOY_RUNS"
  RC=0
  "$REPO/scripts/run_system.sh" "$@" >"$OUT" 2>&1 </dev/null || RC=$?
}

# The image reference of the last `docker build` (or `podman build`: $1=podman) in the log.
last_built_tag() {
  grep -E "^${1:-docker} .* build " "$LOG" | tail -n 1 | sed -E 's/.*--tag ([^ ]+).*/\1/'
}
