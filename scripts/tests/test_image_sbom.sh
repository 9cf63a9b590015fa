# shellcheck shell=bash
# The SBOM (scripts/image-sbom.sh, make sbom) against what cargo links into the binary.

test_image_sbom_is_cyclonedx_and_lists_every_crate_linked_into_the_binary() {
  exec </dev/null # cargo must not read run.sh's list of tests from stdin
  "${CARGO:-cargo}" cyclonedx --version >/dev/null 2>&1 \
    || skip "cargo-cyclonedx is not installed (make sbom installs it; make image-test runs make sbom, then this test)"
  local out="$TEST_TMP/sbom" sbom triple
  mkdir -p "$out"
  sbom="$(IMAGE_OUT_DIR="$out" "$PROJECT_ROOT/scripts/image-sbom.sh" 2>"$out/err")" || {
    cat "$out/err" >&2
    fail "scripts/image-sbom.sh failed"
  }
  assert_eq "$sbom" "$out/hello-k8s-$(sed -n 's/^IMAGE_TAG=//p' "$PROJECT_ROOT/image.env").cdx.json" "SBOM path"
  assert_eq "$(find "$out" -mindepth 1 | wc -l)" 2 "files left beside the SBOM (the SBOM and the captured stderr)"
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  # What the release build links: hello-k8s's normal dependencies on this target, name@version.
  (cd "$PROJECT_ROOT" && "${CARGO:-cargo}" tree --locked -p hello-k8s -e normal --target "$triple" \
    --prefix none --format '{p}') | sed 's/ (.*//; s/ v/@/' | sort -u >"$out/linked" \
    || fail "cargo tree failed"
  python3 - "$sbom" >"$out/listed" <<'PY' || fail "the SBOM is not CycloneDX 1.5 JSON describing hello-k8s"
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5", (bom["bomFormat"], bom["specVersion"])
top = bom["metadata"]["component"]
assert top["name"] == "hello-k8s", top["name"]
for c in bom["components"]:
    assert c.get("purl", "").startswith("pkg:cargo/"), c
names = {c["name"] + "@" + c["version"] for c in bom["components"]} | {top["name"] + "@" + top["version"]}
print("\n".join(sorted(names)))
PY
  local unlisted extra
  unlisted="$(comm -23 "$out/linked" "$out/listed" | tr '\n' ' ')"
  assert_eq "$unlisted" "" "crates linked into hello-k8s but missing from the SBOM"
  # cargo-cyclonedx reads cargo metadata's resolve, which can hold a few optional dependencies
  # this build does not enable: listed, not linked. Over-listing is reported, not failed.
  extra="$(comm -13 "$out/linked" "$out/listed" | xargs)"
  echo "NOTE: the SBOM lists all $(wc -l <"$out/linked") crates linked into hello-k8s${extra:+; it also lists, though cargo tree does not link them: $extra}"
}
