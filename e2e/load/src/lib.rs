//! Load at full rate through a NodePort, with every failure counted and none retried.
//!
//! [`run`] opens keep-alive connections (hyper's HTTP/1 connection, which never retries: a
//! request handed to it either gets its answer or an error) and sends `GET /` on each back to
//! back, as fast as the answers come: not paced. A request fails when it was handed to the
//! connection and did not come back `200` with the greeting within the time-out: a refused or
//! timed-out connect, an error writing it, the connection closed or reset before the answer, a
//! time-out, another status or body. Each failure is kept with its time and its kind; after one
//! the connection is dropped and a new one opened (after [`RECONNECT_PAUSE`] when the connect
//! itself failed). A connection that is already closed when the next request would be handed to
//! it (the server announced `Connection: close` with its last answer, or its close arrived with
//! that answer) is opened again without a failure: no request was lost.
//!
//! With `fresh`, every request goes on a connection of its own (`Connection: close`), paced (one
//! every `interval` on each connection): what a new client meets, where a keep-alive connection
//! stays with the endpoint it was given. Each of those connections is a new 5-tuple: its source
//! port is one the load has not used for minutes, and one no other connection of the machine
//! can hold. A port used again within two minutes of a connect that timed out would meet the
//! node's conntrack entry of that attempt (SYN_SENT, 120 s), which keeps the old destination,
//! whatever the Service says since: kube-proxy removes stale conntrack entries for UDP only.
//! So the ports ([`FreshPorts`]) are taken in turn, and from outside the kernel's ephemeral
//! range (`net.ipv4.ip_local_port_range`), where the kernel picks the ports of every other
//! connect, the keep-alive load's reconnects included: 16,384 ports below it, which the pace
//! (at most 40 a second with the suite's 4 connections) makes last longer than six minutes.
//!
//! The binary (`e2e-load`) runs until SIGINT or SIGTERM and prints its [`Report`] as one JSON
//! line; the e2e suites start it as they start wrk, and read the report back with this crate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};

/// The pause after a failed connect, so that a refusing address is not hammered.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Failures kept one by one (the counts are kept whole).
const KEPT: usize = 20_000;
/// Seconds of the per-second timeline.
const SECONDS: usize = 3_600;
/// What the binary prints once the load runs (some answers in).
pub const RUNNING: &str = "E2E_LOAD_RUNNING";
/// The prefix of the report's line.
pub const REPORT: &str = "E2E_LOAD_REPORT ";

/// One failed request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// Seconds since the load started.
    pub at: f64,
    /// When, in milliseconds since the Unix epoch.
    pub wall_ms: u64,
    pub kind: String,
}

/// What one load saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
    pub connections: usize,
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
    /// When the load started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    pub kinds: BTreeMap<String, u64>,
    /// The failures, in the order they happened (the first 20,000).
    pub failures: Vec<Failure>,
    /// (answered, failed) per second since the start.
    pub timeline: Vec<(u64, u64)>,
}

/// The running load's counters, shared by its connections.
#[derive(Debug)]
pub struct Shared {
    pub stop: AtomicBool,
    started: Instant,
    started_ms: u64,
    ok: AtomicU64,
    failed: AtomicU64,
    timeline: Vec<AtomicU64>,
    failures: Mutex<Vec<Failure>>,
    kinds: Mutex<BTreeMap<String, u64>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Default for Shared {
    fn default() -> Self {
        // Fresh connections' ports start where the clock says, not where the last load started.
        NEXT_PORT.store(now_ms() / 7, Ordering::Relaxed);
        Shared {
            stop: AtomicBool::new(false),
            started: Instant::now(),
            started_ms: now_ms(),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            timeline: (0..2 * SECONDS).map(|_| AtomicU64::new(0)).collect(),
            failures: Mutex::new(Vec::new()),
            kinds: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Shared {
    fn second(&self) -> usize {
        (self.started.elapsed().as_secs() as usize).min(SECONDS - 1)
    }

    fn answered(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.timeline[2 * self.second()].fetch_add(1, Ordering::Relaxed);
    }

    fn fail(&self, kind: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.timeline[2 * self.second() + 1].fetch_add(1, Ordering::Relaxed);
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        *kinds.entry(kind.clone()).or_insert(0) += 1;
        drop(kinds);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() < KEPT {
            failures.push(Failure {
                at: self.started.elapsed().as_secs_f64(),
                wall_ms: now_ms(),
                kind,
            });
        }
    }

    /// Requests answered so far.
    pub fn answered_so_far(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// The report of what the connections saw so far.
    pub fn report(&self, target: String, connections: usize) -> Report {
        let seconds = self.started.elapsed().as_secs_f64();
        let last = (seconds.ceil() as usize).clamp(1, SECONDS);
        Report {
            target,
            connections,
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            seconds,
            started_ms: self.started_ms,
            kinds: self.kinds.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            failures: self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            timeline: (0..last)
                .map(|i| {
                    (
                        self.timeline[2 * i].load(Ordering::Relaxed),
                        self.timeline[2 * i + 1].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }
}

/// Where fresh connections take their source ports: `count` ports from `first`, in turn, none
/// of them in the kernel's ephemeral range.
///
/// The keep-alive load beside a fresh one (node-loss runs both) gets its ports from the kernel.
/// When they shared the range, a keep-alive reconnect that timed out on a lost node left a
/// SYN_SENT conntrack entry that a fresh connect, walking the same range, met a minute later
/// on the same port: 10 connects failed, all of them on such ports, 14-23 s after the Service
/// had routed around the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreshPorts {
    pub first: u16,
    pub count: u16,
}

/// The ports fresh connections walk through: enough that, at the suite's pace, a port comes
/// back only after conntrack has forgotten its last use.
const FRESH_PORTS: u16 = 16_384;
/// The lowest source port fresh connections take (below it, the ports of well-known servers).
const LOWEST_PORT: u16 = 1_024;
/// Where the kernel says its ephemeral range is.
const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

impl FreshPorts {
    /// The ports outside this machine's ephemeral range ([`FreshPorts::outside`]).
    ///
    /// # Errors
    /// When the range cannot be read, or leaves no room for [`FRESH_PORTS`] ports.
    pub fn of_this_machine() -> anyhow::Result<Self> {
        let (low, high) = ephemeral_range()?;
        Self::outside(low, high).ok_or_else(|| {
            anyhow::anyhow!(
                "the ephemeral range {low}-{high} ({EPHEMERAL_RANGE}) leaves no {FRESH_PORTS} ports \
                 between {LOWEST_PORT} and 65535 for fresh connections; expected a range that \
                 starts above {} or ends below {}",
                LOWEST_PORT as u32 + FRESH_PORTS as u32 - 1,
                65_536 - FRESH_PORTS as u32
            )
        })
    }

    /// [`FRESH_PORTS`] ports just below the ephemeral range `low..=high` (Linux's default is
    /// 32768-60999: 16384-32767), or just above it when there is no room below.
    pub fn outside(low: u16, high: u16) -> Option<Self> {
        let (low, high) = (u32::from(low.min(high)), u32::from(low.max(high)));
        let count = u32::from(FRESH_PORTS);
        let first = if low >= u32::from(LOWEST_PORT) + count {
            low - count
        } else if high + count <= 65_535 {
            high + 1
        } else {
            return None;
        };
        Some(FreshPorts {
            first: u16::try_from(first).ok()?,
            count: FRESH_PORTS,
        })
    }

    /// The `n`th port of the walk.
    fn nth(self, n: u64) -> u16 {
        self.first + (n % u64::from(self.count)) as u16
    }
}

/// This machine's ephemeral range (`net.ipv4.ip_local_port_range`): where the kernel takes the
/// source port of a connect that binds none.
///
/// # Errors
/// When the file cannot be read or does not hold two port numbers.
pub fn ephemeral_range() -> anyhow::Result<(u16, u16)> {
    let text = std::fs::read_to_string(EPHEMERAL_RANGE)
        .map_err(|e| anyhow::anyhow!("reading {EPHEMERAL_RANGE}: {e}"))?;
    let mut bounds = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(low)), Some(Ok(high)), None) = (bounds.next(), bounds.next(), bounds.next())
    else {
        anyhow::bail!("{EPHEMERAL_RANGE} holds {text:?}, expected two port numbers");
    };
    Ok((low, high))
}

/// How far the fresh connections' walk has come.
static NEXT_PORT: AtomicU64 = AtomicU64::new(0);

/// A connect from a source port not used for the longest time (fresh connections), or from
/// whichever port the kernel gives.
async fn connect(addr: SocketAddr, fresh: Option<FreshPorts>) -> std::io::Result<TcpStream> {
    let Some(ports) = fresh else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for _ in 0..16 {
        let port = ports.nth(NEXT_PORT.fetch_add(1, Ordering::Relaxed));
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], port).into()
        } else {
            ([0u16; 8], port).into()
        };
        match socket.bind(local) {
            Ok(()) => return socket.connect(addr).await,
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

/// How each connection sends.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Keep-alive, requests back to back.
    FullRate,
    /// A connection a request, one every this long, from these source ports.
    Fresh(Duration, FreshPorts),
}

/// One connection after the other to `addr`, requests back to back on each (one on each, paced,
/// when fresh), until `stop`.
pub async fn connection(addr: SocketAddr, timeout: Duration, mode: Mode, shared: Arc<Shared>) {
    let host = addr.to_string();
    let (fresh, mut pace) = match mode {
        Mode::FullRate => (None, None),
        Mode::Fresh(every, ports) => {
            let mut pace = tokio::time::interval(every);
            // After a time-out, go on at the pace; no burst of the requests missed.
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (Some(ports), Some(pace))
        }
    };
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let stream = match tokio::time::timeout(timeout, connect(addr, fresh)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                shared.fail(format!("connect: {}", io_kind(&e)));
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
            Err(_) => {
                shared.fail("connect: timed out".into());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, driver) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => {
                    shared.fail(format!("handshake: {}", hyper_kind(&e)));
                    continue;
                }
            };
        let driver = tokio::spawn(driver);
        while !shared.stop.load(Ordering::Relaxed) {
            // A connection already known closed takes no request: opened again, nothing lost.
            if sender.ready().await.is_err() {
                break;
            }
            let mut request = Request::get("/").header(hyper::header::HOST, &host);
            if fresh.is_some() {
                request = request.header(hyper::header::CONNECTION, "close");
            }
            let request = match request.body(Empty::<Bytes>::new()) {
                Ok(r) => r,
                Err(e) => {
                    shared.fail(format!("request: {e}"));
                    break;
                }
            };
            let exchange = async {
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(Ok((status, body)))
                    if status == 200 && body == contract::GREETING.as_bytes() =>
                {
                    shared.answered();
                    if fresh.is_some() {
                        break;
                    }
                }
                Ok(Ok((status, body))) => shared.fail(format!(
                    "answer: {status} {}",
                    String::from_utf8_lossy(&body).trim()
                )),
                Ok(Err(e)) => {
                    shared.fail(hyper_kind(&e));
                    break;
                }
                Err(_) => {
                    shared.fail("no answer within the time-out".into());
                    break;
                }
            }
        }
        driver.abort();
    }
}

/// A connection error, by what happened to the socket.
fn hyper_kind(e: &hyper::Error) -> String {
    let io = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(io_kind);
    let what = if e.is_incomplete_message() {
        "connection closed before the answer"
    } else if e.is_canceled() {
        "connection closed before the request was written"
    } else if e.is_parse() {
        "unparsable answer"
    } else if e.is_timeout() {
        "time-out"
    } else {
        "connection error"
    };
    match io {
        Some(io) => format!("{what} ({io})"),
        None => what.to_string(),
    }
}

fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".into(),
        std::io::ErrorKind::ConnectionReset => "reset".into(),
        std::io::ErrorKind::BrokenPipe => "broken pipe (write)".into(),
        std::io::ErrorKind::TimedOut => "timed out".into(),
        kind => format!("{kind:?}"),
    }
}

impl Report {
    /// Answered requests a second, over the whole load.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Requests (answered and failed) and failures by kind, with the first failures' times.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} requests through {} ({} connections, full rate: {:.0}/s over {:.0} s), {} failed",
            self.ok + self.failed,
            self.target,
            self.connections,
            self.rate(),
            self.seconds,
            self.failed
        );
        if !self.kinds.is_empty() {
            let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            s.push_str(&format!(" ({})", kinds.join(", ")));
        }
        for f in self.failures.iter().take(5) {
            s.push_str(&format!(
                "; at {:.3} s ({}): {}",
                f.at,
                wall(f.wall_ms),
                f.kind
            ));
        }
        s
    }

    /// Seconds since the start of the last failure at or after `from` seconds, if any.
    pub fn last_failure_after(&self, from: f64) -> Option<f64> {
        self.failures
            .iter()
            .rev()
            .find(|f| f.at >= from)
            .map(|f| f.at)
    }

    /// Failures at or after `from` seconds since the start.
    pub fn failures_after(&self, from: f64) -> usize {
        self.failures.iter().filter(|f| f.at >= from).count()
    }

    /// Seconds from the load's start to `wall_ms` (milliseconds since the Unix epoch).
    pub fn since_start(&self, wall_ms: u64) -> f64 {
        (wall_ms as f64 - self.started_ms as f64) / 1000.0
    }

    /// The per-second timeline as one character a second: `.` all answered, `x` some failed,
    /// `-` nothing at all.
    pub fn strip(&self) -> String {
        self.timeline
            .iter()
            .map(|(ok, failed)| match (ok, failed) {
                (_, f) if *f > 0 => 'x',
                (0, 0) => '-',
                _ => '.',
            })
            .collect()
    }
}

/// Milliseconds since the Unix epoch as the time of day, `HH:MM:SS.mmmZ` (as the cluster's logs
/// show it).
pub fn wall(ms: u64) -> String {
    let secs = ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms % 1000
    )
}

/// Now, in milliseconds since the Unix epoch.
pub fn wall_now() -> u64 {
    now_ms()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::FreshPorts;

    #[test]
    fn fresh_ports_lie_just_below_linux_s_default_ephemeral_range() {
        let ports = FreshPorts::outside(32_768, 60_999).unwrap();
        assert_eq!((ports.first, ports.count), (16_384, 16_384));
        assert_eq!(ports.nth(0), 16_384);
        assert_eq!(ports.nth(16_383), 32_767);
        assert_eq!(
            ports.nth(16_384),
            16_384,
            "the walk starts again at the first port"
        );
    }

    #[test]
    fn fresh_ports_go_above_a_range_that_starts_too_low_and_none_fit_around_a_wide_one() {
        let above = FreshPorts::outside(10_000, 40_000).unwrap();
        assert_eq!(above.first, 40_001);
        assert_eq!(FreshPorts::outside(1_024, 65_000), None);
        // The bounds in either order (the kernel refuses that, a hand-edited value may not).
        assert_eq!(
            FreshPorts::outside(60_999, 32_768),
            FreshPorts::outside(32_768, 60_999)
        );
    }
}
