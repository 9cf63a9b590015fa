//! `write` reproduces the committed tree; `check` notices when it drifts.

use crate::helpers::*;

#[test]
fn write_reproduces_the_committed_tree() {
    let tmp = temp_dir();
    let root = tmp.path().join("k8s");
    manifest_gen(&["write", "--root", root.to_str().unwrap()]).success();
    let written = read_tree(&root);
    // Overlays a user adds by hand (e.g. k8s/overlays/demo from --out-dir) are not ours.
    let committed = generated_part(&read_tree(&committed_root()), &written);
    assert_trees_eq(
        &committed,
        &written,
        "k8s/ (committed)",
        "manifest-gen write",
    );
}

#[test]
fn written_files_take_the_mode_a_plain_write_gives_under_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    for (umask, mode) in [("022", 0o644), ("027", 0o640)] {
        let tmp = temp_dir();
        let root = tmp.path().join("k8s");
        let overlay = tmp.path().join("demo");
        let bin = env!("CARGO_BIN_EXE_manifest-gen");
        let script = format!(
            "umask {umask} && \"$0\" write --root \"$1\" && \"$0\" --env dev --root \"$1\" --out-dir \"$2\""
        );
        let status = std::process::Command::new("sh")
            .args(["-c", &script, bin, root.to_str().unwrap()])
            .arg(&overlay)
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success());
        let mut seen = 0;
        for dir in [&root, &overlay] {
            for path in read_tree(dir).keys() {
                let meta = std::fs::metadata(dir.join(path)).unwrap();
                let actual = meta.permissions().mode() & 0o777;
                assert_eq!(
                    actual,
                    mode,
                    "umask {umask}: {} has mode {actual:o}, expected {mode:o}",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(seen > 5, "{seen} files");
    }
}

#[test]
fn write_twice_is_byte_for_byte_identical_and_leaves_no_temporary_files() {
    let tmp = temp_dir();
    let root = tmp.path().join("k8s");
    manifest_gen(&["write", "--root", root.to_str().unwrap()]).success();
    let first = read_tree(&root);
    manifest_gen(&["write", "--root", root.to_str().unwrap()]).success();
    assert_trees_eq(&first, &read_tree(&root), "first write", "second write");
    assert!(first.keys().all(|p| !p.to_string_lossy().contains(".tmp")));
}

#[test]
fn write_keeps_the_operator_secret_and_removes_stale_generated_files() {
    let (_tmp, root) = tree_copy();
    let secret = std::fs::read_to_string(root.join("overlays/prod/secret.env")).unwrap();
    std::fs::write(root.join("overlays/dev/old.yaml"), "stale").unwrap();
    manifest_gen(&["write", "--root", root.to_str().unwrap()]).success();
    assert_eq!(
        std::fs::read_to_string(root.join("overlays/prod/secret.env")).unwrap(),
        secret
    );
    assert!(!root.join("overlays/dev/old.yaml").exists());
}

#[test]
fn check_passes_on_the_committed_tree() {
    let run = manifest_gen(&["check"]).success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn check_detects_a_hand_edit_with_a_unified_diff_and_exit_1() {
    let (_tmp, root) = tree_copy();
    let path = root.join("base/deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("periodSeconds: 10\n", "periodSeconds: 20\n"),
    )
    .unwrap();
    let run = manifest_gen(&["check", "--root", root.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("--- a/base/deployment.yaml (on disk)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("+++ b/base/deployment.yaml (generated)")
    );
    assert!(
        run.stdout.contains("\n-          periodSeconds: 20\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\n+          periodSeconds: 10\n"));
    assert!(run.stdout.contains("@@ "));
    assert!(run.stderr.contains("error: ") && run.stderr.contains("make manifests"));
}

#[test]
fn check_detects_missing_and_unexpected_files() {
    let (_tmp, root) = tree_copy();
    std::fs::remove_file(root.join("components/hardening/poddisruptionbudget.yaml")).unwrap();
    std::fs::write(root.join("base/extra.yaml"), "kind: ConfigMap\n").unwrap();
    let run = manifest_gen(&["check", "--root", root.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("+++ b/components/hardening/poddisruptionbudget.yaml (generated)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("unexpected file") && run.stdout.contains("extra.yaml"));
}
