//! Connections before they hold a served slot (see `admission`), handled by the worker that
//! accepted them, with a 1 KiB buffer instead of actix-http's buffers:
//!
//! - a connection waits for its next request without a buffer (at most [`SILENT_WAIT`]), the
//!   first as between two (keep-alive); then its request head is read (at most
//!   [`HEAD_BYTES`], within [`HEAD_TIMEOUT`]); only then does it take a served slot, when one
//!   is free, and the bytes read are handed to actix-http first;
//! - when every slot is taken, a request waits up to [`SLOT_WAIT`] for one, or is answered
//!   `503 Service Unavailable` with `Retry-After` and closed;
//! - over the total cap, a connection gets [`OVER_TOTAL_WAIT`] to send its head: a client
//!   takes the place of the oldest silent connection (when there is one); anything else is
//!   closed at once.
//!
//! The head is read with httparse, the parser actix-http itself runs on the same bytes, only
//! to know that it is whole: what it holds, where it ends and what follows are actix-http's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::admission::Admission;
use super::guarded_io::head_end;
use crate::state::Shared;

/// The most of a request head read while waiting (a longer one is read on by actix-http).
pub const HEAD_BYTES: usize = 1024;
/// The time a client gets to send its head once its first bytes arrived.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request over the served cap waits for a served slot before a 503.
pub const SLOT_WAIT: Duration = Duration::from_millis(500);
/// How long a connection over the total cap gets to send its head.
pub const OVER_TOTAL_WAIT: Duration = Duration::from_millis(100);
/// The `Retry-After` of the 503, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 1;
/// How long a connection may stay silent (no byte sent) before it is closed without an
/// answer, before its first request as between two (the keep-alive timeout); a silent
/// connection holds a waiting place, never a served slot, and is the first to go when the
/// total cap is reached (see [`Admission::evict_silent`]).
pub const SILENT_WAIT: Duration = Duration::from_secs(5);
/// What a closing connection still reads from the client before the socket goes: unread
/// request bytes would turn the close into a reset that destroys the answer on its way.
pub const LINGER_BYTES: usize = 64 * 1024;
/// How long a closing connection waits for the client's end of stream.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// What became of a waiting connection.
#[derive(Debug)]
pub enum Outcome {
    /// A served slot: serve it, handing on the bytes already read.
    Serve(OwnedSemaphorePermit, Bytes),
    /// Answered (503) or given up (no head in time, closed, evicted); the connection is done.
    Done,
}

/// Waits for a connection's next request head, the first or one after a finished exchange.
/// While the client is silent the connection holds no buffer (the wait is a few hundred bytes
/// of task); once bytes arrive, at most [`HEAD_BYTES`] of the head are read within
/// [`HEAD_TIMEOUT`]. `None` when the client sent no head in time, closed, or was evicted while
/// silent. A shutdown does not cut this wait: a client that connected, or that was answered
/// without `Connection: close`, may be sending a request right now; it is answered (with
/// `Connection: close`, see `exchange`) or times out.
pub async fn next_head(stream: &mut TcpStream, admission: &Admission) -> Option<Bytes> {
    {
        let _silent = admission.silent();
        tokio::select! {
            biased;
            readable = stream.readable() => readable.ok()?,
            () = admission.evicted() => return None,
            () = tokio::time::sleep(SILENT_WAIT) => return None,
        }
    }
    // Boxed: the buffer exists only while a head is read, not while the client is silent.
    Box::pin(read_head(stream, HEAD_TIMEOUT)).await
}

/// Handles one connection whose head arrived while every served slot is taken: it waits
/// [`SLOT_WAIT`] for a slot or gets a 503.
pub async fn wait_for_slot(
    stream: &mut TcpStream,
    head: Bytes,
    admission: &Admission,
    shared: &Shared,
) -> Outcome {
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
        &retry,
    )
    .await;
    Outcome::Done
}

/// Handles one connection over the total cap (see `admission`): a client whose head arrives
/// within [`OVER_TOTAL_WAIT`] takes the place of the oldest silent connection, if there is
/// one (silent connections cannot crowd out clients), and is handled as under the cap;
/// anything else is closed. Clients send their request right after the handshake, so on a
/// node it is there within a millisecond.
pub async fn over_total(
    stream: &mut TcpStream,
    admission: &Admission,
    shared: &Arc<Shared>,
) -> Outcome {
    match read_head(stream, OVER_TOTAL_WAIT).await {
        Some(head) if admission.evict_silent() => match admission.try_serve() {
            Some(slot) => Outcome::Serve(slot, head),
            None => Box::pin(wait_for_slot(stream, head, admission, shared)).await,
        },
        _ => {
            if let Some(metrics) = &shared.metrics {
                metrics.record_closed_at_cap();
            }
            Outcome::Done
        }
    }
}

/// Reads a request head within `timeout`: the bytes read, once httparse finds the head whole
/// (or not a head at all: actix-http answers that with a 400), or once [`HEAD_BYTES`] are
/// read (actix-http reads the rest). `None` when the client sent no head in time or closed.
async fn read_head(stream: &mut TcpStream, timeout: Duration) -> Option<Bytes> {
    let mut buf = [0u8; HEAD_BYTES];
    let mut len = 0;
    tokio::time::timeout(timeout, async {
        loop {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => len += n,
            }
            if len == buf.len() || head_end(&buf[..len]).is_some() {
                return Some(Bytes::copy_from_slice(&buf[..len]));
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Writes a whole `Connection: close` response (within [`HEAD_TIMEOUT`]), then closes the
/// connection as [`linger`] does.
pub async fn respond(stream: &mut TcpStream, status: &str, body: &str, extra: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    );
    if tokio::time::timeout(HEAD_TIMEOUT, stream.write_all(response.as_bytes()))
        .await
        .is_ok_and(|written| written.is_ok())
    {
        linger(stream).await;
    }
}

/// Closes a connection after its last answer without resetting it: the write side is shut
/// (the client reads the end of the stream after the answer), then what the client still
/// sends is read and dropped until it closes too (at most [`LINGER_BYTES`], within
/// [`LINGER_TIMEOUT`]); the socket is dropped by the caller. Closing a socket with unread
/// bytes sends a reset, and a reset can destroy the answer before the client has read it.
pub async fn linger(stream: &mut TcpStream) {
    let _ = tokio::time::timeout(LINGER_TIMEOUT, async {
        if stream.shutdown().await.is_err() {
            return;
        }
        let mut sink = [0u8; 512];
        let mut budget = LINGER_BYTES;
        while let Ok(n @ 1..) = stream.read(&mut sink).await {
            budget = budget.saturating_sub(n);
            if budget == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_where_httparse_ends_it() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(head_end(head), Some(head.len()));
        assert_eq!(
            head_end(&[&head[..], b"GET /next"].concat()),
            Some(head.len())
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHo"), None);
        assert_eq!(
            head_end(b"\r\n\r\n"),
            None,
            "empty lines before a request line"
        );
        // Not a head at all: all of it, for actix-http to refuse (400).
        let garbage = b"\x00\x01 nonsense\r\n\r\n";
        assert_eq!(head_end(garbage), Some(garbage.len()));
    }
}
