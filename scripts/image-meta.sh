#!/usr/bin/env bash
# Prints the values of the image's OCI labels that come from git, for `make build`, the deploy
# script and the image test (one derivation, so they cannot disagree):
#
#   scripts/image-meta.sh                 VERSION=..., REVISION=..., SOURCE=... (one per line)
#   scripts/image-meta.sh --build-args    the same as `--build-arg KEY=VALUE` words for a build
#
# VERSION  IMAGE_TAG from image.env (the release version the image is tagged with);
# REVISION the commit checked out (`git rev-parse HEAD`), with "-dirty" when tracked files
#          differ from it, so an image built from uncommitted code never claims a clean commit;
# SOURCE   the `origin` remote as an https URL without credentials, or, without a remote, the
#          workspace's `repository` (Cargo.toml [workspace.package]).
# The Dockerfile turns them into org.opencontainers.image.{version,revision,source}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The value of KEY in image.env.
image_env() {
  sed -n "s/^$1=//p" "$ROOT/image.env" | sed -n 1p
}

# The commit checked out, "-dirty" when tracked files differ from it.
revision() {
  local rev
  rev="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)" || {
    echo "error: $ROOT is not a git checkout with a commit: the image's revision label comes from git" >&2
    return 1
  }
  if ! git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null; then
    rev="$rev-dirty"
  fi
  printf '%s\n' "$rev"
}

# The origin remote as an https URL without user or token, else the workspace's repository.
source_url() {
  local url
  url="$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)"
  if [[ -n "$url" ]]; then
    # git@host:owner/repo(.git) and ssh://git@host/owner/repo -> https://host/owner/repo
    url="$(sed -E -e 's#^git@([^:]+):#https://\1/#' -e 's#^ssh://([^@/]+@)?#https://#' \
      -e 's#^(https?://)[^@/]+@#\1#' -e 's#\.git$##' <<<"$url")"
    printf '%s\n' "$url"
    return 0
  fi
  url="$(sed -n 's/^repository *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml" | sed -n 1p)"
  [[ -n "$url" ]] || {
    echo "error: no git remote 'origin' and no repository = \"...\" in $ROOT/Cargo.toml: the image's source label has no value" >&2
    return 1
  }
  printf '%s\n' "$url"
}

main() {
  local mode="${1:-}" version rev src
  case "$mode" in
    "" | --build-args) ;;
    -h | --help)
      awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"
      return 0
      ;;
    *)
      echo "error: unexpected argument '$mode' (expected nothing or --build-args; see --help)" >&2
      return 2
      ;;
  esac
  version="$(image_env IMAGE_TAG)"
  [[ -n "$version" ]] || {
    echo "error: no IMAGE_TAG=... in $ROOT/image.env" >&2
    return 1
  }
  rev="$(revision)"
  src="$(source_url)"
  if [[ "$mode" == --build-args ]]; then
    printf -- '--build-arg VERSION=%s --build-arg REVISION=%s --build-arg SOURCE=%s\n' "$version" "$rev" "$src"
  else
    printf 'VERSION=%s\nREVISION=%s\nSOURCE=%s\n' "$version" "$rev" "$src"
  fi
}

main "$@"
