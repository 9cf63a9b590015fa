//! The IO every served connection goes through: it bounds what one connection can hold and
//! how long it can hold it, below actix-http, which has neither a body deadline nor a limit on
//! the responses it queues for a client that does not read them.
//!
//! - Progress deadline: request bytes must be followed by response bytes within
//!   [`IoLimits::progress`], and a connection on which no byte moves in either direction for
//!   that long is closed. This closes a chunked body that goes silent (or trickles) after its
//!   head was answered, and a client that stops reading its responses.
//! - Backpressure: while a write is blocked (the client does not read), reads stop, so
//!   pipelined requests stay in the kernel's socket buffer instead of becoming queued
//!   responses in memory. At most [`IoLimits::read_ahead`] bytes are read before the
//!   connection's output has been written out in full, which also bounds request heads.
//! - Prefix: bytes already read by the admission step (see `overflow`) are handed back first.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The bounds of one connection.
#[derive(Debug, Clone, Copy)]
pub struct IoLimits {
    /// See the module documentation.
    pub progress: Duration,
    /// Bytes read before the output must be written out in full.
    pub read_ahead: usize,
}

/// A connection's IO with the bounds of [`IoLimits`].
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    prefix: Bytes,
    limits: IoLimits,
    /// Bytes that may still be read before the output has to be written out.
    budget: usize,
    /// The last write returned `Pending`: the client is not reading.
    write_blocked: bool,
    /// A read returned `Pending` without polling the socket; wake the task when unblocked.
    parked: Option<Waker>,
    /// Request bytes not yet followed by response bytes must be answered by then.
    answer_due: Option<Instant>,
    /// The last byte moved in either direction.
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> GuardedIo<T> {
    pub fn new(inner: T, prefix: Bytes, limits: IoLimits) -> Self {
        let now = Instant::now();
        GuardedIo {
            inner,
            budget: limits.read_ahead.saturating_sub(prefix.len()),
            answer_due: (!prefix.is_empty()).then(|| now + limits.progress),
            prefix,
            limits,
            write_blocked: false,
            parked: None,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + limits.progress)),
        }
    }

    fn deadline(&self) -> Instant {
        let silent = self.last_progress + self.limits.progress;
        self.answer_due.map_or(silent, |due| due.min(silent))
    }

    /// `Ready(error)` once the deadline has passed; otherwise arms the timer so the task is
    /// woken when it passes. The timer is only moved earlier, never later: when it fires
    /// early the deadline is checked again and the timer re-armed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.deadline();
        if Instant::now() >= deadline {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "no progress on the connection within the deadline",
            ));
        }
        if self.timer.deadline() > deadline || self.timer.is_elapsed() {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                // Fired for an older, earlier deadline: re-arm for the current one.
                self.timer.as_mut().reset(deadline);
                let _ = self.timer.as_mut().poll(cx);
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn read_done(&mut self, n: usize) {
        let now = Instant::now();
        self.budget = self.budget.saturating_sub(n);
        self.last_progress = now;
        if self.answer_due.is_none() {
            self.answer_due = Some(now + self.limits.progress);
        }
    }

    fn unpark(&mut self) {
        if let Some(waker) = self.parked.take() {
            waker.wake();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        if let Poll::Ready(err) = this.poll_deadline(cx) {
            return Poll::Ready(Err(err));
        }
        if this.write_blocked || this.budget == 0 {
            this.parked = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if buf.remaining() <= this.budget {
            // The common case: hand the caller's buffer down as it is (its memory is not
            // touched beyond what the socket fills).
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            let n = buf.filled().len() - before;
            if n > 0 {
                this.read_done(n);
            }
            return polled;
        }
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(this.budget));
        match Pin::new(&mut this.inner).poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {
                let n = limited.filled().len();
                buf.advance(n);
                if n > 0 {
                    this.read_done(n);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.last_progress = Instant::now();
                    this.answer_due = None;
                    this.write_blocked = false;
                }
                if n == buf.len() {
                    // The output is written out: reading may go on.
                    this.budget = this.limits.read_ahead;
                    this.unpark();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                this.write_blocked = true;
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: IoLimits = IoLimits {
        progress: Duration::from_millis(200),
        read_ahead: 16,
    };

    #[tokio::test]
    async fn the_prefix_is_read_first_then_the_stream() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(server, Bytes::from_static(b"GET "), LIMITS);
        let mut client = client;
        client.write_all(b"/ HTTP/1.1").await.unwrap();
        let mut got = vec![0; 14];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1");
    }

    #[tokio::test]
    async fn reads_stop_after_the_read_ahead_until_the_output_is_written() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = GuardedIo::new(server, Bytes::new(), LIMITS);
        client.write_all(&[b'x'; 40]).await.unwrap();
        let mut got = vec![0; 40];
        let n = io.read(&mut got).await.unwrap();
        assert_eq!(n, 16);
        let more = tokio::time::timeout(Duration::from_millis(50), io.read(&mut got)).await;
        assert!(more.is_err(), "read past the read-ahead budget");
        io.write_all(b"answer").await.unwrap();
        assert_eq!(io.read(&mut got).await.unwrap(), 16);
    }

    #[tokio::test]
    async fn unanswered_request_bytes_time_out() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = GuardedIo::new(server, Bytes::new(), LIMITS);
        client.write_all(b"GET").await.unwrap();
        let mut got = vec![0; 3];
        io.read_exact(&mut got).await.unwrap();
        let started = std::time::Instant::now();
        let err = io.read(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_after_its_answer() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = GuardedIo::new(server, Bytes::new(), LIMITS);
        client.write_all(b"GET").await.unwrap();
        let mut got = vec![0; 3];
        io.read_exact(&mut got).await.unwrap();
        io.write_all(b"200").await.unwrap();
        let err = io.read(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
