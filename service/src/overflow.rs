//! Connections over the served cap (see `admission`), handled by the same worker that
//! accepted them, with a 1 KiB buffer instead of actix-http's buffers:
//!
//! - the request head is read (at most [`HEAD_BYTES`], within [`HEAD_TIMEOUT`]);
//! - `GET`/`HEAD` `/healthz` and `/readyz` are answered at once from the same readiness state
//!   the HTTP routes use, on the worker's own event loop: a wedged worker answers nothing,
//!   so liveness still tells the truth about the workers that serve users;
//! - anything else waits up to [`SLOT_WAIT`] for a served slot and is then served normally
//!   (the bytes already read are handed to actix-http first), or is answered
//!   `503 Service Unavailable` with `Retry-After` and closed;
//! - over the total cap, a small probe reserve reads heads for [`PROBE_ONLY_TIMEOUT`] only:
//!   probes are answered, everything else is closed at once; beyond the reserve, only a
//!   probe whose head arrives within [`INSTANT_PROBE_WAIT`] is answered, the rest is closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::admission::Admission;
use crate::state::Shared;

/// The most of a request head read over the cap.
pub const HEAD_BYTES: usize = 1024;
/// The time a client over the cap gets to send its head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request over the cap waits for a served slot before a 503.
pub const SLOT_WAIT: Duration = Duration::from_millis(500);
/// How long a connection in the probe reserve gets to show it is a probe.
pub const PROBE_ONLY_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a connection beyond the probe reserve gets for its first bytes to arrive.
pub const INSTANT_PROBE_WAIT: Duration = Duration::from_millis(20);
/// The `Retry-After` of the 503, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// What became of a connection over the cap.
#[derive(Debug)]
pub enum Outcome {
    /// A slot became free: serve it, replaying the bytes already read.
    Serve(OwnedSemaphorePermit, Bytes),
    /// Answered (probe or 503) or given up (no head in time); the connection is done.
    Done,
}

/// Handles one connection that found every served slot taken.
pub async fn handle(
    stream: &mut TcpStream,
    admission: &Admission,
    shared: &Arc<Shared>,
) -> Outcome {
    let mut buf = [0u8; HEAD_BYTES];
    let Some((probe, len)) = read_head(stream, &mut buf, HEAD_TIMEOUT).await else {
        return Outcome::Done;
    };
    if let Some(probe) = probe {
        answer_probe(stream, probe, shared).await;
        return Outcome::Done;
    }
    if let Some(permit) = admission.serve_within(SLOT_WAIT).await {
        return Outcome::Serve(permit, Bytes::copy_from_slice(&buf[..len]));
    }
    if let Some(metrics) = &shared.metrics {
        metrics.record_shed();
    }
    let retry = format!("retry-after: {RETRY_AFTER_SECONDS}\r\n");
    respond(
        stream,
        "503 Service Unavailable",
        "over capacity, retry later",
        false,
        &retry,
        Linger::Yes,
    )
    .await;
    Outcome::Done
}

/// Handles one connection over the total cap (see `admission`): a probe whose whole head
/// arrives within `wait` is answered, anything else is closed. The probe reserve waits
/// [`PROBE_ONLY_TIMEOUT`]; beyond it, [`INSTANT_PROBE_WAIT`] (clients send the request right
/// after the handshake, so on a node it is there within a millisecond; the short wait costs a
/// descriptor for a few milliseconds, which the caps' headroom for open files covers).
/// Returns whether a probe was answered.
pub async fn probe_only(stream: &mut TcpStream, shared: &Arc<Shared>, wait: Duration) -> bool {
    let mut buf = [0u8; HEAD_BYTES];
    match read_head(stream, &mut buf, wait).await {
        Some((Some(probe), _)) => {
            answer_probe(stream, probe, shared).await;
            true
        }
        _ => false,
    }
}

/// Reads a request head into `buf` within `timeout`: whether it is a probe, and the bytes
/// read. `None` when the client sent no whole head in time (or closed).
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut [u8; HEAD_BYTES],
    timeout: Duration,
) -> Option<(Option<ProbeRequest>, usize)> {
    let mut len = 0;
    tokio::time::timeout(timeout, async {
        loop {
            match parse(&buf[..len]) {
                Head::Complete(probe) => return Some((probe, len)),
                Head::Partial if len < buf.len() => {}
                // Too long for the small buffer: not a probe; let it wait for a slot.
                Head::Partial | Head::Invalid => return Some((None, len)),
            }
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => len += n,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Answers a probe from the shared readiness state, as the routes do.
async fn answer_probe(stream: &mut TcpStream, probe: ProbeRequest, shared: &Shared) {
    let (status, body) = match probe.path {
        Probe::Liveness => ("200 OK", "ok"),
        Probe::Readiness => match shared.readiness.check() {
            Ok(()) => ("200 OK", "ready"),
            Err(reason) => ("503 Service Unavailable", reason.as_str()),
        },
    };
    // A probe sends nothing after its head, so the close needs no lingering read: the
    // connection is gone as soon as the answer is written (probes answered beyond the caps
    // hold nothing).
    respond(stream, status, body, probe.head_only, "", Linger::No).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Liveness,
    Readiness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeRequest {
    path: Probe,
    head_only: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A whole head: a probe, or `None` for any other request.
    Complete(Option<ProbeRequest>),
    Partial,
    Invalid,
}

fn parse(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {
            let head_only = match request.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => return Head::Complete(None),
            };
            let path = match request.path {
                Some(contract::paths::LIVENESS) => Probe::Liveness,
                Some(contract::paths::READINESS) => Probe::Readiness,
                _ => return Head::Complete(None),
            };
            Head::Complete(Some(ProbeRequest { path, head_only }))
        }
        Ok(httparse::Status::Partial) => Head::Partial,
        // Too many headers for a probe is not a probe; actix-http judges it if served.
        Err(httparse::Error::TooManyHeaders) => Head::Complete(None),
        Err(_) => Head::Invalid,
    }
}

/// Whether a close waits for the client's unread bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linger {
    /// Read what the client still sends (at most 64 KiB, within [`HEAD_TIMEOUT`]) so that
    /// unread request bytes (a body) do not turn the close into a reset that destroys the
    /// response.
    Yes,
    No,
}

/// Writes a whole `Connection: close` response (within [`HEAD_TIMEOUT`]), then shuts the
/// write side down, lingering as told.
async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
    extra: &str,
    linger: Linger,
) {
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(body);
    }
    let _ = tokio::time::timeout(HEAD_TIMEOUT, async {
        if stream.write_all(response.as_bytes()).await.is_ok()
            && stream.shutdown().await.is_ok()
            && linger == Linger::Yes
        {
            let mut sink = [0u8; 512];
            let mut budget = 64 * 1024;
            while let Ok(n @ 1..) = stream.read(&mut sink).await {
                budget -= n.min(budget);
                if budget == 0 {
                    break;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_recognised_and_everything_else_is_not_a_probe() {
        let probe = |path, head_only| Head::Complete(Some(ProbeRequest { path, head_only }));
        assert_eq!(
            parse(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            probe(Probe::Liveness, false)
        );
        assert_eq!(
            parse(b"HEAD /readyz HTTP/1.1\r\n\r\n"),
            probe(Probe::Readiness, true)
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Head::Complete(None));
        assert_eq!(
            parse(b"POST /healthz HTTP/1.1\r\n\r\n"),
            Head::Complete(None)
        );
        assert_eq!(
            parse(b"GET /healthz?x HTTP/1.1\r\n\r\n"),
            Head::Complete(None)
        );
        assert_eq!(parse(b"GET /healthz HTTP/1.1\r\nHo"), Head::Partial);
        assert_eq!(parse(b"\x00\x01 nonsense\r\n\r\n"), Head::Invalid);
    }
}
