//! The operator readiness switch: refused without the right token; with it, the pod's
//! readiness fails, the Service stand-in stops routing to it after the probe lag, and it gets
//! no new requests until it is switched back on.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tokio::sync::watch;

use super::rollout::{service, start_ready, wait_serving};
use super::{Ctx, get};
use crate::http::Req;
use crate::lb::Lb;
use crate::load::{self, Records, Target};
use crate::manifests::Rendered;

pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("readiness switch {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;
    let key = rendered
        .generated_api_key
        .clone()
        .ok_or_else(|| anyhow!("no generated API_KEY for {}", rendered.env))?;
    let template = ctx.template(rendered)?;
    let readiness = template
        .readiness
        .clone()
        .ok_or_else(|| anyhow!("no readiness probe declared"))?;
    let lb = Lb::start(service(rendered)?, ctx.propagation).await?;
    let n = usize::try_from(rendered.replicas().max(2)).unwrap_or(2);
    let pods = start_ready(ctx, rendered, &template, &lb, "8f7e6d5c4", 30, n).await?;
    wait_serving(&lb, n, ctx.propagation * 3 + Duration::from_secs(2)).await;
    let target = &pods[1];
    let off = format!("{}/off", contract::paths::ADMIN_READINESS);
    let on = format!("{}/on", contract::paths::ADMIN_READINESS);

    let (mut refused, mut attempts) = (0, 0);
    for (what, req) in [
        ("no Authorization", Req::post(&off)),
        (
            "wrong token",
            Req::post(&off).header("Authorization", "Bearer not-the-key"),
        ),
        (
            "Basic scheme",
            Req::post(&off).header("Authorization", &format!("Basic {key}")),
        ),
        (
            "token prefix only",
            Req::post(&off).header(
                "Authorization",
                &format!("Bearer {}", &key[..key.len() - 1]),
            ),
        ),
        (
            "empty bearer",
            Req::post(&off).header("Authorization", "Bearer "),
        ),
    ] {
        attempts += 1;
        let resp = get(target, req).await?;
        let ok = resp.status == hyper::StatusCode::UNAUTHORIZED;
        if ok {
            refused += 1;
        }
        r.check(
            suite,
            &format!("{what} -> 401"),
            ok,
            resp.status.to_string(),
        );
    }
    let still = get(target, Req::get(contract::paths::READINESS)).await?;
    r.check(
        suite,
        "refused calls leave readiness on",
        still.status.is_success(),
        still.status.to_string(),
    );

    // Traffic to every replica first, so the pod-side counter is shown to move.
    let warmup = Records::default();
    let (warm_tx, warm_rx) = watch::channel(false);
    let clients = load::spawn(Target::Lb(lb.addr), 4, ctx.pace, warm_rx, warmup.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = warm_tx.send(true);
    for c in clients {
        let _ = c.await;
    }
    let warm_hits = root_requests(target).await;
    r.check(
        suite,
        "before the switch, the pod serves its share",
        warm_hits.is_none_or(|n| n > 0),
        format!(
            "its /metrics counts {warm_hits:?} GET / of {} sent",
            warmup.all().len()
        ),
    );

    let resp = get(
        target,
        Req::post(&off).header("Authorization", &format!("Bearer {key}")),
    )
    .await?;
    r.check(
        suite,
        "the right token switches readiness off",
        resp.status.is_success(),
        resp.status.to_string(),
    );
    let switched = Instant::now();
    let endpoint = lb
        .endpoint(&target.identity.name)
        .ok_or_else(|| anyhow!("no endpoint for the switched pod"))?;
    let allowed = readiness.period * readiness.failure_threshold
        + readiness.timeout
        + ctx.propagation
        + Duration::from_secs(1);
    let deadline = switched + allowed;
    while endpoint.serving() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let removed = !endpoint.serving();
    r.check(
        suite,
        "the Service stops routing to the switched-off pod within the probe lag",
        removed,
        format!(
            "out of rotation after {:.2}s (allowed {:.1}s: period x failureThreshold + timeout + propagation)",
            switched.elapsed().as_secs_f64(),
            allowed.as_secs_f64()
        ),
    );

    let before = endpoint.connections.load(Ordering::SeqCst);
    let others_before: u64 = lb
        .endpoints()
        .iter()
        .filter(|e| e.pod_name != target.identity.name)
        .map(|e| e.connections.load(Ordering::SeqCst))
        .sum();
    let served_before = root_requests(target).await;
    let records = Records::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients = load::spawn(Target::Lb(lb.addr), 4, ctx.pace, stop_rx, records.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    for c in clients {
        let _ = c.await;
    }
    let after = endpoint.connections.load(Ordering::SeqCst);
    let served_after = root_requests(target).await;
    let others_after: u64 = lb
        .endpoints()
        .iter()
        .filter(|e| e.pod_name != target.identity.name)
        .map(|e| e.connections.load(Ordering::SeqCst))
        .sum();
    let all = records.all();
    let failed = all.iter().filter(|x| !x.ok).count();
    let pod_side = match (served_before, served_after) {
        (Some(b), Some(a)) => format!(
            "; its own /metrics counts {} new GET / (before {b}, after {a})",
            a - b
        ),
        _ => "; its /metrics has no per-route counter to cross-check".into(),
    };
    r.check(
        suite,
        "the switched-off pod receives no new requests",
        after == before && served_before.zip(served_after).is_none_or(|(b, a)| a == b) && others_after > others_before,
        format!(
            "{} requests through the Service ({failed} failed): switched-off pod {} new connections, others {}{pod_side}",
            all.len(),
            after - before,
            others_after - others_before
        ),
    );
    r.check(
        suite,
        "no request failed while one pod was switched off",
        failed == 0 && !all.is_empty(),
        format!("{failed} of {}", all.len()),
    );
    r.count(
        format!("{suite}: unauthorized calls refused"),
        format!("{refused}/{attempts}"),
    );
    r.count(
        format!("{suite}: hits on the switched-off pod / requests"),
        format!("{}/{}", after - before, all.len()),
    );

    let resp = get(
        target,
        Req::post(&on).header("Authorization", &format!("Bearer {key}")),
    )
    .await?;
    r.check(
        suite,
        "switching back on is accepted",
        resp.status.is_success(),
        resp.status.to_string(),
    );
    let back = wait_serving(
        &lb,
        n,
        readiness.period * readiness.success_threshold
            + readiness.timeout
            + ctx.propagation * 2
            + Duration::from_secs(1),
    )
    .await;
    r.check(
        suite,
        "the pod rejoins the Service once Ready again",
        back && endpoint.serving(),
        "",
    );

    for p in &pods {
        p.kill().await;
        p.sandbox.shutdown();
    }
    Ok(())
}

/// The pod's own count of `GET /` requests from /metrics, if it exposes one per route.
async fn root_requests(pod: &crate::pod::Pod) -> Option<u64> {
    let resp = get(pod, Req::get(contract::paths::METRICS)).await.ok()?;
    let text = resp.text();
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let is_root = series.contains("route=\"/\"") || series.contains("path=\"/\"");
        let name = series.split('{').next().unwrap_or("");
        if name.contains("request") && name.ends_with("_total") && is_root {
            let v: f64 = value.parse().ok()?;
            *total.get_or_insert(0u64) += v as u64;
        }
    }
    total
}
