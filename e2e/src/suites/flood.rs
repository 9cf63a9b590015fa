//! Floods through the NodePort, on prod's own objects, judged by the real kubelet.
//!
//! `wrk -t2 -c10000` keep-alive clients for [`Floods::seconds`] (120 s in CI) through
//! kube-proxy's NodePort, first on prod's replicas (with its HPA, which scales them out: the
//! autoscaler's check), then on one pod (HPA removed, scaled to 1). Meanwhile the kubelet
//! probes at the manifests' own period and timeout, and the harness probes each pod's probe port
//! itself, at the same timing and every second, to print the timeline the kubelet does not keep.
//!
//! Pass: no restart and no `OOMKilled` (the kubelet's pod status), no liveness streak of the
//! 1-second probes reaching the manifest's `failureThreshold`, at most 5% of them failed,
//! readiness never out for `failureThreshold` in a row (the service keeps readiness 200 under a
//! flood its limits allow: docs/service.md), memory inside the limit (cgroup peak) and back within
//! 16 MiB of idle once the flood ends (watched until it is, 60 s at most; the time it took is
//! printed). The kubelet's own `Unhealthy` events are counted and printed.
//! Last, a deliberately low memory limit (and the service's connection cap lifted, so it cannot
//! protect itself) must be reported `OOMKilled` by the kubelet.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Probe};

use super::{Ctx, SELECTOR, hpa_cpu, hpa_status};
use crate::kube::{name, node_of, pod_ip, restarts, terminations};
use crate::probes::{Poller, Timeline};

const SUITE: &str = "flood";
const CONNECTIONS: usize = 10_000;
const MIB: f64 = 1024.0 * 1024.0;

/// How long each flood lasts.
#[derive(Debug, Clone, Copy)]
pub struct Floods {
    pub seconds: u64,
}

pub fn run(ctx: &Ctx, floods: Floods) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    if let Err(e) = ctx.reset_prod() {
        ctx.report
            .error(SUITE, "replicas: prod reset to its 3 replicas", &e);
    }
    if let Err(e) = flood(ctx, &ns, "replicas", floods, true) {
        ctx.report
            .error(SUITE, "replicas: flood through the NodePort", &e);
    }
    // One pod: no autoscaler, one replica.
    let single = ctx
        .cluster
        .kubectl(&["delete", "hpa", "hello-k8s", "-n", &ns])
        .and_then(|_| {
            ctx.cluster
                .kubectl(&["scale", "deployment/hello-k8s", "-n", &ns, "--replicas=1"])
        })
        .and_then(|_| ctx.settled(&ns, Duration::from_secs(120)).map(|_| ()))
        .and_then(|_| flood(ctx, &ns, "one pod", floods, false));
    if let Err(e) = single {
        ctx.report
            .error(SUITE, "one pod: flood through the NodePort", &e);
    }
    // prod as committed again (the HPA back, 3 replicas).
    ctx.make("auto-deploy-prod", &[])?;
    if let Err(e) = oom(ctx) {
        ctx.report
            .error(SUITE, "a low memory limit is reported OOMKilled", &e);
    }
    Ok(())
}

fn probe_of(d: &Deployment, readiness: bool) -> Result<Probe> {
    let c = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .context("no container")?;
    let p = if readiness {
        &c.readiness_probe
    } else {
        &c.liveness_probe
    };
    p.clone().context("the container declares no such probe")
}

/// The port number and path an httpGet probe uses (the port resolved by name, as the kubelet does).
fn probe_target(d: &Deployment, probe: &Probe) -> Result<(u16, String)> {
    let get = probe.http_get.as_ref().context("not an httpGet probe")?;
    let port = match &get.port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n as u16,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(port_name) => d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.ports.as_ref())
            .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some(port_name)))
            .map(|p| p.container_port as u16)
            .with_context(|| format!("no container port named {port_name}"))?,
    };
    Ok((port, get.path.clone().unwrap_or_else(|| "/".into())))
}

struct Watched {
    pod: Pod,
    restarts: i32,
    idle_rss: Option<u64>,
    pollers: Vec<Poller>,
}

fn flood(ctx: &Ctx, ns: &str, label: &str, floods: Floods, hpa: bool) -> Result<()> {
    let d: Deployment = ctx.cluster.get(&["deployment", "hello-k8s", "-n", ns])?;
    let (live, ready) = (probe_of(&d, false)?, probe_of(&d, true)?);
    let (live_port, live_path) = probe_target(&d, &live)?;
    let (ready_port, ready_path) = probe_target(&d, &ready)?;
    let secs = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default) as u64);
    let live_timeout = secs(live.timeout_seconds, 1);
    let live_threshold = live.failure_threshold.unwrap_or(3) as usize;
    let ready_threshold = ready.failure_threshold.unwrap_or(3) as usize;
    let limit = memory_limit(&d);
    let pods = ctx.cluster.ready_pods(ns, SELECTOR)?;
    if pods.is_empty() {
        return Err(anyhow!("no Ready pod to flood"));
    }
    let events_before = unhealthy(ctx, ns)?;
    let mut watched = Vec::new();
    for pod in pods {
        let ip = pod_ip(&pod).context("pod without IP")?;
        let live_url = format!("http://{ip}:{live_port}{live_path}");
        let ready_url = format!("http://{ip}:{ready_port}{ready_path}");
        let n = name(&pod);
        // From the pod's node, as the kubelet probes (and as the NetworkPolicy allows).
        let netns = ctx.cluster.node(&node_of(&pod))?.netns();
        let pollers = vec![
            Poller::start(
                format!("{n} liveness every 1 s"),
                netns.clone(),
                live_url.clone(),
                Duration::from_secs(1),
                live_timeout,
            ),
            Poller::start(
                format!("{n} liveness at the manifest's period"),
                netns.clone(),
                live_url,
                secs(live.period_seconds, 10),
                live_timeout,
            ),
            Poller::start(
                format!("{n} readiness every 1 s"),
                netns,
                ready_url,
                Duration::from_secs(1),
                secs(ready.timeout_seconds, 1),
            ),
        ];
        watched.push(Watched {
            restarts: restarts(&pod),
            idle_rss: cgroup_value(&pod, "memory.stat", Some("total_rss")),
            pod,
            pollers,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = hpa.then(|| hpa_sampler(ctx.cluster.clone(), ns.to_string(), stop.clone()));
    let url = ctx.node_url(ns, "/")?;
    let started = Instant::now();
    let outcome = wrk(&url, CONNECTIONS, floods.seconds);
    stop.store(true, Ordering::Relaxed);
    let timelines: Vec<Vec<Timeline>> = watched
        .iter_mut()
        .map(|w| {
            std::mem::take(&mut w.pollers)
                .into_iter()
                .map(Poller::stop)
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let flood_secs = started.elapsed().as_secs_f64();
    match &outcome {
        Ok(o) => ctx
            .report
            .note(format!("{label}: {o} in {flood_secs:.0} s")),
        Err(e) => ctx.report.error(SUITE, &format!("{label}: wrk ran"), e),
    }
    let back = memory_back(ctx, &watched);
    let events_after = unhealthy(ctx, ns)?;
    for ((w, lines), back) in watched.iter().zip(&timelines).zip(&back) {
        let n = name(&w.pod);
        let now: Pod = ctx.cluster.get(&["pod", "-n", ns, &n])?;
        let oom: Vec<String> = terminations(&now)
            .into_iter()
            .filter(|r| r == "OOMKilled")
            .collect();
        ctx.report.check(
            SUITE,
            &format!("{label}: {n}: no restart, no OOMKilled (the kubelet's pod status)"),
            restarts(&now) == w.restarts && oom.is_empty(),
            format!("restarts {} -> {}, {oom:?}", w.restarts, restarts(&now)),
        );
        let kinds = ["Liveness", "Readiness"];
        let counts: Vec<String> = kinds
            .iter()
            .map(|k| {
                let key = (n.clone(), k.to_string());
                let delta =
                    events_after.get(&key).unwrap_or(&0) - events_before.get(&key).unwrap_or(&0);
                format!("{k} {delta}")
            })
            .collect();
        ctx.report.count(
            format!("{label}: {n}: the kubelet's Unhealthy events during the flood"),
            counts.join(", "),
        );
        for t in lines {
            ctx.report.note(format!(
                "{}: {} probes, {} failed ({:.1}%), longest run {}, slowest {} ms: {}",
                t.label,
                t.results.len(),
                t.failures(),
                t.failure_percent(),
                t.longest_run(),
                t.slowest_ms(),
                t.strip()
            ));
        }
        let (live1, ready1) = (&lines[0], &lines[2]);
        ctx.report.check(
            SUITE,
            &format!("{label}: {n}: liveness every 1 s: no run of {live_threshold} failures, at most 5% failed"),
            live1.longest_run() < live_threshold && live1.failure_percent() <= 5.0 && !live1.results.is_empty(),
            format!("{} of {} failed ({:.1}%), longest run {}", live1.failures(), live1.results.len(), live1.failure_percent(), live1.longest_run()),
        );
        ctx.report.check(
            SUITE,
            &format!("{label}: {n}: liveness at the manifest's period and timeout: no run of {live_threshold}"),
            lines[1].longest_run() < live_threshold,
            format!("{} of {} failed", lines[1].failures(), lines[1].results.len()),
        );
        ctx.report.check(
            SUITE,
            &format!(
                "{label}: {n}: readiness stays in (never {ready_threshold} failures in a row)"
            ),
            ready1.longest_run() < ready_threshold,
            format!(
                "{} of {} failed, longest run {}",
                ready1.failures(),
                ready1.results.len(),
                ready1.longest_run()
            ),
        );
        let peak = cgroup_value(&now, "memory.max_usage_in_bytes", None);
        let rss = cgroup_value(&now, "memory.stat", Some("total_rss"));
        ctx.report.check(
            SUITE,
            &format!(
                "{label}: {n}: memory inside the limit, back within 16 MiB of idle within {} s of the flood's end",
                MEMORY_BACK_LIMIT.as_secs()
            ),
            matches!((peak, limit), (Some(p), Some(l)) if p < l) && back.is_some(),
            format!(
                "cgroup peak {}, limit {}, RSS idle {} -> {} now, {}",
                mib(peak),
                mib(limit),
                mib(w.idle_rss),
                mib(rss),
                match back {
                    Some(t) => format!("back within 16 MiB after {:.1} s", t.as_secs_f64()),
                    None => "not back within 16 MiB".to_string(),
                }
            ),
        );
    }
    if let Some(sampler) = sampler {
        let samples = sampler.join().unwrap_or_default();
        // Samples before the HPA's first status (0 replicas) say nothing.
        let min = samples
            .iter()
            .map(|s| s.1)
            .filter(|n| *n > 0)
            .min()
            .unwrap_or(0);
        let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
        let cpu: Vec<String> = samples
            .iter()
            .filter_map(|s| s.0.map(|c| format!("{c}%")))
            .collect();
        ctx.report.check(
            SUITE,
            "HPA: metrics-server's CPU figures read, prod scaled out under the flood",
            !cpu.is_empty() && max > min,
            format!("CPU utilization samples {cpu:?}; replicas {min} -> {max}"),
        );
    }
    Ok(())
}

fn mib(v: Option<u64>) -> String {
    v.map(|b| format!("{:.1} MiB", b as f64 / MIB))
        .unwrap_or_else(|| "unknown".into())
}

fn memory_limit(d: &Deployment) -> Option<u64> {
    let q = d
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")?
        .0
        .clone();
    crate::quantity::bytes(&q).ok()
}

/// How long after a flood a pod's memory may take to come back near idle: jemalloc's background
/// threads purge freed pages over its 10 s decay, later on a machine as busy as a flood leaves it.
const MEMORY_BACK_LIMIT: Duration = Duration::from_secs(60);

/// Watches each pod's RSS (its cgroup's `total_rss`) after a flood until it is back within
/// 16 MiB of what it was idle: for each, how long that took, or `None` when it was not back
/// within [`MEMORY_BACK_LIMIT`] (or its idle figure was unreadable).
fn memory_back(ctx: &Ctx, watched: &[Watched]) -> Vec<Option<Duration>> {
    let started = Instant::now();
    let mut back: Vec<Option<Duration>> = vec![None; watched.len()];
    // Not back within the limit: what was seen is the answer (the check says which pod).
    let _ = ctx.cluster.wait(
        "memory back near idle after the flood",
        MEMORY_BACK_LIMIT,
        || {
            for (w, b) in watched.iter().zip(back.iter_mut()) {
                let rss = cgroup_value(&w.pod, "memory.stat", Some("total_rss"));
                if b.is_none()
                    && matches!((w.idle_rss, rss), (Some(i), Some(r)) if r <= i + 16 * 1024 * 1024)
                {
                    *b = Some(started.elapsed());
                }
            }
            Ok(back.iter().all(Option::is_some).then_some(()))
        },
    );
    back
}

/// A value of the pod's memory cgroup (cgroup v1, under its node's cgroup root).
fn cgroup_value(pod: &Pod, file: &str, key: Option<&str>) -> Option<u64> {
    let path = crate::kube::pod_cgroup(pod, "memory")?.join(file);
    let text = std::fs::read_to_string(path).ok()?;
    match key {
        None => text.trim().parse().ok(),
        Some(k) => text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} "))?.trim().parse().ok()),
    }
}

/// (pod, "Liveness"|"Readiness") -> how many times the kubelet reported that probe failing.
fn unhealthy(ctx: &Ctx, ns: &str) -> Result<BTreeMap<(String, String), i32>> {
    let events: crate::kube::Items<Event> =
        ctx.cluster
            .get(&["events", "-n", ns, "--field-selector", "reason=Unhealthy"])?;
    let mut out = BTreeMap::new();
    for e in events.items {
        let pod = e.involved_object.name.clone().unwrap_or_default();
        let msg = e.message.clone().unwrap_or_default();
        for kind in ["Liveness", "Readiness"] {
            if msg.starts_with(kind) {
                *out.entry((pod.clone(), kind.to_string())).or_insert(0) += e.count.unwrap_or(1);
            }
        }
    }
    Ok(out)
}

/// Samples the HPA every 5 s: (CPU utilization, current replicas).
fn hpa_sampler(
    cluster: crate::kube::Cluster,
    ns: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(Option<i32>, i32)>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(status) = hpa_status(&cluster, &ns) {
                samples.push((hpa_cpu(&status), status.current_replicas.unwrap_or(0)));
            }
            for _ in 0..50 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        samples
    })
}

const WRK_SCRIPT: &str = r#"
-- Counts answers by HTTP status in every thread; done() prints one JSON line.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
done = function(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses") or {}) do merged[code] = (merged[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(merged) do table.insert(parts, string.format('"%d":%d', code, n)) end
  local e = summary.errors
  io.write(string.format('E2E_WRK {"duration_us":%d,"requests":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p99_us":%d,"statuses":{%s}}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(99), table.concat(parts, ",")))
end
"#;

#[derive(Debug, serde::Deserialize)]
struct WrkErrors {
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct WrkResult {
    requests: u64,
    errors: WrkErrors,
    p99_us: u64,
    statuses: BTreeMap<String, u64>,
}

impl std::fmt::Display for WrkResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrk -c{CONNECTIONS}: {} answers {:?}, errors connect {} read {} write {} timeout {}, p99 {:.1} ms",
            self.requests,
            self.statuses,
            self.errors.connect,
            self.errors.read,
            self.errors.write,
            self.errors.timeout,
            self.p99_us as f64 / 1000.0
        )
    }
}

/// `wrk -t2 -cN -dS --timeout 5s` against `url`, with the open-files limit raised for it.
pub(crate) fn wrk(url: &str, connections: usize, seconds: u64) -> Result<WrkResult> {
    let script = tempfile::Builder::new()
        .prefix("e2e-wrk-")
        .suffix(".lua")
        .tempfile()?;
    std::fs::write(script.path(), WRK_SCRIPT)?;
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            r#"ulimit -n "$(ulimit -Hn)" && exec wrk -t2 -c"$1" -d"$2"s --timeout 5s -s "$3" "$4""#,
        )
        .arg("wrk")
        .arg(connections.to_string())
        .arg(seconds.to_string())
        .arg(script.path())
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("E2E_WRK "))
        .ok_or_else(|| {
            anyhow!(
                "wrk printed no result ({}): {} {}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
    serde_json::from_str(line).context("parsing wrk's result")
}

/// dev's Deployment with a memory limit far below what the service needs under load and its
/// connection cap lifted: the kubelet must report the container `OOMKilled`.
fn oom(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("dev")?;
    let patch = r#"[
      {"op":"replace","path":"/spec/template/spec/containers/0/resources/limits/memory","value":"16Mi"},
      {"op":"replace","path":"/spec/template/spec/containers/0/resources/requests/memory","value":"16Mi"},
      {"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"MAX_CONNECTIONS","value":"20000"}}
    ]"#;
    ctx.cluster.kubectl(&[
        "patch",
        "deployment",
        "hello-k8s",
        "-n",
        &ns,
        "--type=json",
        "-p",
        patch,
    ])?;
    let started = Instant::now();
    let verdict = ctx
        .cluster
        .wait("a pod reported OOMKilled", Duration::from_secs(240), || {
            for pod in ctx.cluster.pods(&ns, SELECTOR)? {
                if terminations(&pod).iter().any(|r| r == "OOMKilled") {
                    return Ok(Some(format!(
                        "{} OOMKilled, restarts {}",
                        name(&pod),
                        restarts(&pod)
                    )));
                }
                // Running but alive: push its memory with connections straight to the pod.
                // 10,000 of them: an idle keep-alive connection costs the service only 2.4 KiB
                // since it gives actix-http's buffers back between requests (docs/service.md),
                // so the 4,000 that were enough before (14.5 KiB each) may now fit in 16Mi.
                let running = crate::kube::pod_ready(&pod)
                    || pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if running && let Some(ip) = pod_ip(&pod) {
                    let _ = wrk(&format!("http://{ip}:{}/", contract::HTTP_PORT), 10_000, 5);
                }
            }
            Ok(None)
        });
    let detail = match &verdict {
        Ok(d) => format!("{d} after {:.0} s", started.elapsed().as_secs_f64()),
        Err(e) => format!("{e:#}"),
    };
    ctx.report.check(
        SUITE,
        "a low memory limit (16Mi, cap lifted) is reported OOMKilled by the kubelet",
        verdict.is_ok(),
        detail,
    );
    // Back to the committed template (the previous revision).
    ctx.cluster
        .kubectl(&["rollout", "undo", "deployment/hello-k8s", "-n", &ns])?;
    ctx.cluster
        .rollout(&ns, "hello-k8s", Duration::from_secs(180))?;
    Ok(())
}
