//! The table of value classes (`manifest-gen value-classes`, from src/classes.rs) through the
//! real binary and the real kubectl: each pair is decided by the binary as the table says, and
//! every accepted pair reaches what kubectl sends to the API server byte for byte, by both
//! paths users take (`kubectl apply -k DIR` and `kubectl kustomize DIR | kubectl apply -f -`).
//! kubectl's reader is run with `--local` (`kubectl label --local -o json`: the same builder
//! and YAML decoder as apply, without a server); the real-cluster suite applies the same table.

use std::path::Path;

use crate::helpers::*;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Class {
    class: String,
    key: String,
    value: String,
    accepted: bool,
}

fn classes() -> Vec<Class> {
    let run = manifest_gen(&["value-classes"]).success();
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
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
fn the_binary_decides_every_class_as_the_table_says_and_refusals_print_nothing() {
    let rows = classes();
    assert!(rows.len() >= 80, "{}", rows.len());
    assert!(rows.iter().any(|r| !r.accepted));
    for row in &rows {
        let run = manifest_gen(&["--env", "dev", &format!("--set={}={}", row.key, row.value)]);
        if row.accepted {
            assert_eq!(run.code, 0, "{}: refused: {}", row.class, run.stderr);
        } else {
            assert_ne!(run.code, 0, "{}: accepted", row.class);
            assert!(run.stdout.is_empty(), "{}: printed output", row.class);
            assert!(
                run.stderr.starts_with("error: "),
                "{}: {}",
                row.class,
                run.stderr
            );
        }
    }
}

#[test]
fn every_accepted_class_reaches_kubectls_request_byte_for_byte_by_both_paths() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let accepted: Vec<Class> = classes().into_iter().filter(|r| r.accepted).collect();
    let (tmp, root) = tree_copy();
    let sets: Vec<String> = accepted
        .iter()
        .map(|r| format!("--set={}={}", r.key, r.value))
        .collect();
    let mut args: Vec<&str> = sets.iter().map(String::as_str).collect();
    let dir = tmp.path().join("classes");
    write_overlay(&root, "dev", &dir, &args).success();

    // kubectl kustomize DIR | kubectl apply -f -
    let kustomized = kubectl_kustomize(&kubectl, &dir);
    let stream = tmp.path().join("kustomized.yaml");
    std::fs::write(&stream, &kustomized).unwrap();
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

    // And render gives the same objects, hashes included.
    args.splice(
        0..0,
        ["render", "--env", "dev", "--root", root.to_str().unwrap()],
    );
    let rendered = objects(&manifest_gen(&args).success().stdout);
    assert_objects_eq(
        &rendered,
        &objects(&kustomized),
        "render",
        "kubectl kustomize",
    );
}
