//! The files manifest-gen reads and the directory it writes: a FIFO, `/dev/zero`, a directory
//! and an oversized file are refused on each flag with exit 2, at once and without reading
//! them whole; `--out-dir` never lands in the generated tree outside the overlay's own
//! directory, nor, through a symlink, anywhere else.

use std::path::{Path, PathBuf};

use crate::helpers::*;

/// The four kinds of bad file, made in `dir`, with what the error must say of each.
fn bad_files(dir: &Path, limit: usize) -> Vec<(PathBuf, String)> {
    let fifo = dir.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let subdir = dir.join("a-directory");
    std::fs::create_dir(&subdir).unwrap();
    let big = dir.join("big");
    std::fs::write(&big, format!("# {}\n", "x".repeat(limit))).unwrap();
    vec![
        (fifo, "is a FIFO, not a regular file".to_string()),
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not a regular file".to_string(),
        ),
        (subdir, "is a directory, not a regular file".to_string()),
        (big, format!("holds more than {limit} bytes")),
    ]
}

#[track_caller]
fn refused_with_exit_2(args: &[&str], says: &[&str]) {
    let run = manifest_gen(args);
    assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    assert!(run.stdout.is_empty(), "{args:?} printed {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    for text in says {
        assert!(run.stderr.contains(text), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_bad_overlay_declaration_file_is_refused_with_exit_2() {
    let tmp = temp_dir();
    for (path, says) in bad_files(tmp.path(), 65536) {
        let file = path.to_str().unwrap();
        refused_with_exit_2(
            &["overlays", "--overlays", file],
            &[
                "the overlay declaration",
                file,
                &says,
                "expected a regular file",
            ],
        );
    }
}

#[test]
fn a_bad_secret_env_file_is_refused_with_exit_2() {
    let tmp = temp_dir();
    for (path, says) in bad_files(tmp.path(), 1048576) {
        let file = path.to_str().unwrap();
        refused_with_exit_2(
            &["render", "--env", "prod", "--secret-env-file", file],
            &["the Secret file", file, &says],
        );
    }
}

#[test]
fn a_bad_file_in_the_tree_check_reads_is_refused_with_exit_2() {
    let (_tmp, root) = tree_copy();
    let target = root.join("base/kustomization.yaml");
    std::fs::remove_file(&target).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&target)
            .status()
            .unwrap()
            .success()
    );
    refused_with_exit_2(
        &["check", "--root", root.to_str().unwrap()],
        &["the generated file", "is a FIFO"],
    );
}

#[test]
fn secret_pairs_of_the_declaration_are_checked_by_the_rules_of_their_readers() {
    let tmp = temp_dir();
    let declaration = tmp.path().join("overlays.yaml");
    let original = std::fs::read_to_string(repo().join("manifest-gen/overlays.yaml")).unwrap();
    for (literal, says) in [
        (
            "API_KEY: two words",
            "API_KEY is set to a value that is not valid",
        ),
        ("API_KEY: k\n      a b: v", "the API server's rule"),
        ("API_KEY: k\n      ../../etc/x: v", "the API server's rule"),
        ("API_KEY: \"k\\x7F\"", "U+007F"),
    ] {
        let text = original.replace("API_KEY: dev-insecure-not-a-secret", literal);
        assert_ne!(text, original);
        std::fs::write(&declaration, text).unwrap();
        let run =
            manifest_gen(&["validate", "--overlays", declaration.to_str().unwrap()]).failure();
        assert!(
            run.stderr.contains("overlay dev: secret.literals") && run.stderr.contains(says),
            "{literal}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("two words"), "the value leaked");
    }
}

#[test]
fn out_dir_refuses_every_directory_of_the_generated_tree_but_the_overlays_own() {
    let (_tmp, root) = tree_copy();
    let before = read_tree(&root);
    for (dir, says) in [
        (root.clone(), "the root of the generated tree"),
        (
            root.join("overlays"),
            "the directory of the generated overlays",
        ),
        (root.join("base"), "the generated base"),
        (root.join("components"), "the generated components"),
        (
            root.join("components/hardening"),
            "the generated components",
        ),
        (root.join("overlays/prod"), "the generated overlay prod"),
        (root.join("overlays/prod/sub"), "the generated overlay prod"),
        (root.join("base/new/deeper"), "the generated base"),
    ] {
        let run = write_overlay(&root, "dev", &dir, &[]).failure();
        assert!(
            run.stderr.contains(says)
                && run.stderr.contains("expected the overlay's own directory"),
            "{}: {}",
            dir.display(),
            run.stderr
        );
    }
    // A symlink into the tree is resolved before the decision.
    let link = root.parent().unwrap().join("link-to-base");
    std::os::unix::fs::symlink(root.join("base"), &link).unwrap();
    let run = write_overlay(&root, "dev", &link, &[]).failure();
    assert!(run.stderr.contains("the generated base"), "{}", run.stderr);
    assert!(!root.join("base/new").exists());
    assert_trees_eq(&before, &read_tree(&root), "before", "after the refusals");

    // The overlay's own directory and a new one beside the declared ones are fine.
    write_overlay(&root, "dev", &root.join("overlays/dev"), &[]).success();
    write_overlay(&root, "dev", &root.join("overlays/demo"), &[]).success();
}

#[test]
fn out_dir_replaces_a_symlinked_file_instead_of_writing_where_it_points() {
    let (tmp, root) = tree_copy();
    let dir = tmp.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    let base_file = root.join("base/kustomization.yaml");
    let before = std::fs::read_to_string(&base_file).unwrap();
    std::os::unix::fs::symlink(&base_file, dir.join("kustomization.yaml")).unwrap();
    write_overlay(&root, "dev", &dir, &[]).success();
    assert_eq!(std::fs::read_to_string(&base_file).unwrap(), before);
    let written = dir.join("kustomization.yaml");
    assert!(std::fs::symlink_metadata(&written).unwrap().is_file());
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .contains("configMapGenerator")
    );
}
