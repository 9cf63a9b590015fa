# shellcheck shell=bash
# scripts/image-meta.sh (the image's version, revision and source labels) in a throw-away repo.

# A git repository holding image-meta.sh, image.env and a Cargo.toml; sets META_REPO.
image_meta_repo() {
  META_REPO="$(mktemp -d "$TEST_TMP/meta.XXXXXX")" || fail "no temporary directory"
  mkdir -p "$META_REPO/scripts"
  cp "$PROJECT_ROOT/scripts/image-meta.sh" "$META_REPO/scripts/"
  printf 'IMAGE_NAME=hello-k8s\nIMAGE_TAG=9.8.7\n' >"$META_REPO/image.env"
  printf '[workspace.package]\nrepository = "https://example.invalid/from-cargo"\n' >"$META_REPO/Cargo.toml"
  git -C "$META_REPO" init -q || fail "git init failed"
  git -C "$META_REPO" add -A || fail "git add failed"
  git -C "$META_REPO" -c user.name=t -c user.email=t@example.invalid commit -q -m init || fail "git commit failed"
}

test_image_meta_labels_come_from_git_and_never_carry_credentials() {
  image_meta_repo
  local head out
  head="$(git -C "$META_REPO" rev-parse HEAD)"
  out="$("$META_REPO/scripts/image-meta.sh")" || fail "image-meta.sh failed"
  assert_eq "$out" "VERSION=9.8.7
REVISION=$head
SOURCE=https://example.invalid/from-cargo" "labels of a clean checkout without a remote"
  # An uncommitted change to a tracked file marks the revision dirty.
  echo '# edited' >>"$META_REPO/image.env"
  assert_eq "$("$META_REPO/scripts/image-meta.sh" | sed -n 's/^REVISION=//p')" "$head-dirty" "revision with a change"
  # A remote wins over Cargo.toml, as https, with its user and token removed.
  git -C "$META_REPO" remote add origin "https://user:s3cr3t-token@git.example.invalid/team/hello.git"
  out="$("$META_REPO/scripts/image-meta.sh" --build-args)" || fail "--build-args failed"
  assert_eq "$out" "--build-arg VERSION=9.8.7 --build-arg REVISION=$head-dirty --build-arg SOURCE=https://git.example.invalid/team/hello" "--build-args with an https remote"
  git -C "$META_REPO" remote set-url origin "git@git.example.invalid:team/hello.git"
  assert_eq "$("$META_REPO/scripts/image-meta.sh" | sed -n 's/^SOURCE=//p')" "https://git.example.invalid/team/hello" "source from an ssh remote"
}
