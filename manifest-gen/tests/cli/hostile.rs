//! Hostile and careless input: manifest-gen exits 0 only for keys and values that `kubectl
//! kustomize` keeps as they are and the API server accepts; everything else is refused with
//! the rule. Each class is proved against the real kubectl: what kubectl refuses or changes,
//! manifest-gen refuses.

use std::path::Path;

use crate::helpers::*;

/// What kubectl kustomize makes of one ConfigMap literal `key=value` written by hand (not by
/// manifest-gen): `Ok((key, value))` as it comes out, or `Err(stderr)`.
fn kustomize_literal(kubectl: &Path, key: &str, value: &str) -> Result<(String, String), String> {
    let tmp = temp_dir();
    std::fs::write(
        tmp.path().join("kustomization.yaml"),
        format!(
            "configMapGenerator:\n- name: probe\n  literals:\n  - {}\n",
            yaml_double_quoted(&format!("{key}={value}"))
        ),
    )
    .unwrap();
    let run = run_tool(kubectl, &["kustomize", tmp.path().to_str().unwrap()], None);
    if run.code != 0 {
        return Err(run.stderr);
    }
    let data = config_map_data(&objects(&run.stdout));
    let (k, v) = data.iter().next().unwrap();
    Ok((k.clone(), v.as_str().unwrap().to_string()))
}

/// Every `--set` in `sets` is accepted, and through a written overlay `kubectl kustomize`
/// keeps each pair unchanged.
#[track_caller]
fn kustomize_keeps(kubectl: &Path, sets: &[(String, String)]) {
    let (_tmp, root) = tree_copy();
    let args: Vec<String> = sets.iter().map(|(k, v)| format!("--set={k}={v}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = root.join("overlays/dev");
    write_overlay(&root, "dev", &dir, &args).success();
    let data = config_map_data(&objects(&kubectl_kustomize(kubectl, &dir)));
    for (k, v) in sets {
        assert_eq!(
            data.get(k).and_then(|v| v.as_str()),
            Some(v.as_str()),
            "kubectl kustomize changed --set {k:?}={v:?}"
        );
    }
}

#[test]
fn set_keys_follow_the_api_servers_rule_as_kubectl_create_configmap_applies_it() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let long = "k".repeat(253);
    let too_long = "k".repeat(254);
    let mut decided = Vec::new();
    for key in [
        "..foo", "..", ".", "a..b", ".a", ".npmrc", "-", "_x", "a-b.c_d", &long, &too_long, "a b",
        "a/b", "a:b", "ü",
    ] {
        let ours = manifest_gen(&["validate", "--env", "dev", &format!("--set={key}=v")]);
        let theirs = run_tool(
            &kubectl,
            &[
                "create",
                "configmap",
                "x",
                &format!("--from-literal={key}=v"),
                "--dry-run=client",
                "-o",
                "name",
            ],
            None,
        );
        // What the API server's rule refuses, manifest-gen refuses naming that rule; what it
        // accepts, manifest-gen accepts unless a YAML 1.1 reader could type the key (`.a`, `-`).
        let why = if theirs.code != 0 {
            "the API server's rule"
        } else {
            "a YAML 1.1 parser"
        };
        assert!(
            ours.code == 0 || ours.stderr.contains(why),
            "key {key:?}: manifest-gen exit {} ({}), kubectl create configmap exit {} ({})",
            ours.code,
            ours.stderr.trim(),
            theirs.code,
            theirs.stderr.trim()
        );
        assert!(theirs.code == 0 || ours.code != 0, "{key:?}: accepted");
        decided.push((key, ours.code == 0));
    }
    assert_eq!(
        decided.iter().filter(|(_, ok)| *ok).count(),
        5,
        "accepted: {decided:?}"
    );
}

#[test]
fn a_key_the_container_never_reads_is_accepted_with_a_one_line_warning() {
    let run = manifest_gen(&["--env", "dev", "--set", "SIDECAR_MODE=fast"]).success();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("warning: --set SIDECAR_MODE:") && lines[0].contains("does not read"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("SIDECAR_MODE=fast"), "{}", run.stdout);
    // A key the service reads gets no warning.
    let run = manifest_gen(&["--env", "dev", "--set", "LOG_LEVEL=warn"]).success();
    assert_eq!(run.stderr, "");
}

#[test]
fn keys_kubectl_kustomize_fails_on_are_refused_and_accepted_ones_are_kept() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let battery = [
        "0",
        "1",
        "-1",
        "0123",
        "089",
        "0o17",
        "0b101",
        "0x1F",
        "1_000",
        "1e3",
        "1E3",
        "1e-3",
        "1.5",
        ".5",
        "1.",
        "-1.5",
        ".inf",
        "-.Inf",
        ".NaN",
        "true",
        "True",
        "FALSE",
        "null",
        "NULL",
        "2001-12-14",
        "2001-1-1",
        "y",
        "Y",
        "n",
        "yes",
        "YES",
        "No",
        "on",
        "ON",
        "off",
        "1-1",
        "1.2.3",
        "0.1.0",
        "0xg",
        "1e",
        "_1",
        "2001-02-30",
        "0x",
        "a1",
        ".npmrc",
        "1st-key",
    ];
    let (mut accepted, mut refused_wider) = (Vec::new(), Vec::new());
    for key in battery {
        let ours = manifest_gen(&["validate", "--env", "dev", &format!("--set={key}=v")]);
        let theirs = kustomize_literal(&kubectl, key, "v");
        if ours.code == 0 {
            accepted.push((key.to_string(), "v".to_string()));
            continue;
        }
        assert!(
            ours.stderr.contains("json: unsupported type"),
            "{key:?} refused for another reason: {}",
            ours.stderr
        );
        match theirs {
            Err(stderr) => assert!(
                stderr.contains("json: unsupported type"),
                "{key:?}: kubectl kustomize fails differently: {stderr}"
            ),
            // The rule is wider than kustomize's failures on purpose; kustomize keeps these.
            Ok(out) => refused_wider.push((key, out)),
        }
    }
    assert!(accepted.len() >= 3, "{accepted:?}");
    assert!(
        refused_wider.len() < battery.len() / 2,
        "refused though kustomize keeps them: {refused_wider:?}"
    );
    // Every key kubectl kustomize fails on is refused (above); every accepted one it keeps.
    kustomize_keeps(&kubectl, &accepted);
}

#[test]
fn values_kustomize_refuses_or_rewrites_are_refused_and_the_rest_match_it() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let battery: Vec<String> = [
        0x01, 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x1b, 0x1f, 0x7f, 0x80, 0x84, 0x85, 0x86, 0x9f, 0xa0,
        0x2028, 0x2029, 0xd7ff, 0xe000, 0xfeff, 0xfffd, 0xfffe, 0xffff, 0x1f600, 0x1fffe, 0x10ffff,
    ]
    .into_iter()
    .map(|c| format!("a{}b", char::from_u32(c).unwrap()))
    .collect();
    let mut accepted = Vec::new();
    for (i, value) in battery.iter().enumerate() {
        let ours = manifest_gen(&["validate", "--env", "dev", &format!("--set=V{i}={value}")]);
        if ours.code == 0 {
            accepted.push((format!("V{i}"), value.clone()));
            continue;
        }
        assert!(ours.stderr.contains("U+"), "{value:?}: {}", ours.stderr);
        match kustomize_literal(&kubectl, "K", value) {
            Err(stderr) => assert!(
                stderr.contains("control characters are not allowed"),
                "{value:?}: {stderr}"
            ),
            Ok((_, out)) => assert_ne!(
                &out, value,
                "manifest-gen refuses {value:?}, but kubectl kustomize keeps it"
            ),
        }
    }
    let refused = battery.len() - accepted.len();
    assert_eq!(
        refused, 8,
        "DEL, 0x80, 0x84, NEL, 0x86, 0x9f, U+FFFE, U+FFFF: {accepted:?}"
    );
    kustomize_keeps(&kubectl, &accepted);
}

#[test]
fn config_map_data_over_the_api_servers_1_mib_is_refused() {
    // One argument may hold at most 128 KiB (Linux), so nine values make more than 1 MiB.
    let value = "x".repeat(120 * 1024);
    let sets: Vec<String> = (0..9).map(|i| format!("BIG_{i}={value}")).collect();
    let mut args = vec!["validate", "--env", "dev"];
    for set in &sets {
        args.extend(["--set", set.as_str()]);
    }
    let run = manifest_gen(&args).failure();
    assert!(
        run.stderr
            .contains("above the API server's limit of 1048576 bytes"),
        "{}",
        run.stderr
    );
    // Eight of them fit.
    manifest_gen(&args[..args.len() - 2]).success();
}

#[test]
fn secret_like_keys_are_refused_in_any_spelling_or_warned_about() {
    for key in ["api_key", "Api_Key", "api-key", "API.KEY", "API_KEY"] {
        // A value with a character --set refuses must not make the error echo it either.
        let canary = format!("canary-\u{7f}{}", random_token());
        let run = manifest_gen(&["--env", "dev", "--set", &format!("{key}={canary}")]).failure();
        assert!(run.stderr.contains("API_KEY"), "{key}: {}", run.stderr);
        assert!(!run.stderr.contains(&canary), "{key}: the value leaked");
        assert!(run.stdout.is_empty());
    }
    let run = manifest_gen(&["--env", "dev", "--set", "DB_PASSWORD=x"]).success();
    assert!(
        run.stderr
            .contains("warning: --set DB_PASSWORD: the name looks like a secret"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn reserved_namespaces_are_refused() {
    for ns in [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "default",
        "kube-foo",
    ] {
        let run = manifest_gen(&["--env", "dev", "--namespace", ns]).failure();
        assert!(run.stderr.contains("reserved"), "{ns}: {}", run.stderr);
    }
}

#[test]
fn image_tags_follow_the_oci_rule_and_the_error_states_it_whole() {
    for tag in ["1.0-", "_x", "a.", &"t".repeat(128)] {
        manifest_gen(&[
            "validate",
            "--env",
            "dev",
            "--image",
            &format!("hello-k8s:{tag}"),
        ])
        .success();
    }
    // Names the OCI grammar refuses (each separator is one of '.', '_', '__' or a run of '-').
    for name in [
        "hello___k8s",
        "hello._k8s",
        "hello-_k8s",
        "hello_.k8s",
        "hello.-k8s",
        "reg-.example/hello",
    ] {
        let run = manifest_gen(&["--env", "dev", "--image", &format!("{name}:1")]).failure();
        assert!(
            run.stderr.contains("is not a valid image name") && run.stderr.contains("a run of '-'"),
            "{name}: {}",
            run.stderr
        );
    }
    for tag in [".x", "-x", &"t".repeat(129)] {
        let run = manifest_gen(&["--env", "dev", "--image", &format!("hello-k8s:{tag}")]).failure();
        for part in ["the first a letter, digit or '_'", "1 to 128 characters"] {
            assert!(run.stderr.contains(part), "{tag}: {}", run.stderr);
        }
    }
    // The version label takes what of the tag a label value may hold.
    let out = manifest_gen(&["--env", "dev", "--image", "hello-k8s:1.0-"])
        .success()
        .stdout;
    assert!(out.contains("app.kubernetes.io/version: '1.0'\n"), "{out}");
    assert!(out.contains("newTag: '1.0-'\n"), "{out}");
}

const DIGEST: &str = "sha256:3b0c3a1dca1bd0a4e4f4c6c4d6d2e0f44ad4e4a4cb3a3e2a6c5f1b7c9f2e8d61";

#[test]
fn digests_are_accepted_and_kubectl_kustomize_pins_them() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    for image in [
        format!("registry.example/hello-k8s@{DIGEST}"),
        format!("registry.example:5000/team/hello-k8s:0.2.0@{DIGEST}"),
        format!("hello-k8s@{DIGEST}"),
    ] {
        let (_tmp, root) = tree_copy();
        let dir = root.join("overlays/prod");
        write_overlay(&root, "prod", &dir, &["--image", &image]).success();
        let kustomized = objects(&kubectl_kustomize(&kubectl, &dir));
        let container =
            &kustomized["Deployment/hello-k8s"]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], image.as_str());
    }
}

#[test]
fn checkov_passes_ckv_k8s_43_when_the_image_is_pinned_by_digest() {
    let (Some(checkov), Some(_)) = (tool("checkov"), tool("kubectl")) else {
        return;
    };
    let (tmp, root) = tree_copy();
    let dir = tmp.path().join("rendered");
    std::fs::create_dir(&dir).unwrap();
    let image = format!("registry.example/hello-k8s:0.2.0@{DIGEST}");
    rendered_files(&dir, &root, &["--image", &image]);
    let (report, _) = checkov_report(&checkov, &["--check", "CKV_K8S_43"], &dir);
    let summary = &report["summary"];
    assert_eq!(
        summary["failed"],
        0,
        "{}",
        serde_json::to_string_pretty(&report["results"]["failed_checks"]).unwrap()
    );
    // One Deployment per environment passes the check (it ran, it was not vacuous).
    assert_eq!(summary["passed"], 2, "{summary}");
}
