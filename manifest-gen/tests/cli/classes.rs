//! The table of classes manifest-gen decides on, one row each, with the decision it must make,
//! judged through the real binary; every accepted `--set` row must then reach what kubectl
//! sends to the API server byte for byte, by both paths users take (`kubectl apply -k DIR` and
//! `kubectl kustomize DIR | kubectl apply -f -`). kubectl's reader is run with `--local`
//! (`kubectl label --local -o json`: the same builder and YAML decoder as apply, without a
//! server).
//!
//! The `--set` rows are `manifest-gen/tests/value-classes.jsonl`, one JSON object a line
//! (`{"class", "key", "value", "accepted"}`), which the real-cluster suite applies too; the
//! image, namespace and Secret rows are [`OTHER_ROWS`]. The next class found is one new row.

use std::collections::BTreeSet;
use std::path::Path;

use crate::helpers::*;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRow {
    class: String,
    key: String,
    value: String,
    accepted: bool,
}

/// The `--set` rows.
fn set_rows() -> Vec<SetRow> {
    let path = repo().join("manifest-gen/tests/value-classes.jsonl");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Which input a row of [`OTHER_ROWS`] feeds the binary.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// `validate --env dev --image REF`.
    Image,
    /// `validate --env dev --namespace NS`.
    Namespace,
    /// One pair of the declared Secret `literals` of a production overlay, beside a valid
    /// `API_KEY` unless the pair is `API_KEY` itself (`validate --overlays FILE`).
    Secret,
}

/// (input, class, sample, its value for a Secret pair, accepted).
const OTHER_ROWS: &[(Input, &str, &str, &str, bool)] = &[
    // Image references: the OCI distribution grammar.
    (
        Input::Image,
        "image: name and tag",
        "hello-k8s:0.1.0",
        "",
        true,
    ),
    (
        Input::Image,
        "image: registry with port and path",
        "registry.example:5000/team/hello-k8s:1",
        "",
        true,
    ),
    (
        Input::Image,
        "image: separators ., _, __, -+",
        "x/a.b_c__d---e:1",
        "",
        true,
    ),
    (
        Input::Image,
        "image: tag and digest",
        "hello-k8s:1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "",
        true,
    ),
    (Input::Image, "image: no tag", "hello-k8s", "", false),
    (Input::Image, "image: upper case", "Hello:1", "", false),
    (Input::Image, "image: ___", "hello___k8s:1", "", false),
    (Input::Image, "image: ._", "hello._k8s:1", "", false),
    (Input::Image, "image: -_", "hello-_k8s:1", "", false),
    (Input::Image, "image: _.", "hello_.k8s:1", "", false),
    (Input::Image, "image: .-", "hello.-k8s:1", "", false),
    (
        Input::Image,
        "image: registry label ending in -",
        "reg-.example/hello:1",
        "",
        false,
    ),
    (
        Input::Image,
        "image: tag starting with .",
        "hello:.x",
        "",
        false,
    ),
    // Namespaces: DNS-1123 labels Kubernetes does not reserve.
    (
        Input::Namespace,
        "namespace: DNS-1123 label",
        "hello-k8s-demo",
        "",
        true,
    ),
    (
        Input::Namespace,
        "namespace: kube in the middle",
        "my-kube-x",
        "",
        true,
    ),
    (Input::Namespace, "namespace: default", "default", "", false),
    (
        Input::Namespace,
        "namespace: kube-system",
        "kube-system",
        "",
        false,
    ),
    (
        Input::Namespace,
        "namespace: any kube- name",
        "kube-foo",
        "",
        false,
    ),
    (Input::Namespace, "namespace: upper case", "Demo", "", false),
    // Secret pairs of the declaration: the API server's, kustomize's and the service's rules.
    (
        Input::Secret,
        "secret: a token",
        "API_KEY",
        "0123456789abcdef",
        true,
    ),
    (Input::Secret, "secret: an extra key", "EXTRA", "v", true),
    (Input::Secret, "secret key: space", "a b", "v", false),
    (
        Input::Secret,
        "secret key: path traversal",
        "../../etc/x",
        "v",
        false,
    ),
    (
        Input::Secret,
        "secret key: YAML 1.1 boolean",
        "true",
        "v",
        false,
    ),
    (
        Input::Secret,
        "secret value: DEL",
        "EXTRA",
        "a\u{7f}b",
        false,
    ),
    (
        Input::Secret,
        "secret API_KEY: two words (the service refuses it)",
        "API_KEY",
        "two words",
        false,
    ),
    (Input::Secret, "secret API_KEY: empty", "API_KEY", "", false),
];

/// A declaration of one production overlay `t` whose Secret literals are `pairs`.
fn declaration_with_secret(pairs: &[(&str, &str)]) -> String {
    let literals: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", yaml_double_quoted(k), yaml_double_quoted(v)))
        .collect();
    format!(
        "- name: t\n  environment: production\n  replicas: 1\n  node_port: 31999\n  secret:\n    literals: {{{}}}\n",
        literals.join(", ")
    )
}

/// Asserts a run decided `accepted`, and that a refusal printed nothing but an error.
#[track_caller]
fn decided(class: &str, run: &Run, accepted: bool, wrong: &mut Vec<String>) {
    if accepted && run.code != 0 {
        wrong.push(format!("{class}: refused: {}", run.stderr.trim()));
    } else if !accepted && run.code == 0 {
        wrong.push(format!("{class}: accepted"));
    } else if !accepted && (!run.stdout.is_empty() || !run.stderr.starts_with("error: ")) {
        wrong.push(format!(
            "{class}: refused without one `error:` and nothing on stdout: {}",
            run.stderr
        ));
    }
}

#[test]
fn the_table_holds_unique_classes_and_distinct_accepted_keys() {
    let rows = set_rows();
    assert!(rows.len() >= 80, "{}", rows.len());
    assert!(rows.iter().any(|r| !r.accepted));
    let classes: BTreeSet<&str> = rows
        .iter()
        .map(|r| r.class.as_str())
        .chain(OTHER_ROWS.iter().map(|r| r.1))
        .collect();
    assert_eq!(classes.len(), rows.len() + OTHER_ROWS.len());
    let keys: Vec<&str> = rows
        .iter()
        .filter(|r| r.accepted)
        .map(|r| r.key.as_str())
        .collect();
    let distinct: BTreeSet<&&str> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "{keys:?}");
}

#[test]
fn the_binary_decides_every_class_as_the_table_says_and_refusals_print_nothing() {
    let mut wrong = Vec::new();
    for row in set_rows() {
        let run = manifest_gen(&["--env", "dev", &format!("--set={}={}", row.key, row.value)]);
        decided(&row.class, &run, row.accepted, &mut wrong);
    }
    let tmp = temp_dir();
    let declaration = tmp.path().join("overlays.yaml");
    for &(input, class, sample, value, accepted) in OTHER_ROWS {
        let run = match input {
            Input::Image => manifest_gen(&["validate", "--env", "dev", "--image", sample]),
            Input::Namespace => manifest_gen(&["--env", "dev", "--namespace", sample]),
            Input::Secret => {
                let mut pairs = vec![(sample, value)];
                if sample != "API_KEY" {
                    pairs.push(("API_KEY", "0123456789abcdef"));
                }
                std::fs::write(&declaration, declaration_with_secret(&pairs)).unwrap();
                let run = manifest_gen(&["validate", "--overlays", declaration.to_str().unwrap()]);
                if !accepted {
                    assert!(
                        !run.stderr.contains("two words"),
                        "{class}: the value was shown: {}",
                        run.stderr
                    );
                }
                run
            }
        };
        decided(class, &run, accepted, &mut wrong);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The ConfigMap data kubectl would send: `kubectl label --local -o json` on `source` (`-f
/// FILE` or `-k DIR`), which decodes the YAML exactly as `kubectl apply` does.
fn kubectl_reads(kubectl: &Path, source: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let mut args = vec!["label", "--local", "-o", "json"];
    args.extend_from_slice(source);
    args.push("manifest-gen.test/read=yes");
    let run = run_tool(kubectl, &args, None);
    assert_eq!(run.code, 0, "kubectl {args:?}: {}", run.stderr);
    // One JSON object per resource, one after another.
    let items: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&run.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let cm = items.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    cm["data"].as_object().unwrap().clone()
}

#[test]
fn every_accepted_class_reaches_kubectls_request_byte_for_byte_by_both_paths() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let accepted: Vec<SetRow> = set_rows().into_iter().filter(|r| r.accepted).collect();
    let (tmp, root) = tree_copy();
    let sets: Vec<String> = accepted
        .iter()
        .map(|r| format!("--set={}={}", r.key, r.value))
        .collect();
    let args: Vec<&str> = sets.iter().map(String::as_str).collect();
    let dir = tmp.path().join("classes");
    write_overlay(&root, "dev", &dir, &args).success();

    // kubectl kustomize DIR | kubectl apply -f -
    let stream = tmp.path().join("kustomized.yaml");
    std::fs::write(&stream, kubectl_kustomize(&kubectl, &dir)).unwrap();
    let piped = kubectl_reads(&kubectl, &["-f", stream.to_str().unwrap()]);
    // kubectl apply -k DIR
    let direct = kubectl_reads(&kubectl, &["-k", dir.to_str().unwrap()]);
    let mut wrong = Vec::new();
    for row in &accepted {
        for (path, data) in [("kustomize | apply -f -", &piped), ("apply -k", &direct)] {
            let got = data.get(&row.key).and_then(|v| v.as_str());
            if got != Some(row.value.as_str()) {
                wrong.push(format!(
                    "{} via {path}: {:?} became {got:?}",
                    row.class, row.value
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
