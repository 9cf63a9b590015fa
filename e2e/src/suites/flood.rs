//! Floods at the pod's own limits: one pod, then prod's replicas behind the Service.
//!
//! Three floods, each at least [`FLOOD`] long, bounded in connections and time, aimed only at
//! the pod's own loopback (the client runs in the pod's network namespace, outside its
//! cgroup) or at the Service: nftables DNAT in a node namespace the test makes (see
//! `nodenet`), or, where that is not possible, the user-space stand-in on 127.0.0.1 with fewer
//! connections (its file descriptors bound it):
//!
//! - (a) keep-alive: `wrk -t2 -c10000`, 10,000 concurrent keep-alive clients;
//! - (b) slowloris: 10,000 connections, half idle, half dripping an unfinished header one byte
//!   a second, each reconnecting when cut off, while four normal clients keep asking `GET /`;
//! - (c) churn: `wrk -c64 -H 'Connection: close'`, a new connection per request.
//!
//! The kubelet's own probe loop runs all along (a liveness restart or an OOM kill is fatal),
//! and a sampler runs liveness and readiness once a second at their `timeoutSeconds`. Pass
//! means: no OOM kill and no restart; liveness never fails `failureThreshold` times in a row;
//! readiness stays Ready (the service's design: load does not make a pod unready, probes are
//! answered even over the connection cap); at least [`SERVED_SHARE`] of the answers are 200;
//! every answer is 200 or the documented 503 shed, and no request is left unanswered past the
//! client's timeout; RSS is back within [`RSS_SLACK`] of idle within [`SETTLE`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::Ctx;
use crate::lb::Lb;
use crate::load::{self, Records, Target};
use crate::manifests::Rendered;
use crate::nodenet::NodeNet;
use crate::pod::Pod;
use crate::probe::{ProbeTarget, run_once};
use crate::report::Report;

/// How long each flood lasts.
pub const FLOOD: Duration = Duration::from_secs(10);
/// Connections of the keep-alive and slowloris floods on one pod.
pub const CONNECTIONS: usize = 10_000;
/// The least share of answers that must be 200 (the rest may be the documented 503 shed). At
/// 128Mi the service serves 1,331 connections (13% of the flood's 10,000) back to back and
/// sheds the others per request, so its served connections answer far more than 13%; 30% is
/// the floor stated in docs/testing.md, below what every run on this machine gave (42-55%).
pub const SERVED_SHARE: f64 = 0.3;
/// How far above its idle RSS a pod may stay after a flood.
pub const RSS_SLACK: u64 = 16 * 1024 * 1024;
/// How long memory gets to come back after a flood.
pub const SETTLE: Duration = Duration::from_secs(15);
/// wrk's per-request timeout: an answer later than this counts as lost.
const CLIENT_TIMEOUT: &str = "5s";

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

#[derive(Debug, Deserialize)]
struct WrkErrors {
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
}

#[derive(Debug, Deserialize)]
struct WrkResult {
    duration_us: u64,
    requests: u64,
    errors: WrkErrors,
    p99_us: u64,
    statuses: std::collections::BTreeMap<String, u64>,
}

/// What the clients of one flood saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Answers by status.
    statuses: std::collections::BTreeMap<u16, u64>,
    /// Requests with no answer within the client's timeout.
    unanswered: u64,
    /// Connections refused, reset or closed before an answer (the total cap closes them at
    /// once, before reading: no request was accepted on them).
    cut: u64,
    seconds: f64,
    detail: String,
}

impl Outcome {
    fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
    }
}

/// Where the flood goes: one pod's loopback (clients in its namespace), the Service as kernel
/// DNAT from a node namespace, or the user-space stand-in.
#[derive(Clone)]
enum Aim {
    Pod(Arc<Pod>),
    Node(Arc<NodeNet>),
    Lb(Arc<Lb>),
}

impl Aim {
    fn load_target(&self) -> Target {
        match self {
            Aim::Pod(pod) => Target::Pod(Arc::clone(&pod.sandbox), pod.template.http_port),
            Aim::Node(net) => Target::Via(Arc::clone(&net.node), net.service_addr()),
            Aim::Lb(lb) => Target::Lb(lb.addr),
        }
    }

    /// wrk, started where it reaches the target, with its URL.
    fn wrk(&self) -> (tokio::process::Command, String) {
        match self {
            Aim::Pod(pod) => {
                let port = pod.sandbox.loopback_port(pod.template.http_port);
                (
                    pod.sandbox.client_command(Path::new("wrk")),
                    format!("http://127.0.0.1:{port}/"),
                )
            }
            Aim::Node(net) => (
                net.client_command(Path::new("wrk")),
                format!("http://{}/", net.service_addr()),
            ),
            Aim::Lb(lb) => (
                tokio::process::Command::new("wrk"),
                format!("http://{}/", lb.addr),
            ),
        }
    }
}

async fn run_wrk(aim: &Aim, connections: usize, close: bool) -> Result<Outcome> {
    let script = tempfile::Builder::new()
        .prefix("e2e-wrk-")
        .suffix(".lua")
        .tempfile()?;
    std::fs::write(script.path(), WRK_SCRIPT)?;
    let (mut cmd, url) = aim.wrk();
    cmd.args(["-t2", &format!("-c{connections}")])
        .arg(format!("-d{}s", FLOOD.as_secs()))
        .args(["--timeout", CLIENT_TIMEOUT, "-s"])
        .arg(script.path());
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(&url).kill_on_drop(true);
    let output = tokio::time::timeout(FLOOD + Duration::from_secs(30), cmd.output())
        .await
        .map_err(|_| anyhow!("wrk did not finish within {:?}", FLOOD * 4))?
        .context("running wrk (install it: apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("E2E_WRK "))
        .ok_or_else(|| {
            anyhow!(
                "wrk printed no result ({}): {}{}",
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
    let w: WrkResult = serde_json::from_str(line).context("parsing wrk's result")?;
    let mut outcome = Outcome {
        unanswered: w.errors.timeout,
        cut: w.errors.connect + w.errors.read + w.errors.write,
        seconds: w.duration_us as f64 / 1e6,
        detail: format!(
            "wrk: {} requests, errors connect {} read {} write {} timeout {}, p99 {:.1} ms",
            w.requests,
            w.errors.connect,
            w.errors.read,
            w.errors.write,
            w.errors.timeout,
            w.p99_us as f64 / 1000.0
        ),
        ..Outcome::default()
    };
    for (code, n) in w.statuses {
        if let Ok(code) = code.parse() {
            outcome.statuses.insert(code, n);
        }
    }
    Ok(outcome)
}

/// Slowloris: `connections` held open, half idle and half dripping an endless header; each
/// reconnects when the server cuts it. Normal clients measure the share still served.
async fn slowloris(aim: &Aim, connections: usize, pace: Duration) -> Result<Outcome> {
    let target = aim.load_target();
    // The slow clients dial on the flood's own threads, apart from the normal clients.
    let bulk = match aim {
        Aim::Pod(pod) if pod.sandbox.netns_pid().is_some() => Some((
            Arc::clone(&pod.sandbox),
            std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, pod.template.http_port),
        )),
        Aim::Node(net) => Some((Arc::clone(&net.node), net.service_addr())),
        Aim::Pod(_) | Aim::Lb(_) => None,
    };
    let deadline = Instant::now() + FLOOD;
    let opened = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicU64::new(0));
    let open_now = Arc::new(AtomicUsize::new(0));
    let open_max = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let target = target.clone();
        let bulk = bulk.clone();
        let (opened, cut, open_now, open_max) = (
            Arc::clone(&opened),
            Arc::clone(&cut),
            Arc::clone(&open_now),
            Arc::clone(&open_max),
        );
        tasks.push(tokio::spawn(async move {
            let drip = i % 2 == 1;
            while Instant::now() < deadline {
                let connect = async {
                    match &bulk {
                        Some((sandbox, addr)) => sandbox.connect_bulk_to(*addr).await,
                        None => target.connect().await,
                    }
                };
                let Ok(Ok(mut stream)) =
                    tokio::time::timeout(Duration::from_secs(2), connect).await
                else {
                    cut.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                let now = open_now.fetch_add(1, Ordering::Relaxed) + 1;
                open_max.fetch_max(now, Ordering::Relaxed);
                if drip {
                    let _ = stream
                        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ")
                        .await;
                }
                let mut buf = [0u8; 512];
                let closed = loop {
                    let tick = tokio::time::sleep(Duration::from_secs(1));
                    tokio::select! {
                        read = stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => break true,
                            Ok(_) => {}
                        },
                        _ = tick => {
                            if Instant::now() >= deadline {
                                break false;
                            }
                            if drip && stream.write_all(b"a").await.is_err() {
                                break true;
                            }
                        }
                    }
                };
                open_now.fetch_sub(1, Ordering::Relaxed);
                if closed {
                    cut.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let records = Records::default();
    // The normal clients start once the flood is in place.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clients = load::spawn(target, 4, pace, stop_rx, records.clone());
    tokio::time::sleep_until(deadline.into()).await;
    let _ = stop_tx.send(true);
    for c in clients {
        let _ = c.await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let all = records.all();
    let mut outcome = Outcome {
        seconds: FLOOD.as_secs_f64(),
        ..Outcome::default()
    };
    let mut unanswered = 0;
    for r in &all {
        match (&r.ok, r.error.as_deref()) {
            (true, _) => *outcome.statuses.entry(200).or_default() += 1,
            (false, Some(e)) if e.starts_with("status ") => {
                let code = e[7..10].parse().unwrap_or(0);
                *outcome.statuses.entry(code).or_default() += 1;
            }
            (false, Some(e)) if e.contains("timeout") => unanswered += 1,
            (false, _) => outcome.cut += 1,
        }
    }
    outcome.unanswered = unanswered;
    outcome.detail = format!(
        "{} slow connections opened ({} at most at once), {} cut by the server; normal \
         clients: {} requests",
        opened.load(Ordering::Relaxed),
        open_max.load(Ordering::Relaxed),
        cut.load(Ordering::Relaxed),
        all.len()
    );
    Ok(outcome)
}

/// Liveness and readiness once a second at their timeouts, beside the kubelet's own loop.
struct Sampler {
    liveness_failed: Arc<AtomicU64>,
    liveness_ok: Arc<AtomicU64>,
    longest_streak: Arc<AtomicU64>,
    readiness_failed: Arc<AtomicU64>,
    readiness_ok: Arc<AtomicU64>,
    rss_max: Arc<AtomicU64>,
    cgroup_max: Arc<AtomicU64>,
    first_failure: Arc<std::sync::Mutex<Option<String>>>,
    stop: watch::Sender<bool>,
}

impl Sampler {
    fn start(pod: &Arc<Pod>) -> Sampler {
        let (stop, mut stop_rx) = watch::channel(false);
        let s = Sampler {
            liveness_failed: Arc::default(),
            liveness_ok: Arc::default(),
            longest_streak: Arc::default(),
            readiness_failed: Arc::default(),
            readiness_ok: Arc::default(),
            rss_max: Arc::default(),
            cgroup_max: Arc::default(),
            first_failure: Arc::default(),
            stop,
        };
        let target = ProbeTarget {
            sandbox: Arc::clone(&pod.sandbox),
            pod_ip: pod.identity.pod_ip.clone(),
            binary: pod.template.binary.clone(),
            launch: pod.launch.clone(),
        };
        let (live, ready) = (
            pod.template.liveness.clone(),
            pod.template.readiness.clone(),
        );
        let (lf, lo, streak, rf, ro, rss) = (
            Arc::clone(&s.liveness_failed),
            Arc::clone(&s.liveness_ok),
            Arc::clone(&s.longest_streak),
            Arc::clone(&s.readiness_failed),
            Arc::clone(&s.readiness_ok),
            Arc::clone(&s.rss_max),
        );
        let (cg, first) = (Arc::clone(&s.cgroup_max), Arc::clone(&s.first_failure));
        let pod = Arc::clone(pod);
        tokio::spawn(async move {
            let mut current = 0u64;
            loop {
                let tick = Instant::now();
                rss.fetch_max(pod.rss_bytes().unwrap_or(0), Ordering::Relaxed);
                cg.fetch_max(pod.memory_usage().unwrap_or(0), Ordering::Relaxed);
                let (l, r) = tokio::join!(
                    async {
                        match &live {
                            Some(spec) => Some(run_once(spec, &target).await),
                            None => None,
                        }
                    },
                    async {
                        match &ready {
                            Some(spec) => Some(run_once(spec, &target).await.is_ok()),
                            None => None,
                        }
                    }
                );
                match l {
                    Some(Ok(_)) => {
                        lo.fetch_add(1, Ordering::Relaxed);
                        current = 0;
                    }
                    Some(Err(e)) => {
                        crate::lock::lock(&first).get_or_insert(e);
                        lf.fetch_add(1, Ordering::Relaxed);
                        current += 1;
                        streak.fetch_max(current, Ordering::Relaxed);
                    }
                    None => {}
                }
                match r {
                    Some(true) => ro.fetch_add(1, Ordering::Relaxed),
                    Some(false) => rf.fetch_add(1, Ordering::Relaxed),
                    None => 0,
                };
                tokio::select! {
                    _ = tokio::time::sleep_until((tick + Duration::from_secs(1)).into()) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        });
        s
    }

    fn finish(&self) -> SampleCounts {
        let _ = self.stop.send(true);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SampleCounts {
            liveness_ok: get(&self.liveness_ok),
            liveness_failed: get(&self.liveness_failed),
            longest_streak: get(&self.longest_streak),
            readiness_ok: get(&self.readiness_ok),
            readiness_failed: get(&self.readiness_failed),
            rss_max: get(&self.rss_max),
            cgroup_max: get(&self.cgroup_max),
            first_failure: crate::lock::lock(&self.first_failure).clone(),
        }
    }
}

#[derive(Debug)]
struct SampleCounts {
    liveness_ok: u64,
    liveness_failed: u64,
    longest_streak: u64,
    readiness_ok: u64,
    readiness_failed: u64,
    rss_max: u64,
    cgroup_max: u64,
    first_failure: Option<String>,
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// Runs one flood against `aim` and checks every pass criterion on `pods`.
async fn flood(
    ctx: &Ctx,
    suite: &str,
    name: &str,
    pods: &[Arc<Pod>],
    idle: &[u64],
    aim: &Aim,
    run: impl std::future::Future<Output = Result<Outcome>>,
) -> Result<()> {
    let r: &Report = &ctx.report;
    let samplers: Vec<Sampler> = pods.iter().map(Sampler::start).collect();
    let began = Instant::now();
    let outcome = run.await?;
    let took = began.elapsed();
    let counts: Vec<SampleCounts> = samplers.iter().map(Sampler::finish).collect();
    let what = format!("{suite}: {name}");

    // No OOM kill, no restart: the kubelet's own loop decides (fatal = kill or restart).
    let fatal: Vec<String> = pods
        .iter()
        .filter_map(|p| p.fatal().map(|f| format!("{}: {f}", p.identity.name)))
        .collect();
    let ooms: u64 = pods.iter().map(|p| p.oom_kills()).sum();
    r.check(
        suite,
        &format!("{name}: no OOM kill and no restart"),
        fatal.is_empty() && ooms == 0,
        if fatal.is_empty() && ooms == 0 {
            format!(
                "{} pod(s), restartCount 0, cgroup oom_kill 0 (flood lasted {:.1}s)",
                pods.len(),
                took.as_secs_f64()
            )
        } else {
            format!("oom_kill {ooms}; {}", fatal.join(" | "))
        },
    );
    let threshold = pods
        .first()
        .and_then(|p| p.template.liveness.as_ref())
        .map_or(3, |l| u64::from(l.failure_threshold));
    let streak = counts.iter().map(|c| c.longest_streak).max().unwrap_or(0);
    let (lok, lfail) = counts.iter().fold((0, 0), |(o, f), c| {
        (o + c.liveness_ok, f + c.liveness_failed)
    });
    r.check(
        suite,
        &format!("{name}: liveness never fails failureThreshold ({threshold}) times in a row"),
        streak < threshold && fatal.is_empty(),
        format!(
            "sampled every 1s at its timeout: {lok} ok, {lfail} failed, longest failing streak \
             {streak}{}",
            counts
                .iter()
                .find_map(|c| c.first_failure.as_ref())
                .map_or(String::new(), |f| format!(" (first: {f})"))
        ),
    );
    // Readiness: the kubelet's readiness results during the flood, and the sampler's. The pod
    // leaves its Service only after failureThreshold failures in a row, so that is what must
    // never happen; single failures are printed.
    let ready_threshold = pods
        .first()
        .and_then(|p| p.template.readiness.as_ref())
        .map_or(3, |p| p.failure_threshold);
    let mut failures: Vec<String> = Vec::new();
    let mut ready_streak = 0u32;
    for pod in pods {
        let mut run = 0u32;
        for event in pod.readiness_after(began) {
            if event.ok {
                run = 0;
                continue;
            }
            run += 1;
            ready_streak = ready_streak.max(run);
            failures.push(format!(
                "+{:.1}s {}",
                event.at.duration_since(began).as_secs_f64(),
                event.detail
            ));
        }
    }
    let (rok, rfail) = counts.iter().fold((0, 0), |(o, f), c| {
        (o + c.readiness_ok, f + c.readiness_failed)
    });
    r.check(
        suite,
        &format!(
            "{name}: readiness stays Ready under load: never {ready_threshold} failures in a row \
             (probes answered over the cap)"
        ),
        ready_streak < ready_threshold && pods.iter().all(|p| *p.ready.borrow()),
        format!(
            "kubelet readiness failures during the flood: {}, longest streak {ready_streak}{}; \
             sampled every 1s: {rok} ok, {rfail} failed",
            failures.len(),
            failures
                .first()
                .map_or(String::new(), |f| format!(" (first: {f})"))
        ),
    );
    let answered = outcome.answered();
    let share = if answered == 0 {
        0.0
    } else {
        outcome.ok() as f64 / answered as f64
    };
    r.check(
        suite,
        &format!(
            "{name}: at least {:.0}% of answers are 200",
            SERVED_SHARE * 100.0
        ),
        answered > 0 && share >= SERVED_SHARE,
        format!(
            "{} of {answered} answers are 200 ({:.1}%, {:.0}/s); {}",
            outcome.ok(),
            share * 100.0,
            outcome.ok() as f64 / outcome.seconds.max(0.001),
            outcome.detail
        ),
    );
    let foreign: Vec<String> = outcome
        .statuses
        .iter()
        .filter(|(code, _)| !matches!(code, 200 | 503))
        .map(|(code, n)| format!("{n} x {code}"))
        .collect();
    r.check(
        suite,
        &format!("{name}: no accepted request lost (answers are 200 or a 503 shed, none late)"),
        foreign.is_empty() && outcome.unanswered == 0,
        format!(
            "statuses {:?}; unanswered within {CLIENT_TIMEOUT}: {}; connections cut before a \
             request was read (the total cap): {}",
            outcome.statuses, outcome.unanswered, outcome.cut
        ),
    );
    // Memory back near idle.
    let settle_from = Instant::now();
    let mut after: Vec<u64>;
    loop {
        after = pods.iter().map(|p| p.rss_bytes().unwrap_or(0)).collect();
        let back = after.iter().zip(idle).all(|(a, i)| *a <= i + RSS_SLACK);
        if back || settle_from.elapsed() >= SETTLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let peak: Vec<u64> = counts.iter().map(|c| c.rss_max).collect();
    let cgroup_peak: Vec<u64> = counts.iter().map(|c| c.cgroup_max).collect();
    let back = after
        .iter()
        .zip(idle)
        .all(|(a, i)| *a > 0 && *a <= i + RSS_SLACK);
    let list = |v: &[u64]| {
        v.iter()
            .map(|b| format!("{:.1}", mib(*b)))
            .collect::<Vec<_>>()
            .join("/")
    };
    r.check(
        suite,
        &format!(
            "{name}: memory returns within {} MiB of idle within {}s",
            RSS_SLACK >> 20,
            SETTLE.as_secs()
        ),
        back,
        format!(
            "VmRSS MiB idle {} -> peak {} -> after {} ({:.1}s after the flood); cgroup memory \
             peak {} MiB",
            list(idle),
            list(&peak),
            list(&after),
            settle_from.elapsed().as_secs_f64(),
            list(&cgroup_peak)
        ),
    );
    r.count(
        format!("{what}: 200/answers/unanswered/cut, req/s served"),
        format!(
            "{}/{answered}/{}/{}, {:.0}",
            outcome.ok(),
            outcome.unanswered,
            outcome.cut,
            outcome.ok() as f64 / outcome.seconds.max(0.001)
        ),
    );
    r.count(
        format!("{what}: VmRSS MiB idle -> peak -> after"),
        format!("{} -> {} -> {}", list(idle), list(&peak), list(&after)),
    );
    if let Aim::Lb(lb) = aim {
        r.note(format!(
            "{what}: stand-in connections per pod since the floods began {:?}, refused {}, \
             upstream errors {}",
            lb.endpoints()
                .iter()
                .map(|e| e.connections.load(Ordering::Relaxed))
                .collect::<Vec<_>>(),
            lb.rejected.load(Ordering::Relaxed),
            lb.upstream_errors.load(Ordering::Relaxed)
        ));
    }
    Ok(())
}

/// Connections the user-space stand-in can carry when each costs the harness `per_connection`
/// descriptors (2 for the stand-in's client and pod sides, 3 when the slow clients are the
/// harness's own too) under its RLIMIT_NOFILE, with room for everything else.
pub fn lb_connections(per_connection: u64) -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let usable = usize::try_from(soft.saturating_sub(4096) / per_connection).unwrap_or(0);
    usable.min(CONNECTIONS)
}

/// Whether a pod died in the last flood; the remaining floods are then recorded as not run.
/// The three floods in turn against `aim`: (a) `through` keep-alive clients, (b) `slow` idle
/// and slow-header connections, (c) churn; the next one runs only while every pod lives.
#[allow(clippy::too_many_arguments)]
async fn three_floods(
    ctx: &Ctx,
    suite: &str,
    pods: &[Arc<Pod>],
    idle: &[u64],
    aim: &Aim,
    through: usize,
    slow: usize,
    pace: Duration,
) -> Result<()> {
    let keep_alive = format!("(a) {through} keep-alive clients");
    flood(
        ctx,
        suite,
        &keep_alive,
        pods,
        idle,
        aim,
        run_wrk(aim, through, false),
    )
    .await?;
    if gone(ctx, suite, pods) {
        return Ok(());
    }
    let slowly = format!("(b) {slow} idle and slow-header connections");
    flood(
        ctx,
        suite,
        &slowly,
        pods,
        idle,
        aim,
        slowloris(aim, slow, pace),
    )
    .await?;
    if gone(ctx, suite, pods) {
        return Ok(());
    }
    let churn = "(c) churn, a new connection per request";
    flood(ctx, suite, churn, pods, idle, aim, run_wrk(aim, 64, true)).await
}

fn gone(ctx: &Ctx, suite: &str, pods: &[Arc<Pod>]) -> bool {
    let dead: Vec<&str> = pods
        .iter()
        .filter(|p| p.fatal().is_some())
        .map(|p| p.identity.name.as_str())
        .collect();
    if dead.is_empty() {
        return false;
    }
    ctx.report.check(
        suite,
        "the remaining floods run",
        false,
        format!("not run: {dead:?} died in the flood before"),
    );
    true
}

pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("flood {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;
    let template = ctx.template(rendered)?;
    r.note(format!(
        "{suite}: limits {}; each flood {}s; CPU is shared with other work on this machine, so \
         rates are noisier than a quiet node's",
        template.limits.describe(),
        FLOOD.as_secs()
    ));

    // One pod at its limits, the clients in its network namespace.
    let pod = ctx
        .start_pod(rendered, &template, "7c4f1a9e2", 3, |_| {})
        .await?;
    if let Err(e) = pod.wait_ready().await {
        r.error(suite, "pod Ready", &e);
        return Ok(());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pods = vec![Arc::clone(&pod)];
    // Idle before the first flood: what memory must return to after each one.
    let idle = vec![pod.rss_bytes().unwrap_or(0)];
    let aim = Aim::Pod(Arc::clone(&pod));
    let pace = ctx.pace;
    let one = format!("{suite} one pod");
    let result = three_floods(
        ctx,
        &one,
        &pods,
        &idle,
        &aim,
        CONNECTIONS,
        CONNECTIONS,
        pace,
    )
    .await;
    pod.kill().await;
    pod.sandbox.shutdown();
    drop(pods);
    drop(aim);
    result?;

    // The replicas behind the Service: kernel DNAT from a node namespace where the machine
    // allows it, else the user-space stand-in (bounded by its file descriptors).
    let replicas = u8::try_from(rendered.replicas().clamp(1, 8)).unwrap_or(1);
    let service = rendered
        .services
        .first()
        .ok_or_else(|| anyhow!("no Service among the rendered objects"))?;
    let lb = Lb::start(service, ctx.propagation).await?;
    let mut pods = Vec::new();
    for ordinal in 0..replicas {
        let pod = ctx
            .start_pod(rendered, &template, "7c4f1a9e2", 20 + ordinal, |_| {})
            .await?;
        lb.add_pod(&pod)?;
        pods.push(pod);
    }
    let result = async {
        for pod in &pods {
            pod.wait_ready().await?;
        }
        let node = if NodeNet::available(ctx.mode) {
            let (port, target) = service_ports(service, &template.container)?;
            Some(Arc::new(
                NodeNet::start(&pods, port, target, ctx.propagation).await?,
            ))
        } else {
            None
        };
        let serving_by = Instant::now() + ctx.propagation + Duration::from_secs(5);
        loop {
            let serving = match &node {
                Some(net) => net.ready_endpoints() == pods.len(),
                None => lb.endpoints().iter().all(|e| e.serving()),
            };
            if serving {
                break;
            }
            if Instant::now() > serving_by {
                bail!("the Service never saw every replica Ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle: Vec<u64> = pods.iter().map(|p| p.rss_bytes().unwrap_or(0)).collect();
        let (aim, through, slow, many) = match &node {
            Some(net) => {
                let many =
                    format!("{suite} {replicas} replicas behind the Service (nftables DNAT)");
                r.note(format!(
                    "{many}: a node namespace made by the test, one veth per replica, and an \
                     nftables DNAT rule (numgen round robin over the ready endpoints) for {}",
                    net.service_addr()
                ));
                (Aim::Node(Arc::clone(net)), CONNECTIONS, CONNECTIONS, many)
            }
            None => {
                let through = lb_connections(2);
                let slow = lb_connections(3);
                let many = format!("{suite} {replicas} replicas behind the stand-in");
                r.note(format!(
                    "{many}: no nftables or network namespaces here, so the user-space stand-in \
                     carries the floods; it holds two descriptors per connection (three with the \
                     harness's own slow clients), so its floods use {through} and {slow} \
                     connections (RLIMIT_NOFILE), not {CONNECTIONS}"
                ));
                (Aim::Lb(Arc::clone(&lb)), through, slow, many)
            }
        };
        three_floods(ctx, &many, &pods, &idle, &aim, through, slow, pace).await
    }
    .await;
    for pod in &pods {
        pod.kill().await;
        pod.sandbox.shutdown();
    }
    result
}

/// The Service's port and the pods' resolved targetPort.
fn service_ports(
    service: &k8s_openapi::api::core::v1::Service,
    container: &k8s_openapi::api::core::v1::Container,
) -> Result<(u16, u16)> {
    let port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .ok_or_else(|| anyhow!("the Service has no ports"))?;
    let target = port
        .target_port
        .clone()
        .unwrap_or(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port.port));
    Ok((
        u16::try_from(port.port).context("Service port")?,
        crate::probe::resolve_port(&target, container)?,
    ))
}
