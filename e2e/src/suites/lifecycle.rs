//! One pod's life as the kubelet drives it: environment, start, probes, load, SIGTERM, exit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;

use super::{Ctx, DRAIN_GUARD, drain_delay, get};
use crate::http::Req;
use crate::kubelet::{self, PodIdentity};
use crate::load::{self, Records, Target};
use crate::manifests::Rendered;
use crate::pod::Pod;
use crate::probe::ProbeKind;

/// Agreements a cluster would break on but a single process would not show: the kubelet
/// probes and the Service reaches the pod IP, so the service must bind a wildcard address;
/// every variable the manifest sets must be one the service reads.
pub fn static_agreements(ctx: &Ctx, rendered: &Rendered, suite: &str) -> Result<()> {
    let r = &ctx.report;
    let container = rendered.container()?;
    let identity = PodIdentity::new(rendered, "static", 0)?;
    let launch = match kubelet::launch(
        rendered,
        container,
        &identity,
        &crate::image::entrypoint(&ctx.tools.repo),
    ) {
        Ok(l) => {
            r.check(
                suite,
                "every env reference resolves (configMapKeyRef, secretKeyRef, fieldRef, envFrom)",
                true,
                format!("{} variables", l.env.len()),
            );
            l
        }
        Err(e) => {
            r.check(
                suite,
                "every env reference resolves (configMapKeyRef, secretKeyRef, fieldRef, envFrom)",
                false,
                format!("{e:#} -> CreateContainerConfigError"),
            );
            return Ok(());
        }
    };
    let declared: Vec<String> = container
        .env
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    let unknown: Vec<&String> = declared
        .iter()
        .filter(|n| contract::key(n).is_none())
        .collect();
    r.check(
        suite,
        "every env name the Deployment sets is one the service reads",
        unknown.is_empty(),
        if unknown.is_empty() {
            format!("{} names, all in contract::KEYS", declared.len())
        } else {
            format!("not read by the service (renamed?): {unknown:?}")
        },
    );
    let default_host = contract::spec::host().default().unwrap_or_default();
    let host = launch.get("HOST").unwrap_or(&default_host);
    let wildcard = matches!(host, "0.0.0.0" | "::" | "[::]");
    r.check(
        suite,
        "HOST binds a wildcard address (probes and Service traffic arrive at the pod IP)",
        wildcard,
        format!("HOST={host}"),
    );
    Ok(())
}

/// Start, probes, load, SIGTERM during load, exit: the suite for one environment.
pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("pod {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;
    static_agreements(ctx, rendered, suite)?;
    let template = match ctx.template(rendered) {
        Ok(t) => t,
        Err(e) => {
            r.error(suite, "probes and ports of the container resolve", &e);
            return Ok(());
        }
    };
    for p in [&template.startup, &template.readiness, &template.liveness]
        .into_iter()
        .flatten()
    {
        r.note(format!("{suite}: {}", p.describe()));
    }
    r.check(
        suite,
        "readiness probe declared",
        template.readiness.is_some(),
        "",
    );
    r.check(
        suite,
        "liveness probe declared",
        template.liveness.is_some(),
        "",
    );

    let pod = match ctx
        .start_pod(rendered, &template, "5d8f9c7b6", 1, |_| {})
        .await
    {
        Ok(p) => p,
        Err(e) => {
            r.error(suite, "container starts", &e);
            return Ok(());
        }
    };
    for n in &pod.notes {
        r.note(format!("{suite}: {n}"));
    }
    let result = drive(ctx, suite, &pod).await;
    pod.kill().await;
    pod.sandbox.shutdown();
    result
}

async fn drive(ctx: &Ctx, suite: &str, pod: &Arc<Pod>) -> Result<()> {
    let r = &ctx.report;
    let template = &pod.template;
    match pod.wait_ready().await {
        Ok(took) => {
            r.check(
                suite,
                "pod Ready within what the probes allow",
                true,
                format!(
                    "Ready after {:.2}s (budget {:.0}s)",
                    took.as_secs_f64(),
                    template.ready_budget().as_secs_f64()
                ),
            );
            r.count(
                format!("{suite}: seconds to Ready"),
                format!("{:.2}", took.as_secs_f64()),
            );
        }
        Err(e) => {
            r.check(
                suite,
                "pod Ready within what the probes allow",
                false,
                format!("{e:#}"),
            );
            return Ok(());
        }
    }

    limits_enforced(ctx, suite, pod);

    // The downward API values must reach the service (a renamed key would leave "unknown").
    match get(pod, Req::get(contract::paths::INFO)).await {
        Ok(resp) => {
            let body = resp.text();
            let missing: Vec<&str> = [
                pod.identity.name.as_str(),
                pod.identity.namespace.as_str(),
                pod.identity.node_name.as_str(),
            ]
            .into_iter()
            .filter(|v| !body.contains(v))
            .collect();
            r.check(
                suite,
                "downward-API pod name, namespace and node reach /info",
                resp.status.is_success() && missing.is_empty(),
                if missing.is_empty() {
                    format!("{} {}", resp.status, pod.identity.name)
                } else {
                    format!("{} missing {missing:?} in {body}", resp.status)
                },
            );
        }
        Err(e) => r.error(
            suite,
            "downward-API pod name, namespace and node reach /info",
            &e,
        ),
    }

    // Wait for the first liveness results (liveness starts after the startup probe).
    if let Some(liveness) = &template.liveness {
        let deadline = Instant::now() + liveness.initial_delay + liveness.period + liveness.timeout;
        while Instant::now() < deadline
            && !pod
                .status
                .events()
                .iter()
                .any(|e| e.kind == ProbeKind::Liveness)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let records = Records::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients = load::spawn(
        Target::Pod(Arc::clone(&pod.sandbox), template.http_port),
        4,
        ctx.pace,
        stop_rx,
        records.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let terminating = {
        let pod = Arc::clone(pod);
        tokio::spawn(async move { pod.terminate().await })
    };
    let sigterm_at = pod.sigterm_sent().await;
    let drain = drain_delay(&pod.launch)?;
    let window_end = sigterm_at + drain.saturating_sub(DRAIN_GUARD);
    tokio::time::sleep_until(window_end.into()).await;
    let _ = stop_tx.send(true);
    for c in clients {
        let _ = c.await;
    }
    let termination = terminating.await?;

    let liveness: Vec<_> = pod
        .status
        .events()
        .into_iter()
        .filter(|e| e.kind == ProbeKind::Liveness)
        .collect();
    let failed_liveness: Vec<String> = liveness
        .iter()
        .filter(|e| !e.ok)
        .map(|e| e.detail.clone())
        .collect();
    r.check(
        suite,
        "liveness probes pass while serving",
        template.liveness.is_some() && !liveness.is_empty() && failed_liveness.is_empty(),
        format!(
            "{} run, {} failed {:?}",
            liveness.len(),
            failed_liveness.len(),
            failed_liveness.first()
        ),
    );
    if let Some(reason) = pod.fatal() {
        r.check(
            suite,
            "the kubelet never had to kill or restart the container",
            false,
            reason,
        );
    }

    let all = records.all();
    let (before, before_failed, before_errors) = load::window(&all, pod.started, sigterm_at);
    r.check(
        suite,
        "requests before SIGTERM succeed",
        before > 0 && before_failed == 0,
        format!("{before} sent, {before_failed} failed {before_errors:?}"),
    );
    let (during, during_failed, during_errors) = load::window(&all, sigterm_at, window_end);
    let drained = r.check(
        suite,
        "zero failed requests among those sent during the drain delay",
        during > 0 && during_failed == 0,
        format!(
            "{during} sent in the {:.1}s drain window, {during_failed} failed {during_errors:?}",
            drain.saturating_sub(DRAIN_GUARD).as_secs_f64()
        ),
    );
    if !drained {
        r.note(format!("{suite}: {}", pod.log_tail()));
    }
    r.count(
        format!("{suite}: requests during SIGTERM drain (sent/failed)"),
        format!("{during}/{during_failed}"),
    );
    r.count(
        format!("{suite}: requests before SIGTERM (sent/failed)"),
        format!("{before}/{before_failed}"),
    );

    match &template.readiness {
        Some(spec) => {
            let after = pod.readiness_after(sigterm_at);
            let first = after.first();
            let within = spec.period + spec.timeout;
            let ok = first.is_some_and(|e| !e.ok && e.at.duration_since(sigterm_at) <= within);
            r.check(
                suite,
                "readiness fails within one probe period of SIGTERM",
                ok,
                match first {
                    Some(e) => format!(
                        "first probe after SIGTERM at +{:.2}s: {} ({}); period {}s",
                        e.at.duration_since(sigterm_at).as_secs_f64(),
                        if e.ok { "passed" } else { "failed" },
                        e.detail,
                        spec.period.as_secs()
                    ),
                    None => "no readiness probe ran after SIGTERM".into(),
                },
            );
        }
        None => {
            r.check(
                suite,
                "readiness fails within one probe period of SIGTERM",
                false,
                "no readiness probe declared",
            );
        }
    }

    let code = termination.status.and_then(|s| s.code());
    r.check(
        suite,
        "exits 0 within terminationGracePeriodSeconds",
        !termination.killed && code == Some(0) && termination.took <= termination.grace,
        format!(
            "exit {} after {:.2}s (grace {}s{}, drain {}s)",
            termination
                .status
                .map_or_else(|| "?".into(), |s| s.to_string()),
            termination.took.as_secs_f64(),
            termination.grace.as_secs(),
            if termination.killed {
                ", SIGKILLed by the kubelet"
            } else {
                ""
            },
            drain.as_secs()
        ),
    );
    r.count(
        format!("{suite}: SIGTERM to exit (s)"),
        format!("{:.2}", termination.took.as_secs_f64()),
    );

    if pod.launch.get("LOG_FORMAT") == Some("json") {
        let stdout = pod.stdout();
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        let bad: Vec<&&str> = lines
            .iter()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
            .collect();
        r.check(
            suite,
            "stdout log lines are JSON, as LOG_FORMAT=json asks",
            !lines.is_empty() && bad.is_empty(),
            format!(
                "{} lines, {} not JSON {:?}",
                lines.len(),
                bad.len(),
                bad.first()
            ),
        );
    }
    Ok(())
}

/// The declared limits hold inside the pod as a runtime enforces them, and the service sizes
/// itself from them: `WORKERS=auto` counts the CPUs the CFS quota grants (std reads the
/// cgroup's quota), not the machine's cores.
fn limits_enforced(ctx: &Ctx, suite: &str, pod: &Pod) {
    let r = &ctx.report;
    let limits = pod.template.limits;
    let Some(cgroup) = pod.sandbox.cgroup().filter(|c| !c.is_empty()) else {
        r.note(format!(
            "{suite}: resources.limits ({}) NOT enforced on this machine (see the skip above)",
            limits.describe()
        ));
        return;
    };
    let usage = cgroup.memory_usage();
    r.check(
        suite,
        "resources.limits enforced in the pod's cgroup",
        true,
        format!(
            "{}; cgroup memory in use {}",
            limits.describe(),
            usage.map_or("unknown".into(), |u| format!(
                "{:.1} MiB",
                u as f64 / 1048576.0
            ))
        ),
    );
    let Some(millis) = limits.cpu_millis else {
        return;
    };
    if pod.launch.get("WORKERS").is_some_and(|w| w != "auto") {
        return;
    }
    // std::thread::available_parallelism: quota / period, at least 1, at most the cores.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let expected = usize::try_from(millis / 1000).unwrap_or(1).clamp(1, cores);
    let logged = workers_logged(&format!("{}{}", pod.stdout(), pod.stderr()));
    r.check(
        suite,
        "WORKERS=auto sees the CPU limit, not the machine's cores",
        logged == Some(expected),
        format!(
            "cpu limit {millis}m, {cores} cores here: the service runs {} workers, expected \
             {expected}",
            logged.map_or("an unlogged number of".into(), |n| n.to_string())
        ),
    );
}

/// The worker count from the service's start-up summary (`workers=N` or `"workers":N`).
fn workers_logged(logs: &str) -> Option<usize> {
    logs.lines().find_map(|line| {
        let at = line.find("workers")?;
        let rest = line[at + "workers".len()..].trim_start_matches(['"', '=', ':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}
