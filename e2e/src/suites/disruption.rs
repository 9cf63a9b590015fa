//! Disruptions with a client looping through the NodePort (16 keep-alive clients): a new image
//! tag (a rolling update), `kubectl delete pod`, and an eviction through the eviction API, which
//! the PodDisruptionBudget must hold: with one node, the second eviction in a row, the one that
//! would leave fewer pods than the budget allows, is refused by the API server (429).
//! Zero failed requests throughout.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::{Ctx, SELECTOR, pause};
use crate::kube::name;
use crate::traffic::Looper;

const SUITE: &str = "disruption";
const CLIENTS: usize = 16;
const LIMIT: Duration = Duration::from_secs(180);

pub fn run(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    let url = ctx.node_url(&ns, "/")?;
    let deployment: Deployment = ctx.cluster.get(&["deployment", "hello-k8s", "-n", &ns])?;
    let image = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .context("the Deployment names no image")?;

    // 1. A new image tag: the same image under another tag in the cluster's runtime, deployed
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
    let (step, load) = under_load(&url, || {
        ctx.apply_as_deploy(&overlay)
            .and_then(|_| ctx.cluster.rollout(&ns, "hello-k8s", LIMIT))
    });
    match step {
        Ok(()) => ctx.report.check(
            SUITE,
            &format!("rolling update to {new_tag}: zero failed requests through the NodePort"),
            load.0,
            load.1,
        ),
        Err(e) => {
            ctx.report
                .error(SUITE, "rolling update to a new image tag", &e);
            false
        }
    };

    // 2. kubectl delete pod.
    let (step, load) = under_load(&url, || delete_one(ctx, &ns));
    match step {
        Ok(victim) => ctx.report.check(
            SUITE,
            &format!("kubectl delete pod {victim}: replaced, zero failed requests"),
            load.0,
            load.1,
        ),
        Err(e) => {
            ctx.report.error(SUITE, "kubectl delete pod", &e);
            false
        }
    };

    // 3. Evictions against the PodDisruptionBudget.
    let (step, load) = under_load(&url, || evictions(ctx, &ns));
    match step {
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
            ctx.report
                .check(SUITE, "evictions: zero failed requests", load.0, load.1);
        }
        Err(e) => ctx.report.error(SUITE, "evictions against the PDB", &e),
    }
    Ok(())
}

/// Runs `step` while the clients loop through `url`, and 3 s beyond it; the step's outcome and
/// the clients' verdict: (no request failed and some were answered, the counts and the time).
fn under_load<T>(url: &str, step: impl FnOnce() -> Result<T>) -> (Result<T>, (bool, String)) {
    let looper = Looper::start(url, CLIENTS, contract::GREETING);
    let started = Instant::now();
    let outcome = step();
    pause(Duration::from_secs(3));
    let tally = looper.stop();
    let detail = format!(
        "{} in {:.0} s",
        tally.describe(),
        started.elapsed().as_secs_f64()
    );
    (outcome, (tally.failed == 0 && tally.ok > 0, detail))
}

/// Tags `from` as `to` in the cluster's containerd (images the kubelet resolves: docker.io/...).
fn retag(ctx: &Ctx, from: &str, to: &str) -> Result<()> {
    let address = ctx
        .cluster
        .vars
        .get("CONTAINERD_ADDRESS")
        .context("the env file names no CONTAINERD_ADDRESS")?;
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
    super::run(std::process::Command::new("ctr").args([
        "--address",
        address,
        "-n",
        "k8s.io",
        "images",
        "tag",
        "--force",
        &full(from),
        &full(to),
    ]))?;
    Ok(())
}

/// The number of replicas the Deployment wants.
fn desired(ctx: &Ctx, ns: &str) -> Result<usize> {
    let d: Deployment = ctx.cluster.get(&["deployment", "hello-k8s", "-n", ns])?;
    Ok(d.spec.and_then(|s| s.replicas).unwrap_or(1) as usize)
}

/// Waits until the Deployment's wanted replicas are all Ready again.
fn settle(ctx: &Ctx, ns: &str) -> Result<()> {
    ctx.cluster.wait("every replica Ready again", LIMIT, || {
        let want = desired(ctx, ns)?;
        Ok((ctx.cluster.ready_pods(ns, SELECTOR)?.len() >= want
            && ctx.cluster.pods(ns, SELECTOR)?.len() == want)
            .then_some(()))
    })
}

fn delete_one(ctx: &Ctx, ns: &str) -> Result<String> {
    settle(ctx, ns)?;
    let victim = ctx
        .cluster
        .ready_pods(ns, SELECTOR)?
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
    settle(ctx, ns)?;
    Ok(victim)
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
        settle(ctx, ns)?;
        ctx.cluster.wait(
            "the PDB allows a disruption",
            Duration::from_secs(60),
            || {
                let pdb: PodDisruptionBudget = ctx.cluster.get(&["pdb", "hello-k8s", "-n", ns])?;
                Ok((pdb.status.map(|s| s.disruptions_allowed).unwrap_or(0) >= 1).then_some(()))
            },
        )?;
        let pods = ctx.cluster.ready_pods(ns, SELECTOR)?;
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
    settle(ctx, ns)?;
    Ok((format!("{a} evicted (attempt {tries})"), refusal))
}
