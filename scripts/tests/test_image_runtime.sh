# shellcheck shell=bash
# The image's runtime conditions without Docker: the binary scripts/build-release.sh produces
# (the Dockerfile runs the same script) must be static and must serve as UID/GID 65532, without
# capabilities, from an empty, read-only root holding nothing but itself, as in
# distroless/static with the pod's restricted securityContext (readOnlyRootFilesystem).
#
# Enforcement, strongest first: a private mount namespace (unshare -m) with a tmpfs root that
# holds only the binary, remounted read-only, entered with chroot --userspec=65532:65532 under
# setpriv (no_new_privs; the switch to 65532 clears every capability). Without mount namespaces it falls back to a plain
# chroot into a root-owned 0555 directory (unwritable for 65532, but not a read-only mount) and
# says so. It needs root for chroot; without root it skips loudly, and fails when CI=true.

# Prints a free loopback TCP port.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# HTTP status of a loopback URL ("000" when nothing answers).
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

# Skips (or fails under CI=true) with a message.
skip_or_fail() {
  if [[ "${CI:-}" == true ]]; then
    fail "cannot run the image runtime test in CI: $*"
  fi
  echo "SKIP: image runtime test not run: $*" >&2
  echo "SKIP: image runtime test not run: $*"
  exit 0
}

test_release_binary_is_static_and_serves_as_65532_from_an_empty_readonly_root() {
  local bin dir root port pidfile launcher pid mode="" setpriv chroot_bin status
  [[ $EUID -eq 0 ]] || skip_or_fail "chroot needs root (run make test-scripts as root, or in a rootful container)"
  setpriv="$(command -v setpriv)" || skip_or_fail "setpriv (util-linux) is not installed"
  chroot_bin="$(command -v chroot)" || skip_or_fail "chroot (coreutils) is not installed"

  if [[ -n "${HELLO_K8S_BIN:-}" ]]; then
    bin="$HELLO_K8S_BIN"
    echo "NOTE: testing HELLO_K8S_BIN=$bin instead of a fresh scripts/build-release.sh build"
  else
    bin="$("$PROJECT_ROOT/scripts/build-release.sh")"
  fi
  "$PROJECT_ROOT/scripts/check-static.sh" "$bin"
  if command -v ldd >/dev/null 2>&1; then
    # glibc's ldd says "statically linked" (static-pie) or "not a dynamic executable".
    ldd "$bin" 2>&1 | grep -qE 'statically linked|not a dynamic executable' || fail "ldd sees dependencies: $(ldd "$bin" 2>&1)"
  fi

  dir="$(mktemp -d "$TEST_TMP/runtime.XXXXXX")"
  root="$dir/root"
  pidfile="$dir/pid"
  mkdir -m 0755 "$root"
  port="$(free_port)"

  if unshare --mount --propagation private --fork true 2>/dev/null; then
    mode=readonly-tmpfs
    # The tmpfs exists only in the new mount namespace; it disappears with the server.
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare --mount --propagation private --fork -- bash -c '
      set -euo pipefail
      root="$1" bin="$2" pidfile="$3" port="$4" setpriv="$5" chroot_bin="$6"
      mount -t tmpfs -o size=64m,mode=0755,nosuid,nodev tmpfs "$root"
      install -m 0555 "$bin" "$root/hello-k8s"
      mount -o remount,ro,nosuid,nodev "$root"
      echo "$$" >"$pidfile"
      exec env -i HOST=127.0.0.1 PORT="$port" DRAIN_DELAY_SECONDS=0 \
        "$setpriv" --no-new-privs \
        "$chroot_bin" --userspec=65532:65532 "$root" /hello-k8s
    ' _ "$root" "$bin" "$pidfile" "$port" "$setpriv" "$chroot_bin" >"$dir/server.log" 2>&1 &
  else
    mode=chroot-0555
    echo "NOTE: mount namespaces refused: plain chroot into a root-owned 0555 directory (not a read-only mount)"
    install -m 0555 "$bin" "$root/hello-k8s"
    chmod 0555 "$root"
    # shellcheck disable=SC2016 # expanded by the inner bash
    bash -c '
      echo "$$" >"$1"
      exec env -i HOST=127.0.0.1 PORT="$2" DRAIN_DELAY_SECONDS=0 \
        "$3" --no-new-privs "$4" --userspec=65532:65532 "$5" /hello-k8s
    ' _ "$pidfile" "$port" "$setpriv" "$chroot_bin" "$root" >"$dir/server.log" 2>&1 &
  fi
  launcher=$!
  # shellcheck disable=SC2064 # expand now: the test's locals are gone when the trap runs
  trap "kill -KILL $launcher 2>/dev/null || true" EXIT

  # Bounded wait for the server (not a timing assertion: 20 s is only a ceiling).
  local tries=0
  status="$(http_status "http://127.0.0.1:$port/healthz")"
  while [[ "$status" != 200 ]] && ((tries < 200)) && kill -0 "$launcher" 2>/dev/null; do
    sleep 0.1
    tries=$((tries + 1))
    status="$(http_status "http://127.0.0.1:$port/healthz")"
  done
  if [[ "$status" != 200 ]]; then
    cat "$dir/server.log" >&2
    fail "GET /healthz answered $status, expected 200 (mode $mode; server log above)"
  fi
  pid="$(cat "$pidfile")"

  # What the kernel says about the serving process.
  grep -qE '^Uid:\s+65532\s+65532\s+65532\s+65532$' "/proc/$pid/status" || fail "server is not UID 65532: $(grep '^Uid' "/proc/$pid/status")"
  grep -qE '^Gid:\s+65532\s+65532\s+65532\s+65532$' "/proc/$pid/status" || fail "server is not GID 65532: $(grep '^Gid' "/proc/$pid/status")"
  grep -qE '^Groups:\s*(65532)?\s*$' "/proc/$pid/status" || fail "server has supplementary groups: $(grep '^Groups' "/proc/$pid/status")"
  grep -qE '^CapEff:\s+0+$' "/proc/$pid/status" || fail "server has effective capabilities: $(grep '^CapEff' "/proc/$pid/status")"
  grep -qE '^CapPrm:\s+0+$' "/proc/$pid/status" || fail "server has permitted capabilities: $(grep '^CapPrm' "/proc/$pid/status")"
  grep -qE '^NoNewPrivs:\s+1$' "/proc/$pid/status" || fail "no_new_privs is not set"
  assert_eq "$(readlink "/proc/$pid/root")" "$root" "the server's root directory"
  assert_eq "$(curl -s --max-time 2 "http://127.0.0.1:$port/")" "Hello World from Kubernetes!" "GET / body"
  assert_eq "$(http_status "http://127.0.0.1:$port/readyz")" 200 "GET /readyz"

  # The healthcheck subcommand, from inside the same root, as the same user.
  local hc=(env -i HOST=127.0.0.1 PORT="$port" "$setpriv" --no-new-privs "$chroot_bin" --userspec=65532:65532 "$root" /hello-k8s healthcheck)
  local other_port
  other_port="$(free_port)"
  if [[ "$mode" == readonly-tmpfs ]]; then
    assert_eq "$(nsenter --target "$pid" --mount -- ls -A "$root")" "hello-k8s" "content of the root"
    if nsenter --target "$pid" --mount -- touch "$root/written-by-root" 2>"$dir/touch.err"; then
      fail "the root is writable (even root could create a file in it)"
    fi
    grep -q 'Read-only file system' "$dir/touch.err" || fail "write refused for another reason: $(cat "$dir/touch.err")"
    nsenter --target "$pid" --mount -- "${hc[@]}" || fail "hello-k8s healthcheck exited $? against a healthy server"
    hc[3]="PORT=$other_port"
    if nsenter --target "$pid" --mount -- "${hc[@]}" 2>/dev/null; then
      fail "hello-k8s healthcheck exited 0 with nothing listening on port $other_port"
    fi
  else
    assert_eq "$(ls -A "$root")" "hello-k8s" "content of the root"
    "${hc[@]}" || fail "hello-k8s healthcheck exited $? against a healthy server"
    hc[3]="PORT=$other_port"
    if "${hc[@]}" 2>/dev/null; then
      fail "hello-k8s healthcheck exited 0 with nothing listening on port $other_port"
    fi
  fi

  # SIGTERM, as the kubelet sends it: the server drains (DRAIN_DELAY_SECONDS=0) and exits 0.
  kill -TERM "$pid"
  tries=0
  while kill -0 "$launcher" 2>/dev/null && ((tries < 300)); do
    sleep 0.1
    tries=$((tries + 1))
  done
  kill -0 "$launcher" 2>/dev/null && fail "the server was still running 30 s after SIGTERM"
  local rc=0
  wait "$launcher" || rc=$?
  assert_eq "$rc" 0 "exit code after SIGTERM"
  echo "NOTE: enforced: static binary, UID/GID 65532, no capabilities, no_new_privs, root = only the binary ($mode)"
}
