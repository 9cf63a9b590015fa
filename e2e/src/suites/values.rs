//! The generator's values reach the API server unchanged, by both paths users take.
//!
//! `manifest-gen/tests/value-classes.jsonl` lists, one JSON object a line, a sample of every
//! class of value the generator's checks know (`accepted` true: written with exit 0). Each accepted value is
//! set as a ConfigMap literal (`manifest-gen --env dev --set KEY=VALUE --out-dir DIR`), applied
//! through `kubectl apply -k DIR` into one namespace and through
//! `kubectl kustomize DIR | kubectl apply -f -` into another, then read back from the API server:
//! the stored value must be the declared one, byte for byte. A refused value must make the
//! generator exit non-zero before writing anything.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;

use super::Ctx;

const SUITE: &str = "values";

/// A kustomization next to `overlay` whose one resource is it, minus every object but the
/// Namespace, the ConfigMap and the Secret.
fn wrap(overlay: &std::path::Path) -> Result<std::path::PathBuf> {
    let dir = overlay.with_extension("only-config");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let name = overlay
        .file_name()
        .context("overlay dir name")?
        .to_string_lossy();
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../{name}\npatches:\n"
    );
    for (api, kind) in [
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
    ] {
        text.push_str(&format!(
            "- patch: |\n    $patch: delete\n    apiVersion: {api}\n    kind: {kind}\n    metadata:\n      name: hello-k8s\n"
        ));
    }
    std::fs::write(dir.join("kustomization.yaml"), text)?;
    Ok(dir)
}

#[derive(Debug, serde::Deserialize)]
struct Sample {
    class: String,
    key: String,
    value: String,
    accepted: bool,
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let table = ctx.repo.join("manifest-gen/tests/value-classes.jsonl");
    let out =
        std::fs::read_to_string(&table).with_context(|| format!("reading {}", table.display()))?;
    let samples: Vec<Sample> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", table.display()))?;
    // Rounds of samples with distinct keys: one overlay per round.
    let mut rounds: Vec<BTreeMap<String, &Sample>> = Vec::new();
    for s in samples.iter().filter(|s| s.accepted) {
        match rounds.iter_mut().find(|r| !r.contains_key(&s.key)) {
            Some(r) => {
                r.insert(s.key.clone(), s);
            }
            None => rounds.push(BTreeMap::from([(s.key.clone(), s)])),
        }
    }
    let (mut same, mut changed) = (0usize, Vec::new());
    for (i, round) in rounds.iter().enumerate() {
        for (path, ns) in [
            ("apply -k", "hello-k8s-values-k"),
            ("kustomize | apply -f -", "hello-k8s-values-f"),
        ] {
            let dir = ctx.work.join(format!(
                "values-{i}-{}",
                ns.rsplit('-').next().unwrap_or("x")
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let mut cmd = Command::new(&ctx.manifest_gen);
            cmd.args(["--env", "dev", "--namespace", ns, "--root"])
                .arg(ctx.repo.join("k8s"))
                .arg("--out-dir")
                .arg(&dir);
            for s in round.values() {
                cmd.arg("--set").arg(format!("{}={}", s.key, s.value));
            }
            super::run(&mut cmd).with_context(|| format!("manifest-gen with round {i}"))?;
            // Only the configuration objects reach the cluster: a kustomization over the
            // generated overlay deletes the workload and its Service (dev's fixed nodePort is
            // taken by dev itself); the ConfigMap is the generated overlay's, unchanged.
            let dir = wrap(&dir)?;
            let rendered = ctx.kustomize(&dir)?;
            let cm_name = rendered
                .split("\n---\n")
                .filter(|d| d.lines().any(|l| l == "kind: ConfigMap"))
                .find_map(|d| {
                    d.lines()
                        .find_map(|l| l.strip_prefix("  name: "))
                        .map(str::to_string)
                })
                .context("no ConfigMap rendered")?;
            if path == "apply -k" {
                ctx.cluster
                    .kubectl(&["apply", "-k", &dir.to_string_lossy()])?;
            } else {
                ctx.cluster
                    .kubectl_in(&["apply", "-f", "-"], Some(&rendered))?;
            }
            let stored: ConfigMap = ctx.cluster.get(&["configmap", cm_name.trim(), "-n", ns])?;
            let data = stored.data.unwrap_or_default();
            for s in round.values() {
                if data.get(&s.key) == Some(&s.value) {
                    same += 1;
                } else {
                    changed.push(format!(
                        "[{}] {} via {path}: declared {:?}, stored {:?}",
                        s.class,
                        s.key,
                        s.value,
                        data.get(&s.key)
                    ));
                }
            }
        }
    }
    let classes: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.accepted)
        .map(|s| s.class.as_str())
        .collect();
    ctx.report.check(
        SUITE,
        "every accepted value is stored unchanged by the API server, through apply -k and kustomize | apply -f -",
        changed.is_empty() && same > 0,
        format!("{same} value readings equal over {} classes; changed: {changed:?}", classes.len()),
    );
    // Refused samples: the generator exits non-zero and writes nothing.
    let mut wrote = Vec::new();
    let mut refused = 0;
    for s in samples.iter().filter(|s| !s.accepted) {
        let dir = ctx.work.join("values-refused");
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new(&ctx.manifest_gen)
            .args(["--env", "dev", "--root"])
            .arg(ctx.repo.join("k8s"))
            .arg("--out-dir")
            .arg(&dir)
            .arg("--set")
            .arg(format!("{}={}", s.key, s.value))
            .output()?;
        if status.status.success() || dir.join("kustomization.yaml").exists() {
            wrote.push(format!("[{}] {}={:?}", s.class, s.key, s.value));
        } else {
            refused += 1;
        }
    }
    ctx.report.check(
        SUITE,
        "every refused value: the generator exits non-zero and writes nothing",
        wrote.is_empty(),
        format!("{refused} refused; written: {wrote:?}"),
    );
    for ns in ["hello-k8s-values-k", "hello-k8s-values-f"] {
        ctx.cluster
            .kubectl(&["delete", "namespace", ns, "--wait=false"])
            .ok();
    }
    Ok(())
}
