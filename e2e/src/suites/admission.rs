//! Admission: every overlay, rendered by `kubectl kustomize` as `kubectl apply -k` renders it,
//! passes `kubectl apply --server-side --dry-run=server` on the real API server (its schema
//! validation, defaulting and admission chain, Pod Security included), its Namespace first,
//! with no warning; the generated Namespaces carry the Pod Security labels.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;

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
        let warnings: Vec<&str> = dry
            .stderr
            .lines()
            .filter(|l| l.contains("Warning"))
            .collect();
        ctx.report.check(
            SUITE,
            &format!("{env}: admitted with no warning (Pod Security restricted included)"),
            warnings.is_empty(),
            warnings.join(" | "),
        );
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

/// The `kind: Namespace` document of a multi-document YAML stream.
fn namespace_doc(stream: &str) -> Option<String> {
    stream
        .split("\n---\n")
        .find(|doc| doc.lines().any(|l| l == "kind: Namespace"))
        .map(str::to_string)
}
