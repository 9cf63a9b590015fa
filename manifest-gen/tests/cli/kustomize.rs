//! `render` is `kubectl kustomize` on the tree manifest-gen writes, and the overrides are
//! fields of the written overlay: what `render` prints equals what kubectl makes of the
//! committed overlays and of `--out-dir` overlays (names with hash suffixes, labels, selectors,
//! namespace, images, replicas, patches, data).

use crate::helpers::*;

#[test]
fn render_prints_what_kubectl_kustomize_prints_of_the_committed_overlays() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let (_tmp, root) = tree_copy();
    for env in ["dev", "prod"] {
        let kustomized = kubectl_kustomize(&kubectl, &root.join("overlays").join(env));
        let rendered = render(&root, env, &[]).success().stdout;
        assert!(
            rendered == kustomized,
            "{}",
            diff(
                &kustomized,
                &rendered,
                &format!("kubectl kustomize overlays/{env}"),
                &format!("render --env {env}")
            )
        );
    }
    let prod = objects(&render(&root, "prod", &[]).success().stdout);
    for kind in [
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    ] {
        assert!(prod.contains_key(&format!("{kind}/hello-k8s")), "{kind}");
    }
}

#[test]
fn replicas_reach_an_overlay_without_an_autoscaler_and_none_reach_one_with_it() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let (_tmp, root) = tree_copy();
    let dir = root.join("overlays/dev");
    write_overlay(&root, "dev", &dir, &["--replicas", "2"]).success();
    let kustomized = objects(&kubectl_kustomize(&kubectl, &dir));
    assert_eq!(kustomized["Deployment/hello-k8s"]["spec"]["replicas"], 2);
    assert_objects_eq(
        &objects(&render(&root, "dev", &["--replicas", "2"]).success().stdout),
        &kustomized,
        "render",
        "kubectl kustomize",
    );
    let prod = objects(&kubectl_kustomize(&kubectl, &root.join("overlays/prod")));
    let spec = &prod["Deployment/hello-k8s"]["spec"];
    assert!(spec.get("replicas").is_none(), "{spec}");
    assert!(prod.contains_key("HorizontalPodAutoscaler/hello-k8s"));
}

#[test]
fn a_config_change_changes_the_configmap_name_and_the_deployment_reference() {
    if tool("kubectl").is_none() {
        return;
    }
    let (_tmp, root) = tree_copy();
    let before = objects(&render(&root, "dev", &[]).success().stdout);
    let after = objects(
        &render(&root, "dev", &["--set", "LOG_LEVEL=info"])
            .success()
            .stdout,
    );
    let name = |objs: &std::collections::BTreeMap<String, serde_json::Value>| {
        objs.keys()
            .find(|k| k.starts_with("ConfigMap/hello-k8s-config-"))
            .unwrap()
            .clone()
    };
    assert_ne!(name(&before), name(&after));
    let env = after["Deployment/hello-k8s"]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let referenced = env
        .iter()
        .find(|v| v["name"] == "LOG_LEVEL")
        .map(|v| {
            v["valueFrom"]["configMapKeyRef"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    assert_eq!(format!("ConfigMap/{referenced}"), name(&after));
}

#[test]
fn overrides_reach_kubectl_kustomize_and_render_alike() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let (_tmp, root) = tree_copy();
    let overrides = [
        "--image",
        "registry.example:5000/team/hello-k8s:2.0.1-rc1",
        "--namespace",
        "hello-prod-blue",
        "--set",
        "LOG_LEVEL=warn",
    ];
    let dir = root.join("overlays/prod");
    write_overlay(&root, "prod", &dir, &overrides).success();
    let kustomized = objects(&kubectl_kustomize(&kubectl, &dir));
    let rendered = objects(&render(&root, "prod", &overrides).success().stdout);
    assert_objects_eq(&rendered, &kustomized, "render", "kubectl kustomize");
    let deployment = &rendered["Deployment/hello-k8s"];
    // The HorizontalPodAutoscaler owns the count: no path declares one.
    assert!(deployment["spec"].get("replicas").is_none(), "{deployment}");
    assert_eq!(deployment["metadata"]["namespace"], "hello-prod-blue");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/team/hello-k8s:2.0.1-rc1"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
        "2.0.1-rc1"
    );
    assert!(rendered.contains_key("Namespace/hello-prod-blue"));
}

/// Values YAML 1.1 parsers (kubectl apply's) would turn into booleans, numbers or null, plus
/// quoting, comment, flow and multi-line traps.
const TRICKY: &[&str] = &[
    "on",
    "no",
    "off",
    "yes",
    "y",
    "N",
    "True",
    "0123",
    "1e3",
    "1_000",
    "0x1F",
    "1:20",
    "2001-12-14",
    "2001-12-14T21:59:43Z",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "2001-12-14 21:59:43",
    ".inf",
    "~",
    "null",
    "",
    "a: b",
    "key=value",
    "\"quoted\"",
    "'single'",
    "\"",
    "'",
    "it's",
    "# not a comment",
    "a #b",
    "ünïcødé ✓",
    "<a>&b",
    "  leading",
    "trailing ",
    "tab\there",
    "line1\nline2",
    "[a, b]",
    "{a: 1}",
    "@at",
    "*star",
    "!tag",
    "%x",
    "-",
    "? q",
];

#[test]
fn tricky_values_reach_the_configmap_unchanged_through_the_written_overlay_and_kubectl_kustomize() {
    let (_tmp, root) = tree_copy();
    let sets: Vec<String> = TRICKY
        .iter()
        .enumerate()
        .map(|(i, v)| format!("TRICKY_{i}={v}"))
        .collect();
    let mut overrides: Vec<&str> = Vec::new();
    for set in &sets {
        overrides.extend(["--set", set.as_str()]);
    }
    let dir = root.join("overlays/dev");
    write_overlay(&root, "dev", &dir, &overrides).success();
    let written = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();

    // kubectl reads YAML with a 1.1 resolver: a YAML 1.1 reader (PyYAML) takes every literal of
    // the written kustomization as the YAML 1.2 reader does, as text.
    let literals = |doc: &serde_json::Value| doc["configMapGenerator"][0]["literals"].clone();
    let ours: serde_json::Value = yaml_serde::from_str(&written).unwrap();
    if let Some(python) = tool("python3") {
        let script = "import sys, json, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin)))";
        let run = run_tool(&python, &["-c", script], Some(&written)).success();
        let theirs: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            literals(&theirs),
            literals(&ours),
            "YAML 1.1 and 1.2 readers differ"
        );
    }

    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let kustomized = objects(&kubectl_kustomize(&kubectl, &dir));
    let data = config_map_data(&kustomized);
    for (i, value) in TRICKY.iter().enumerate() {
        assert_eq!(
            data[&format!("TRICKY_{i}")],
            *value,
            "kubectl kustomize, value {value:?}"
        );
    }
    // render takes the same flags to the same objects, hashes included.
    assert_objects_eq(
        &objects(&render(&root, "dev", &overrides).success().stdout),
        &kustomized,
        "render",
        "kubectl kustomize",
    );
}

#[test]
fn a_long_production_secret_renders_as_kubectl_kustomize_wraps_it() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let (_tmp, root) = tree_copy();
    // Long enough for kustomize to cut its base64 text into lines (render checks the key as
    // kustomize wrote it), with characters Go's JSON escapes.
    let key = format!("{}<&>{}", random_token(), random_token());
    std::fs::write(
        root.join("overlays/prod/secret.env"),
        format!("API_KEY={key}\n"),
    )
    .unwrap();
    let rendered = render(&root, "prod", &[]).success();
    assert!(!rendered.stderr.contains(&key));
    assert!(
        rendered.stdout.contains("API_KEY: |"),
        "the Secret is not wrapped"
    );
    assert_objects_eq(
        &objects(&rendered.stdout),
        &objects(&kubectl_kustomize(&kubectl, &root.join("overlays/prod"))),
        "render",
        "kubectl kustomize",
    );
}
