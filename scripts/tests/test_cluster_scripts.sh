# shellcheck shell=bash
# Tests of the cluster harness's input and clean-up (scripts/cluster/up.sh, down.sh): down.sh
# removes only what up.sh made and marked as its own, whatever a variable names, and up.sh
# refuses a bad node count or Kubernetes minor before it makes anything. Each test works in
# directories of its own (CLUSTER_STATE and CLUSTER_RUN always set), so a cluster running beside
# it is never touched.
# down.sh needs root (it removes namespaces, mounts and cgroups): the tests skip without it.

CLUSTER_SCRIPTS="$PROJECT_ROOT/scripts/cluster"

# Runs a cluster script with the test's directories; output in $OUT, exit code in RC.
# shellcheck disable=SC2034 # OUT and RC are read by the tests
cluster_script() {
  CLUSTER_RUNS=$((${CLUSTER_RUNS:-0} + 1))
  OUT="$TEST_TMP/out.$CLUSTER_RUNS"
  RC=0
  env CLUSTER_STATE="${STATE_DIR:?}" CLUSTER_RUN="${RUN_DIR:?}" "$@" >"$OUT" 2>&1 </dev/null || RC=$?
}

# A directory marked as up.sh marks its own.
mark_as_cluster() {
  mkdir -p "$1"
  (
    # shellcheck source=/dev/null
    source "$CLUSTER_SCRIPTS/common.sh"
    printf '%s\n' "$MARKER_TEXT" >"$1/$MARKER"
  )
}

needs_root() {
  [[ "$(id -u)" == 0 ]] || skip "down.sh needs root"
}

# The case found by hand: a user's directory named as CLUSTER_STATE survives, with its file.
test_cluster_down_refuses_a_state_directory_it_did_not_make() {
  needs_root
  STATE_DIR="$TEST_TMP/mine" RUN_DIR="$TEST_TMP/other"
  mkdir -p "$STATE_DIR" "$RUN_DIR"
  echo "a user's file" >"$STATE_DIR/notes.txt"
  cluster_script "$CLUSTER_SCRIPTS/down.sh"
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "CLUSTER_STATE=$STATE_DIR exists but make cluster did not make it"
  assert_file_lacks "$OUT" "nothing of it is left"
  assert_eq "$(cat "$STATE_DIR/notes.txt")" "a user's file" "the user's file"
  [[ -d "$RUN_DIR" ]] || fail "the run directory was removed"
}

# A foreign CLUSTER_RUN: refused before any process it names is stopped.
test_cluster_down_stops_no_process_a_foreign_run_directory_names() {
  needs_root
  STATE_DIR="$TEST_TMP/state" RUN_DIR="$TEST_TMP/run"
  mark_as_cluster "$STATE_DIR"
  mkdir -p "$RUN_DIR/pids"
  sleep 300 &
  local pid=$!
  printf '%s %s\n' "$pid" "$(cut -d' ' -f22 "/proc/$pid/stat")" >"$RUN_DIR/pids/etcd.pid"
  cluster_script "$CLUSTER_SCRIPTS/down.sh"
  local alive=true
  kill -0 "$pid" 2>/dev/null || alive=false
  kill "$pid" 2>/dev/null || true
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "CLUSTER_RUN=$RUN_DIR exists but make cluster did not make it"
  assert_eq "$alive" true "the process named by the foreign pid file is still running"
  [[ -d "$STATE_DIR" ]] || fail "the state directory was removed although the run directory was refused"
}

# `<symlink>/` emptied the directory the link points to: a link is refused, its target kept.
test_cluster_down_refuses_a_symbolic_link_with_a_trailing_slash() {
  needs_root
  mkdir -p "$TEST_TMP/target"
  echo keep >"$TEST_TMP/target/file"
  ln -s "$TEST_TMP/target" "$TEST_TMP/link"
  STATE_DIR="$TEST_TMP/link/" RUN_DIR="$TEST_TMP/run"
  cluster_script "$CLUSTER_SCRIPTS/down.sh"
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "CLUSTER_STATE=$TEST_TMP/link/ is a symbolic link"
  assert_eq "$(cat "$TEST_TMP/target/file")" keep "the link's target"
}

# A relative value is refused, not resolved against the caller's directory.
test_cluster_down_refuses_a_relative_path() {
  needs_root
  mkdir -p "$TEST_TMP/cwd/state"
  echo keep >"$TEST_TMP/cwd/state/file"
  STATE_DIR="state" RUN_DIR="$TEST_TMP/run"
  (cd "$TEST_TMP/cwd" && cluster_script "$CLUSTER_SCRIPTS/down.sh" && printf '%s %s\n' "$RC" "$OUT" >"$TEST_TMP/result")
  read -r RC OUT <"$TEST_TMP/result"
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "CLUSTER_STATE=state: expected an absolute path"
  assert_eq "$(cat "$TEST_TMP/cwd/state/file")" keep "the directory under the caller's directory"
}

# CLUSTER_KEEP_LOGS inside CLUSTER_STATE would be deleted with it: refused before anything.
test_cluster_down_refuses_keeping_logs_inside_the_state_it_deletes() {
  needs_root
  STATE_DIR="$TEST_TMP/state" RUN_DIR="$TEST_TMP/run"
  mark_as_cluster "$STATE_DIR"
  mkdir -p "$STATE_DIR/logs"
  echo line >"$STATE_DIR/logs/etcd.log"
  cluster_script env CLUSTER_KEEP_LOGS="$STATE_DIR/kept" "$CLUSTER_SCRIPTS/down.sh"
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "CLUSTER_KEEP_LOGS=$STATE_DIR/kept is inside $STATE_DIR, which make cluster-down deletes"
  assert_file_lacks "$OUT" "cluster logs kept"
  [[ -f "$STATE_DIR/logs/etcd.log" ]] || fail "the logs were deleted"
}

# What up.sh marked is removed, the logs kept where asked; a mount under a look-alike path (the
# run directory's name read as a pattern: r.n matches rXn) is not the cluster's and stays.
test_cluster_down_removes_what_up_marked_and_no_look_alike() {
  needs_root
  STATE_DIR="$TEST_TMP/state" RUN_DIR="$TEST_TMP/r.n"
  mark_as_cluster "$STATE_DIR"
  mark_as_cluster "$RUN_DIR"
  mkdir -p "$STATE_DIR/logs" "$TEST_TMP/rXn/mnt"
  echo line >"$STATE_DIR/logs/etcd.log"
  mount -t tmpfs kco-test "$TEST_TMP/rXn/mnt"
  cluster_script env CLUSTER_KEEP_LOGS="$TEST_TMP/kept" "$CLUSTER_SCRIPTS/down.sh"
  local mounted=false
  grep -q " $TEST_TMP/rXn/mnt " /proc/self/mountinfo && mounted=true
  umount "$TEST_TMP/rXn/mnt" 2>/dev/null || true
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "nothing of it is left"
  [[ ! -e "$STATE_DIR" && ! -e "$RUN_DIR" ]] || fail "the marked directories are still there"
  assert_eq "$(cat "$TEST_TMP/kept/etcd.log")" line "the kept log"
  assert_eq "$mounted" true "the look-alike's mount"
}

# NODES=0, NODES=abc and more nodes than the machine holds: refused before anything is made.
test_cluster_up_refuses_a_bad_node_count_before_making_anything() {
  STATE_DIR="$TEST_TMP/state" RUN_DIR="$TEST_TMP/run"
  cluster_script env NODES=0 "$CLUSTER_SCRIPTS/up.sh"
  assert_ne "$RC" 0 "exit code of NODES=0"
  assert_file_contains "$OUT" "NODES=0: expected a whole number of nodes, 1 or more (default 3)"
  cluster_script env NODES=abc "$CLUSTER_SCRIPTS/up.sh"
  assert_ne "$RC" 0 "exit code of NODES=abc"
  assert_file_contains "$OUT" "NODES=abc: expected a whole number of nodes, 1 or more (default 3)"
  cluster_script env NODES=200 "$CLUSTER_SCRIPTS/up.sh"
  assert_ne "$RC" 0 "exit code of NODES=200"
  assert_file_contains "$OUT" "NODES=200: this machine holds at most"
  [[ ! -e "$STATE_DIR" && ! -e "$RUN_DIR" ]] || fail "up.sh made its directories for a refused node count"
  assert_file_lacks "$OUT" "Starting"
}

# An unknown KUBE_MINOR: refused by make cluster's start and by the build, naming the supported
# minors (cluster/kube's modules), before anything is made or built.
test_cluster_up_and_build_refuse_an_unknown_kubernetes_minor() {
  STATE_DIR="$TEST_TMP/state" RUN_DIR="$TEST_TMP/run"
  local supported="" module
  for module in "$PROJECT_ROOT"/cluster/kube/*/go.mod; do
    module="${module%/go.mod}"
    supported+="${supported:+ }${module##*/}"
  done
  [[ " $supported " == *" 1.34 "* && " $supported " == *" 1.37 "* ]] || fail "cluster/kube holds the minors '$supported'"
  for minor in 1.99 1.3 1.34.4 v1.34 ../kube "1.34 1.37"; do
    cluster_script env KUBE_MINOR="$minor" "$CLUSTER_SCRIPTS/up.sh"
    assert_ne "$RC" 0 "exit code of up.sh with KUBE_MINOR=$minor"
    assert_file_contains "$OUT" "KUBE_MINOR=$minor: expected one of the supported Kubernetes minors: $supported (default 1.34"
    cluster_script env KUBE_MINOR="$minor" CLUSTER_CACHE="$TEST_TMP/cache" "$CLUSTER_SCRIPTS/build.sh"
    assert_ne "$RC" 0 "exit code of build.sh with KUBE_MINOR=$minor"
    assert_file_contains "$OUT" "KUBE_MINOR=$minor: expected one of the supported Kubernetes minors: $supported"
  done
  [[ ! -e "$STATE_DIR" && ! -e "$RUN_DIR" && ! -e "$TEST_TMP/cache" ]] || fail "a refused KUBE_MINOR made a directory"
  assert_file_lacks "$OUT" "Starting"
}
