//! Node loss: a node holding prod's pods is cut off while full-rate load ([`crate::load`]) runs
//! through the first node's NodePort. The node's link goes down (scripts/cluster/link.sh): its
//! kubelet, containerd and pods keep running and nothing reaches them, which is what the rest
//! of a cluster sees of a node that crashed or lost its network, connections in flight hanging
//! included (a stopped kubelet would leave its pods serving, a softer failure).
//!
//! Measured and printed: the failed requests, the seconds until the Service routes around the
//! node (the node lifecycle controller marks it NotReady after its grace period, its pods'
//! endpoints turn not ready, kube-proxy stops sending to them), and the seconds until the pods
//! run elsewhere (the taint eviction after the pods' `tolerationSeconds`, the ReplicaSet's
//! replacements Ready on the other nodes). Pass: routed around within the grace period plus 30 s
//! and no failed request after that (but for one time-out's length, plus kube-proxy's sync);
//! pods Ready elsewhere within the grace period plus the toleration plus 60 s. Then the link
//! comes back: the node is Ready again, its evicted pods are gone, every replica is Ready, and
//! the node's NodePort and network-policy enforcer answer again.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher;

use super::{Ctx, SELECTOR, desired, run as run_command};
use crate::kube::{NodeInfo, name, node_of, node_ready, per_node, serving};
use crate::load::{Tally, wall, wall_now};

const SUITE: &str = "node-loss";
/// The node lifecycle controller's `--node-monitor-grace-period` (its default, which make
/// cluster leaves): how long a node may be silent before it is marked NotReady.
const GRACE: Duration = Duration::from_secs(50);
/// kube-proxy's reaction to an EndpointSlice change, at most (it syncs within a second here).
const PROXY_SYNC: Duration = Duration::from_secs(3);
/// The load client's time-out: a request sent just before the Service routed around may fail
/// this much later.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub fn run(ctx: &Ctx) -> Result<()> {
    if !super::has_nodes(ctx, SUITE, 2) {
        return Ok(());
    }
    let ns = ctx.namespace_of("prod")?;
    let entry = ctx.cluster.nodes[0].clone();
    let pods = ctx.settled(&ns, Duration::from_secs(240))?;
    let spread = per_node(pods.iter());
    let victim = spread
        .iter()
        .filter(|(node, _)| node.as_str() != entry.name)
        .max_by_key(|(_, n)| **n)
        .map(|(node, _)| node.clone())
        .context("no prod pod outside the first node")?;
    let victim = ctx.cluster.node(&victim)?.clone();
    let want = desired(&ctx.deployment(&ns)?);
    let toleration = unreachable_toleration(&pods);
    ctx.report.note(format!(
        "pods per node {spread:?}; cutting {} off; the pods tolerate an unreachable node for {} s",
        victim.name,
        toleration.map_or("(none)".into(), |t| t.to_string())
    ));

    let addr = ctx.node_port_on(&entry, &ns)?;
    // Keep-alive clients stay with the endpoint they were given; new clients meet the
    // Service's choice every time: both kinds run.
    let load = ctx.load(addr)?;
    let fresh = crate::load::Load::start_with(&ctx.load, addr, &["--fresh", "--connections", "4"])?;
    let cut = Instant::now();
    let cut_wall = wall_now();
    link(ctx, &victim, "down")?;
    let timeline = lost(ctx, &ns, &victim, want, toleration, cut);
    // A few seconds more of load, past the last change.
    std::thread::sleep(Duration::from_secs(5));
    let (tally, fresh) = (load.stop(), fresh.stop());
    let restored = link(ctx, &victim, "up");
    let (tally, fresh) = (tally?, fresh?);
    let cut_at = tally.since_start(cut_wall);
    let fresh_cut_at = fresh.since_start(cut_wall);

    ctx.report.count(
        format!("{SUITE}: requests, failed (keep-alive; a connection a request)"),
        format!(
            "{}, {}; {}, {}",
            tally.ok + tally.failed,
            tally.failed,
            fresh.ok + fresh.failed,
            fresh.failed
        ),
    );
    ctx.report.note(format!(
        "cut at {} ({cut_at:.1} s into the load): {}",
        wall(cut_wall),
        tally.describe()
    ));
    ctx.report
        .note(format!("new clients: {}", fresh.describe()));
    ctx.report.note(format!(
        "a character a second (. all answered, x some failed): keep-alive {}; new clients {}",
        tally.strip(),
        fresh.strip()
    ));
    match timeline {
        Ok(t) => judge(
            ctx,
            &victim,
            &t,
            (&tally, cut_at),
            (&fresh, fresh_cut_at),
            toleration,
        ),
        Err(e) => ctx
            .report
            .error(SUITE, "the cluster reacts to the lost node", &e),
    }
    restored?;
    rejoin(ctx, &ns, &victim, want)
}

/// Seconds after the cut at which each step happened.
#[derive(Debug, Default)]
struct Timeline {
    not_ready: f64,
    routed: f64,
    evicted: f64,
    elsewhere: f64,
}

fn link(ctx: &Ctx, node: &NodeInfo, state: &str) -> Result<()> {
    run_command(
        std::process::Command::new(ctx.cluster.scripts.join("link.sh"))
            .arg(&node.name)
            .arg(state)
            .envs(ctx.cluster.vars.iter()),
    )
    .map(|_| ())
}

/// The `tolerationSeconds` of the pods' toleration of `node.kubernetes.io/unreachable`.
fn unreachable_toleration(pods: &[Pod]) -> Option<i64> {
    pods.iter()
        .filter_map(|p| p.spec.as_ref()?.tolerations.as_ref())
        .flatten()
        .find(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
        .and_then(|t| t.toleration_seconds)
}

/// Follows the cluster's reaction to the lost node, each step watched on its own objects.
fn lost(
    ctx: &Ctx,
    ns: &str,
    victim: &NodeInfo,
    want: usize,
    toleration: Option<i64>,
    cut: Instant,
) -> Result<Timeline> {
    let mut t = Timeline::default();
    let bound = GRACE + Duration::from_secs(60);
    t.not_ready = ctx
        .cluster
        .watch_node(
            &victim.name,
            "the node marked NotReady",
            bound,
            |node| match node_ready(node).as_deref() {
                Some("True") => Err("Ready".into()),
                other => Ok(format!("{other:?}")),
            },
        )
        .map(|_| cut.elapsed().as_secs_f64())?;
    t.routed = ctx
        .cluster
        .watch_until(
            Api::<EndpointSlice>::namespaced(ctx.cluster.client(), ns),
            watcher::Config::default().labels("kubernetes.io/service-name=hello-k8s"),
            "no ready endpoint left on the lost node",
            bound,
            |slices| {
                let ready_there = slices
                    .iter()
                    .flat_map(|s| s.endpoints.iter())
                    .filter(|e| e.node_name.as_deref() == Some(victim.name.as_str()))
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                    .count();
                if ready_there == 0 {
                    Ok(())
                } else {
                    Err(format!("{ready_there} ready there"))
                }
            },
        )
        .map(|_| cut.elapsed().as_secs_f64())?;
    let patience = GRACE + Duration::from_secs(toleration.unwrap_or(300).max(0) as u64 + 90);
    let mut evicted: Option<f64> = None;
    t.elsewhere = ctx.cluster.watch_pods(
        ns,
        SELECTOR,
        "the replicas Ready on the other nodes",
        patience.saturating_sub(cut.elapsed()),
        |pods| {
            let gone = pods
                .iter()
                .any(|p| node_of(p) == victim.name && p.metadata.deletion_timestamp.is_some());
            if gone && evicted.is_none() {
                evicted = Some(cut.elapsed().as_secs_f64());
            }
            let elsewhere = pods
                .iter()
                .filter(|p| node_of(p) != victim.name && serving(p))
                .count();
            if elsewhere >= want {
                Ok(cut.elapsed().as_secs_f64())
            } else {
                Err(format!("{elsewhere} of {want} Ready on the other nodes"))
            }
        },
    )?;
    t.evicted = evicted.unwrap_or(t.elsewhere);
    Ok(t)
}

fn judge(
    ctx: &Ctx,
    victim: &NodeInfo,
    t: &Timeline,
    (tally, cut_at): (&Tally, f64),
    (fresh, fresh_cut_at): (&Tally, f64),
    toleration: Option<i64>,
) {
    let last = tally.last_failure_after(cut_at).map(|at| at - cut_at);
    let fresh_last = fresh
        .last_failure_after(fresh_cut_at)
        .map(|at| at - fresh_cut_at);
    let secs = |v: Option<f64>| v.map_or("none".into(), |l| format!("{l:.1}"));
    ctx.report.count(
        format!("{SUITE}: seconds after the cut: NotReady, endpoints routed around, last failure of a new client, of a keep-alive one, pods evicted, Ready elsewhere"),
        format!(
            "{:.1}, {:.1}, {}, {}, {:.1}, {:.1}",
            t.not_ready,
            t.routed,
            secs(fresh_last),
            secs(last),
            t.evicted,
            t.elsewhere
        ),
    );
    let grace = GRACE.as_secs_f64();
    ctx.report.check(
        SUITE,
        &format!(
            "the Service routes around {} within the grace period ({grace:.0} s) + 30 s",
            victim.name
        ),
        t.routed <= grace + 30.0,
        format!(
            "NotReady after {:.1} s, no ready endpoint there after {:.1} s",
            t.not_ready, t.routed
        ),
    );
    let settle = (REQUEST_TIMEOUT + PROXY_SYNC).as_secs_f64();
    let late = tally.failures_after(cut_at + t.routed + settle)
        + fresh.failures_after(fresh_cut_at + t.routed + settle);
    let late_list: Vec<String> = [(tally, cut_at, "keep-alive"), (fresh, fresh_cut_at, "new")]
        .iter()
        .flat_map(|(load, at, kind)| {
            load.failures
                .iter()
                .filter(move |f| f.at >= at + t.routed + settle)
                .map(move |f| format!("{kind} {:.1} s: {}", f.at - at, f.kind))
        })
        .take(20)
        .collect();
    if !late_list.is_empty() {
        ctx.report.note(format!(
            "failures once routed around: {}",
            late_list.join("; ")
        ));
    }
    ctx.report.check(
        SUITE,
        &format!(
            "no failed request once routed around (+{settle:.0} s: a time-out and kube-proxy's sync)"
        ),
        late == 0,
        format!(
            "{late} failed after {:.1} s; last failure {} s (new clients), {} s (keep-alive) after the cut",
            t.routed + settle,
            secs(fresh_last),
            secs(last)
        ),
    );
    let tolerated = toleration.unwrap_or(300) as f64;
    ctx.report.check(
        SUITE,
        &format!(
            "prod's pods run elsewhere within the grace period + tolerationSeconds ({tolerated:.0} s) + 60 s"
        ),
        t.elsewhere <= grace + tolerated + 60.0,
        format!(
            "evicted after {:.1} s, every replica Ready on the other nodes after {:.1} s",
            t.evicted, t.elsewhere
        ),
    );
}

/// The link back: the node rejoins and nothing is left broken.
fn rejoin(ctx: &Ctx, ns: &str, victim: &NodeInfo, want: usize) -> Result<()> {
    let back = Instant::now();
    let ready = ctx.cluster.watch_node(
        &victim.name,
        "the node Ready again",
        Duration::from_secs(120),
        |node| match node_ready(node).as_deref() {
            Some("True") => Ok(()),
            other => Err(format!("Ready {other:?}")),
        },
    );
    ctx.report.check(
        SUITE,
        &format!("{} rejoins Ready once its link is back", victim.name),
        ready.is_ok(),
        match &ready {
            Ok(()) => format!("after {:.1} s", back.elapsed().as_secs_f64()),
            Err(e) => format!("{e:#}"),
        },
    );
    let clean = ctx.cluster.watch_pods(
        ns,
        SELECTOR,
        "the evicted pods gone and every replica Ready",
        Duration::from_secs(180),
        |pods| {
            let deleting: Vec<String> = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .map(|p| name(p))
                .collect();
            let ready = pods.iter().filter(|p| serving(p)).count();
            if deleting.is_empty() && ready >= want {
                Ok(per_node(pods.iter().map(|p| p.as_ref())))
            } else {
                Err(format!(
                    "{ready} of {want} Ready; still being deleted: {deleting:?}"
                ))
            }
        },
    );
    ctx.report.check(
        SUITE,
        "the lost node's pods are gone (the kubelet confirmed their deletion), every replica Ready",
        clean.is_ok(),
        match &clean {
            Ok(spread) => format!("pods per node {spread:?}"),
            Err(e) => format!("{e:#}"),
        },
    );
    // The node serves again: its NodePort, and its enforcer's health.
    let url = format!("http://{}:{}/", victim.ip, ctx.node_port(ns)?);
    let client = crate::traffic::agent(Duration::from_secs(5));
    let answer = ctx
        .cluster
        .wait("its NodePort answers", Duration::from_secs(30), || {
            Ok(crate::traffic::get(&client, &url)
                .ok()
                .filter(|(s, _)| *s == 200))
        });
    ctx.report.check(
        SUITE,
        &format!("{}'s NodePort answers again", victim.name),
        answer.is_ok(),
        format!(
            "GET {url}: {}",
            answer
                .map(|_| "200".to_string())
                .unwrap_or_else(|e| format!("{e:#}"))
        ),
    );
    let health = crate::netns::run_in(Some(&victim.netns()), || {
        crate::traffic::get(
            &crate::traffic::agent(Duration::from_secs(3)),
            "http://127.0.0.1:20244/healthz",
        )
    })?;
    ctx.report.check(
        SUITE,
        &format!("{}'s kube-router healthy again", victim.name),
        matches!(health, Ok((200, _))),
        format!("{health:?}"),
    );
    if ready.is_err() {
        bail!("{} did not rejoin", victim.name);
    }
    Ok(())
}
