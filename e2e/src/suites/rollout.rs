//! A rolling update of the Deployment's replicas behind the Service stand-in, with a client
//! sending requests all along.
//!
//! The replacement follows the Deployment controller: at most `replicas + maxSurge` pods that
//! are not terminating, at least `replicas - maxUnavailable` available (Ready for
//! `minReadySeconds`); old pods are deleted only when that floor allows, and a deleted pod is
//! terminated by the kubelet (SIGTERM, drain, exit) while the load balancer only learns of its
//! readiness through the probes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Ctx;
use crate::lb::Lb;
use crate::load::{self, Records, Target};
use crate::manifests::Rendered;
use crate::pod::{Pod, PodTemplate, Termination};

/// maxSurge and maxUnavailable resolved against the replica count, as the controller does
/// (surge rounds up, unavailability down).
pub fn strategy(rendered: &Rendered) -> Result<(usize, usize, usize, Duration)> {
    let replicas = usize::try_from(rendered.replicas().max(0)).unwrap_or(0);
    let spec = rendered
        .deployment
        .spec
        .as_ref()
        .ok_or_else(|| anyhow!("Deployment has no spec"))?;
    let rolling = spec.strategy.as_ref().and_then(|s| {
        if s.type_.as_deref() == Some("Recreate") {
            None
        } else {
            Some(s.rolling_update.clone().unwrap_or_default())
        }
    });
    let Some(rolling) = rolling else {
        bail!("strategy Recreate: every pod stops before new ones start (an outage)");
    };
    let resolve = |v: &Option<IntOrString>, up: bool| -> Result<usize> {
        match v.clone().unwrap_or(IntOrString::String("25%".into())) {
            IntOrString::Int(n) => Ok(usize::try_from(n.max(0)).unwrap_or(0)),
            IntOrString::String(s) => {
                let pct: usize = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| anyhow!("{s:?} is not a percentage"))?;
                let scaled = pct * replicas;
                Ok(if up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                })
            }
        }
    };
    let surge = resolve(&rolling.max_surge, true)?;
    let unavailable = resolve(&rolling.max_unavailable, false)?;
    if surge == 0 && unavailable == 0 {
        bail!("maxSurge and maxUnavailable are both 0 (the API server refuses this)");
    }
    let min_ready =
        Duration::from_secs(u64::try_from(spec.min_ready_seconds.unwrap_or(0).max(0)).unwrap_or(0));
    Ok((replicas, surge, unavailable, min_ready))
}

/// The Service that selects the Deployment's pods.
pub fn service(rendered: &Rendered) -> Result<&k8s_openapi::api::core::v1::Service> {
    rendered
        .services
        .first()
        .ok_or_else(|| anyhow!("no Service among the rendered objects"))
}

/// Pods of one ReplicaSet and their terminations.
#[derive(Debug, Default)]
pub struct Fleet {
    pub pods: Vec<Arc<Pod>>,
    pub terminations: Vec<(Arc<Pod>, JoinHandle<Termination>)>,
}

/// Starts `n` pods, waits until all are Ready, and adds them to the load balancer.
pub async fn start_ready(
    ctx: &Ctx,
    rendered: &Rendered,
    template: &Arc<PodTemplate>,
    lb: &Lb,
    hash: &str,
    first_ordinal: u8,
    n: usize,
) -> Result<Vec<Arc<Pod>>> {
    let mut pods = Vec::new();
    for i in 0..n {
        let ordinal = first_ordinal + u8::try_from(i).unwrap_or(0);
        pods.push(
            ctx.start_pod(rendered, template, hash, ordinal, |_| {})
                .await?,
        );
    }
    for pod in &pods {
        lb.add_pod(pod)?;
    }
    for pod in &pods {
        pod.wait_ready()
            .await
            .with_context(|| format!("pod {}", pod.identity.name))?;
    }
    Ok(pods)
}

/// Waits until the load balancer routes to `n` endpoints (propagation done).
pub async fn wait_serving(lb: &Lb, n: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if lb.endpoints().iter().filter(|e| e.serving()).count() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn available(pod: &Pod, min_ready: Duration, ready_since: &mut Option<Instant>) -> bool {
    if *pod.ready.borrow() {
        let since = *ready_since.get_or_insert_with(Instant::now);
        since.elapsed() >= min_ready
    } else {
        *ready_since = None;
        false
    }
}

pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("rolling update {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;
    let (replicas, surge, unavailable, min_ready) = match strategy(rendered) {
        Ok(s) => s,
        Err(e) => {
            r.error(suite, "rolling update strategy", &e);
            return Ok(());
        }
    };
    r.note(format!(
        "{suite}: {replicas} replicas, maxSurge {surge}, maxUnavailable {unavailable}, \
         minReadySeconds {}",
        min_ready.as_secs()
    ));
    let template = ctx.template(rendered)?;
    let lb = Lb::start(service(rendered)?, ctx.propagation).await?;

    let mut old = match start_ready(ctx, rendered, &template, &lb, "7c6d5f4b8", 1, replicas).await {
        Ok(p) => p,
        Err(e) => {
            r.error(suite, "old replicas start and become Ready", &e);
            return Ok(());
        }
    };
    if !wait_serving(&lb, replicas, ctx.propagation * 3 + Duration::from_secs(2)).await {
        r.check(
            suite,
            "the Service routes to every Ready replica",
            false,
            "endpoints never became ready",
        );
    }

    let records = Records::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients = load::spawn(Target::Lb(lb.addr), 4, ctx.pace, stop_rx, records.clone());
    let load_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let result = roll(
        ctx,
        rendered,
        &template,
        &lb,
        &mut old,
        replicas,
        surge,
        unavailable,
        min_ready,
    )
    .await;
    // A little more load on the new replicas only.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    for c in clients {
        let _ = c.await;
    }
    let (new, terminations, max_pods, min_available) = match result {
        Ok(v) => v,
        Err(e) => {
            r.error(suite, "rolling update completes", &e);
            for p in &old {
                p.kill().await;
            }
            return Ok(());
        }
    };

    let all = records.all();
    let (total, failed, errors) = load::window(&all, load_start, Instant::now());
    r.check(
        suite,
        "zero failed requests during the rolling update",
        total > 0 && failed == 0,
        format!("{total} sent, {failed} failed {errors:?}"),
    );
    r.count(
        format!("{suite}: requests (sent/failed)"),
        format!("{total}/{failed}"),
    );
    r.check(
        suite,
        "at most replicas + maxSurge pods, at least replicas - maxUnavailable available",
        max_pods <= replicas + surge && min_available + unavailable >= replicas,
        format!("max {max_pods} pods, min {min_available} available"),
    );
    let bad: Vec<String> = terminations
        .iter()
        .filter(|(_, t)| t.killed || t.status.and_then(|s| s.code()) != Some(0))
        .map(|(name, t)| format!("{name}: {:?} killed={}", t.status, t.killed))
        .collect();
    r.check(
        suite,
        "every old replica exits 0 within its grace period",
        terminations.len() == replicas && bad.is_empty(),
        format!("{} terminated {bad:?}", terminations.len()),
    );
    let hits: Vec<String> = lb
        .endpoints()
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                e.pod_name,
                e.connections.load(std::sync::atomic::Ordering::SeqCst)
            )
        })
        .collect();
    r.note(format!("{suite}: connections per pod: {}", hits.join(" ")));
    let new_hits: u64 = new
        .iter()
        .filter_map(|p| lb.endpoint(&p.identity.name))
        .map(|e| e.connections.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    r.check(
        suite,
        "the new replicas serve the traffic",
        new_hits > 0,
        format!("{new_hits} connections"),
    );
    // Clean-up, not under test: the new replicas are stopped all at once.
    futures::future::join_all(new.iter().map(|p| p.kill())).await;
    for p in &new {
        p.sandbox.shutdown();
    }
    Ok(())
}

type Rolled = (Vec<Arc<Pod>>, Vec<(String, Termination)>, usize, usize);

/// The Deployment controller's loop, until every old pod is replaced and has exited.
#[allow(clippy::too_many_arguments)]
async fn roll(
    ctx: &Ctx,
    rendered: &Rendered,
    template: &Arc<PodTemplate>,
    lb: &Arc<Lb>,
    old: &mut Vec<Arc<Pod>>,
    replicas: usize,
    surge: usize,
    unavailable: usize,
    min_ready: Duration,
) -> Result<Rolled> {
    let mut new: Vec<Arc<Pod>> = Vec::new();
    let mut new_ready_since: Vec<Option<Instant>> = Vec::new();
    let mut old_ready_since: Vec<Option<Instant>> =
        vec![Some(Instant::now() - min_ready); old.len()];
    let mut terminating: Vec<(Arc<Pod>, JoinHandle<Termination>)> = Vec::new();
    let (mut max_pods, mut min_available) = (old.len(), old.len());
    let deadline = Instant::now()
        + template.ready_budget() * u32::try_from(replicas + 1).unwrap_or(4)
        + template.grace * 2;
    loop {
        if Instant::now() > deadline {
            bail!("the rollout did not finish by {deadline:?}");
        }
        for p in new.iter().chain(old.iter()) {
            if let Some(reason) = p.fatal() {
                bail!("pod {}: {reason}", p.identity.name);
            }
        }
        let new_available = new
            .iter()
            .zip(new_ready_since.iter_mut())
            .map(|(p, since)| available(p, min_ready, since))
            .filter(|a| *a)
            .count();
        let old_available = old
            .iter()
            .zip(old_ready_since.iter_mut())
            .map(|(p, since)| available(p, min_ready, since))
            .filter(|a| *a)
            .count();
        let total = new.len() + old.len();
        let available_now = new_available + old_available;
        max_pods = max_pods.max(total);
        min_available = min_available.min(available_now);
        if new.len() == replicas && new_available == replicas && old.is_empty() {
            break;
        }
        if new.len() < replicas && total < replicas + surge {
            let ordinal = 10 + u8::try_from(new.len()).unwrap_or(0);
            let pod = ctx
                .start_pod(rendered, template, "6b9a8e2c1", ordinal, |_| {})
                .await?;
            lb.add_pod(&pod)?;
            new.push(pod);
            new_ready_since.push(None);
            continue;
        }
        if !old.is_empty() && available_now > replicas - unavailable.min(replicas) {
            // The controller deletes unavailable old pods first.
            let index = old.iter().position(|p| !*p.ready.borrow()).unwrap_or(0);
            let pod = old.remove(index);
            old_ready_since.remove(index);
            let handle = {
                let pod = Arc::clone(&pod);
                let lb = Arc::clone(lb);
                tokio::spawn(async move {
                    let t = pod.terminate().await;
                    // The pod object disappears once its containers have exited.
                    lb.remove_pod(&pod.identity.name);
                    t
                })
            };
            terminating.push((pod, handle));
            continue;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut terminations = Vec::new();
    for (pod, handle) in terminating {
        terminations.push((pod.identity.name.clone(), handle.await?));
    }
    Ok((new, terminations, max_pods, min_available))
}
