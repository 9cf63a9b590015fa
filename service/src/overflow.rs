//! Connections before they hold a served slot (see `admission`), handled by the same worker
//! that accepted them, with a 1 KiB buffer instead of actix-http's buffers:
//!
//! - a connection waits for its first bytes without a buffer (at most [`SILENT_WAIT`]), then
//!   its request head is read (at most [`HEAD_BYTES`], within [`HEAD_TIMEOUT`]); only then
//!   does it take a served slot, when one is free;
//! - `GET`/`HEAD` `/healthz` and `/readyz` are answered at once from the same readiness state
//!   the HTTP routes use, on the worker's own event loop: a wedged worker answers nothing,
//!   so liveness still tells the truth about the workers that serve users;
//! - anything else waits up to [`SLOT_WAIT`] for a served slot and is then served normally
//!   (the bytes already read are handed to actix-http first), or is answered
//!   `503 Service Unavailable` with `Retry-After` and closed;
//! - over the total cap, a small probe reserve reads heads for [`PROBE_ONLY_TIMEOUT`] only:
//!   probes are answered, a client takes the place of the oldest silent connection (when
//!   there is one), everything else is closed at once; beyond the reserve, the same within
//!   [`INSTANT_PROBE_WAIT`].

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

/// How long a connection under the total cap may stay silent (no byte sent) before it is
/// closed without an answer, before its first request as between two (the keep-alive
/// timeout); a silent connection holds a waiting place, never a served slot, and is the
/// first to go when the total cap is reached (see [`Admission::evict_silent`]).
pub const SILENT_WAIT: Duration = Duration::from_secs(5);

/// Waits for a connection's next request head, the first or one after a finished exchange
/// (see `admission`: a served slot is for a client that has sent one). While the client is
/// silent the connection holds no buffer (the wait is a few hundred bytes of task); once
/// bytes arrive, at most [`HEAD_BYTES`] of the head are read within [`HEAD_TIMEOUT`].
/// `None` when the client sent no head in time, closed, was evicted while silent, or the
/// server began its graceful shutdown (an idle connection is closed then, as actix-http
/// closes its idle keep-alive connections).
pub async fn next_head(
    stream: &mut TcpStream,
    admission: &Admission,
    stopping: &actix_server::GracefulShutdownSignal,
) -> Option<(Option<ProbeRequest>, Bytes)> {
    {
        let _silent = admission.silent();
        tokio::select! {
            biased;
            readable = stream.readable() => readable.ok()?,
            () = admission.evicted() => return None,
            () = stopping.notified() => return None,
            () = tokio::time::sleep(SILENT_WAIT) => return None,
        }
    }
    // Boxed: the buffer exists only while a head is read, not while the client is silent.
    Box::pin(async {
        let mut buf = [0u8; HEAD_BYTES];
        let (probe, len) = read_head(stream, &mut buf, HEAD_TIMEOUT).await?;
        Some((probe, Bytes::copy_from_slice(&buf[..len])))
    })
    .await
}

/// Handles one connection whose head arrived while every served slot is taken: a probe is
/// answered at once; anything else waits [`SLOT_WAIT`] for a slot or gets a 503.
pub async fn handle(
    stream: &mut TcpStream,
    probe: Option<ProbeRequest>,
    head: Bytes,
    admission: &Admission,
    shared: &Arc<Shared>,
) -> Outcome {
    if let Some(probe) = probe {
        answer_probe(stream, probe, shared).await;
        return Outcome::Done;
    }
    if let Some(permit) = admission.serve_within(SLOT_WAIT).await {
        return Outcome::Serve(permit, head);
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
/// arrives within `wait` is answered; a client whose whole head arrives within `wait` takes
/// the place of the oldest silent connection, if there is one (silent connections cannot
/// crowd out clients), and is handled as under the cap; anything else is closed. The probe
/// reserve waits [`PROBE_ONLY_TIMEOUT`]; beyond it, [`INSTANT_PROBE_WAIT`] (clients send the
/// request right after the handshake, so on a node it is there within a millisecond; the
/// short wait costs a descriptor for a few milliseconds, which the caps' headroom for open
/// files covers).
pub async fn over_total(
    stream: &mut TcpStream,
    admission: &Admission,
    shared: &Arc<Shared>,
    wait: Duration,
) -> Outcome {
    let mut buf = [0u8; HEAD_BYTES];
    match read_head(stream, &mut buf, wait).await {
        Some((Some(probe), _)) => {
            answer_probe(stream, probe, shared).await;
            Outcome::Done
        }
        Some((None, len)) if admission.evict_silent() => {
            let head = Bytes::copy_from_slice(&buf[..len]);
            match admission.try_serve() {
                Some(slot) => Outcome::Serve(slot, head),
                None => Box::pin(handle(stream, None, head, admission, shared)).await,
            }
        }
        _ => {
            if let Some(metrics) = &shared.metrics {
                metrics.record_closed_at_cap();
            }
            Outcome::Done
        }
    }
}

/// Reads a request head into `buf` within `timeout`: whether it is a probe, and the bytes
/// read. `None` when the client sent no whole head in time (or closed).
pub(crate) async fn read_head(
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

/// Answers a probe from the shared state, as the routes do.
pub(crate) async fn answer_probe(stream: &mut TcpStream, probe: ProbeRequest, shared: &Shared) {
    let (status, body) = probe_answer(probe.path, shared);
    // A probe sends nothing after its head, so the close needs no lingering read: the
    // connection is gone as soon as the answer is written (probes answered beyond the caps
    // hold nothing).
    respond(stream, status, &body, probe.head_only, "", Linger::No).await;
}

/// The status line and body of a probe's answer: what the routes answer.
pub(crate) fn probe_answer(probe: Probe, shared: &Shared) -> (&'static str, String) {
    let answer = match probe {
        Probe::Liveness => crate::state::liveness(shared),
        Probe::Readiness => crate::state::readiness(shared),
    };
    match answer {
        Ok(body) => ("200 OK", body.to_owned()),
        Err(reason) => ("503 Service Unavailable", reason),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Liveness,
    Readiness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRequest {
    pub path: Probe,
    pub head_only: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// A whole head: a probe, or `None` for any other request.
    Complete(Option<ProbeRequest>),
    Partial,
    Invalid,
}

pub(crate) fn parse(bytes: &[u8]) -> Head {
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
pub(crate) enum Linger {
    /// Read what the client still sends (at most 64 KiB, within [`HEAD_TIMEOUT`]) so that
    /// unread request bytes (a body) do not turn the close into a reset that destroys the
    /// response.
    Yes,
    No,
}

/// Writes a whole `Connection: close` response (within [`HEAD_TIMEOUT`]), then shuts the
/// write side down, lingering as told.
pub(crate) async fn respond(
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
