#!/usr/bin/env bash
# Deploys hello-k8s to minikube, idempotently: scripts/run_system.sh --env NAME | --dev | --prod
#
# Run by `make auto-deploy-<env>`. The environments are the overlays in k8s/overlays. Unlike the origin's script it never
# deletes before applying (a deploy is a rolling update, not an outage), tags the image by
# content (a code change always yields a new tag, so a new rollout), lets minikube choose its
# driver unless MINIKUBE_DRIVER says otherwise, and waits with `kubectl rollout status`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="hello-k8s"
SELECTOR="${SELECTOR:-app.kubernetes.io/name=$APP}"
MINIKUBE_PROFILE="${MINIKUBE_PROFILE:-minikube}"
MINIKUBE_DRIVER="${MINIKUBE_DRIVER:-}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-180s}"
# A prebuilt manifest-gen binary; empty: `cargo run -p manifest-gen`.
MANIFEST_GEN="${MANIFEST_GEN:-}"
# Overrides the environment's namespace (the overlay's `namespace:`, e.g. hello-k8s-dev).
NAMESPACE="${NAMESPACE:-}"
STEPS=7

ENV_NAME=""
NS=""
WORK=""

# The environments: the overlay directories of k8s/overlays, space-separated.
environments() {
  local dir names=()
  for dir in "$ROOT"/k8s/overlays/*/kustomization.yaml; do
    [[ -f "$dir" ]] && names+=("$(basename "$(dirname "$dir")")")
  done
  echo "${names[*]:-(none)}"
}

# Prints the usage text.
usage() {
  cat <<EOF
usage: scripts/run_system.sh --env NAME | --dev | --prod [--help]

Builds the hello-k8s image into minikube's image store (tagged by content), applies the
environment's manifests without deleting anything first, and waits for the rollout.

  --env NAME  the overlay k8s/overlays/NAME; environments here: $(environments)
  --dev       --env dev (namespace hello-k8s-dev, 1 replica, NodePort 31180)
  --prod      --env prod (namespace hello-k8s-prod, HPA + PDB)
  --help      this text

An overlay with a secret.env.example (prod) needs a secret.env beside it: it is created with
a random API_KEY when missing (mode 600, never printed, must be git-ignored). When the rendered
objects hold a HorizontalPodAutoscaler, minikube's metrics-server addon is enabled.

Environment: MINIKUBE_DRIVER (default: minikube's choice), MINIKUBE_PROFILE (minikube),
NAMESPACE (override; only a new namespace or one this project created: scripts/namespaces.sh),
ROLLOUT_TIMEOUT (180s), MANIFEST_GEN (path to a built manifest-gen).
EOF
}

# shellcheck source=scripts/log.sh
source "$ROOT/scripts/log.sh"

# Progress line for step N of STEPS, to stderr.
step() {
  printf '\n%s[%s/%s] %s%s\n' "$C_BLUE" "$1" "$STEPS" "$2" "$C_OFF" >&2
}

# kubectl pinned to the minikube profile's context, so a deploy never lands on another cluster.
kc() {
  kubectl --context "$MINIKUBE_PROFILE" "$@"
}

# minikube on the chosen profile.
mk() {
  minikube -p "$MINIKUBE_PROFILE" "$@"
}

# Runs manifest-gen, prebuilt (MANIFEST_GEN) or through cargo.
manifest_gen() {
  if [[ -n "$MANIFEST_GEN" ]]; then
    "$MANIFEST_GEN" "$@"
  else
    cargo run --quiet --locked -p manifest-gen -- "$@"
  fi
}

# Checks every external tool up front and names the make target that installs it.
preflight() {
  local missing=() tool
  for tool in minikube kubectl docker git sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [[ -z "$MANIFEST_GEN" ]] && ! command -v cargo >/dev/null 2>&1; then
    missing+=("cargo (or set MANIFEST_GEN to a built manifest-gen)")
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    printf '%serror: missing required tool(s): %s%s\n' "$C_RED" "${missing[*]}" "$C_OFF" >&2
    printf '  install docker, kubectl and minikube with: make install-k8s_env\n' >&2
    printf '  (git and sha256sum come with your distribution; cargo with rustup: https://rustup.rs)\n' >&2
    exit 1
  fi
  # The Dockerfile's cache mounts need BuildKit, which the docker CLI reaches through buildx.
  docker buildx version >/dev/null 2>&1 ||
    die "docker buildx is missing (the Dockerfile needs BuildKit): run make install-k8s_env, which installs the buildx plugin (docker-buildx-plugin from Docker's apt repository, or your distribution's docker-buildx)"
  ok "minikube, kubectl, docker and buildx found"
}

# Starts minikube unless it is already running; the driver is minikube's choice unless set.
ensure_minikube() {
  if mk status >/dev/null 2>&1; then
    ok "minikube ($MINIKUBE_PROFILE) is already running"
    return
  fi
  local args=(start)
  if [[ -n "$MINIKUBE_DRIVER" ]]; then
    args+=("--driver=$MINIKUBE_DRIVER")
    info "starting minikube with driver $MINIKUBE_DRIVER"
  else
    info "starting minikube (driver: minikube's choice; set MINIKUBE_DRIVER to force one)"
  fi
  mk "${args[@]}" >&2 || die "minikube start failed (see above); try MINIKUBE_DRIVER=docker"
  ok "minikube started"
}

# Points this script's docker client at minikube's daemon, so images land in its store.
point_docker_at_minikube() {
  local env_script
  env_script="$(mk docker-env --shell bash)" ||
    die "minikube docker-env failed: the build needs minikube's docker runtime (minikube start --container-runtime=docker)"
  eval "$env_script"
  ok "docker now talks to minikube's daemon (${DOCKER_HOST:-local socket})"
}

# Hash of the uncommitted content: the diff of tracked files plus untracked, not ignored files.
dirty_hash() {
  {
    git -C "$ROOT" diff --binary --no-ext-diff --no-textconv HEAD --
    git -C "$ROOT" ls-files -z --others --exclude-standard |
      while IFS= read -r -d '' path; do
        printf '%s\0' "$path"
        cat -- "$ROOT/$path"
      done
  } | sha256sum | cut -c1-12
}

# The content tag: IMAGE_TAG-<git rev>[-<hash of uncommitted changes>].
content_tag() {
  local rev
  git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    die "$ROOT is not a git work tree: the image tag is derived from the git revision"
  rev="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null)" ||
    die "the repository has no commit yet: commit once so the image can be tagged"
  if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=all)" ]]; then
    printf '%s-%s-%s\n' "$IMAGE_TAG" "$rev" "$(dirty_hash)"
  else
    printf '%s-%s\n' "$IMAGE_TAG" "$rev"
  fi
}

# Builds the image into minikube unless an image with exactly this content tag exists.
build_image() {
  local ref="$1"
  if docker image inspect "$ref" >/dev/null 2>&1; then
    ok "image $ref already built, nothing to rebuild"
    return
  fi
  info "building $ref (BuildKit; the first build compiles every dependency)"
  local -a labels
  # The OCI labels (version, revision, source) from git, as make build gives them.
  read -r -a labels <<<"$("$ROOT/scripts/image-meta.sh" --build-args)" || die "scripts/image-meta.sh failed (see above)"
  DOCKER_BUILDKIT=1 docker build "${labels[@]}" --tag "$ref" "$ROOT" >&2 || die "docker build of $ref failed (see above)"
  ok "image $ref built in minikube's image store"
}

# Creates the overlay's git-ignored secret file with a random API_KEY if it is missing; never
# prints it.
ensure_secret() {
  local rel="k8s/overlays/$ENV_NAME/secret.env" file tmp key
  file="$ROOT/$rel"
  if [[ -f "$file" ]]; then
    chmod 600 "$file"
    ok "$rel exists (kept as is)"
    return
  fi
  git -C "$ROOT" check-ignore -q "$rel" ||
    die "$rel is not git-ignored, so a secret written there could be committed: add it to .gitignore first"
  key="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
  [[ ${#key} -eq 64 ]] || die "could not read 32 random bytes from /dev/urandom"
  tmp="$(umask 077 && mktemp "$file.XXXXXX")"
  printf 'API_KEY=%s\n' "$key" >"$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$file"
  ok "created $rel with a random API_KEY (mode 600, git-ignored, not shown)"
}

# Enables metrics-server, which the prod HorizontalPodAutoscaler reads CPU usage from.
enable_metrics_server() {
  mk addons enable metrics-server >&2 || die "minikube addons enable metrics-server failed"
  ok "metrics-server addon enabled (HPA metrics)"
}

# Renders the environment with the content-tagged image into $WORK/manifest.yaml.
render_manifests() {
  local ref="$1" manifest args
  # The rendered stream holds the Secret: a private temp file, removed on exit.
  manifest="$WORK/manifest.yaml"
  args=(render --env "$ENV_NAME" --image "$ref")
  [[ -n "$NAMESPACE" ]] && args+=(--namespace "$NAMESPACE")
  (cd "$ROOT" && manifest_gen "${args[@]}") >"$manifest" ||
    die "manifest-gen ${args[*]} failed (see above); nothing was applied"
  [[ -s "$manifest" ]] || die "manifest-gen ${args[*]} printed nothing; nothing was applied"
  ok "rendered $ENV_NAME with image $ref"
}

# Applies the rendered objects; nothing is deleted.
apply_manifests() {
  local manifest="$WORK/manifest.yaml" out
  # Labeled at creation like the generator's Namespace: should the apply below fail, the
  # namespace is still recognised as this project's by the next deploy and by the deletes.
  out="$(kc create namespace "$NS" --dry-run=client -o yaml |
    kc label --local -f - app.kubernetes.io/managed-by=manifest-gen -o yaml |
    kc apply -f - 2>&1)" ||
    die "could not create namespace $NS: $out"
  out+=$'\n'"$(kc apply -f "$manifest" 2>&1)" || {
    printf '%s\n' "$out" >&2
    die "kubectl apply failed (see above)"
  }
  printf '%s\n' "$out" | sed 's/^/  /' >&2
  if grep -Eq ' (created|configured)$' <<<"$out"; then
    ok "kubectl apply: changes applied"
  else
    ok "kubectl apply: unchanged"
  fi
}

# Names of the app's pods that are not ready, one per line.
unready_pods() {
  kc get pods -n "$NS" -l "$SELECTOR" \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.status.containerStatuses[*].ready}{"\n"}{end}' 2>/dev/null |
    awk -F '\t' 'NF && $2 !~ /^(true ?)+$/ { print $1 }'
}

# Prints what an operator needs when the rollout fails: deployment, events, failing pods' logs.
diagnose() {
  local pod
  warn "diagnostics for deployment/$APP in namespace $NS"
  printf '\n--- kubectl describe deployment %s -n %s\n' "$APP" "$NS" >&2
  kc describe deployment "$APP" -n "$NS" >&2 || true
  printf '\n--- events in %s (oldest first)\n' "$NS" >&2
  kc get events -n "$NS" --sort-by=.lastTimestamp >&2 || true
  while IFS= read -r pod; do
    [[ -n "$pod" ]] || continue
    printf '\n--- logs of pod %s (not ready)\n' "$pod" >&2
    kc logs "$pod" -n "$NS" --all-containers --tail=100 >&2 || true
    printf '\n--- logs of the previous container of %s, if it restarted\n' "$pod" >&2
    kc logs "$pod" -n "$NS" --all-containers --previous --tail=50 >&2 || true
  done < <(unready_pods)
}

# Waits for the Deployment's rollout; on failure prints diagnostics and exits non-zero.
wait_rollout() {
  if kc rollout status "deployment/$APP" -n "$NS" --timeout="$ROLLOUT_TIMEOUT" >&2; then
    ok "deployment/$APP rolled out"
    return
  fi
  diagnose
  printf '\n' >&2
  warn "the previous ReplicaSet keeps serving (maxUnavailable 0); to go back: kubectl --context $MINIKUBE_PROFILE rollout undo deployment/$APP -n $NS"
  die "rollout of deployment/$APP in $NS did not complete within $ROLLOUT_TIMEOUT"
}

# The final report on stdout: status table, URL, useful commands.
summary() {
  local url
  echo "=========================================="
  kc get pods,svc,deploy -n "$NS" -l "$SELECTOR" || true
  echo
  url="$(mk service "$APP" -n "$NS" --url 2>/dev/null | head -n 1)" || url=""
  echo "=========================================="
  echo "✓ $APP deployed to $NS ($ENV_NAME)"
  echo "=========================================="
  echo "URL: ${url:-(unavailable: run \"minikube service $APP -n $NS --url\")}"
  echo
  echo "Useful commands:"
  printf '  %-62s # %s\n' \
    "minikube service $APP -n $NS" "open in the browser" \
    "kubectl logs -n $NS -l $SELECTOR -f" "follow the logs" \
    "kubectl get all -n $NS" "every resource" \
    "make status" "pods, services, HPA, PDB of both environments" \
    "make delete-$ENV_NAME" "remove the app (keeps the namespace)"
  echo "=========================================="
}

# Prints a usage error and exits 2.
usage_error() {
  printf 'error: %s\n\n' "$1" >&2
  usage >&2
  exit 2
}

# Parses the arguments into ENV_NAME and checks it names an overlay.
parse_args() {
  case "${1:-}" in
    --dev) ENV_NAME=dev ;;
    --prod) ENV_NAME=prod ;;
    --env)
      [[ $# -ge 2 ]] || usage_error "--env needs an environment name (one of: $(environments))"
      ENV_NAME="$2"
      shift
      ;;
    --env=*) ENV_NAME="${1#--env=}" ;;
    -h | --help)
      usage
      exit 0
      ;;
    "") usage_error "an environment is needed: --env NAME (one of: $(environments)), --dev or --prod" ;;
    *) usage_error "unknown argument $1 (expected --env NAME, --dev or --prod)" ;;
  esac
  shift
  [[ $# -eq 0 ]] || usage_error "unexpected argument $1 (one environment per run)"
  [[ "$ENV_NAME" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ && -f "$ROOT/k8s/overlays/$ENV_NAME/kustomization.yaml" ]] ||
    usage_error "unknown environment '$ENV_NAME': there is no k8s/overlays/$ENV_NAME/kustomization.yaml; the environments are: $(environments)"
}

# The namespace of the environment: NAMESPACE, else the overlay's `namespace:`, else APP-ENV.
namespace_of_env() {
  local declared
  declared="$(sed -n 's/^namespace: *//p' "$ROOT/k8s/overlays/$ENV_NAME/kustomization.yaml" | head -n 1)"
  echo "${NAMESPACE:-${declared:-$APP-$ENV_NAME}}"
}

main() {
  parse_args "$@"
  cd "$ROOT"
  # shellcheck source=SCRIPTDIR/../image.env
  source "$ROOT/image.env"
  : "${IMAGE_NAME:?image.env must set IMAGE_NAME}" "${IMAGE_TAG:?image.env must set IMAGE_TAG}"
  NS="$(namespace_of_env)"
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT

  echo "==========================================" >&2
  echo "Deploying $APP: environment $ENV_NAME, namespace $NS" >&2
  echo "==========================================" >&2

  step 1 "Preflight"
  preflight
  step 2 "minikube, namespace $NS"
  ensure_minikube
  # Only a new namespace or one this project created: applying would label any other as ours.
  KUBECTL=kubectl "$ROOT/scripts/namespaces.sh" check "$NS"
  step 3 "Docker client -> minikube"
  point_docker_at_minikube
  step 4 "Image"
  local ref
  ref="$IMAGE_NAME:$(content_tag)"
  info "content tag: $ref"
  build_image "$ref"
  step 5 "Render and prerequisites ($ENV_NAME)"
  if [[ -f "$ROOT/k8s/overlays/$ENV_NAME/secret.env.example" ]]; then
    ensure_secret
  else
    ok "$ENV_NAME needs no secret file (its key is a clearly fake one)"
  fi
  render_manifests "$ref"
  if grep -q '^kind: HorizontalPodAutoscaler$' "$WORK/manifest.yaml"; then
    enable_metrics_server
  else
    ok "$ENV_NAME has no HorizontalPodAutoscaler: no addon needed"
  fi
  step 6 "kubectl apply ($ENV_NAME, no delete)"
  apply_manifests
  step 7 "Rollout"
  wait_rollout
  summary
}

main "$@"
