//! Configuration changes and the autoscaler, on prod:
//! - a deploy while the HPA has scaled out keeps the replica count (the Deployment declares no
//!   `replicas`; the HPA owns it): scaled out to 5 by the HPA, `make deploy-prod` leaves 5;
//! - a ConfigMap change rolls the Deployment (kustomize's hash-suffixed name changes the pod
//!   template), and so does a Secret change.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::{Ctx, SELECTOR};

const SUITE: &str = "config-roll";
const LIMIT: Duration = Duration::from_secs(180);

pub fn run(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    if let Err(e) = hpa_kept(ctx, &ns) {
        ctx.report.error(SUITE, "a deploy while the HPA has scaled out keeps the replica count", &e);
    }
    let tree = ctx.k8s_copy("k8s-config-roll")?;
    let overlay = tree.join("overlays/prod");
    // The deployed Secret, so that only the ConfigMap changes first.
    std::fs::copy(ctx.repo.join("k8s/overlays/prod/secret.env"), overlay.join("secret.env"))?;
    let kustomization = overlay.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization)?;
    if !text.contains("- LOG_LEVEL=info") {
        bail!("prod's kustomization has no LOG_LEVEL=info literal to change");
    }
    std::fs::write(&kustomization, text.replace("- LOG_LEVEL=info", "- LOG_LEVEL=debug"))?;
    rolls(ctx, &ns, &overlay, "a ConfigMap change (LOG_LEVEL=debug)")?;
    super::write_secret(&overlay.join("secret.env"), &super::random_token()?)?;
    rolls(ctx, &ns, &overlay, "a Secret change (a new API_KEY)")?;
    // Back to the committed overlay and the deployed key.
    ctx.make("deploy-prod", &[])?;
    Ok(())
}

/// Applies `overlay` and checks that the Deployment rolled to a new ReplicaSet.
fn rolls(ctx: &Ctx, ns: &str, overlay: &std::path::Path, what: &str) -> Result<()> {
    let before = replica_sets(ctx, ns)?;
    ctx.cluster.kubectl(&["apply", "-k", &overlay.to_string_lossy()])?;
    ctx.cluster.rollout(ns, "hello-k8s", LIMIT)?;
    let after = replica_sets(ctx, ns)?;
    let new: Vec<&String> = after.difference(&before).collect();
    ctx.report.check(
        SUITE,
        &format!("{what} rolls the Deployment"),
        !new.is_empty(),
        format!("new ReplicaSet {new:?}"),
    );
    Ok(())
}

fn replica_sets(ctx: &Ctx, ns: &str) -> Result<BTreeSet<String>> {
    let list: crate::kube::Items<ReplicaSet> = ctx.cluster.get(&["replicasets", "-n", ns, "-l", SELECTOR])?;
    Ok(list.items.into_iter().filter_map(|r| r.metadata.name).collect())
}

fn replicas(ctx: &Ctx, ns: &str) -> Result<i32> {
    let d: Deployment = ctx.cluster.get(&["deployment", "hello-k8s", "-n", ns])?;
    d.spec.and_then(|s| s.replicas).context("the Deployment has no replica count")
}

fn hpa_kept(ctx: &Ctx, ns: &str) -> Result<()> {
    let declared = ctx
        .kustomize(&ctx.repo.join("k8s/overlays/prod"))
        .map(|y| y.contains("\n  replicas:"))
        .unwrap_or(false);
    ctx.report.check(
        SUITE,
        "prod's Deployment declares no replicas (its HPA owns the count)",
        !declared,
        "",
    );
    ctx.cluster.kubectl(&[
        "patch", "hpa", "hello-k8s", "-n", ns, "--type=merge", "-p", r#"{"spec":{"minReplicas":5}}"#,
    ])?;
    ctx.cluster.wait("the HPA scaled the Deployment out to 5", LIMIT, || {
        Ok((replicas(ctx, ns)? == 5 && ctx.cluster.ready_pods(ns, SELECTOR)?.len() >= 5).then_some(()))
    })?;
    ctx.make("deploy-prod", &[])?;
    let right_after = replicas(ctx, ns)?;
    ctx.cluster.rollout(ns, "hello-k8s", LIMIT)?;
    let ready = ctx.cluster.ready_pods(ns, SELECTOR)?.len();
    ctx.report.check(
        SUITE,
        "a deploy while the HPA has scaled out keeps the replica count",
        right_after == 5 && replicas(ctx, ns)? == 5 && ready >= 5,
        format!("replicas right after make deploy-prod: {right_after}, Ready after its rollout: {ready}"),
    );
    Ok(())
}
