//! Admission: every overlay, rendered by `kubectl kustomize` as `kubectl apply -k` renders it,
//! passes `kubectl apply --server-side --dry-run=server` on the real API server (its schema
//! validation, defaulting and admission chain, Pod Security included), its Namespace first,
//! with no warning; the generated Namespaces carry the Pod Security labels; every field the
//! manifests set is in the objects the API server returns (a field a version does not know, or
//! drops behind a disabled feature, would be missing), and a value it changed is printed.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use serde_json::Value;

use super::Ctx;

const SUITE: &str = "admission";

pub fn run(ctx: &Ctx) -> Result<()> {
    let tree = ctx.k8s_copy("k8s-admission")?;
    for env in ctx.overlays()? {
        let rendered = ctx.kustomize(&tree.join("overlays").join(&env))?;
        let namespace = namespace_doc(&rendered)
            .with_context(|| format!("the {env} overlay renders no Namespace"))?;
        let ns: Namespace = yaml_serde::from_str(&namespace)?;
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        let enforce = labels.get("pod-security.kubernetes.io/enforce").cloned();
        let version = labels
            .get("pod-security.kubernetes.io/enforce-version")
            .cloned();
        ctx.report.check(
            SUITE,
            &format!("{env}: Namespace enforces Pod Security restricted, with its version"),
            enforce.as_deref() == Some("restricted") && version.is_some(),
            format!("enforce={enforce:?}, enforce-version={version:?}"),
        );
        let first = ctx.cluster.kubectl_in(
            &[
                "apply",
                "--server-side",
                "--field-manager=e2e-admission",
                "-f",
                "-",
            ],
            Some(&namespace),
        );
        if let Err(e) = first {
            ctx.report
                .error(SUITE, &format!("{env}: Namespace applied first"), &e);
            continue;
        }
        let dry = ctx.cluster.try_kubectl(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=e2e-admission",
                "-f",
                "-",
            ],
            Some(&rendered),
        )?;
        let objects = dry
            .stdout
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        ctx.report.check(
            SUITE,
            &format!("{env}: every object admitted by the API server (server-side dry run)"),
            dry.success,
            format!("{objects} objects; {}", dry.stderr.trim()),
        );
        let warnings = super::warnings(&dry.stderr);
        ctx.report.check(
            SUITE,
            &format!("{env}: admitted with no warning (Pod Security restricted included)"),
            warnings.is_empty(),
            warnings.join(" | "),
        );
        if dry.success {
            kept(ctx, &env, &rendered)?;
        }
        // The deploy owns the namespace's fields: leave none behind under this field manager.
        let name = ns.metadata.name.clone().unwrap_or_default();
        ctx.cluster.kubectl(&[
            "delete",
            "namespace",
            &name,
            "--wait=true",
            "--timeout=120s",
        ])?;
    }
    Ok(())
}

/// Every field of the rendered objects is in what the API server returns from the dry run
/// (its defaults added); a value it changed (a normalised quantity, say) is printed, except a
/// Secret's, which is named only (and compared without the line breaks base64 may carry).
fn kept(ctx: &Ctx, env: &str, rendered: &str) -> Result<()> {
    let stored = ctx.cluster.kubectl_in(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=e2e-admission",
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(rendered),
    )?;
    let stored: Value = serde_json::from_str(&stored.stdout).context("the dry run's JSON")?;
    let items: Vec<&Value> = match stored.get("items") {
        Some(Value::Array(items)) => items.iter().collect(),
        _ => vec![&stored],
    };
    let (mut dropped, mut changed) = (Vec::new(), Vec::new());
    for doc in rendered.split("\n---\n").filter(|d| !d.trim().is_empty()) {
        let want: Value = yaml_serde::from_str(doc)?;
        let id = format!(
            "{}/{}",
            want["kind"].as_str().unwrap_or("?"),
            want["metadata"]["name"].as_str().unwrap_or("?")
        );
        match items.iter().find(|i| {
            i["kind"] == want["kind"] && i["metadata"]["name"] == want["metadata"]["name"]
        }) {
            Some(got) => {
                let secret = want["kind"] == "Secret";
                compare(&want, got, &id, secret, &mut dropped, &mut changed)
            }
            None => dropped.push(format!("{id} (the whole object)")),
        }
    }
    if !changed.is_empty() {
        ctx.report.note(format!(
            "{env}: values the API server changed: {}",
            changed.join(", ")
        ));
    }
    ctx.report.check(
        SUITE,
        &format!("{env}: every field set is kept by the API server (none dropped)"),
        dropped.is_empty(),
        dropped.join(", "),
    );
    Ok(())
}

/// Walks `want` (what was sent): a path missing from `got` is dropped, another scalar changed
/// (a Secret's values are never printed).
fn compare(
    want: &Value,
    got: &Value,
    path: &str,
    secret: bool,
    dropped: &mut Vec<String>,
    changed: &mut Vec<String>,
) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, value) in w {
                let here = format!("{path}.{key}");
                match g.get(key) {
                    Some(v) => compare(value, v, &here, secret, dropped, changed),
                    None if value.is_null() => {}
                    None => dropped.push(here),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            for (i, value) in w.iter().enumerate() {
                let here = format!("{path}[{i}]");
                match g.get(i) {
                    Some(v) => compare(value, v, &here, secret, dropped, changed),
                    None => dropped.push(here),
                }
            }
        }
        (w, g) if w == g => {}
        (Value::String(w), Value::String(g)) if secret => {
            let bare = |s: &str| s.split_whitespace().collect::<String>();
            if bare(w) != bare(g) {
                changed.push(format!("{path} (a Secret's value: not printed)"));
            }
        }
        (_, _) if secret => changed.push(format!("{path} (a Secret's value: not printed)")),
        // YAML's 1 and JSON's 1 are equal; a quoted number and a number are not, and are printed.
        (w, g) => changed.push(format!("{path}: {w} -> {g}")),
    }
}

/// The `kind: Namespace` document of a multi-document YAML stream.
fn namespace_doc(stream: &str) -> Option<String> {
    stream
        .split("\n---\n")
        .find(|doc| doc.lines().any(|l| l == "kind: Namespace"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::compare;
    use serde_json::json;

    fn diff(sent: serde_json::Value, got: serde_json::Value) -> (Vec<String>, Vec<String>) {
        let (mut dropped, mut changed) = (Vec::new(), Vec::new());
        compare(&sent, &got, "Pod/p", false, &mut dropped, &mut changed);
        (dropped, changed)
    }

    #[test]
    fn a_field_the_server_did_not_return_is_dropped() {
        let sent = json!({"spec": {"containers": [{"name": "c", "resizePolicy": [{"x": 1}]}]}});
        let got = json!({"spec": {"containers": [{"name": "c", "image": "i"}], "dnsPolicy": "ClusterFirst"}});
        let (dropped, changed) = diff(sent, got);
        assert_eq!(dropped, ["Pod/p.spec.containers[0].resizePolicy"]);
        assert!(changed.is_empty());
    }

    #[test]
    fn defaults_added_and_nulls_sent_are_not_drops_and_a_changed_value_is_listed() {
        let sent =
            json!({"metadata": {"creationTimestamp": null}, "spec": {"cpu": "0.5", "items": [1]}});
        let got = json!({"metadata": {"uid": "u"}, "spec": {"cpu": "500m", "items": [1, 2]}});
        let (dropped, changed) = diff(sent, got);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(changed, [r#"Pod/p.spec.cpu: "0.5" -> "500m""#]);
    }

    #[test]
    fn a_secret_value_is_compared_without_line_breaks_and_never_printed() {
        let (mut dropped, mut changed) = (Vec::new(), Vec::new());
        let sent = json!({"data": {"API_KEY": "c2VjcmV0LXZh\nbHVl\n", "OTHER": "b2xk"}});
        let got = json!({"data": {"API_KEY": "c2VjcmV0LXZhbHVl", "OTHER": "bmV3"}});
        compare(&sent, &got, "Secret/s", true, &mut dropped, &mut changed);
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(
            changed,
            ["Secret/s.data.OTHER (a Secret's value: not printed)"]
        );
    }
}
