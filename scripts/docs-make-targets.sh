#!/usr/bin/env bash
# Fills or checks the generated block make-targets: the table of `make help` (target, what it
# does), so the documented targets cannot drift from the Makefile.
#
#   scripts/docs-make-targets.sh --write | --check [--root DIR]      (make docs, make docs-check)
#
# The block is everything between `<!-- BEGIN generated: make-targets (make docs) -->` and
# `<!-- END generated: make-targets -->` in README.md or docs/*.md under DIR (default: the
# repository); at least one such block must exist. --write rewrites the files whose block
# differs (atomically, keeping their mode); --check prints the difference and exits 1.
set -euo pipefail

NAME="make-targets"
BEGIN="<!-- BEGIN generated: $NAME (make docs) -->"
END="<!-- END generated: $NAME -->"
WORK=""

# shellcheck source=scripts/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"

# Prints the usage text.
usage() {
  cat <<EOF
usage: scripts/docs-make-targets.sh --write | --check [--root DIR]

Fills (--write) or checks (--check) the block "$NAME" of README.md and docs/*.md under DIR
(default: this repository) with the table of \`make help\`.
EOF
}

# The block's text: a Markdown table of `make -C ROOT help`, then the environments line.
table() {
  local root="$1" help
  help="$(make --no-print-directory -C "$root" help </dev/null)" || die "make -C $root help failed"
  printf '| Target | What it does |\n|---|---|\n'
  printf '%s\n' "$help" | sed 's/\x1b\[[0-9;]*m//g' | awk '
    /^  [^ ]/ {
      target = $1
      text = $0
      sub(/^  [^ ]+ +/, "", text)
      gsub(/&/, "\\&amp;", text)
      gsub(/</, "\\&lt;", text)
      gsub(/>/, "\\&gt;", text)
      gsub(/\|/, "\\|", text)
      printf "| `%s` | %s |\n", target, text
    }'
  printf '%s\n' "$help" | awk '/^<env> is an overlay in k8s\/overlays: / {
      sub(/^<env> is an overlay in k8s\/overlays: /, "")
      gsub(/ /, "`, `")
      printf "\n`<env>` is an overlay directory in `k8s/overlays`: `%s`.\n", $0
    }'
}

# Prints FILE with every make-targets block's content replaced by the file named $2.
fill() {
  awk -v begin="$BEGIN" -v end="$END" -v table="$2" -v file="$1" '
    $0 == begin {
      if (open) { printf "%s:%d: block %s begins inside another\n", file, NR, "'"$NAME"'" > "/dev/stderr"; exit 3 }
      print; open = 1
      while ((getline line < table) > 0) print line
      close(table)
      next
    }
    $0 == end {
      if (!open) { printf "%s:%d: END of block %s without a BEGIN\n", file, NR, "'"$NAME"'" > "/dev/stderr"; exit 3 }
      open = 0
    }
    !open { print }
    END { if (open) { printf "%s: block %s has no END marker\n", file, "'"$NAME"'" > "/dev/stderr"; exit 3 } }
  ' "$1"
}

main() {
  local mode="" root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --write | --check) mode="${1#--}" ;;
      --root)
        [[ $# -ge 2 ]] || die "--root needs a directory"
        root="$2"
        shift
        ;;
      -h | --help)
        usage
        return 0
        ;;
      *)
        printf 'error: unknown argument %s\n\n' "$1" >&2
        usage >&2
        exit 2
        ;;
    esac
    shift
  done
  [[ -n "$mode" ]] || {
    printf 'error: --write or --check is needed\n\n' >&2
    usage >&2
    exit 2
  }
  [[ -d "$root" ]] || die "--root $root is not a directory"

  local file filled blocks=0 stale=0
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  table "$root" >"$WORK/table"
  for file in "$root/README.md" "$root"/docs/*.md; do
    if [[ ! -f "$file" ]] || ! grep -qxF -- "$BEGIN" "$file"; then
      continue
    fi
    blocks=$((blocks + 1))
    filled="$WORK/filled"
    fill "$file" "$WORK/table" >"$filled" || die "$file: malformed $NAME block (see above)"
    cmp -s "$file" "$filled" && continue
    stale=$((stale + 1))
    if [[ "$mode" == check ]]; then
      diff -u --label "$file (committed)" --label "$file (make help)" "$file" "$filled" >&2 || true
      printf '%serror: %s: block %s is not current; run make docs%s\n' "$C_RED" "$file" "$NAME" "$C_OFF" >&2
    else
      local tmp
      tmp="$(mktemp "$file.XXXXXX")"
      cat "$filled" >"$tmp"
      chmod --reference="$file" "$tmp"
      mv -f "$tmp" "$file"
      ok "$file: block $NAME rewritten"
    fi
  done
  [[ $blocks -gt 0 ]] || die "no $NAME block in README.md or docs/*.md under $root (expected a line '$BEGIN')"
  if [[ "$mode" == check && $stale -gt 0 ]]; then
    exit 1
  fi
  [[ $stale -gt 0 ]] || ok "$blocks $NAME block(s) current"
}

main "$@"
