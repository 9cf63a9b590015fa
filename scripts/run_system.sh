#!/usr/bin/env bash
# Deploys hello-k8s to minikube or any other cluster, idempotently:
# scripts/run_system.sh --env NAME | --dev | --prod
#
# Run by `make auto-deploy-<env>`. The environments are the overlays in k8s/overlays. Unlike the
# origin's script it never deletes before applying (a deploy is a rolling update, not an outage),
# tags the image by content (a code change always yields a new tag, so a new rollout), lets
# minikube choose its driver unless MINIKUBE_DRIVER says otherwise, applies server-side and waits
# with `kubectl rollout status`. The cluster is minikube unless CLUSTER_KIND=other
# (scripts/kube.sh): then nothing of minikube is called, the image is built with CONTAINER, saved
# to an archive and handed to IMAGE_IMPORT, and the URL comes from the node's InternalIP and the
# NodePort.
set -euo pipefail

MINIKUBE_DRIVER="${MINIKUBE_DRIVER:-}"
# The image builder: docker (BuildKit) or podman (with PODMAN_FLAGS, as make build runs it).
CONTAINER="${CONTAINER:-docker}"
PODMAN_FLAGS="${PODMAN_FLAGS:-}"
# The command that puts an image archive into the cluster's runtime; the archive's path is
# appended as its last argument. Default on minikube: `minikube -p PROFILE image load`.
IMAGE_IMPORT="${IMAGE_IMPORT:-}"
IMAGE_BUILD="${IMAGE_BUILD:-}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-180s}"
# A prebuilt manifest-gen binary; empty: `cargo run -p manifest-gen`.
MANIFEST_GEN="${MANIFEST_GEN:-}"
# Overrides the environment's namespace (the overlay's `namespace:`, e.g. hello-k8s-dev).
NAMESPACE="${NAMESPACE:-}"
STEPS=7

ENV_NAME=""
NS=""
WORK=""

# Prints the usage text.
usage() {
  cat <<EOF
usage: scripts/run_system.sh --env NAME | --dev | --prod [--help]

Builds the hello-k8s image (tagged by content) into the cluster's image store, applies the
environment's manifests server-side without deleting anything first, and waits for the rollout.

  --env NAME  the overlay k8s/overlays/NAME; environments here: $(environments)
  --dev       --env dev (namespace hello-k8s-dev, 1 replica, NodePort 31180)
  --prod      --env prod (namespace hello-k8s-prod, HPA + PDB)
  --help      this text

An overlay with a secret.env.example (prod) needs a secret.env beside it: it is created with
a random API_KEY when missing (mode 600, never printed, must be git-ignored). When the rendered
objects hold a HorizontalPodAutoscaler, minikube's metrics-server addon is enabled (other
clusters: a warning when none serves metrics.k8s.io).

The cluster (scripts/kube.sh):
  CLUSTER_KIND      minikube (default) or other; unset: other when KUBE_CONTEXT names a
                    context other than MINIKUBE_PROFILE
  KUBE_CONTEXT      the context of every kubectl call (default: MINIKUBE_PROFILE on minikube,
                    else the kubeconfig's current context, pinned at the start)
  KUBECONFIG        honoured by every kubectl call
  KUBECTL           kubectl command, arguments allowed ("kubectl --kubeconfig /x")
The image:
  CONTAINER         builder: docker (default) or podman (PODMAN_FLAGS: its global flags)
  IMAGE_IMPORT      command importing an image archive into the cluster's runtime, the
                    archive's path appended, e.g. "sudo ctr -n k8s.io images import" (required
                    on other; on minikube the default is "minikube -p PROFILE image load")
  IMAGE_BUILD       instead of CONTAINER's build of the Dockerfile: a command that builds the
                    image and writes it as an archive, called with REF ARCHIVE appended (make
                    cluster's: scripts/cluster/image-build.sh, for a machine with no registry)
  minikube only: with docker and no IMAGE_IMPORT the build runs in minikube's daemon
  (docker-env); MINIKUBE_DRIVER (default: minikube's choice), MINIKUBE_PROFILE (minikube).
Also: NAMESPACE (override; only a new namespace or one this project created:
scripts/namespaces.sh), ROLLOUT_TIMEOUT (180s), MANIFEST_GEN (path to a built manifest-gen).
EOF
}

# shellcheck source=scripts/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"
# shellcheck source=scripts/kube.sh
source "$(dirname "${BASH_SOURCE[0]}")/kube.sh"

# Progress line for step N of STEPS, to stderr.
step() {
  printf '\n%s[%s/%s] %s%s\n' "$C_BLUE" "$1" "$STEPS" "$2" "$C_OFF" >&2
}

# The builder (CONTAINER) as a command array; podman reads the project's containers.conf.
builder() {
  local -a cmd flags
  read -r -a cmd <<<"$CONTAINER"
  if [[ "$(basename "${cmd[0]}")" == podman ]]; then
    read -r -a flags <<<"$PODMAN_FLAGS"
    if [[ -f "$ROOT/containers/containers.conf" ]]; then
      CONTAINERS_CONF="$ROOT/containers/containers.conf" "${cmd[@]}" "${flags[@]}" "$@"
    else
      "${cmd[@]}" "${flags[@]}" "$@"
    fi
  else
    DOCKER_BUILDKIT=1 "${cmd[@]}" "$@"
  fi
}

# The builder's program name: docker or podman (or whatever CONTAINER's first word is).
builder_name() {
  local -a cmd
  read -r -a cmd <<<"$CONTAINER"
  basename "${cmd[0]:-docker}"
}

# How the image reaches the cluster: "daemon" (built inside minikube's docker, minikube only)
# or "import" (built locally, saved to an archive, handed to the import command).
delivery() {
  if [[ "$CLUSTER_KIND" == minikube && -z "$IMAGE_IMPORT" && "$(builder_name)" == docker ]]; then
    echo daemon
  else
    echo import
  fi
}

# The import command as an array in IMPORT_CMD (IMAGE_IMPORT, or minikube image load).
import_command() {
  IMPORT_CMD=()
  if [[ -n "$IMAGE_IMPORT" ]]; then
    read -r -a IMPORT_CMD <<<"$IMAGE_IMPORT"
  elif [[ "$CLUSTER_KIND" == minikube ]]; then
    IMPORT_CMD=(minikube -p "$MINIKUBE_PROFILE" image load)
  fi
}

# Checks every external tool up front and names the make target that installs it.
preflight() {
  local missing=() tool tools=() builder_cmd=()
  read -r -a builder_cmd <<<"$CONTAINER"
  [[ "$CLUSTER_KIND" == minikube ]] && tools+=(minikube)
  tools+=("${KUBECTL_CMD[0]}" "${builder_cmd[0]:-docker}")
  if [[ "$(delivery)" == import ]]; then
    import_command
    [[ ${#IMPORT_CMD[@]} -gt 0 ]] ||
      die "IMAGE_IMPORT is not set: on a cluster other than minikube, set it to the command that imports an image archive into the cluster's runtime (the archive's path is appended), e.g. IMAGE_IMPORT=\"sudo ctr -a /run/containerd/containerd.sock -n k8s.io images import\", \"kind load image-archive\" or \"k3d image import\""
    tools+=("${IMPORT_CMD[0]}")
  fi
  for tool in "${tools[@]}" git sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [[ -z "$MANIFEST_GEN" ]] && ! command -v cargo >/dev/null 2>&1; then
    missing+=("cargo (or set MANIFEST_GEN to a built manifest-gen)")
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    printf '%serror: missing required tool(s): %s%s\n' "$C_RED" "${missing[*]}" "$C_OFF" >&2
    printf '  install docker, kubectl and minikube with: make install-k8s_env (podman and runc: make image-install)\n' >&2
    printf '  (git and sha256sum come with your distribution; cargo with rustup: https://rustup.rs)\n' >&2
    exit 1
  fi
  if [[ "$(builder_name)" == docker ]]; then
    # The Dockerfile's cache mounts need BuildKit, which the docker CLI reaches through buildx.
    builder buildx version >/dev/null 2>&1 ||
      die "docker buildx is missing (the Dockerfile needs BuildKit): run make install-k8s_env, which installs the buildx plugin (docker-buildx-plugin from Docker's apt repository, or your distribution's docker-buildx)"
    tools+=(buildx)
  fi
  ok "$(tools_sentence "${tools[@]}") found"
}

# "a, b and c" from the arguments.
tools_sentence() {
  local -a words=("$@")
  local n=${#words[@]} IFS=,
  if ((n <= 1)); then
    printf '%s' "${words[*]}"
  else
    local head="${words[*]:0:n-1}"
    printf '%s and %s' "${head//,/, }" "${words[n - 1]}"
  fi
}

# On a cluster other than minikube: pins the context (kube_pin) and reaches the API server once.
pin_context() {
  kube_pin
  local out
  out="$(kc version 2>&1)" || die "cannot reach the API server through $(kube_where): $out"
  ok "API server reached through $(kube_where)"
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

# The image reference the cluster runs: on the import path fully qualified
# (docker.io/library/NAME:TAG unless NAME names a registry), the name every CRI resolves a
# short name to; podman would otherwise save it as localhost/NAME, which no pod spec matches.
image_ref() {
  local name="$1" tag="$2" first="${1%%/*}"
  if [[ "$(delivery)" == import && ! ("$name" == */* && ("$first" == *.* || "$first" == *:* || "$first" == localhost)) ]]; then
    [[ "$name" == */* ]] || name="library/$name"
    name="docker.io/$name"
  fi
  printf '%s:%s\n' "$name" "$tag"
}

# Builds the image unless an image with exactly this content tag exists (in minikube's daemon on
# the daemon path, in the builder's local store on the import path).
build_image() {
  local ref="$1" where
  if [[ -n "$IMAGE_BUILD" ]]; then
    local archive tag="${1##*:}" name="${1%:*}" build_cmd=()
    archive="$ROOT/target/image/${name##*/}-$tag.tar"
    if [[ -s "$archive" ]]; then
      ok "image $ref already built (${archive#"$ROOT/"})"
      return
    fi
    read -r -a build_cmd <<<"$IMAGE_BUILD"
    info "building $ref with IMAGE_BUILD: ${build_cmd[*]}"
    "${build_cmd[@]}" "$ref" "$archive" >&2 || die "IMAGE_BUILD failed: ${build_cmd[*]} $ref $archive (see above)"
    [[ -s "$archive" ]] || die "IMAGE_BUILD wrote no archive at $archive"
    ok "image $ref built by IMAGE_BUILD"
    return
  fi
  where="$([[ "$(delivery)" == daemon ]] && echo "minikube's image store" || echo "the local $(builder_name) store")"
  if builder image inspect "$ref" >/dev/null 2>&1; then
    ok "image $ref already built, nothing to rebuild (in $where)"
    return
  fi
  info "building $ref with $(builder_name) (the first build compiles every dependency)"
  local -a labels format=()
  # The OCI labels (version, revision, source) from git, as make build gives them.
  read -r -a labels <<<"$("$ROOT/scripts/image-meta.sh" --build-args)" || die "scripts/image-meta.sh failed (see above)"
  # podman: the docker format keeps the HEALTHCHECK (as make build CONTAINER=podman does).
  [[ "$(builder_name)" == podman ]] && format=(--format docker)
  builder build "${format[@]}" "${labels[@]}" --tag "$ref" "$ROOT" >&2 ||
    die "$(builder_name) build of $ref failed (see above)"
  ok "image $ref built in $where"
}

# Saves the image to target/image/NAME-TAG.tar (kept: the tag names the content) and hands the
# archive to the import command, every run (the cluster may have lost it; importing is
# idempotent).
import_image() {
  local ref="$1" tag="${1##*:}" name archive out
  name="${1%:*}"
  archive="$ROOT/target/image/${name##*/}-$tag.tar"
  if [[ -s "$archive" ]]; then
    ok "archive ${archive#"$ROOT/"} already saved"
  else
    mkdir -p "$(dirname "$archive")"
    rm -f "$archive.tmp"
    builder save --output "$archive.tmp" "$ref" >&2 || die "$(builder_name) save of $ref failed (see above)"
    mv -f "$archive.tmp" "$archive"
    ok "saved $ref to ${archive#"$ROOT/"}"
  fi
  import_command
  info "importing: ${IMPORT_CMD[*]} ${archive#"$ROOT/"}"
  out="$("${IMPORT_CMD[@]}" "$archive" 2>&1)" || {
    printf '%s\n' "$out" >&2
    die "the image import failed: ${IMPORT_CMD[*]} $archive (IMAGE_IMPORT: a command that imports an image archive into the cluster's runtime, the archive's path appended)"
  }
  [[ -z "$out" ]] || printf '%s\n' "$out" | sed 's/^/  /' >&2
  ok "image $ref imported into the cluster's runtime"
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

# The prod HorizontalPodAutoscaler reads CPU usage from metrics.k8s.io: on minikube its
# metrics-server addon is enabled; another cluster is only checked (installing it is the
# cluster's business), with a warning when nothing serves that API.
enable_metrics_server() {
  if [[ "$CLUSTER_KIND" == minikube ]]; then
    mk addons enable metrics-server >&2 || die "minikube addons enable metrics-server failed"
    ok "metrics-server addon enabled (HPA metrics; minikube only)"
  # The list is read whole before it is searched: `kubectl ... | grep -q` under pipefail fails
  # whenever grep quits at its match before kubectl has written the rest (SIGPIPE).
  elif grep -q '^metrics\.k8s\.io/' <<<"$(kc api-versions 2>/dev/null || true)"; then
    ok "the cluster serves metrics.k8s.io (HPA metrics)"
  else
    warn "the cluster serves no metrics.k8s.io: the HPA will show cpu <unknown> and never scale; install metrics-server (with the API server's aggregation layer configured)"
  fi
}

# Renders the environment with the content-tagged image into $WORK/manifest.yaml.
render_manifests() {
  local ref="$1" manifest args
  # The rendered stream holds the Secret: a private temp file, removed on exit.
  manifest="$WORK/manifest.yaml"
  args=(render --env "$ENV_NAME" --image "$ref")
  [[ -n "$NAMESPACE" ]] && args+=(--namespace "$NAMESPACE")
  manifest_gen "${args[@]}" >"$manifest" ||
    die "manifest-gen ${args[*]} failed (see above); nothing was applied"
  [[ -s "$manifest" ]] || die "manifest-gen ${args[*]} printed nothing; nothing was applied"
  ok "rendered $ENV_NAME with image $ref"
}

# Succeeds when the rendered Deployment declares spec.replicas.
declares_replicas() {
  awk '/^---/ { kind = "" } /^kind: / { kind = $2 } kind == "Deployment" && /^  replicas:/ { found = 1 }
    END { exit !found }' "$1"
}

# A Deployment rendered without `replicas` (prod: its HPA scales it) over a live one: the live
# count is first applied under a field manager of its own, as the Kubernetes documentation's
# "transferring ownership" describes, so the deploy's manager dropping the field (it owned it
# while the manifest declared it) does not remove it; the API server would fall back to 1 replica
# until the HPA scaled up again. A conflict means the HPA's updates own the field already, which
# is what this is for; any failure only skips the step.
keep_live_replicas() {
  local manifest="$WORK/manifest.yaml" live out
  declares_replicas "$manifest" && return 0
  live="$(kc get deployment "$APP" -n "$NS" --ignore-not-found -o jsonpath='{.spec.replicas}' 2>/dev/null)" || return 0
  [[ "$live" =~ ^[0-9]+$ ]] || return 0
  out="$(printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  replicas: %s\n' \
    "$APP" "$NS" "$live" |
    kc apply -f - --server-side --field-manager="$FIELD_MANAGER-replicas" --validate=false 2>&1)" || {
    info "live replica count not handed over (the HPA may own it already): $out"
    return 0
  }
  ok "the rendered Deployment declares no replicas: the live count ($live) stays (field manager $FIELD_MANAGER-replicas)"
}

# Applies the rendered objects server-side; nothing is deleted. Server-side apply owns only
# the fields the manifests declare (a Deployment without `replicas` leaves the HPA's count
# alone) and refuses, instead of overwriting, a field another manager set to another value.
# `kubectl diff` first tells an unchanged apply from a changing one (server-side apply reports
# every object "serverside-applied"); its output, which would show the Secret, is discarded.
apply_manifests() {
  local manifest="$WORK/manifest.yaml" out diff_rc=0
  # Labeled at creation: should the apply below fail, the namespace is still recognised as this
  # project's by the next deploy and by the deletes.
  create_namespace "$NS"
  keep_live_replicas
  kc diff -f "$manifest" --server-side --field-manager="$FIELD_MANAGER" >/dev/null 2>&1 || diff_rc=$?
  out="$(kc apply -f "$manifest" --server-side --field-manager="$FIELD_MANAGER" 2>&1)" || {
    printf '%s\n' "$out" >&2
    if grep -qi 'conflict' <<<"$out"; then
      die "kubectl apply --server-side refused: another field manager owns a field these manifests set to another value (above; spec.replicas owned by the HorizontalPodAutoscaler's scale updates means the manifest must not declare replicas). Nothing was overwritten; --force-conflicts would take the field over"
    fi
    die "kubectl apply failed (see above)"
  }
  printf '%s\n' "$out" | sed 's/^/  /' >&2
  case "$diff_rc" in
    0) ok "kubectl apply: unchanged" ;;
    1) ok "kubectl apply: changes applied" ;;
    *) ok "kubectl apply: applied (kubectl diff failed, so whether anything changed is not known)" ;;
  esac
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
  warn "the previous ReplicaSet keeps serving (maxUnavailable 0); to go back: $(kc_hint) rollout undo deployment/$APP -n $NS"
  die "rollout of deployment/$APP in $NS did not complete within $ROLLOUT_TIMEOUT"
}

# The final report on stdout: status table, URL, useful commands.
summary() {
  local url kubectl
  echo "=========================================="
  kc get pods,svc,deploy -n "$NS" -l "$SELECTOR" || true
  echo
  if [[ "$CLUSTER_KIND" == minikube ]]; then
    url="$(mk service "$APP" -n "$NS" --url 2>/dev/null | sed -n 1p)" || url=""
  else
    url="$(node_url "$NS")" || url=""
  fi
  echo "=========================================="
  echo "✓ $APP deployed to $NS ($ENV_NAME)"
  echo "=========================================="
  if [[ "$CLUSTER_KIND" == minikube ]]; then
    echo "URL: ${url:-(unavailable: run \"minikube service $APP -n $NS --url\")}"
    # minikube start made its context the current one.
    kubectl=kubectl
  else
    local why
    why="(unavailable: the node's InternalIP or the Service's nodePort could not be read; see $(kc_hint) get nodes -o wide, and get service $APP -n $NS)"
    echo "URL: ${url:-$why}"
    kubectl="$(kc_hint)"
  fi
  echo
  echo "Useful commands:"
  if [[ "$CLUSTER_KIND" == minikube ]]; then
    printf '  %-62s # %s\n' "minikube service $APP -n $NS" "open in the browser (minikube only)"
  fi
  printf '  %-62s # %s\n' \
    "$kubectl logs -n $NS -l $SELECTOR -f" "follow the logs" \
    "$kubectl get all -n $NS" "every resource" \
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
  is_env "$ENV_NAME" ||
    usage_error "unknown environment '$ENV_NAME': there is no k8s/overlays/$ENV_NAME/kustomization.yaml; the environments are: $(environments)"
}

main() {
  parse_args "$@"
  kube_init
  export KUBECTL="${KUBECTL_CMD[*]}"
  cd "$ROOT"
  # shellcheck source=SCRIPTDIR/../image.env
  source "$ROOT/image.env"
  : "${IMAGE_NAME:?image.env must set IMAGE_NAME}" "${IMAGE_TAG:?image.env must set IMAGE_TAG}"
  # Refused before any call when it cannot be a namespace of this project.
  NS="$(namespace_of "$ENV_NAME")"
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT

  echo "==========================================" >&2
  echo "Deploying $APP: environment $ENV_NAME, namespace $NS, cluster $CLUSTER_KIND ($(kube_where))" >&2
  echo "==========================================" >&2

  step 1 "Preflight"
  preflight
  if [[ "$CLUSTER_KIND" == minikube ]]; then
    step 2 "minikube, namespace $NS"
    ensure_minikube
    export KUBE_CONTEXT CLUSTER_KIND
  else
    step 2 "Cluster ($CLUSTER_KIND), namespace $NS"
    pin_context
  fi
  # Only a new namespace or one this project created: applying would label any other as ours.
  "$ROOT/scripts/namespaces.sh" check "$NS"
  if [[ "$(delivery)" == daemon ]]; then
    step 3 "Docker client -> minikube (minikube only: docker-env)"
    point_docker_at_minikube
  else
    import_command
    step 3 "Image delivery: $(builder_name) build, then ${IMPORT_CMD[*]} <archive>"
    ok "the image is built locally, saved and imported into the cluster's runtime"
  fi
  step 4 "Image"
  local ref
  ref="$(image_ref "$IMAGE_NAME" "$(content_tag)")"
  info "content tag: $ref"
  build_image "$ref"
  [[ "$(delivery)" == daemon ]] || import_image "$ref"
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
  step 6 "kubectl apply --server-side ($ENV_NAME, no delete)"
  apply_manifests
  step 7 "Rollout"
  wait_rollout
  summary
}

main "$@"
