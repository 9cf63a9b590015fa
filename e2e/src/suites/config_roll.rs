//! Configuration changes and the autoscaler, on prod:
//! - a deploy while the HPA has scaled out keeps the replica count (the Deployment declares no
//!   `replicas`; the HPA owns it): scaled out to 5 by the HPA, `make auto-deploy-prod` keeps the count;
//! - a ConfigMap change rolls the Deployment (kustomize's hash-suffixed name changes the pod
//!   template), and so does a Secret change.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::{Ctx, SELECTOR, hpa_cpu, hpa_status};

const SUITE: &str = "config-roll";
const LIMIT: Duration = Duration::from_secs(180);

pub fn run(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    if let Err(e) = hpa_kept(ctx, &ns) {
        ctx.report.error(
            SUITE,
            "a deploy while the HPA has scaled out keeps the replica count",
            &e,
        );
    }
    let tree = ctx.k8s_copy("k8s-config-roll")?;
    let overlay = tree.join("overlays/prod");
    pin_deployed_image(ctx, &ns, &overlay)?;
    // The deployed Secret, so that only the ConfigMap changes first.
    std::fs::copy(
        ctx.repo.join("k8s/overlays/prod/secret.env"),
        overlay.join("secret.env"),
    )?;
    let kustomization = overlay.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization)?;
    if !text.contains("- LOG_LEVEL=info") {
        bail!("prod's kustomization has no LOG_LEVEL=info literal to change");
    }
    std::fs::write(
        &kustomization,
        text.replace("- LOG_LEVEL=info", "- LOG_LEVEL=debug"),
    )?;
    rolls(ctx, &ns, &overlay, "a ConfigMap change (LOG_LEVEL=debug)")?;
    super::write_secret(&overlay.join("secret.env"), &super::random_token()?)?;
    rolls(ctx, &ns, &overlay, "a Secret change (a new API_KEY)")?;
    // Back to the committed overlay and the deployed key.
    ctx.make("auto-deploy-prod", &[])?;
    Ok(())
}

/// Applies `overlay` and checks that the Deployment rolled to a new ReplicaSet.
fn rolls(ctx: &Ctx, ns: &str, overlay: &std::path::Path, what: &str) -> Result<()> {
    let before = replica_sets(ctx, ns)?;
    ctx.apply_as_deploy(overlay)?;
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

/// Points the copy's `images:` at the image the Deployment runs now (the deploy's content tag),
/// so that only the configuration changes.
pub fn pin_deployed_image(ctx: &Ctx, ns: &str, overlay: &std::path::Path) -> Result<()> {
    let image = ctx.cluster.kubectl(&[
        "get",
        "deployment",
        "hello-k8s",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])?;
    set_overlay_image(overlay, image.trim())
}

/// Points the overlay copy's `images:` entry at `image` (NAME:TAG).
pub fn set_overlay_image(overlay: &std::path::Path, image: &str) -> Result<()> {
    let (name, tag) = image.rsplit_once(':').context("the image has no tag")?;
    let kustomization = overlay.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization)?;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("newTag:") {
            out.push_str(&format!("  newName: {name}\n  newTag: '{tag}'\n"));
        } else if !line.trim_start().starts_with("newName:") {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&kustomization, out)?;
    Ok(())
}

fn replica_sets(ctx: &Ctx, ns: &str) -> Result<BTreeSet<String>> {
    let list: crate::kube::Items<ReplicaSet> =
        ctx.cluster
            .get(&["replicasets", "-n", ns, "-l", SELECTOR])?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect())
}

fn replicas(ctx: &Ctx, ns: &str) -> Result<i32> {
    let d: Deployment = ctx.cluster.get(&["deployment", "hello-k8s", "-n", ns])?;
    d.spec
        .and_then(|s| s.replicas)
        .context("the Deployment has no replica count")
}

/// The replica count once the HPA has scaled prod out from 3 and every replica is Ready.
fn scaled_out(ctx: &Ctx, ns: &str) -> Result<Option<i32>> {
    let n = replicas(ctx, ns)?;
    Ok((n > 3 && ctx.cluster.ready_pods(ns, SELECTOR)?.len() as i32 >= n).then_some(n))
}

/// What the HPA says of itself, for a check that failed: replicas, CPU, its conditions.
fn hpa_summary(ctx: &Ctx, ns: &str) -> String {
    let status = match hpa_status(&ctx.cluster, ns) {
        Ok(status) => status,
        Err(e) => return format!("the HPA could not be read: {e:#}"),
    };
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} ({})",
                c.type_,
                c.status,
                c.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!(
        "HPA: replicas {} of desired {}, CPU {:?}%, conditions {conditions:?}",
        status.current_replicas.unwrap_or_default(),
        status.desired_replicas,
        hpa_cpu(&status)
    )
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
    // Load through the NodePort until the HPA scales out (its CPU figures from metrics-server).
    let url = ctx.node_url(ns, "/")?;
    let load_url = url.clone();
    let mut load = Some(std::thread::spawn(move || {
        super::flood::wrk(&load_url, 256, 100)
    }));
    // Scaled out (`Some`), or the load ended first (`None`): a load that failed (wrk missing,
    // refused) fails the check at once with its own error instead of a time-out.
    let scaled = ctx
        .cluster
        .wait("the HPA scaled prod out under load", LIMIT, || {
            if load.as_ref().is_some_and(|l| l.is_finished()) {
                return Ok(Some(None));
            }
            Ok(scaled_out(ctx, ns)?.map(Some))
        });
    let before = match scaled {
        Ok(Some(n)) => n,
        Ok(None) => match load.take().map(|l| l.join()) {
            // Its 100 s are over: a scale-out the HPA decided under it still comes.
            Some(Ok(Ok(_))) => ctx
                .cluster
                .wait("the HPA scaled prod out under load", LIMIT, || {
                    scaled_out(ctx, ns)
                })
                .map_err(|e| e.context(hpa_summary(ctx, ns)))?,
            Some(Ok(Err(e))) => {
                bail!(
                    "the load failed before the HPA scaled prod out ({}): {e:#}",
                    hpa_summary(ctx, ns)
                )
            }
            _ => bail!("the load's thread panicked"),
        },
        Err(e) => {
            if let Some(load) = load.take() {
                let _ = load.join();
            }
            return Err(e.context(hpa_summary(ctx, ns)));
        }
    };
    let cpu = hpa_cpu(&hpa_status(&ctx.cluster, ns)?);
    ctx.report.check(
        SUITE,
        "HPA: metrics-server's CPU figure read, prod scaled out from 3 under load",
        cpu.is_some() && before > 3,
        format!("CPU utilization {cpu:?}% of the request, {before} replicas"),
    );
    let deployed = ctx.make("auto-deploy-prod", &[]);
    let right_after = replicas(ctx, ns)?;
    if let Some(load) = load.take() {
        let _ = load.join();
    }
    deployed?;
    ctx.cluster.rollout(ns, "hello-k8s", LIMIT)?;
    let ready = ctx.cluster.ready_pods(ns, SELECTOR)?.len();
    ctx.report.check(
        SUITE,
        "a deploy while the HPA has scaled out keeps the replica count",
        right_after >= before,
        format!("HPA-scaled to {before} replicas; right after make auto-deploy-prod: {right_after}; Ready after the load: {ready}"),
    );
    Ok(())
}
