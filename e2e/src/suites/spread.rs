//! Spread: prod's replicas land on at least two nodes, as its topology spread constraint
//! declares (`topologyKey: kubernetes.io/hostname`), and stay within its `maxSkew` after a
//! rollout (`kubectl rollout restart`: every pod replaced, one at a time, by the scheduler).
//! The skew is counted over every node the constraint can place a pod on (Ready, schedulable),
//! a node without any replica counting as zero.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod};

use super::Ctx;
use crate::kube::{Items, node_of, node_ready};

const SUITE: &str = "spread";
const LIMIT: Duration = Duration::from_secs(180);

pub fn run(ctx: &Ctx) -> Result<()> {
    if !super::has_nodes(ctx, SUITE, 2) {
        return Ok(());
    }
    let ns = ctx.namespace_of("prod")?;
    let d = ctx.deployment(&ns)?;
    let constraint = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.topology_key == "kubernetes.io/hostname")
        })
        .cloned()
        .context("prod's Deployment declares no topology spread over kubernetes.io/hostname")?;
    let max_skew = constraint.max_skew as usize;
    ctx.report.note(format!(
        "prod declares maxSkew {max_skew} over kubernetes.io/hostname, {}",
        constraint.when_unsatisfiable
    ));

    let pods = ctx.settled(&ns, LIMIT)?;
    let (spread, skew) = count(ctx, &pods)?;
    let nodes_used = spread.values().filter(|n| **n > 0).count();
    ctx.report.check(
        SUITE,
        "prod's replicas land on at least two nodes",
        nodes_used >= 2,
        format!("pods per node {spread:?}"),
    );
    ctx.report.check(
        SUITE,
        &format!("prod's replicas within maxSkew {max_skew}"),
        skew <= max_skew,
        format!("skew {skew}: pods per node {spread:?}"),
    );

    ctx.cluster
        .kubectl(&["rollout", "restart", "deployment/hello-k8s", "-n", &ns])?;
    ctx.cluster.rollout(&ns, "hello-k8s", LIMIT)?;
    let pods = ctx.settled(&ns, LIMIT)?;
    let (spread, skew) = count(ctx, &pods)?;
    ctx.report.check(
        SUITE,
        &format!("after kubectl rollout restart: within maxSkew {max_skew}, on at least two nodes"),
        skew <= max_skew && spread.values().filter(|n| **n > 0).count() >= 2,
        format!("skew {skew}: pods per node {spread:?}"),
    );
    Ok(())
}

/// Pods per eligible node (Ready and schedulable; zero where none), and the skew between the
/// fullest and the emptiest.
fn count(ctx: &Ctx, pods: &[Pod]) -> Result<(BTreeMap<String, usize>, usize)> {
    let nodes: Items<Node> = ctx.cluster.get(&["nodes"])?;
    let mut spread: BTreeMap<String, usize> = nodes
        .items
        .iter()
        .filter(|n| node_ready(n).as_deref() == Some("True"))
        .filter(|n| {
            !n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        })
        .filter_map(|n| n.metadata.name.clone())
        .map(|n| (n, 0))
        .collect();
    for pod in pods {
        if let Some(count) = spread.get_mut(&node_of(pod)) {
            *count += 1;
        }
    }
    let max = spread.values().copied().max().unwrap_or(0);
    let min = spread.values().copied().min().unwrap_or(0);
    Ok((spread, max - min))
}
