# shellcheck shell=bash
# The image under podman and runc, for the image test (scripts/tests/test_image_podman.sh) and
# `make image-test`; sourced, not run. It provides:
#
#   image_podman_init DIR            a podman with its own store under DIR (PODMAN array)
#   image_podman_cleanup             removes that store's containers, images and files
#   image_standin_build TAG BIN      builds the Dockerfile's runtime stage, its text unchanged,
#                                    on the stand-in base, with BIN in place of the builder stage
#   image_pod_to_podman YAML SECRETS HOST_PORT ARGS FACTS
#                                    translates the rendered Deployment into podman run arguments
#
# Why a store of its own: the stand-in base is tagged with the real base's name
# (gcr.io/distroless/static-debian12:nonroot) so that the Dockerfile's FROM line resolves to it
# unchanged; in the user's own store it would shadow the real image for later builds.
# Why runc and cgroupfs: crun refuses hybrid cgroup hierarchies, and the cgroupfs manager
# needs no systemd. Why CONTAINERS_CONF: see containers/containers.conf.

IMAGE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE_DOCKERFILE="$IMAGE_ROOT/Dockerfile"
IMAGE_CONTAINERS_CONF="$IMAGE_ROOT/containers/containers.conf"
# What the stand-in base says about itself, in its label and in every message.
IMAGE_STANDIN_NOTE="local STAND-IN for the real base: /etc/passwd, /etc/group and CA certificates only"
IMAGE_STANDIN_LABEL="io.kubecloudorchestrator.stand-in"
IMAGE_STANDIN_BUILDER="localhost/hello-k8s-builder-standin:latest"
# The CA bundle the stand-in copies from the host (Debian/Ubuntu: the ca-certificates package).
IMAGE_CA_BUNDLE="${IMAGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

# The Dockerfile's runtime stage: from its last FROM line to the end, byte for byte.
image_runtime_stage() {
  awk '/^FROM /{n=NR} {line[NR]=$0} END {for (i=n; i<=NR; i++) print line[i]}' "$IMAGE_DOCKERFILE"
}

# The base image the runtime stage names (its FROM line's image).
image_runtime_base() {
  image_runtime_stage | awk 'NR==1 {print $2}'
}

# The builder stage's name, the path the runtime stage copies the binary from and the path it
# copies it to, as the runtime stage's `COPY --from=<stage> <from> <to>` line says.
image_builder_copy() {
  image_runtime_stage | sed -n 's/^COPY --from=\([^ ]*\) \([^ ]*\) \([^ ]*\)$/\1 \2 \3/p' | sed -n 1p
}

# Sets PODMAN to a podman with its own store under DIR, runc and the cgroupfs manager.
image_podman_init() {
  IMAGE_STATE="$1"
  mkdir -p "$IMAGE_STATE/storage" "$IMAGE_STATE/run" || return 1
  export CONTAINERS_CONF="$IMAGE_CONTAINERS_CONF"
  PODMAN=(podman --root "$IMAGE_STATE/storage" --runroot "$IMAGE_STATE/run"
    --runtime runc --cgroup-manager cgroupfs)
}

# Removes every container and image of the store image_podman_init made, then the store.
image_podman_cleanup() {
  [[ -n "${IMAGE_STATE:-}" && -d "$IMAGE_STATE/storage" ]] || return 0
  "${PODMAN[@]}" rm --all --force --time 0 >/dev/null 2>&1 || true
  "${PODMAN[@]}" rmi --all --force >/dev/null 2>&1 || true
  # Anything still mounted under the store (an interrupted run) is unmounted before removal.
  local mnt
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v root="$IMAGE_STATE" 'index($5, root) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  rm -rf "$IMAGE_STATE"
}

# A reproducible tar stream of directory $1, every entry owned by root.
image_tar() {
  tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - .
}

# Imports the stand-in base under the real base's name into the store: distroless/static's
# nonroot user and group (65532), root and nobody, and the CA bundle; USER 65532 as there.
image_standin_base() {
  local ref dir
  ref="$(image_runtime_base)"
  [[ -n "$ref" ]] || { echo "error: no FROM line in $IMAGE_DOCKERFILE" >&2; return 1; }
  [[ -r "$IMAGE_CA_BUNDLE" ]] || {
    echo "error: $IMAGE_CA_BUNDLE is missing (install ca-certificates): the stand-in base copies it" >&2
    return 1
  }
  # Callers may run with errexit off (a test's subshell on the left of ||): every step checks.
  dir="$(mktemp -d "$IMAGE_STATE/base.XXXXXX")" || return 1
  mkdir -p "$dir/etc/ssl/certs" && chmod 0755 "$dir" "$dir/etc" "$dir/etc/ssl" "$dir/etc/ssl/certs" || return 1
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$dir/etc/passwd" || return 1
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$dir/etc/group" || return 1
  install -m 0644 "$IMAGE_CA_BUNDLE" "$dir/etc/ssl/certs/ca-certificates.crt" || return 1
  chmod 0644 "$dir/etc/passwd" "$dir/etc/group" || return 1
  image_tar "$dir" | "${PODMAN[@]}" import --quiet \
    --change 'USER 65532' \
    --change "LABEL $IMAGE_STANDIN_LABEL=\"$IMAGE_STANDIN_NOTE ($ref)\"" \
    - "$ref" >/dev/null || { echo "error: podman import of the stand-in base failed" >&2; return 1; }
  rm -rf "$dir"
  echo "stand-in base: $ref ($IMAGE_STANDIN_NOTE)" >&2
}

# Builds TAG from the Dockerfile's runtime stage, unchanged, on the stand-in base; the builder
# stage is replaced by an image holding BIN where the runtime stage copies it from, after
# scripts/check-static.sh, as the real builder stage does. Extra arguments go to podman build.
image_standin_build() {
  local tag="$1" bin="$2" stage path dir
  shift 2
  read -r stage path _ <<<"$(image_builder_copy)"
  [[ -n "$stage" && -n "$path" ]] || {
    echo "error: the runtime stage of $IMAGE_DOCKERFILE has no 'COPY --from=<stage> <from> <to>' line" >&2
    return 1
  }
  [[ -f "$bin" ]] || { echo "error: no binary at '$bin'" >&2; return 1; }
  "$IMAGE_ROOT/scripts/check-static.sh" "$bin" || return 1
  image_standin_base || return 1
  dir="$(mktemp -d "$IMAGE_STATE/builder.XXXXXX")" || return 1
  install -D -m 0555 "$bin" "$dir/rootfs$path" || return 1
  # The binary's parent directories, "/" included, as a builder would leave them.
  find "$dir/rootfs" -type d -exec chmod 0755 {} + || return 1
  image_tar "$dir/rootfs" | "${PODMAN[@]}" import --quiet - "$IMAGE_STANDIN_BUILDER" >/dev/null \
    || { echo "error: podman import of the stand-in builder failed" >&2; return 1; }
  mkdir "$dir/context" || return 1
  {
    printf '# STAND-IN builder stage: %s holds the binary of scripts/build-release.sh at %s.\n' "$IMAGE_STANDIN_BUILDER" "$path"
    printf 'FROM %s AS %s\n' "$IMAGE_STANDIN_BUILDER" "$stage"
    image_runtime_stage
  } >"$dir/Containerfile" || return 1
  # --format docker: the OCI image format has no HEALTHCHECK, buildah would drop it.
  "${PODMAN[@]}" build --quiet --pull=never --format docker --file "$dir/Containerfile" \
    --tag "$tag" "$@" "$dir/context" >/dev/null || return 1
  cp "$dir/Containerfile" "$IMAGE_STATE/Containerfile.built" || return 1
  rm -rf "$dir"
}

# The Python of the project's .venv (PyYAML comes with yamllint: `make venv`).
image_python() {
  local py="$IMAGE_ROOT/.venv/bin/python3"
  [[ -x "$py" ]] || py="$(command -v python3)" || { echo "error: python3 is not installed" >&2; return 1; }
  "$py" -c 'import yaml' 2>/dev/null || {
    echo "error: $py has no PyYAML: run make venv (the .venv's yamllint brings it)" >&2
    return 1
  }
  printf '%s\n' "$py"
}

# Translates the one Deployment of the rendered objects in YAML (manifest-gen render, or kubectl
# kustomize) into `podman run` arguments, one per line, written to ARGS, as the kubelet would
# run its container; writes the Secret and ConfigMap volumes' files under SECRETS (with their
# modes, group fsGroup); publishes each container port on 127.0.0.1:HOST_PORT (the first one)
# and writes what the test checks to FACTS as KEY=VALUE lines. Fails, naming the field, on
# anything it does not know how to translate, rather than leaving it out.
image_pod_to_podman() {
  local py
  py="$(image_python)" || return 1
  "$py" - "$@" <<'PY'
import base64, math, os, re, sys
import yaml

rendered, volumes_dir, host_port, args_path, facts_path = sys.argv[1:6]

def die(msg):
    sys.stderr.write(f"error: translating the Deployment: {msg}\n")
    sys.exit(1)

docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
def objects(kind):
    return [d for d in docs if d.get("kind") == kind]
deployments = objects("Deployment")
if len(deployments) != 1:
    die(f"expected exactly one Deployment in {rendered}, found {len(deployments)}")
dep = deployments[0]
namespace = dep["metadata"].get("namespace", "default")
pod = dep["spec"]["template"]
spec = pod["spec"]
containers = spec.get("containers", [])
if len(containers) != 1:
    die(f"spec.template.spec.containers: expected one container, found {len(containers)}")
if spec.get("initContainers"):
    die("spec.template.spec.initContainers: not supported")
c = containers[0]
pod_name = f"{dep['metadata']['name']}-standin-pod"
node_name = "standin-node"

def named(kind, name):
    for d in objects(kind):
        if d["metadata"]["name"] == name:
            return d
    die(f"{kind} {name!r} is referenced but not among the rendered objects")

def secret_data(name):
    s = named("Secret", name)
    out = {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}
    out.update({k: v.encode() for k, v in (s.get("stringData") or {}).items()})
    return out

def configmap_data(name):
    return {k: str(v).encode() for k, v in (named("ConfigMap", name).get("data") or {}).items()}

SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "": 1}
def quantity_bytes(q, field):
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T|)", str(q))
    if not m:
        die(f"{field}: cannot read the quantity {q!r}")
    return int(float(m.group(1)) * SUFFIX[m.group(2)])

def quantity_cpu(q, field):
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m?)", str(q))
    if not m:
        die(f"{field}: cannot read the cpu quantity {q!r}")
    return float(m.group(1)) / (1000 if m.group(2) else 1)

limits = (c.get("resources") or {}).get("limits") or {}
requests = (c.get("resources") or {}).get("requests") or {}

args, facts = [], {}
def arg(*a):
    for x in a:
        if "\n" in str(x):
            die(f"a value with a newline cannot be passed on: {str(x)[:40]!r}")
        args.append(str(x))

# Environment, in the container's order; later entries win as in the kubelet.
env = {}
for ef in c.get("envFrom") or []:
    prefix = ef.get("prefix", "")
    if "configMapRef" in ef:
        data = configmap_data(ef["configMapRef"]["name"])
    elif "secretRef" in ef:
        data = secret_data(ef["secretRef"]["name"])
    else:
        die(f"envFrom: unknown source {sorted(ef)}")
    env.update({prefix + k: v.decode() for k, v in data.items()})
for e in c.get("env") or []:
    name = e["name"]
    if "value" in e:
        env[name] = str(e["value"])
        continue
    src = e.get("valueFrom") or {}
    if "configMapKeyRef" in src:
        ref = src["configMapKeyRef"]
        env[name] = configmap_data(ref["name"])[ref["key"]].decode()
    elif "secretKeyRef" in src:
        ref = src["secretKeyRef"]
        env[name] = secret_data(ref["name"])[ref["key"]].decode()
    elif "fieldRef" in src:
        path = src["fieldRef"]["fieldPath"]
        known = {"metadata.name": pod_name, "metadata.namespace": namespace, "spec.nodeName": node_name}
        if path not in known:
            die(f"env {name}: fieldRef {path} is not translated (known: {', '.join(known)})")
        env[name] = known[path]
    elif "resourceFieldRef" in src:
        res = src["resourceFieldRef"]["resource"]
        if res == "limits.memory" and "memory" in limits:
            env[name] = str(quantity_bytes(limits["memory"], "resources.limits.memory"))
        elif res == "limits.cpu" and "cpu" in limits:
            env[name] = str(math.ceil(quantity_cpu(limits["cpu"], "resources.limits.cpu")))
        else:
            die(f"env {name}: resourceFieldRef {res} is not translated")
    else:
        die(f"env {name}: unknown valueFrom {sorted(src)}")
for k, v in env.items():
    arg("--env", f"{k}={v}")

# Security context: the container's fields override the pod's.
psc = spec.get("securityContext") or {}
csc = c.get("securityContext") or {}
def sc(key):
    return csc.get(key, psc.get(key))
known_psc = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile"}
known_csc = {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
             "capabilities", "privileged", "seccompProfile"}
for where, got, known in (("spec.securityContext", psc, known_psc), ("containers[0].securityContext", csc, known_csc)):
    unknown = sorted(set(got) - known)
    if unknown:
        die(f"{where}: {', '.join(unknown)} not translated")
uid, gid = sc("runAsUser"), sc("runAsGroup")
if uid is None:
    die("runAsUser is not set: the image's USER would apply, and this translation checks the pod's")
if sc("runAsNonRoot") and uid == 0:
    die("runAsNonRoot with runAsUser 0: the kubelet would refuse to start the container")
arg("--user", f"{uid}:{gid}" if gid is not None else str(uid))
groups = ([psc["fsGroup"]] if "fsGroup" in psc else []) + list(psc.get("supplementalGroups") or [])
for g in groups:
    arg("--group-add", g)
if sc("privileged"):
    die("privileged: true is not translated")
if csc.get("readOnlyRootFilesystem"):
    # Podman adds writable tmpfs on /tmp, /var/tmp and /run to --read-only; the kubelet does not.
    arg("--read-only", "--read-only-tmpfs=false")
if csc.get("allowPrivilegeEscalation") is False:
    arg("--security-opt", "no-new-privileges")
caps = csc.get("capabilities") or {}
for cap in caps.get("drop") or []:
    arg("--cap-drop", cap)
for cap in caps.get("add") or []:
    arg("--cap-add", cap)
seccomp = (sc("seccompProfile") or {}).get("type")
if seccomp == "Unconfined":
    arg("--security-opt", "seccomp=unconfined")
elif seccomp not in (None, "RuntimeDefault"):
    die(f"seccompProfile {seccomp} is not translated")
# RuntimeDefault: podman's default profile is the runtime's default, nothing to add.

# Limits as the kubelet sets them (cgroup memory limit, CFS quota, shares from the request).
if "memory" in limits:
    facts["MEMORY_LIMIT_BYTES"] = quantity_bytes(limits["memory"], "resources.limits.memory")
    arg("--memory", facts["MEMORY_LIMIT_BYTES"])
if "cpu" in limits:
    cpus = quantity_cpu(limits["cpu"], "resources.limits.cpu")
    facts["CPU_QUOTA_MICROS"] = int(cpus * 100000)
    arg("--cpus", cpus)
if "cpu" in requests:
    arg("--cpu-shares", max(2, int(quantity_cpu(requests["cpu"], "resources.requests.cpu") * 1024)))

# Volumes: files written as the kubelet writes them (mode, group fsGroup), mounted at their paths.
vols = {v["name"]: v for v in spec.get("volumes") or []}
fs_group = psc.get("fsGroup")
for m in c.get("volumeMounts") or []:
    v = vols.get(m["name"]) or die(f"volumeMount {m['name']}: no such volume")
    if m.get("subPath"):
        die(f"volumeMount {m['name']}: subPath is not translated")
    if "secret" in v or "configMap" in v:
        src = v.get("secret") or v.get("configMap")
        data = secret_data(src["secretName"]) if "secret" in v else configmap_data(src["name"])
        mode = src.get("defaultMode", 0o644)
        items = src.get("items") or [{"key": k, "path": k} for k in data]
        vdir = os.path.join(volumes_dir, m["name"])
        os.makedirs(vdir, mode=0o755, exist_ok=True)
        os.chmod(vdir, 0o755)
        for it in items:
            path = os.path.join(vdir, it["path"])
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data[it["key"]])
            if fs_group is not None:
                os.chown(path, 0, fs_group)
            os.chmod(path, it.get("mode", mode))
        ro = ":ro" if m.get("readOnly") or "secret" in v or "configMap" in v else ""
        arg("--volume", f"{vdir}:{m['mountPath']}{ro}")
        if "secret" in v and "SECRET_MOUNT" not in facts:
            facts["SECRET_MOUNT"], facts["SECRET_MODE"] = m["mountPath"], format(mode, "04o")
    elif "emptyDir" in v:
        size = (v["emptyDir"] or {}).get("sizeLimit")
        opts = f"size={quantity_bytes(size, 'emptyDir.sizeLimit')}" if size else ""
        arg("--tmpfs", f"{m['mountPath']}:{opts}" if opts else m["mountPath"])
    else:
        die(f"volume {m['name']}: only secret, configMap and emptyDir volumes are translated")

# Ports: published on loopback only; the first one on HOST_PORT.
ports = c.get("ports") or []
if not ports:
    die("the container declares no ports")
for i, p in enumerate(ports):
    if p.get("protocol", "TCP") != "TCP":
        die(f"port {p.get('name')}: only TCP is translated")
    hp = host_port if i == 0 else ""
    arg("--publish", f"127.0.0.1:{hp}:{p['containerPort']}")
facts["CONTAINER_PORT"] = ports[0]["containerPort"]
named_ports = {p.get("name"): p["containerPort"] for p in ports}

# Probes: the test asks the same paths on the same container port (a named port resolved
# through the container's ports, as the kubelet does; the probe listener's is not the first).
for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
    probe = c.get(kind)
    if not probe:
        continue
    get = probe.get("httpGet") or die(f"{kind}: only httpGet probes are translated")
    port = named_ports.get(get["port"], get["port"])
    if port not in named_ports.values():
        die(f"{kind}: port {get['port']} is not one of the container's ports")
    facts[kind.upper().replace("PROBE", "_PATH")] = get["path"]
    facts[kind.upper().replace("PROBE", "_PORT")] = port

grace = spec.get("terminationGracePeriodSeconds", 30)
arg("--stop-timeout", grace)
arg("--hostname", pod_name)
pull = {"IfNotPresent": "missing", "Never": "never", "Always": "always"}.get(c.get("imagePullPolicy", "IfNotPresent"))
arg(f"--pull={pull}")
if c.get("command"):
    arg("--entrypoint", c["command"][0])
arg(c["image"])
args.extend(str(a) for a in (c.get("command") or [])[1:] + (c.get("args") or []))

facts.update({"GRACE_SECONDS": grace, "RUN_AS_USER": uid, "RUN_AS_GROUP": gid, "IMAGE": c["image"],
              "POD_NAME": pod_name, "NAMESPACE": namespace, "ENVIRONMENT": env.get("ENV", ""),
              "HOST_ENV": env.get("HOST", ""), "PORT_ENV": env.get("PORT", ""),
              "DRAIN_DELAY_SECONDS": env.get("DRAIN_DELAY_SECONDS", "")})
with open(args_path, "w") as f:
    f.write("\n".join(args) + "\n")
with open(facts_path, "w") as f:
    f.write("".join(f"{k}={v}\n" for k, v in facts.items()))
PY
}
