# shellcheck shell=bash
# The image, built and run for real: podman (buildah inside) builds the Dockerfile's runtime
# stage with its text unchanged, and runc runs it as the rendered prod Deployment declares.
#
# What is a STAND-IN here, and why: no base image can be pulled, so
#   - the base, gcr.io/distroless/static-debian12:nonroot, is a local stand-in holding only
#     /etc/passwd (nonroot 65532), /etc/group and the CA bundle, imported under that name into
#     a podman store of the test's own (never the user's), and labelled as a stand-in;
#   - the builder stage (rust:*-slim) is replaced by an image holding the binary that
#     scripts/build-release.sh, the builder stage's own command, produced here.
# Everything else is real: the runtime stage's text, buildah, the image config, runc, the
# kernel's enforcement of user, capabilities, no_new_privs, seccomp, read-only mounts and cgroup
# limits, and the pod's settings, translated from `manifest-gen render --env prod` (kubectl
# kustomize) by image_pod_to_podman (scripts/image-lib.sh), not typed again here.
#
# Needs root, podman, runc, slirp4netns (`make image-test` installs the tools when missing) and
# kubectl (`make install-k8s_env`); skips loudly without them, and fails when CI=true.

# shellcheck source=scripts/image-lib.sh
source "$PROJECT_ROOT/scripts/image-lib.sh"

# Skips the calling test (or fails it under CI=true), logging `<test>: <reason>` to SKIP_LOG;
# through lib.sh's `skip` where it exists.
image_skip_or_fail() {
  if declare -F skip >/dev/null; then
    skip "$@"
  fi
  local test="" f
  for f in "${FUNCNAME[@]}"; do
    [[ "$f" == test_* ]] && test="$f" && break
  done
  if [[ "${CI:-}" == true ]]; then
    fail "$test cannot run in CI: $*"
  fi
  [[ -z "${SKIP_LOG:-}" ]] || printf '%s: %s\n' "$test" "$*" >>"$SKIP_LOG"
  echo "SKIP: $test: $*" >&2
  echo "SKIP: $test: $*"
  exit 0
}

# Checks root and the tools; sets IMAGE_TEST_DIR, PODMAN (own store), BIN and IMAGE_REF, and
# builds IMAGE_REF (the rendered Deployment's image name) on the stand-in base.
image_test_setup() {
  local tool
  # podman and cargo must not read run.sh's list of tests from stdin.
  exec </dev/null
  [[ $EUID -eq 0 ]] || image_skip_or_fail "needs root (podman with runc and the cgroupfs manager, reading /proc of the container)"
  for tool in podman runc curl $([[ -c /dev/net/tun ]] && echo slirp4netns); do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 \
      || image_skip_or_fail "$tool is not installed (make image-test installs podman, runc and slirp4netns)"
  done
  command -v kubectl >/dev/null 2>&1 \
    || image_skip_or_fail "kubectl is not installed (manifest-gen render runs kubectl kustomize; make install-k8s_env installs it)"
  # run.sh runs tests on the left of ||, where errexit is off: every step checks for itself.
  IMAGE_TEST_DIR="$(mktemp -d "$TEST_TMP/image.XXXXXX")" || fail "no temporary directory"
  chmod 0755 "$IMAGE_TEST_DIR" || fail "cannot chmod $IMAGE_TEST_DIR"
  image_podman_init "$IMAGE_TEST_DIR/state" || fail "could not create the test's podman store"
  trap image_podman_cleanup EXIT
  if [[ -n "${HELLO_K8S_BIN:-}" ]]; then
    BIN="$HELLO_K8S_BIN"
    echo "NOTE: image built from HELLO_K8S_BIN=$BIN instead of a fresh scripts/build-release.sh build"
  else
    BIN="$("$PROJECT_ROOT/scripts/build-release.sh")" || fail "scripts/build-release.sh failed"
  fi
  IMAGE_REF="$(sed -n 's/^IMAGE_NAME=//p' "$PROJECT_ROOT/image.env"):$(sed -n 's/^IMAGE_TAG=//p' "$PROJECT_ROOT/image.env")"
  # The git-derived label values, read once: the checkout may gain a commit during the test.
  IMAGE_META="$IMAGE_TEST_DIR/meta"
  "$PROJECT_ROOT/scripts/image-meta.sh" >"$IMAGE_META" || fail "scripts/image-meta.sh failed"
  local -a meta=()
  local line
  while IFS= read -r line; do
    meta+=(--build-arg "$line")
  done <"$IMAGE_META"
  image_standin_build "$IMAGE_REF" "$BIN" "${meta[@]}" || fail "podman build of the Dockerfile's runtime stage failed"
  echo "NOTE: built on the STAND-IN base $(image_runtime_base) ($IMAGE_STANDIN_NOTE); builder stage = the release binary"
}

# Renders prod with a random key in a 0600 file, translates its Deployment; sets the ARGS array,
# the FACT map and SECRET_FILE (the key, never printed).
image_test_translate() {
  local host_port="$1" rendered="$IMAGE_TEST_DIR/prod.yaml" line
  SECRET_FILE="$IMAGE_TEST_DIR/secret.env"
  (umask 077 && printf 'API_KEY=%s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >"$SECRET_FILE")
  # IMAGE_TEST_MANIFEST_GEN, else MANIFEST_GEN_BIN (make test's: the one its test build made): a
  # manifest-gen binary already built; else cargo run builds one.
  local -a gen=("${CARGO:-cargo}" run --quiet --locked -p manifest-gen --)
  local built="${IMAGE_TEST_MANIFEST_GEN:-${MANIFEST_GEN_BIN:-}}"
  [[ -z "$built" ]] || gen=("$built")
  (cd "$PROJECT_ROOT" && "${gen[@]}" render --env prod --secret-env-file "$SECRET_FILE") >"$rendered" \
    || fail "manifest-gen render --env prod failed"
  mkdir -m 0755 "$IMAGE_TEST_DIR/volumes" || fail "no volumes directory"
  image_pod_to_podman "$rendered" "$IMAGE_TEST_DIR/volumes" "$host_port" "$IMAGE_TEST_DIR/args" "$IMAGE_TEST_DIR/facts" \
    || fail "the rendered prod Deployment could not be translated (message above)"
  mapfile -t ARGS <"$IMAGE_TEST_DIR/args" || fail "no podman arguments"
  declare -gA FACT=()
  while IFS='=' read -r key value; do
    FACT[$key]="$value"
  done <"$IMAGE_TEST_DIR/facts"
  for line in GRACE_SECONDS RUN_AS_USER RUN_AS_GROUP CONTAINER_PORT IMAGE; do
    [[ -n "${FACT[$line]:-}" ]] || fail "the translation gave no $line"
  done
  assert_eq "${FACT[IMAGE]}" "$IMAGE_REF" "the rendered Deployment's image (manifest-gen and image.env)"
}

# A field of the built image's config, as JSON.
image_field() {
  "${PODMAN[@]}" image inspect --format "{{json $1}}" "$IMAGE_REF"
}

# A label of the built image ("" when absent).
image_label() {
  "${PODMAN[@]}" image inspect --format "{{index .Config.Labels \"$1\"}}" "$IMAGE_REF"
}

# HTTP status of a loopback URL ("000" when nothing answers).
image_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true
}

# A line of /proc/PID/status, without its label.
proc_status() {
  sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"
}

test_image_podman_config_matches_the_contract_and_holds_only_the_binary_on_its_base() {
  image_test_setup
  image_test_translate "$("$PROJECT_ROOT/scripts/free-port.sh")"
  # The binary's path in the image: where the runtime stage copies the builder's output.
  local stage from path
  read -r stage from path <<<"$(image_builder_copy)"
  [[ -n "$stage" && -n "$from" && -n "$path" ]] || fail "no COPY --from=<builder> <from> <to> line in the Dockerfile's runtime stage"

  # The contract, as the rendered Deployment states it: user, port, listening address.
  assert_eq "$(image_field .Config.User)" "\"${FACT[RUN_AS_USER]}:${FACT[RUN_AS_GROUP]}\"" "image User"
  assert_eq "$(image_field .Config.ExposedPorts)" "{\"${FACT[CONTAINER_PORT]}/tcp\":{}}" "image ExposedPorts"
  local env
  env="$(image_field .Config.Env)"
  [[ "$env" == *"\"HOST=${FACT[HOST_ENV]}\""* ]] || fail "image Env lacks HOST=${FACT[HOST_ENV]} (the ConfigMap's): $env"
  [[ "$env" == *"\"PORT=${FACT[PORT_ENV]}\""* ]] || fail "image Env lacks PORT=${FACT[PORT_ENV]} (the ConfigMap's): $env"
  # Exec form, the binary the builder stage delivered, no shell; HEALTHCHECK through it.
  assert_eq "$(image_field .Config.Entrypoint)" "[\"$path\"]" "image Entrypoint"
  assert_eq "$(image_field .Config.Cmd)" "null" "image Cmd"
  assert_eq "$(image_field .HealthCheck.Test)" "[\"CMD\",\"$path\",\"healthcheck\"]" "image Healthcheck (kept by --format docker)"

  # OCI labels: the ones from git carry what scripts/image-meta.sh derived for this build.
  local key value label
  while IFS='=' read -r key value; do
    label="org.opencontainers.image.${key,,}"
    assert_eq "$(image_label "$label")" "$value" "label $label"
  done <"$IMAGE_META"
  [[ "$(image_label org.opencontainers.image.revision)" =~ ^[0-9a-f]{40}(-dirty)?$ ]] \
    || fail "label revision is not a commit id: $(image_label org.opencontainers.image.revision)"
  assert_eq "$(image_label org.opencontainers.image.version)" "${IMAGE_REF##*:}" "label version (image.env's IMAGE_TAG)"
  [[ -n "$(image_label org.opencontainers.image.source)" ]] || fail "label source is empty"
  assert_eq "$(image_label org.opencontainers.image.title)" "${IMAGE_REF%%:*}" "label title"
  assert_eq "$(image_label org.opencontainers.image.licenses)" \
    "$(sed -n 's/^license *= *"\(.*\)"/\1/p' "$PROJECT_ROOT/Cargo.toml")" "label licenses (Cargo.toml's license)"
  assert_eq "$(image_label org.opencontainers.image.base.name)" "$(image_runtime_base)" "label base.name"
  # The stand-in says what it is, in every image built on it.
  [[ "$(image_label "$IMAGE_STANDIN_LABEL")" == *STAND-IN* ]] || fail "the image built on the stand-in base does not carry the stand-in label"

  # Exactly the base's files and the binary, read-only for everyone but root.
  local mnt files
  mnt="$("${PODMAN[@]}" image mount "$IMAGE_REF")" && [[ -d "$mnt" ]] || fail "podman image mount failed"
  files="$(cd "$mnt" && find . -mindepth 1 ! -type d | sort | tr '\n' ' ')"
  assert_eq "$files" "./etc/group ./etc/passwd ./etc/ssl/certs/ca-certificates.crt .$path " "files in the image"
  assert_eq "$(stat -c '%a %u:%g' "$mnt$path")" "555 0:0" "mode and owner of $path"
  grep -q '^nonroot:x:65532:65532:' "$mnt/etc/passwd" || fail "no nonroot 65532 in the stand-in's /etc/passwd"
  "${PODMAN[@]}" image unmount "$IMAGE_REF" >/dev/null

  # Size: the image, and what our layers add to the base.
  local total base ours
  total="$(image_field .Size)"
  base="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$(image_runtime_base)")"
  ours=$((total - base))
  echo "NOTE: image size $total bytes on the STAND-IN base ($base bytes); our layers: $ours bytes ($(awk -v b="$ours" 'BEGIN {printf "%.2f", b / 1e6}') MB; goal <= 4 MB)"
  ((ours <= 4000000)) || fail "our layers weigh $ours bytes, over the 4 MB goal (a debug or dynamic build?)"
}

test_image_podman_runs_under_runc_as_the_rendered_prod_deployment_declares() {
  image_test_setup
  local port name=hello-k8s-standin-pod pid
  port="$("$PROJECT_ROOT/scripts/free-port.sh")"
  image_test_translate "$port"
  local stage from path key
  read -r stage from path <<<"$(image_builder_copy)"
  [[ -n "$path" ]] || fail "no COPY --from=$stage <from> <to> line in the Dockerfile's runtime stage"
  key="$(sed -n 's/^API_KEY=//p' "$SECRET_FILE")"

  # Its own network namespace; slirp4netns adds nothing to the host but a 127.0.0.1 listener.
  # Without /dev/net/tun (a container started without it), podman's default bridge instead.
  local -a net=(--network slirp4netns:port_handler=slirp4netns)
  if [[ ! -c /dev/net/tun ]]; then
    net=()
    echo "NOTE: no /dev/net/tun: podman's default bridge network instead of slirp4netns"
  fi
  "${PODMAN[@]}" run --detach --name "$name" "${net[@]}" "${ARGS[@]}" >"$IMAGE_TEST_DIR/run.out" 2>"$IMAGE_TEST_DIR/run.err" \
    || { cat "$IMAGE_TEST_DIR/run.err" >&2; fail "podman run failed (message above)"; }

  # The probes go where the kubelet sends them: their declared container port, published by
  # podman on a loopback port of its choice (the first container port is on $port).
  declare -gA PROBE_URL=()
  local kind mapped
  for kind in STARTUP LIVENESS READINESS; do
    mapped="$("${PODMAN[@]}" port "$name" "${FACT[${kind}_PORT]}/tcp" | sed -n 1p)" \
      || fail "podman port $name ${FACT[${kind}_PORT]}/tcp failed"
    PROBE_URL[$kind]="http://${mapped/0.0.0.0/127.0.0.1}"
  done

  # Bounded wait for the startup probe's path (20 s is a ceiling, not a timing assertion).
  local tries=0 url="http://127.0.0.1:$port"
  while [[ "$(image_status "${PROBE_URL[STARTUP]}${FACT[STARTUP_PATH]}")" != 200 ]] && ((tries < 200)); do
    sleep 0.1
    tries=$((tries + 1))
  done
  if [[ "$(image_status "${PROBE_URL[STARTUP]}${FACT[STARTUP_PATH]}")" != 200 ]]; then
    "${PODMAN[@]}" logs "$name" >&2 || true
    fail "GET ${FACT[STARTUP_PATH]} never answered 200 (container log above)"
  fi

  # Greeting and probes, from the host over the 127.0.0.1-only published port.
  assert_eq "$(curl -s --max-time 2 "$url/")" "Hello World from Kubernetes!" "GET / body"
  assert_eq "$(image_status "${PROBE_URL[LIVENESS]}${FACT[LIVENESS_PATH]}")" 200 "liveness ${FACT[LIVENESS_PATH]}"
  assert_eq "$(image_status "${PROBE_URL[READINESS]}${FACT[READINESS_PATH]}")" 200 "readiness ${FACT[READINESS_PATH]}"
  # The ConfigMap's and the downward API's values reached the process.
  local info
  info="$(curl -s --max-time 2 "$url/info")"
  [[ "$info" == *"\"environment\":\"${FACT[ENVIRONMENT]}\""* ]] || fail "/info does not say environment ${FACT[ENVIRONMENT]}: $info"
  [[ "$info" == *"\"pod\":\"${FACT[POD_NAME]}\""* ]] || fail "/info does not name the pod ${FACT[POD_NAME]}: $info"
  [[ "$info" == *"\"namespace\":\"${FACT[NAMESPACE]}\""* ]] || fail "/info does not name the namespace ${FACT[NAMESPACE]}: $info"

  # The image's HEALTHCHECK, run by podman inside the container; it fails on a closed port.
  "${PODMAN[@]}" healthcheck run "$name" >"$IMAGE_TEST_DIR/hc.out" 2>&1 || fail "podman healthcheck run failed: $(cat "$IMAGE_TEST_DIR/hc.out")"
  # It probes the probe listener (PROBE_PORT), as the kubelet does.
  if "${PODMAN[@]}" exec --env PROBE_PORT=1 "$name" "$path" healthcheck >/dev/null 2>&1; then
    fail "the healthcheck command exited 0 with nothing listening on probe port 1"
  fi

  # The Secret, mounted read-only with its mode, is readable by the pod's user: the operator
  # switch accepts its key (header from a file, so the key is on no command line) and only it.
  local header="$IMAGE_TEST_DIR/auth.header"
  (umask 077 && printf 'Authorization: Bearer %s\n' "$key" >"$header")
  assert_eq "$(image_status -X POST -H "@$header" "$url/admin/readiness/off")" 200 "readiness switch off with the mounted key"
  assert_eq "$(image_status "${PROBE_URL[READINESS]}${FACT[READINESS_PATH]}")" 503 "readiness after the switch off"
  assert_eq "$(image_status -X POST -H 'Authorization: Bearer wrong' "$url/admin/readiness/on")" 401 "readiness switch with a wrong key"
  assert_eq "$(image_status -X POST -H "@$header" "$url/admin/readiness/on")" 200 "readiness switch on with the mounted key"
  assert_eq "$(image_status "${PROBE_URL[READINESS]}${FACT[READINESS_PATH]}")" 200 "readiness after the switch on"

  # What the kernel says about the container's PID 1, read from outside.
  pid="$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$name")"
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || fail "no host PID for the container: [$pid]"
  local u="${FACT[RUN_AS_USER]}" g="${FACT[RUN_AS_GROUP]}" field
  assert_eq "$(proc_status "$pid" Uid | xargs)" "$u $u $u $u" "Uid of PID 1 (runAsUser)"
  assert_eq "$(proc_status "$pid" Gid | xargs)" "$g $g $g $g" "Gid of PID 1 (runAsGroup)"
  assert_eq "$(proc_status "$pid" Groups | xargs)" "$g" "supplementary groups of PID 1 (fsGroup)"
  for field in CapInh CapPrm CapEff CapBnd CapAmb; do
    assert_eq "$(proc_status "$pid" "$field")" 0000000000000000 "$field of PID 1 (capabilities drop ALL)"
  done
  assert_eq "$(proc_status "$pid" NoNewPrivs)" 1 "NoNewPrivs of PID 1 (allowPrivilegeEscalation: false)"
  assert_eq "$(proc_status "$pid" Seccomp)" 2 "Seccomp mode of PID 1 (RuntimeDefault: a filter)"

  # Nothing writable on the root filesystem: "/" and every file-backed mount are read-only,
  # and even host root, through the container's own root, is refused on each of them.
  local mi="$IMAGE_TEST_DIR/mountinfo" target opts fstype rw_pseudo=""
  awk '{ sep = 0; for (i = 7; i <= NF; i++) if ($i == "-") { sep = i; break }; print $5, $6, $(sep + 1) }' \
    "/proc/$pid/mountinfo" >"$mi"
  assert_eq "$(awk '$1 == "/" {print $2}' "$mi" | cut -d, -f1)" ro "mount options of / (readOnlyRootFilesystem)"
  while read -r target opts fstype; do
    case "$fstype" in
      proc | sysfs | tmpfs | devpts | mqueue | cgroup | cgroup2)
        [[ "${opts%%,*}" == rw ]] && rw_pseudo+=" $target($fstype)"
        continue
        ;;
    esac
    [[ "${opts%%,*}" == ro ]] || fail "$target ($fstype) is mounted $opts in the container, expected read-only"
  done <"$mi"
  assert_eq "$(awk -v m="${FACT[SECRET_MOUNT]}" '$1 == m {print $2}' "$mi" | cut -d, -f1)" ro "mount of the Secret at ${FACT[SECRET_MOUNT]}"
  local root="/proc/$pid/root" dir
  assert_eq "$(stat -c '%04a %u:%g' "$root${FACT[SECRET_MOUNT]}/API_KEY")" "${FACT[SECRET_MODE]} 0:$g" "the Secret file (defaultMode, group fsGroup)"
  for dir in / /etc /etc/ssl/certs "${FACT[SECRET_MOUNT]}"; do
    if touch "$root$dir/.written-by-host-root" 2>"$IMAGE_TEST_DIR/touch.err"; then
      fail "$dir is writable in the container (host root created a file in it)"
    fi
    grep -q 'Read-only file system' "$IMAGE_TEST_DIR/touch.err" || fail "write to $dir refused for another reason: $(cat "$IMAGE_TEST_DIR/touch.err")"
  done
  if (: >>"$root$path") 2>/dev/null; then
    fail "the binary can be opened for writing in the container"
  fi
  echo "NOTE: writable in the container only the kernel's and runtime's pseudo filesystems, as under the kubelet:$rw_pseudo"

  # The pod's limits, as the kernel holds them for the container's cgroup.
  local cg mem quota
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    cg="$(sed -n 's/^0:://p' "/proc/$pid/cgroup")"
    mem="$(cat "/sys/fs/cgroup$cg/memory.max")"
    quota="$(cut -d' ' -f1 "/sys/fs/cgroup$cg/cpu.max")"
  else
    cg="$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' "/proc/$pid/cgroup")"
    mem="$(cat "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes")"
    cg="$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' "/proc/$pid/cgroup")"
    quota="$(cat "/sys/fs/cgroup/cpu$cg/cpu.cfs_quota_us")"
  fi
  assert_eq "$mem" "${FACT[MEMORY_LIMIT_BYTES]}" "the container's cgroup memory limit (resources.limits.memory)"
  assert_eq "$quota" "${FACT[CPU_QUOTA_MICROS]}" "the container's CFS quota per 100 ms (resources.limits.cpu)"

  # podman stop, as the kubelet stops a pod: SIGTERM, then SIGKILL after the grace period.
  # The service drains (readiness 503 while still serving), then exits 0 within the grace.
  local grace="${FACT[GRACE_SECONDS]}" start stopper elapsed saw_draining=0 rc
  start="$(date +%s%N)"
  "${PODMAN[@]}" stop --time "$grace" "$name" >/dev/null 2>"$IMAGE_TEST_DIR/stop.err" &
  stopper=$!
  if [[ "${FACT[DRAIN_DELAY_SECONDS]:-0}" -gt 0 ]]; then
    tries=0
    while ((tries < 50)); do
      if [[ "$(image_status "${PROBE_URL[READINESS]}${FACT[READINESS_PATH]}")" == 503 ]]; then
        saw_draining=1
        assert_eq "$(curl -s --max-time 2 "$url/")" "Hello World from Kubernetes!" "GET / while draining"
        break
      fi
      sleep 0.1
      tries=$((tries + 1))
    done
    ((saw_draining)) || fail "readiness never turned 503 after podman stop (no drain)"
  fi
  wait "$stopper" || fail "podman stop failed: $(cat "$IMAGE_TEST_DIR/stop.err")"
  elapsed=$((($(date +%s%N) - start) / 1000000))
  rc="$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$name")"
  assert_eq "$rc" 0 "exit code after podman stop (137 would mean SIGKILL at the grace period's end)"
  ((elapsed < grace * 1000)) || fail "podman stop took ${elapsed} ms, not within terminationGracePeriodSeconds=$grace"
  if "${PODMAN[@]}" logs "$name" 2>&1 | grep -qF -- "$key"; then
    fail "the API key appears in the container's log"
  fi
  echo "NOTE: podman stop: drained (readiness 503, still serving) and exited 0 after ${elapsed} ms (grace ${grace} s, drain ${FACT[DRAIN_DELAY_SECONDS]} s)"
  echo "NOTE: ran under runc as 65532 with CapEff 0, no_new_privs, seccomp, read-only root, the Secret read-only at ${FACT[SECRET_MOUNT]} (mode ${FACT[SECRET_MODE]}), memory ${FACT[MEMORY_LIMIT_BYTES]} bytes, cpu quota ${FACT[CPU_QUOTA_MICROS]}/100000 us"
}
