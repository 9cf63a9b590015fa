//! Deploy: `make auto-deploy-prod` and `make auto-deploy-dev`, the user's own commands, against
//! the cluster (its kubeconfig and context, the image built and imported into its containerd):
//! rolled out, every pod Ready by the real kubelet's probes with no restart, the greeting
//! through kube-proxy's NodePort, with no API warning printed by the deploy; the running pods meet
//! Pod Security `restricted` at the server's own newest policy version too (the Namespaces pin
//! the generator's). Then the secret canary: prod's API_KEY (random, of this run) appears in no
//! answer and in no container log.

use std::time::Duration;

use anyhow::Result;

use super::{Ctx, SELECTOR};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

use crate::kube::{name, restarts, serving};
use crate::traffic::{agent, get};

const SUITE: &str = "deploy";

pub fn run(ctx: &Ctx) -> Result<()> {
    for env in ["prod", "dev"] {
        let ns = ctx.namespace_of(env)?;
        let target = format!("auto-deploy-{env}");
        match ctx.make(&target, &[]) {
            Ok(out) => {
                ctx.report
                    .check(SUITE, &format!("make {target} succeeds"), true, "");
                // kubectl prints the API server's warnings (a deprecated field or API, a
                // Pod Security `warn`) as `Warning: ...` on stderr, which the log holds.
                let warnings: Vec<&str> = out.lines().filter(|l| l.contains("Warning:")).collect();
                ctx.report.check(
                    SUITE,
                    &format!("make {target}: no warning from the API server"),
                    warnings.is_empty(),
                    warnings.join(" | "),
                );
            }
            Err(e) => {
                ctx.report
                    .error(SUITE, &format!("make {target} succeeds"), &e);
                continue;
            }
        }
        // An overlay with an HPA declares no replicas: the autoscaler brings the Deployment
        // to its minimum at its first sync.
        let hpa: Option<HorizontalPodAutoscaler> = ctx
            .cluster
            .get::<crate::kube::Items<HorizontalPodAutoscaler>>(&["hpa", "-n", &ns])
            .ok()
            .and_then(|l| l.items.into_iter().next());
        if let Some(min) = hpa.and_then(|h| h.spec.and_then(|s| s.min_replicas)) {
            let scaled = ctx.cluster.watch_pods(
                &ns,
                SELECTOR,
                "the HPA's minimum of replicas Ready",
                Duration::from_secs(120),
                |pods| {
                    let ready = pods.iter().filter(|p| serving(p)).count();
                    if ready >= min as usize {
                        Ok(())
                    } else {
                        Err(format!("{ready} of {min} Ready"))
                    }
                },
            );
            if let Err(e) = scaled {
                ctx.report
                    .error(SUITE, &format!("{env}: the HPA's minimum Ready"), &e);
            }
        }
        let pods = ctx.settled(&ns, Duration::from_secs(120));
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
        latest_pod_security(ctx, env, &ns);
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
    canary(ctx)?;
    memory(ctx);
    kubelets(ctx);
    Ok(())
}

/// What each kubelet says of this host in its own metrics (through the API server's node
/// proxy): the cgroup version it runs on, and the release from which the kubelet will no longer
/// fall back to its own cgroup driver setting for a runtime without the CRI `RuntimeConfig`
/// call (containerd 1.x); and the first sentence of its `CgroupV1` warning event. Counted for
/// the summary: the version differences docs/cluster.md records.
fn kubelets(ctx: &Ctx) {
    for node in &ctx.cluster.nodes {
        let selector = format!(
            "reason=CgroupV1,involvedObject.kind=Node,involvedObject.name={}",
            node.name
        );
        let event = ctx
            .cluster
            .kubectl(&[
                "get",
                "events",
                "-n",
                "default",
                "--field-selector",
                &selector,
                "-o",
                "jsonpath={.items[*].message}",
            ])
            .map(|m| m.split(". ").next().unwrap_or_default().trim().to_string())
            .unwrap_or_else(|e| format!("events not read: {e:#}"));
        ctx.report.count(
            format!("kubelet of {}, its CgroupV1 event", node.name),
            if event.is_empty() { "none" } else { &event },
        );
        let path = format!("/api/v1/nodes/{}/proxy/metrics", node.name);
        let said = match ctx.cluster.kubectl(&["get", "--raw", &path]) {
            Ok(text) => {
                let metric = |name: &str| -> Vec<&str> {
                    text.lines()
                        .filter(|l| l.starts_with(name))
                        .map(|l| l.trim_start_matches("kubelet_"))
                        .collect()
                };
                let mut found = metric("kubelet_cgroup_version ");
                found.extend(metric("kubelet_cri_losing_support{"));
                if found.is_empty() {
                    "neither kubelet_cgroup_version nor kubelet_cri_losing_support".to_string()
                } else {
                    found.join(", ")
                }
            }
            Err(e) => format!("metrics not read: {e:#}"),
        };
        ctx.report.count(format!("kubelet of {}", node.name), said);
    }
}

/// The running pods against Pod Security `restricted` at `latest`, the newest policy this API
/// server knows: a server-side dry run of the label change makes the PodSecurity admission
/// evaluate every pod of the namespace and warn for each that would be refused (the upstream
/// documentation's way to check a namespace before changing its labels). Nothing is changed.
fn latest_pod_security(ctx: &Ctx, env: &str, ns: &str) {
    let namespace = format!("namespace/{ns}");
    let outcome = ctx.cluster.kubectl_in(
        &[
            "label",
            "--dry-run=server",
            "--overwrite",
            &namespace,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        ],
        None,
    );
    match outcome {
        Ok(out) => {
            let warnings = super::warnings(&out.stderr);
            ctx.report.check(
                SUITE,
                &format!(
                    "{env}: the pods meet Pod Security restricted at the server's latest policy"
                ),
                warnings.is_empty(),
                warnings.join(" | "),
            );
        }
        Err(e) => ctx.report.error(
            SUITE,
            &format!("{env}: Pod Security restricted at latest, dry run"),
            &e,
        ),
    }
}

/// The cluster's memory with both overlays deployed (the machine has 24 GiB; the cluster stays
/// under 4).
fn memory(ctx: &Ctx) {
    let m = crate::memory::Memory::read(&ctx.cluster.run_dir);
    ctx.report.count(
        format!(
            "cluster memory, {} nodes, prod and dev deployed",
            ctx.cluster.nodes.len()
        ),
        m.describe(),
    );
    ctx.report.check(
        SUITE,
        "the cluster with prod deployed takes less than 4 GiB",
        m.total_mib() > 0.0 && m.total_mib() < 4096.0,
        format!("{:.0} MiB", m.total_mib()),
    );
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
