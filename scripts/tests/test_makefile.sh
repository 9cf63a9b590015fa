# shellcheck shell=bash
# Tests of the Makefile's self-description: `make help` is the default goal and lists every
# target, and README's target table names every one of them (so neither can drift).

# The targets `make help` lists, one per line.
help_targets() {
  make --no-print-directory -C "$PROJECT_ROOT" help | awk '{print $1}'
}

test_make_without_a_goal_prints_the_help() {
  local default
  default="$(make --no-print-directory -C "$PROJECT_ROOT")"
  assert_eq "$default" "$(make --no-print-directory -C "$PROJECT_ROOT" help)" "make = make help"
}

test_every_phony_target_has_a_help_line() {
  local phony missing=()
  phony="$(sed -n 's/^\.PHONY: *//p' "$PROJECT_ROOT/Makefile" | tr ' ' '\n' | sed '/^$/d' | sort -u)"
  while IFS= read -r target; do
    help_targets | grep -qx -- "$target" || missing+=("$target")
  done <<<"$phony"
  assert_eq "${missing[*]:-}" "" "targets without a ## help line"
}

test_readme_target_table_names_every_target() {
  local missing=()
  while IFS= read -r target; do
    grep -qE "^\| \`$target\`( |/)|^\| \`[a-z-]+\` / \`$target\` " "$PROJECT_ROOT/README.md" \
      || missing+=("$target")
  done < <(help_targets)
  assert_eq "${missing[*]:-}" "" "targets missing from README's target table"
}

# Copies the Makefile and what it reads (image.env, mk/, the overlays' kustomization.yaml and
# secret.env.example) into a throw-away directory; sets MK_DIR.
makefile_copy() {
  local dir
  MK_DIR="$(mktemp -d "$TEST_TMP/make.XXXXXX")"
  cp "$PROJECT_ROOT/Makefile" "$PROJECT_ROOT/image.env" "$MK_DIR/"
  cp -r "$PROJECT_ROOT/mk" "$MK_DIR/"
  for dir in "$PROJECT_ROOT"/k8s/overlays/*/; do
    mkdir -p "$MK_DIR/k8s/overlays/$(basename "$dir")"
    cp "$dir"kustomization.yaml "$MK_DIR/k8s/overlays/$(basename "$dir")/"
    if [[ -f "$dir"secret.env.example ]]; then
      cp "$dir"secret.env.example "$MK_DIR/k8s/overlays/$(basename "$dir")/"
    fi
  done
}

# `make clean` removes the static binary scripts/build-release.sh leaves in
# target/<triple>/release/, so a build after it really rebuilds (real cargo, on a tiny workspace
# with the project's package names).
test_make_clean_removes_the_static_release_binary() {
  makefile_copy
  local pkg triple
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  printf '[workspace]\nresolver = "3"\nmembers = ["hello-k8s", "manifest-gen", "contract", "e2e"]\n' >"$MK_DIR/Cargo.toml"
  for pkg in hello-k8s manifest-gen contract e2e; do
    cargo new --quiet --vcs none "$MK_DIR/$pkg" 2>/dev/null || fail "cargo new $pkg failed"
  done
  (
    unset CARGO_TARGET_DIR
    cd "$MK_DIR"
    cargo build --quiet --offline --release --target "$triple" -p hello-k8s
    cargo build --quiet --offline -p manifest-gen
  ) || fail "building the tiny workspace failed"
  [[ -x "$MK_DIR/target/$triple/release/hello-k8s" ]] || fail "the static binary was not built"
  mkdir -p "$MK_DIR/.venv"
  (unset CARGO_TARGET_DIR && make --no-print-directory -C "$MK_DIR" clean >"$MK_DIR/clean.out" 2>&1) || {
    cat "$MK_DIR/clean.out" >&2
    fail "make clean failed"
  }
  [[ ! -e "$MK_DIR/target/$triple/release/hello-k8s" ]] ||
    fail "make clean kept target/$triple/release/hello-k8s"
  [[ ! -e "$MK_DIR/target/debug/manifest-gen" ]] || fail "make clean kept target/debug/manifest-gen"
  [[ ! -e "$MK_DIR/.venv" ]] || fail "make clean kept .venv"
}
