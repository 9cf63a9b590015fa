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
