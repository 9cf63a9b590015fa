//! Concurrent clients that send `GET /` continuously, as real clients do.
//!
//! Half of the clients keep connections alive and open a new one when the server answers
//! `Connection: close` (what well-behaved clients do, and what the drain relies on); the
//! other half open one connection per request. Every request is recorded with the instant
//! it was sent, so failures can be attributed to a window (e.g. the drain delay).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::http::{Conn, Req};
use crate::lock::lock;
use crate::sandbox::Sandbox;

/// Where the clients connect.
#[derive(Debug, Clone)]
pub enum Target {
    /// A pod's port, directly (as another pod would reach the pod IP).
    Pod(Arc<Sandbox>, u16),
    /// The Service stand-in.
    Lb(SocketAddr),
    /// An address reached from inside a network namespace (the node's, for the Service's
    /// kernel DNAT).
    Via(Arc<Sandbox>, std::net::SocketAddrV4),
}

impl Target {
    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        match self {
            Target::Pod(sandbox, port) => sandbox.connect(*port).await,
            Target::Via(sandbox, addr) => sandbox.connect_to(*addr).await,
            Target::Lb(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok(s)
            }
        }
    }
}

/// One request's fate.
#[derive(Debug, Clone)]
pub struct Record {
    pub sent: Instant,
    pub done: Instant,
    pub ok: bool,
    pub error: Option<String>,
}

/// Requests recorded so far, shared by the clients.
#[derive(Debug, Clone, Default)]
pub struct Records(Arc<Mutex<Vec<Record>>>);

impl Records {
    pub fn all(&self) -> Vec<Record> {
        lock(&self.0).clone()
    }

    fn push(&self, r: Record) {
        lock(&self.0).push(r);
    }
}

/// Starts `clients` clients against `target`; they stop when `stop` turns true.
/// `pause` bounds the rate (each client waits that long between requests).
pub fn spawn(
    target: Target,
    clients: usize,
    pause: Duration,
    stop: watch::Receiver<bool>,
    records: Records,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|i| {
            let target = target.clone();
            let stop = stop.clone();
            let records = records.clone();
            let keep_alive = i % 2 == 0;
            tokio::spawn(async move { client(target, keep_alive, pause, stop, records).await })
        })
        .collect()
}

async fn client(
    target: Target,
    keep_alive: bool,
    pause: Duration,
    stop: watch::Receiver<bool>,
    records: Records,
) {
    let mut conn: Option<Conn> = None;
    while !*stop.borrow() {
        let sent = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(5), async {
            if conn.as_ref().is_none_or(|c| !c.is_open()) {
                let stream = target
                    .connect()
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                conn = Some(
                    Conn::handshake(stream)
                        .await
                        .map_err(|e| format!("{e:#}"))?,
                );
            }
            let Some(c) = conn.as_mut() else {
                return Err("no connection".to_string());
            };
            let mut req = Req::get(contract::paths::ROOT);
            if !keep_alive {
                req = req.header("Connection", "close");
            }
            let response = c
                .send(contract::APP_NAME, req)
                .await
                .map_err(|e| format!("{e:#}"))?;
            if !keep_alive || response.closes() {
                conn = None;
            }
            if response.status != hyper::StatusCode::OK {
                return Err(format!("status {}", response.status));
            }
            if response.body != contract::GREETING.as_bytes() {
                return Err(format!("unexpected body {:?}", response.text()));
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|_| Err("timeout after 5s".into()));
        if result.is_err() {
            conn = None;
        }
        records.push(Record {
            sent,
            done: Instant::now(),
            ok: result.is_ok(),
            error: result.err(),
        });
        tokio::time::sleep(pause).await;
    }
}

/// Counts of `records` sent within `[from, to)`: (sent, failed, first errors).
pub fn window(records: &[Record], from: Instant, to: Instant) -> (usize, usize, Vec<String>) {
    let inside: Vec<&Record> = records
        .iter()
        .filter(|r| r.sent >= from && r.sent < to)
        .collect();
    let failed: Vec<&Record> = inside.iter().copied().filter(|r| !r.ok).collect();
    let mut errors: Vec<String> = failed
        .iter()
        .filter_map(|r| {
            r.error.as_ref().map(|e| {
                format!(
                    "+{:.3}s..+{:.3}s {e}",
                    r.sent.saturating_duration_since(from).as_secs_f64(),
                    r.done.saturating_duration_since(from).as_secs_f64()
                )
            })
        })
        .collect();
    errors.truncate(5);
    (inside.len(), failed.len(), errors)
}
