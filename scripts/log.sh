# Shared progress output for the scripts (sourced, not run): everything goes to stderr, with
# colour only when stderr is a terminal.
# shellcheck shell=bash

if [[ -t 2 ]]; then
  C_BLUE=$'\033[1;34m' C_GREEN=$'\033[32m' C_YELLOW=$'\033[33m' C_RED=$'\033[31m' C_OFF=$'\033[0m'
else
  C_BLUE="" C_GREEN="" C_YELLOW="" C_RED="" C_OFF=""
fi

# A heading.
say() {
  printf '%s==> %s%s\n' "$C_BLUE" "$*" "$C_OFF" >&2
}

# A success line.
ok() {
  printf '%s✓ %s%s\n' "$C_GREEN" "$*" "$C_OFF" >&2
}

# An informational line.
info() {
  printf '  %s\n' "$*" >&2
}

# A warning line.
warn() {
  printf '%s! %s%s\n' "$C_YELLOW" "$*" "$C_OFF" >&2
}

# Prints an error and exits non-zero.
die() {
  printf '%serror: %s%s\n' "$C_RED" "$*" "$C_OFF" >&2
  exit 1
}
