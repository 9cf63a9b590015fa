//! Disruptions under full-rate load through the NodePort ([`crate::load`]: 16 keep-alive
//! connections, every failed request counted, none retried): a new image tag (a rolling
//! update), `kubectl delete pod`, and an eviction through the eviction API, which the
//! PodDisruptionBudget must hold: the second eviction in a row, the one that would leave fewer
//! pods than the budget allows, is refused by the API server (429). Zero failed requests
//! throughout.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::{Ctx, SELECTOR, pause};
use crate::kube::{name, serving};
use crate::load::Tally;

const SUITE: &str = "disruption";
const LIMIT: Duration = Duration::from_secs(180);
/// The load keeps running this long after each step (the last replaced pod's drain).
const AFTER: Duration = Duration::from_secs(3);

pub fn run(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    let entry = ctx.cluster.nodes[0].clone();
    let addr = ctx.node_port_on(&entry, &ns)?;
    let deployment = ctx.deployment(&ns)?;
    let image = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .context("the Deployment names no image")?;

    // 1. A new image tag: the same image under another tag in every node's runtime, deployed
    //    as the deploy applies (server-side, its field manager).
    let new_tag = format!("{image}-rollout");
    retag(ctx, &image, &new_tag)?;
    let tree = ctx.k8s_copy("k8s-rollout")?;
    let overlay = tree.join("overlays/prod");
    std::fs::copy(
        ctx.repo.join("k8s/overlays/prod/secret.env"),
        overlay.join("secret.env"),
    )?;
    super::config_roll::set_overlay_image(&overlay, &new_tag)?;
    let (step, load) = ctx.under_load(addr, AFTER, || {
        ctx.apply_as_deploy(&overlay)
            .and_then(|_| ctx.cluster.rollout(&ns, "hello-k8s", LIMIT))
    })?;
    verdict(
        ctx,
        &format!("rolling update to {new_tag}"),
        step.map(|_| String::new()),
        &load,
    );

    // 2. kubectl delete pod.
    let (step, load) = ctx.under_load(addr, AFTER, || delete_one(ctx, &ns))?;
    verdict(ctx, "kubectl delete pod", step, &load);

    // 3. Evictions against the PodDisruptionBudget.
    let (step, load) = ctx.under_load(addr, AFTER, || evictions(ctx, &ns))?;
    match &step {
        Ok((first, refusal)) => {
            ctx.report.check(
                SUITE,
                "eviction API: the first eviction is allowed by the PDB",
                true,
                first,
            );
            ctx.report.check(
                SUITE,
                "eviction API: the PDB refuses the eviction that would break it (429)",
                refusal.contains("disruption budget"),
                refusal,
            );
        }
        Err(e) => ctx.report.error(SUITE, "evictions against the PDB", e),
    }
    verdict(ctx, "evictions", step.map(|_| String::new()), &load);
    Ok(())
}

/// The step ran, and the load through it lost nothing.
fn verdict(ctx: &Ctx, what: &str, step: Result<String>, load: &Tally) {
    match step {
        Ok(detail) => {
            ctx.report.count(
                format!("{SUITE}: {what}{detail}: requests, failed"),
                format!("{}, {}", load.ok + load.failed, load.failed),
            );
            ctx.report.check(
                SUITE,
                &format!("{what}{detail}: zero failed requests at full rate"),
                load.failed == 0 && load.ok > 0,
                load.describe(),
            );
        }
        Err(e) => {
            ctx.report.error(SUITE, what, &e);
            ctx.report.note(format!("{what}: {}", load.describe()));
        }
    }
}

/// Tags `from` as `to` in every node's containerd (images the kubelet resolves: docker.io/...).
fn retag(ctx: &Ctx, from: &str, to: &str) -> Result<()> {
    // The name the kubelet resolves: a short name is docker.io/library/NAME.
    let full = |r: &str| {
        let first = r.split('/').next().unwrap_or_default();
        if r.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
            r.to_string()
        } else if r.contains('/') {
            format!("docker.io/{r}")
        } else {
            format!("docker.io/library/{r}")
        }
    };
    ctx.ctr_all(&["images", "tag", "--force", &full(from), &full(to)])
}

fn delete_one(ctx: &Ctx, ns: &str) -> Result<String> {
    let victim = ctx
        .settled(ns, LIMIT)?
        .first()
        .map(name)
        .context("no Ready pod")?;
    ctx.cluster.kubectl(&[
        "delete",
        "pod",
        "-n",
        ns,
        &victim,
        "--wait=true",
        "--timeout=60s",
    ])?;
    ctx.settled(ns, LIMIT)?;
    Ok(format!(" {victim}: replaced"))
}

/// Evicts one pod (allowed), then another at once (refused): the first's answer, the refusal.
///
/// The first eviction is retried on 429, as `kubectl drain` retries: the client loop's load can
/// make the HPA add a pod that is not Ready yet, and the budget then allows no disruption until
/// it is. The second, sent right after the first succeeded, must be refused.
fn evictions(ctx: &Ctx, ns: &str) -> Result<(String, String)> {
    let evict = |pod: &str| {
        let body = format!(
            r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"{ns}"}}}}"#
        );
        let path = format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction");
        ctx.cluster
            .try_kubectl(&["create", "--raw", &path, "-f", "-"], Some(&body))
    };
    let mut tries = 0;
    let (a, b) = loop {
        tries += 1;
        ctx.settled(ns, LIMIT)?;
        ctx.cluster.watch_until(
            kube::Api::<PodDisruptionBudget>::namespaced(ctx.cluster.client(), ns),
            kube::runtime::watcher::Config::default().fields("metadata.name=hello-k8s"),
            "the PDB allows a disruption",
            Duration::from_secs(60),
            |pdbs| {
                let allowed = pdbs
                    .first()
                    .and_then(|p| p.status.as_ref())
                    .map(|s| s.disruptions_allowed)
                    .unwrap_or(0);
                if allowed >= 1 {
                    Ok(())
                } else {
                    Err(format!("disruptionsAllowed {allowed}"))
                }
            },
        )?;
        let pods: Vec<_> = ctx
            .cluster
            .pods(ns, SELECTOR)?
            .into_iter()
            .filter(serving)
            .collect();
        if pods.len() < 2 {
            bail!("fewer than 2 Ready pods ({})", pods.len());
        }
        let (a, b) = (name(&pods[0]), name(&pods[1]));
        let first = evict(&a)?;
        if first.success {
            break (a, b);
        }
        if tries >= 10 {
            bail!(
                "evicting {a} was refused {tries} times: {}",
                first.stderr.trim()
            );
        }
        pause(Duration::from_secs(3));
    };
    let second = evict(&b)?;
    let refusal = if second.success {
        format!("evicting {b} right after {a} was allowed: the budget did not hold")
    } else {
        second.stderr.trim().to_string()
    };
    ctx.settled(ns, LIMIT)?;
    Ok((format!("{a} evicted (attempt {tries})"), refusal))
}
