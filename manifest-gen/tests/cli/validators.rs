//! Third-party validators on the rendered output (`render`: kubectl kustomize):
//! kubernetes-validate (strict schemas of the oldest and newest supported Kubernetes versions)
//! and checkov.

use crate::helpers::*;

/// The Kubernetes versions README claims: the oldest and newest are validated.
const OLDEST: &str = "1.25.0";
const NEWEST: &str = "1.37.0";

/// The one check that conflicts with images built locally into minikube (never pushed, so
/// `Always` would fail to pull); docs/generator.md ("Checkov skips") justifies it. CKV_K8S_43
/// (image by digest) is not skipped: checkov runs on output pinned by digest, as a registry
/// deployment would be (`--image NAME:TAG@sha256:...`).
const CHECKOV_SKIPS: &str = "CKV_K8S_15";

/// A digest-pinned image for the checkov run (the digest need not exist: checkov reads text).
const PINNED: &str =
    "hello-k8s:0.1.0@sha256:3b0c3a1dca1bd0a4e4f4c6c4d6d2e0f44ad4e4a4cb3a3e2a6c5f1b7c9f2e8d61";

#[test]
fn kubernetes_validate_strict_passes_for_the_oldest_and_newest_supported_versions() {
    let (Some(validator), Some(_)) = (tool("kubernetes-validate"), tool("kubectl")) else {
        return;
    };
    let (tmp, root) = tree_copy();
    rendered_files(tmp.path(), &root, &[]);
    for version in [OLDEST, "1.34.0", NEWEST] {
        for env in ["dev", "prod"] {
            let file = tmp.path().join(format!("{env}.yaml"));
            let run = run_tool(
                &validator,
                &["--strict", "-k", version, file.to_str().unwrap()],
                None,
            );
            assert_eq!(
                run.code, 0,
                "{env} on {version}:\n{}\n{}",
                run.stdout, run.stderr
            );
            assert!(!run.stdout.contains("ERROR"), "{}", run.stdout);
        }
    }
}

#[test]
fn kubernetes_validate_strict_catches_an_unknown_field() {
    // Proof that the validator is strict: the same output with one misspelt field fails.
    let (Some(validator), Some(_)) = (tool("kubernetes-validate"), tool("kubectl")) else {
        return;
    };
    let (tmp, root) = tree_copy();
    rendered_files(tmp.path(), &root, &[]);
    let file = tmp.path().join("dev.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
    )
    .unwrap();
    let run = run_tool(
        &validator,
        &["--strict", "-k", NEWEST, file.to_str().unwrap()],
        None,
    );
    assert_ne!(run.code, 0, "{}", run.stdout);
}

#[test]
fn checkov_reports_no_failures_beyond_the_justified_skips() {
    let (Some(checkov), Some(_)) = (tool("checkov"), tool("kubectl")) else {
        return;
    };
    let (tmp, root) = tree_copy();
    let dir = tmp.path().join("rendered");
    std::fs::create_dir(&dir).unwrap();
    rendered_files(&dir, &root, &["--image", PINNED]);
    let (report, code) = checkov_report(&checkov, &["--skip-check", CHECKOV_SKIPS], &dir);
    let summary = &report["summary"];
    assert!(
        summary["resource_count"].as_u64().unwrap_or(0) >= 10,
        "{report}"
    );
    assert_eq!(
        summary["failed"],
        0,
        "{}",
        serde_json::to_string_pretty(&report["results"]["failed_checks"]).unwrap()
    );
    assert!(summary["passed"].as_u64().unwrap() > 100, "{summary}");
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    assert_eq!(code, 0);
}
