//! Drain: `kubectl drain` of a node holding prod's pods while full-rate load ([`crate::load`])
//! runs through the NodePort of another node. Under that load the HPA scales prod out to its
//! maximum, so the node holds several replicas and the PodDisruptionBudget has to pace the
//! drain: the eviction API refuses an eviction that would leave fewer healthy pods than the
//! budget allows (kubectl logs the refusal and retries), and the disruption controller's own
//! figures never show fewer healthy pods than it desires. Zero failed requests; the pods come
//! back Ready on the other nodes; `kubectl uncordon` makes the node schedulable again.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::runtime::watcher;

use super::{Ctx, SELECTOR};
use crate::kube::{node_of, per_node, serving};

const SUITE: &str = "drain";
const LIMIT: Duration = Duration::from_secs(240);

pub fn run(ctx: &Ctx) -> Result<()> {
    if !super::has_nodes(ctx, SUITE, 2) {
        return Ok(());
    }
    let ns = ctx.namespace_of("prod")?;
    let entry = ctx.cluster.nodes[0].clone();
    let addr = ctx.node_port_on(&entry, &ns)?;
    let load = ctx.load(addr)?;
    let outcome = drain_under(ctx, &ns, &entry.name);
    let tally = load.stop()?;
    let victim = match outcome {
        Ok(victim) => victim,
        Err(e) => {
            ctx.report.error(SUITE, "kubectl drain under load", &e);
            ctx.report.note(tally.describe());
            return Ok(());
        }
    };
    ctx.report.count(
        format!("{SUITE}: requests, failed"),
        format!("{}, {}", tally.ok + tally.failed, tally.failed),
    );
    ctx.report.check(
        SUITE,
        &format!(
            "kubectl drain {victim} under full-rate load through {}'s NodePort: zero failed requests",
            entry.name
        ),
        tally.failed == 0 && tally.ok > 0,
        tally.describe(),
    );
    // The node back into service.
    let uncordoned = ctx.cluster.kubectl(&["uncordon", &victim]).and_then(|_| {
        ctx.cluster
            .watch_node(&victim, "schedulable again", Duration::from_secs(30), |n| {
                let cordoned = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false);
                if cordoned {
                    Err("still unschedulable".into())
                } else {
                    Ok(())
                }
            })
    });
    ctx.report.check(
        SUITE,
        &format!("kubectl uncordon {victim}: schedulable again"),
        uncordoned.is_ok(),
        uncordoned
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default(),
    );
    Ok(())
}

/// Waits for the HPA to scale prod out under the load, drains the node other than `entry` that
/// holds the most Ready replicas, and judges the drain; the drained node.
fn drain_under(ctx: &Ctx, ns: &str, entry: &str) -> Result<String> {
    let hpa_api = Api::<HorizontalPodAutoscaler>::namespaced(ctx.cluster.client(), ns);
    let max = ctx.cluster.watch_until(
        hpa_api,
        watcher::Config::default().fields("metadata.name=hello-k8s"),
        "the HPA scaled prod out to its maximum under the load",
        LIMIT,
        |hpas| {
            let hpa = hpas.first().ok_or("no HPA hello-k8s")?;
            let max = hpa.spec.as_ref().map(|s| s.max_replicas).unwrap_or(0);
            let current = hpa
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .unwrap_or(0);
            if max > 0 && current >= max {
                Ok(max as usize)
            } else {
                Err(format!("{current} of at most {max} replicas"))
            }
        },
    )?;
    let pods = ctx.settled(ns, LIMIT)?;
    let spread = per_node(pods.iter());
    let (victim, held) = spread
        .iter()
        .filter(|(node, _)| node.as_str() != entry)
        .max_by_key(|(_, n)| **n)
        .map(|(node, n)| (node.clone(), *n))
        .context("no prod pod outside the entry node")?;
    ctx.report.note(format!(
        "the HPA scaled prod to {max}; pods per node {spread:?}; draining {victim} ({held} replicas)"
    ));
    if held < 2 {
        bail!("{victim} holds {held} replica: the budget would have nothing to pace");
    }

    // The disruption controller's figures during the drain: the least healthy margin seen.
    let margin = Arc::new(AtomicI32::new(i32::MAX));
    let seen = margin.clone();
    let pdb_watch = ctx.cluster.mirror_with(
        Api::<PodDisruptionBudget>::namespaced(ctx.cluster.client(), ns),
        watcher::Config::default().fields("metadata.name=hello-k8s"),
        move |pdbs: &[Arc<PodDisruptionBudget>]| {
            if let Some(s) = pdbs.first().and_then(|p| p.status.as_ref()) {
                seen.fetch_min(s.current_healthy - s.desired_healthy, Ordering::Relaxed);
            }
        },
    );
    let timeout = format!("--timeout={}s", LIMIT.as_secs());
    let drained = ctx.cluster.try_kubectl(
        &[
            "drain",
            &victim,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            &timeout,
        ],
        None,
    )?;
    drop(pdb_watch);
    let log = format!("{}{}", drained.stdout, drained.stderr);
    let waits = log
        .lines()
        .filter(|l| l.contains("violate the pod's disruption budget"))
        .count();
    ctx.report.check(
        SUITE,
        &format!("kubectl drain {victim} completes"),
        drained.success,
        if drained.success {
            drained
                .stdout
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string()
        } else {
            drained.stderr.trim().to_string()
        },
    );
    ctx.report.check(
        SUITE,
        "the drain waits on the PDB: evictions that would break it refused (429) and retried",
        waits > 0,
        format!("{waits} refusals in kubectl's output"),
    );
    let least = margin.load(Ordering::Relaxed);
    ctx.report.check(
        SUITE,
        "never below the budget: the disruption controller's currentHealthy - desiredHealthy stays >= 0",
        least >= 0 && least != i32::MAX,
        format!("least margin seen {least}"),
    );
    // Back Ready elsewhere: every wanted replica serving, none on the drained node.
    let back = ctx.cluster.watch_pods(
        ns,
        SELECTOR,
        "the replicas Ready on the other nodes",
        LIMIT,
        |pods| {
            let want = max;
            let ready: Vec<_> = pods.iter().filter(|p| serving(p)).collect();
            let on_victim = pods.iter().filter(|p| node_of(p) == victim).count();
            if ready.len() >= want && on_victim == 0 {
                Ok(per_node(ready.iter().map(|p| p.as_ref())))
            } else {
                Err(format!(
                    "{} of {want} Ready, {on_victim} on {victim}",
                    ready.len()
                ))
            }
        },
    );
    ctx.report.check(
        SUITE,
        &format!("prod's replicas Ready again on the other nodes, none on {victim}"),
        back.is_ok(),
        match &back {
            Ok(spread) => format!("pods per node {spread:?}"),
            Err(e) => format!("{e:#}"),
        },
    );
    let node: Node = ctx.cluster.get(&["node", &victim])?;
    let cordoned = node.spec.and_then(|s| s.unschedulable).unwrap_or(false);
    ctx.report.check(
        SUITE,
        &format!("{victim} is cordoned by the drain"),
        cordoned,
        "",
    );
    Ok(victim)
}
