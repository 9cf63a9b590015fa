//! Deploy: `make auto-deploy-prod` and `make auto-deploy-dev`, the user's own commands, against
//! the cluster (its kubeconfig and context, the image built and imported into its containerd):
//! rolled out, every pod Ready by the real kubelet's probes with no restart, the greeting
//! through kube-proxy's NodePort. Then the secret canary: prod's API_KEY (random, of this run)
//! appears in no answer and in no container log.

use std::time::Duration;

use anyhow::Result;

use super::{Ctx, SELECTOR};
use crate::kube::{name, restarts};
use crate::traffic::{agent, get};

const SUITE: &str = "deploy";

pub fn run(ctx: &Ctx) -> Result<()> {
    for env in ["prod", "dev"] {
        let ns = ctx.namespace_of(env)?;
        let target = format!("auto-deploy-{env}");
        match ctx.make(&target, &[]) {
            Ok(_) => {
                ctx.report
                    .check(SUITE, &format!("make {target} succeeds"), true, "");
            }
            Err(e) => {
                ctx.report
                    .error(SUITE, &format!("make {target} succeeds"), &e);
                continue;
            }
        }
        let pods = ctx
            .cluster
            .wait("pods Ready", Duration::from_secs(120), || {
                let pods = ctx.cluster.pods(&ns, SELECTOR)?;
                let all_ready = !pods.is_empty()
                    && pods.iter().all(|p| {
                        p.metadata.deletion_timestamp.is_none() && crate::kube::pod_ready(p)
                    });
                Ok(all_ready.then_some(pods))
            });
        match pods {
            Ok(pods) => {
                let restarted: Vec<String> = pods
                    .iter()
                    .filter(|p| restarts(p) > 0)
                    .map(|p| format!("{} ({})", name(p), restarts(p)))
                    .collect();
                ctx.report.check(
                    SUITE,
                    &format!("{env}: every pod Ready by the kubelet's probes, none restarted"),
                    restarted.is_empty(),
                    format!("{} pods; restarted: {restarted:?}", pods.len()),
                );
            }
            Err(e) => ctx.report.error(SUITE, &format!("{env}: pods Ready"), &e),
        }
        let url = ctx.node_url(&ns, "/")?;
        // kube-proxy programs the NodePort once the EndpointSlice has the Ready pod (a few s).
        let client = agent(Duration::from_secs(5));
        let answer = ctx
            .cluster
            .wait("the NodePort answers", Duration::from_secs(30), || {
                Ok(get(&client, &url).ok().filter(|(status, _)| *status == 200))
            })
            .map_err(|e| format!("{e:#}"));
        ctx.report.check(
            SUITE,
            &format!("{env}: the greeting through the NodePort"),
            matches!(&answer, Ok((_, body)) if body.trim() == contract::GREETING),
            format!("GET {url}: {answer:?}"),
        );
    }
    canary(ctx)
}

/// The API_KEY of prod appears in no answer and no log.
fn canary(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    let secret = ctx.repo.join("k8s/overlays/prod/secret.env");
    let key = std::fs::read_to_string(&secret)?
        .lines()
        .find_map(|l| l.strip_prefix("API_KEY="))
        .map(str::to_string)
        .unwrap_or_default();
    if key.len() < 16 {
        ctx.report.check(
            SUITE,
            "canary: prod's API_KEY is known to the test",
            false,
            "no API_KEY in secret.env",
        );
        return Ok(());
    }
    let agent = agent(Duration::from_secs(5));
    let mut leaks = Vec::new();
    for path in [
        "/",
        "/info",
        "/metrics",
        "/healthz",
        "/readyz",
        "/nope",
        "/admin/readiness/off",
    ] {
        let url = ctx.node_url(&ns, path)?;
        if let Ok((_, body)) = get(&agent, &url)
            && body.contains(&key)
        {
            leaks.push(path.to_string());
        }
    }
    for pod in ctx.cluster.pods(&ns, SELECTOR)? {
        let logs = ctx
            .cluster
            .kubectl(&["logs", "-n", &ns, &name(&pod), "--all-containers"])?;
        if logs.contains(&key) {
            leaks.push(format!("logs of {}", name(&pod)));
        }
    }
    let events = ctx
        .cluster
        .kubectl(&["get", "events", "-n", &ns, "-o", "json"])?;
    if events.contains(&key) {
        leaks.push("events".into());
    }
    ctx.report.check(
        SUITE,
        "canary: prod's API_KEY in no answer, no container log, no event",
        leaks.is_empty(),
        if leaks.is_empty() {
            String::new()
        } else {
            format!("found in {leaks:?}")
        },
    );
    Ok(())
}
