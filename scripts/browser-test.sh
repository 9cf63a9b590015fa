#!/usr/bin/env bash
# The service's HTML page in a real browser (make browser-test; CI runs it): builds hello-k8s
# (the dev build make run runs), starts it on 127.0.0.1 and has headless Chromium load GET / through
# chromedriver (service/tests/browser/page_in_chromium.py): the greeting rendered, every request
# of the page to the service's own origin, no console error, a screenshot in target/browser/.
#
#   scripts/browser-test.sh
#
# Tools: chromium and chromedriver from Debian (make browser-install), selenium in the .venv
# (make venv), cargo. Where one is missing the test is skipped loudly (a SKIP line, and a line
# in SKIP_LOG when set); under CI=true that is a failure instead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"
CHROMIUM="${CHROMIUM:-chromium}"
CHROMEDRIVER="${CHROMEDRIVER:-chromedriver}"
VENV_PYTHON="${VENV_PYTHON:-$ROOT/.venv/bin/python}"
# Cargo's rule for where the build goes: CARGO_TARGET_DIR (relative to the workspace), or target/.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
OUT="${BROWSER_TEST_OUT:-$ROOT/target/browser}"

# shellcheck source=scripts/log.sh
source "$ROOT/scripts/log.sh"

# Skips the test loudly (SKIP line, SKIP_LOG entry), or fails under CI=true.
skip() {
  [[ "${CI:-}" != true ]] || die "the browser test cannot run under CI=true: $*"
  [[ -z "${SKIP_LOG:-}" ]] || printf 'browser-test: %s\n' "$*" >>"$SKIP_LOG"
  printf 'SKIP: browser-test: %s\n' "$*"
  exit 0
}

# Sets variable $1 to the absolute path of command $2, or skips naming how to install it ($3).
need() {
  local path
  path="$(command -v "$2" 2>/dev/null)" || skip "$2 not found (install: $3)"
  printf -v "$1" '%s' "$path"
}

# A free loopback port other than the ones given (scripts/free-port.sh: below the ephemeral range).
port_besides() {
  local port
  while :; do
    port="$("$ROOT/scripts/free-port.sh")"
    [[ " $* " == *" $port "* ]] || break
  done
  printf '%s\n' "$port"
}

main() {
  local chromium chromedriver cargo
  need chromium "$CHROMIUM" "make browser-install, or apt-get install chromium"
  need chromedriver "$CHROMEDRIVER" "make browser-install, or apt-get install chromium-driver"
  need cargo "$CARGO" "rustup, https://rustup.rs"
  [[ -x "$VENV_PYTHON" ]] || skip "$VENV_PYTHON not found (install: make venv)"
  "$VENV_PYTHON" -c 'import selenium' 2>/dev/null || skip "selenium is not in $VENV_PYTHON (install: make venv)"

  say "building hello-k8s (cargo build -p hello-k8s --no-default-features: the build make run runs)"
  "$cargo" build --locked --quiet -p hello-k8s --bin hello-k8s --no-default-features --manifest-path "$ROOT/Cargo.toml"
  local bin="$TARGET_DIR/debug/hello-k8s"
  [[ -x "$bin" ]] || die "cargo build succeeded but $bin is missing"

  local port probe_port driver_port
  port="$(port_besides)"
  probe_port="$(port_besides "$port")"
  driver_port="$(port_besides "$port" "$probe_port")"
  say "the page in headless Chromium ($("$chromium" --version 2>/dev/null))"
  "$VENV_PYTHON" "$ROOT/service/tests/browser/page_in_chromium.py" --bin "$bin" \
    --port "$port" --probe-port "$probe_port" --driver-port "$driver_port" \
    --chromium "$chromium" --chromedriver "$chromedriver" --out "$OUT"
}

main "$@"
