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
//! - Pipelining: at most [`IoLimits::unanswered_heads`] request heads are handed to the HTTP
//!   parser before the output has been written out in full; what one read brings beyond
//!   them is held back (at most one read) until then.
//! - Closure (RFC 9112 section 9.6): nothing after a request head that closes the connection
//!   (`Connection: close`, or HTTP/1.0 without `Connection: keep-alive`) is handed to the
//!   HTTP parser: actix-http answers that request and closes; what follows is never processed.
//! - Oversized heads: [`IoLimits::read_ahead`] bytes of one head with no response written is
//!   a head too large; it is answered `431` at once (the client's further bytes are read and
//!   dropped, at most 64 KiB, so the close does not reset the answer away) and closed.
//! - Prefix: bytes already read by the admission step (see `overflow`) are handed back first.
//! - Give-back: once the requests handed on are answered and the client has sent nothing
//!   more, the HTTP parser is told the stream ended and its shutdown hands the connection
//!   back open (see [`GuardedIo::giving_back`]): between requests a keep-alive connection
//!   holds neither a served slot nor actix-http's buffers.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The bounds of one connection.
#[derive(Debug, Clone, Copy)]
pub struct IoLimits {
    /// See the module documentation.
    pub progress: Duration,
    /// Bytes read before the output must be written out in full.
    pub read_ahead: usize,
    /// Request heads (an empty line ends one) read before the output must be written out in
    /// full: what bounds the responses a pipelining client that never reads can make the
    /// server hold (16 KiB of one-line requests would otherwise be ~600 responses).
    pub unanswered_heads: u32,
}

/// The answer to an oversized head.
const RESPONSE_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\nconnection: close\r\n\r\nrequest head larger than 16 KiB";
/// What the client may still send after the 431 before the connection is closed.
const OVERSIZED_DRAIN_BYTES: usize = 64 * 1024;

/// Where the answer to an oversized head stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Oversized {
    /// This many bytes of the 431 are written.
    Answering(usize),
    ShuttingDown,
    /// Dropping what the client still sends, at most this many more bytes.
    Draining(usize),
    Done,
}

/// The bytes of a header line kept to judge it (`connection: keep-alive, close` fits).
const LINE_PREFIX: usize = 64;

/// A byte-at-a-time scanner of request heads: where each ends (an empty line), whether it
/// closes the connection, and how long the current one is. It keeps 64 bytes of the current
/// line and the last 8, not the head.
#[derive(Debug, Clone, Copy)]
struct HeadScan {
    /// The last byte (carriage returns aside) ended a line.
    at_line_start: bool,
    /// The current line's first bytes, lower-cased, and its length so far.
    line: [u8; LINE_PREFIX],
    line_len: usize,
    /// The current line's last 8 bytes (the request line's version).
    tail: [u8; 8],
    /// The next line to end is the head's request line.
    request_line: bool,
    http10: bool,
    keep_alive: bool,
    close: bool,
    /// The head announces a body (`Content-Length` other than 0, or `Transfer-Encoding`).
    body: bool,
    /// Bytes of the current head so far (reset too when the output is written out).
    head_bytes: usize,
}

/// What the end of a request head says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadEnd {
    /// The head closes the connection (RFC 9112 section 9.6).
    closes: bool,
    /// A body follows the head.
    body: bool,
}

impl HeadScan {
    const fn new() -> Self {
        HeadScan {
            at_line_start: false,
            line: [0; LINE_PREFIX],
            line_len: 0,
            tail: [0; 8],
            request_line: true,
            http10: false,
            keep_alive: false,
            close: false,
            body: false,
            head_bytes: 0,
        }
    }

    /// Between two heads: no byte of the next head (empty lines aside) is here yet.
    const fn between_heads(&self) -> bool {
        self.request_line && self.line_len == 0
    }

    /// Takes one byte; at the end of a head, what that head says about the connection.
    fn step(&mut self, byte: u8) -> Option<HeadEnd> {
        self.head_bytes = self.head_bytes.saturating_add(1);
        match byte {
            b'\n' if self.at_line_start => {
                let end = HeadEnd {
                    closes: self.close || (self.http10 && !self.keep_alive),
                    body: self.body,
                };
                *self = HeadScan::new();
                Some(end)
            }
            b'\n' => {
                self.line_done();
                self.at_line_start = true;
                None
            }
            b'\r' => None,
            _ => {
                self.at_line_start = false;
                let lower = byte.to_ascii_lowercase();
                if self.line_len < LINE_PREFIX {
                    self.line[self.line_len] = lower;
                }
                self.line_len = self.line_len.saturating_add(1);
                self.tail.rotate_left(1);
                self.tail[7] = lower;
                None
            }
        }
    }

    fn line_done(&mut self) {
        if self.line_len == 0 {
            return; // an empty line before the request line
        }
        if self.request_line {
            self.request_line = false;
            self.http10 = self.line_len >= 8 && &self.tail == b"http/1.0";
        } else {
            let line = &self.line[..self.line_len.min(LINE_PREFIX)];
            if let Some(value) = line.strip_prefix(b"connection:") {
                for token in value.split(|&b| b == b',') {
                    match token.trim_ascii() {
                        b"close" => self.close = true,
                        b"keep-alive" => self.keep_alive = true,
                        _ => {}
                    }
                }
            } else if let Some(value) = line.strip_prefix(b"content-length:") {
                // Anything but zeroes (a value too long to keep included) is a body.
                let value = value.trim_ascii();
                let zero = !value.is_empty() && value.iter().all(|&b| b == b'0');
                self.body |= !zero || self.line_len > LINE_PREFIX;
            } else if line.starts_with(b"transfer-encoding:") {
                self.body = true;
            }
        }
        self.line_len = 0;
    }
}

/// A connection's IO with the bounds of [`IoLimits`].
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    prefix: Bytes,
    limits: IoLimits,
    /// Bytes that may still be read before the output has to be written out.
    budget: usize,
    /// Request heads read since the output was last written out in full.
    heads: u32,
    /// Where the request heads read so far end, and what they say about closing.
    scan: HeadScan,
    /// A head that closes the connection was handed on: nothing more is read.
    closing: bool,
    /// An oversized head is being answered `431` (see the module documentation).
    oversized: Option<Oversized>,
    /// The last write returned `Pending`: the client is not reading.
    write_blocked: bool,
    /// A read returned `Pending` without polling the socket; wake the task when unblocked.
    parked: Option<Waker>,
    /// Request bytes not yet followed by response bytes must be answered by then.
    answer_due: Option<Instant>,
    /// The last byte moved in either direction.
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
    /// Set when the connection goes back to its owner between requests.
    give_back: Option<GiveBack>,
}

/// The pattern of a response that closes the connection (actix-http writes header names in
/// lower case; the comparison ignores case all the same).
const CLOSE_HEADER: &[u8] = b"connection: close";

/// The give-back of a connection between requests (see [`GuardedIo::giving_back`]).
#[derive(Debug)]
struct GiveBack {
    /// Set once the HTTP parser has finished with the connection and it is given back open.
    given: Rc<Cell<bool>>,
    /// A whole request head was handed on.
    head_seen: bool,
    /// The connection is not given back: a request with a body, a response that closes the
    /// connection, the client's end of stream or an error.
    ruled_out: bool,
    /// End of stream was reported to the HTTP parser in place of a wait for the next request.
    ended: bool,
    /// The last bytes written (to find [`CLOSE_HEADER`] across writes).
    tail: [u8; CLOSE_HEADER.len() - 1],
    tail_len: usize,
    /// The worker's warm connections, this one among them while `is_warm`.
    warm: Rc<Warm>,
    is_warm: bool,
}

impl GiveBack {
    /// Counts this connection, idle in the HTTP parser, as warm if the worker's bound allows
    /// (or it already is); false when it must be given back instead.
    fn warm_up(&mut self) -> bool {
        if !self.is_warm && self.warm.idle.get() < self.warm.max {
            self.warm.idle.set(self.warm.idle.get() + 1);
            self.is_warm = true;
        }
        self.is_warm
    }

    /// This connection, idle in the HTTP parser, is no longer counted as warm.
    fn cool(&mut self) {
        if std::mem::take(&mut self.is_warm) {
            self.warm.idle.set(self.warm.idle.get() - 1);
        }
    }

    /// Looks for [`CLOSE_HEADER`] in the output, `written` following what was written before.
    fn output(&mut self, written: &[u8]) {
        if self.ruled_out || written.is_empty() {
            return;
        }
        let keep = self.tail.len();
        // The last bytes written before, then the first of these: a header split between
        // two writes is found here.
        let mut seam = [0u8; 2 * (CLOSE_HEADER.len() - 1)];
        let head = written.len().min(keep);
        seam[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        seam[self.tail_len..self.tail_len + head].copy_from_slice(&written[..head]);
        let joined = &seam[..self.tail_len + head];
        let closes = |hay: &[u8]| {
            hay.windows(CLOSE_HEADER.len())
                .any(|w| w[0] | 0x20 == b'c' && w.eq_ignore_ascii_case(CLOSE_HEADER))
        };
        if closes(joined) || closes(written) {
            self.ruled_out = true;
            return;
        }
        let last: &[u8] = if written.len() >= keep {
            &written[written.len() - keep..]
        } else {
            &joined[joined.len().saturating_sub(keep)..]
        };
        self.tail[..last.len()].copy_from_slice(last);
        self.tail_len = last.len();
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        self.cool();
    }
}

/// The connections of one worker that may wait for their next request inside the HTTP
/// parser ("warm": with its buffers and their served slot, as actix-http alone would keep
/// every connection) instead of being given back: a new exchange costs a new dispatcher,
/// which for a client sending request after request is a fifth of a request's CPU time.
/// Beyond `max` idle ones, connections are given back; so a few hundred busy keep-alive
/// clients keep actix-http's speed and ten thousand cost what waiting ones cost.
#[derive(Debug)]
pub struct Warm {
    idle: Cell<usize>,
    max: usize,
}

impl Warm {
    /// At most `max` warm connections at once (0: every connection is given back).
    pub fn new(max: usize) -> Rc<Self> {
        Rc::new(Warm {
            idle: Cell::new(0),
            max,
        })
    }

    /// Connections idle in the HTTP parser now.
    pub fn idle(&self) -> usize {
        self.idle.get()
    }
}

impl<T> GuardedIo<T> {
    pub fn new(inner: T, prefix: Bytes, limits: IoLimits) -> Self {
        let now = Instant::now();
        GuardedIo {
            inner,
            budget: limits.read_ahead,
            heads: 0,
            scan: HeadScan::new(),
            closing: false,
            oversized: None,
            answer_due: (!prefix.is_empty()).then(|| now + limits.progress),
            prefix,
            limits,
            write_blocked: false,
            parked: None,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + limits.progress)),
            give_back: None,
        }
    }

    /// Gives the connection back between requests instead of keeping it open in the HTTP
    /// parser: once a request head without a body has been handed on and the client has sent
    /// nothing more, the parser is told the stream ended; it answers what it has, then shuts
    /// the connection down, and that shutdown sets `given` instead of closing the socket.
    /// The owner then takes its connection back (see [`Lent`]) and waits for the next
    /// request without the parser's buffers. A request with a body, a head or a response
    /// that closes the connection, and the client's own end of stream keep today's path:
    /// the parser keeps the connection and the shutdown is real.
    ///
    /// While fewer than `warm`'s bound are idle in the parser, the connection waits there
    /// instead (see [`Warm`]) and is given back only once its dispatcher ends for another
    /// reason, or after a later exchange when the bound is reached.
    pub fn giving_back(mut self, given: Rc<Cell<bool>>, warm: Rc<Warm>) -> Self {
        self.give_back = Some(GiveBack {
            given,
            head_seen: false,
            ruled_out: false,
            ended: false,
            tail: [0; CLOSE_HEADER.len() - 1],
            tail_len: 0,
            warm,
            is_warm: false,
        });
        self
    }

    /// The HTTP parser may be told the stream ended (see [`GuardedIo::giving_back`]).
    fn may_give_back(&self) -> bool {
        self.give_back
            .as_ref()
            .is_some_and(|g| g.head_seen && !g.ruled_out)
            && !self.closing
            && self.oversized.is_none()
            && self.prefix.is_empty()
            && self.scan.between_heads()
    }

    fn rule_out_give_back(&mut self) {
        if let Some(give_back) = &mut self.give_back {
            give_back.ruled_out = true;
            give_back.cool();
        }
    }

    /// How much of `bytes` may be handed to the HTTP parser: up to the end of the last head
    /// the allowance of unanswered heads permits, or of a head that closes the connection
    /// (all of it when neither is reached); and whether it ends with a closing head.
    fn deliverable(&self, bytes: &[u8]) -> (usize, bool) {
        let (mut heads, mut scan) = (self.heads, self.scan);
        for (i, &byte) in bytes.iter().enumerate() {
            if let Some(HeadEnd { closes, .. }) = scan.step(byte) {
                heads += 1;
                if closes {
                    return (i + 1, true);
                }
                if heads >= self.limits.unanswered_heads {
                    return (i + 1, false);
                }
            }
        }
        (bytes.len(), false)
    }

    /// Counts the request heads that end in `bytes` (an empty line: `\r\n\r\n` or `\n\n`).
    /// A body holding empty lines counts too, which only makes reads pause sooner.
    fn count_heads(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if let Some(end) = self.scan.step(byte) {
                self.heads = self.heads.saturating_add(1);
                if let Some(give_back) = &mut self.give_back {
                    give_back.head_seen = true;
                    give_back.ruled_out |= end.body;
                }
            }
        }
    }

    fn may_read(&self) -> bool {
        !self.closing
            && !self.write_blocked
            && self.budget > 0
            && self.heads < self.limits.unanswered_heads
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

    fn read_done(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        self.budget = self.budget.saturating_sub(bytes.len());
        self.count_heads(bytes);
        self.last_progress = now;
        if self.scan.head_bytes >= self.limits.read_ahead {
            self.oversized = Some(Oversized::Answering(0));
        }
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

impl<T: AsyncRead + AsyncWrite + Unpin> GuardedIo<T> {
    /// The 431 of an oversized head: written, the write side shut, the client's further
    /// bytes read and dropped (at most [`OVERSIZED_DRAIN_BYTES`], within the progress
    /// deadline), then end of stream for the HTTP parser, which closes the connection.
    fn poll_oversized(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(state) = self.oversized else {
                return Poll::Ready(Ok(()));
            };
            match state {
                Oversized::Answering(written) => {
                    let rest = &RESPONSE_431[written..];
                    match Pin::new(&mut self.inner).poll_write(cx, rest) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                        Poll::Ready(Ok(n)) if written + n == RESPONSE_431.len() => {
                            self.last_progress = Instant::now();
                            self.answer_due = None;
                            self.oversized = Some(Oversized::ShuttingDown);
                        }
                        Poll::Ready(Ok(n)) => {
                            self.oversized = Some(Oversized::Answering(written + n));
                        }
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Oversized::ShuttingDown => match Pin::new(&mut self.inner).poll_shutdown(cx) {
                    Poll::Ready(_) => {
                        self.oversized = Some(Oversized::Draining(OVERSIZED_DRAIN_BYTES));
                    }
                    Poll::Pending => return Poll::Pending,
                },
                Oversized::Draining(left) => {
                    let mut sink = [0u8; 512];
                    let mut sink = ReadBuf::new(&mut sink);
                    match Pin::new(&mut self.inner).poll_read(cx, &mut sink) {
                        Poll::Ready(Ok(())) if !sink.filled().is_empty() && left > 0 => {
                            self.last_progress = Instant::now();
                            let left = left.saturating_sub(sink.filled().len());
                            self.oversized = Some(Oversized::Draining(left));
                        }
                        // End of stream (or the drain budget spent): the parser sees the end.
                        Poll::Ready(_) => {
                            self.oversized = Some(Oversized::Done);
                            return Poll::Ready(Ok(()));
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Oversized::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<T> GuardedIo<T> {
    /// A head that closes the connection was handed on: reads stop for good.
    fn close_after_head(&mut self) {
        self.closing = true;
        self.prefix = Bytes::new();
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.give_back.as_ref().is_some_and(|g| g.ended) {
            return Poll::Ready(Ok(())); // the end of this exchange: nothing more is read
        }
        if let Poll::Ready(err) = this.poll_deadline(cx) {
            return Poll::Ready(Err(err));
        }
        if this.oversized.is_some() {
            return this.poll_oversized(cx);
        }
        if !this.may_read() {
            this.parked = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if !this.prefix.is_empty() {
            // Bytes read earlier (by admission, or held back below) come first.
            let offered = this.prefix.len().min(buf.remaining());
            let (n, closes) = this.deliverable(&this.prefix[..offered]);
            buf.put_slice(&this.prefix[..n]);
            let delivered = this.prefix.split_to(n);
            this.read_done(&delivered);
            if closes {
                this.close_after_head();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = if buf.remaining() <= this.budget {
            // The common case: hand the caller's buffer down as it is (its memory is not
            // touched beyond what the socket fills).
            Pin::new(&mut this.inner).poll_read(cx, buf)
        } else {
            let mut limited = ReadBuf::new(buf.initialize_unfilled_to(this.budget));
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
            let n = limited.filled().len();
            buf.advance(n);
            polled
        };
        if buf.filled().len() > before {
            if let Some(give_back) = &mut this.give_back {
                give_back.cool(); // the next request is here
            }
            let read = &buf.filled()[before..];
            let (n, closes) = this.deliverable(read);
            if closes {
                // Nothing after a closing head is processed: the rest of the read is dropped.
                buf.set_filled(before + n);
                this.read_done(&buf.filled()[before..]);
                this.close_after_head();
                return polled;
            }
            if n < read.len() {
                // More heads than allowed arrived in one read: hold the rest back (at most
                // one read, within the read-ahead) until the output is written out.
                this.prefix = Bytes::copy_from_slice(&read[n..]);
                buf.set_filled(before + n);
            }
            this.read_done(&buf.filled()[before..]);
        } else if polled.is_ready() {
            // The client's end of stream, or an error: the connection is not given back.
            this.rule_out_give_back();
        } else if this.may_give_back()
            && let Some(give_back) = &mut this.give_back
        {
            // The client sent nothing more: it waits warm in the parser while the worker's
            // bound allows, else this exchange ends and the connection waits for its next
            // request outside the parser.
            if give_back.warm_up() {
                return polled;
            }
            give_back.ended = true;
            return Poll::Ready(Ok(()));
        }
        polled
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
                if let Some(give_back) = &mut this.give_back {
                    give_back.output(&buf[..n]);
                }
                if n > 0 {
                    this.last_progress = Instant::now();
                    this.answer_due = None;
                    this.write_blocked = false;
                }
                if n == buf.len() {
                    // The output is written out: reading may go on.
                    this.budget = this.limits.read_ahead;
                    this.heads = 0;
                    this.scan.head_bytes = 0;
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
        let this = self.get_mut();
        if let Some(give_back) = &this.give_back
            && give_back.ended
            && !give_back.ruled_out
        {
            // The exchange is over and nothing closes the connection: it goes back open.
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
            give_back.given.set(true);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A connection lent to the HTTP parser for one exchange (see [`GuardedIo::giving_back`]):
/// its owner keeps the other reference and takes the connection back with
/// [`Rc::try_unwrap`] once the parser has dropped its own.
#[derive(Debug)]
pub struct Lent<T>(pub Rc<RefCell<T>>);

impl<T: AsyncRead + Unpin> AsyncRead for Lent<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lent<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_shutdown(cx)
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
        unanswered_heads: 2,
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
        let limits = IoLimits {
            unanswered_heads: 100,
            ..LIMITS
        };
        let mut io = GuardedIo::new(server, Bytes::new(), limits);
        client.write_all(&b"x\n\n".repeat(14)).await.unwrap();
        let mut got = vec![0; 40];
        let n = io.read(&mut got).await.unwrap();
        assert_eq!(n, 16);
        let more = tokio::time::timeout(Duration::from_millis(50), io.read(&mut got)).await;
        assert!(more.is_err(), "read past the read-ahead budget");
        io.write_all(b"answer").await.unwrap();
        assert_eq!(io.read(&mut got).await.unwrap(), 16);
    }

    #[tokio::test]
    async fn reads_stop_after_unanswered_request_heads_until_the_output_is_written() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = GuardedIo::new(server, Bytes::new(), LIMITS);
        // Three heads in one read: the third is held back.
        client.write_all(b"A\r\n\r\nB\n\nC\r\n\r\n").await.unwrap();
        let mut got = vec![0; 16];
        assert_eq!(io.read(&mut got).await.unwrap(), 8);
        assert_eq!(&got[..8], b"A\r\n\r\nB\n\n");
        let more = tokio::time::timeout(Duration::from_millis(50), io.read(&mut got)).await;
        assert!(more.is_err(), "read past two unanswered heads");
        io.write_all(b"answers").await.unwrap();
        assert_eq!(io.read(&mut got).await.unwrap(), 5);
        assert_eq!(&got[..5], b"C\r\n\r\n");
    }

    #[tokio::test]
    async fn nothing_after_a_head_that_closes_the_connection_is_read() {
        for closing in [
            &b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
        ] {
            let (mut client, server) = tokio::io::duplex(1024);
            let limits = IoLimits {
                read_ahead: 1024,
                ..LIMITS
            };
            let mut io = GuardedIo::new(server, Bytes::new(), limits);
            client
                .write_all(&[closing, b"GET /next HTTP/1.1\r\n\r\n"].concat())
                .await
                .unwrap();
            let mut got = vec![0; 256];
            let n = io.read(&mut got).await.unwrap();
            assert_eq!(&got[..n], closing);
            let more = tokio::time::timeout(Duration::from_millis(50), io.read(&mut got)).await;
            assert!(more.is_err(), "read past a closing head");
        }
        let mut scan = HeadScan::new();
        let ends: Vec<bool> = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            .iter()
            .filter_map(|&b| scan.step(b).map(|end| end.closes))
            .collect();
        assert_eq!(ends, [false], "HTTP/1.0 with keep-alive stays open");
    }

    #[tokio::test]
    async fn an_oversized_head_is_answered_431_and_ends_the_stream() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = GuardedIo::new(server, Bytes::new(), LIMITS);
        client.write_all(&[b'x'; 40]).await.unwrap();
        let mut got = vec![0; 64];
        assert_eq!(io.read(&mut got).await.unwrap(), 16);
        drop(client.shutdown().await);
        assert_eq!(
            io.read(&mut got).await.unwrap(),
            0,
            "end of stream after the 431"
        );
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, RESPONSE_431);
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

    /// A `GuardedIo` that gives its connection back (warm within `warm`'s bound), with the
    /// flag it sets.
    fn giving_back_warm(
        server: tokio::io::DuplexStream,
        prefix: &[u8],
        warm: &Rc<Warm>,
    ) -> (GuardedIo<tokio::io::DuplexStream>, Rc<Cell<bool>>) {
        let given = Rc::new(Cell::new(false));
        let limits = IoLimits {
            read_ahead: 1024,
            ..LIMITS
        };
        let io = GuardedIo::new(server, Bytes::copy_from_slice(prefix), limits)
            .giving_back(Rc::clone(&given), Rc::clone(warm));
        (io, given)
    }

    /// [`giving_back_warm`] with no warm connection: every answered exchange gives back.
    fn giving_back(
        server: tokio::io::DuplexStream,
        prefix: &[u8],
    ) -> (GuardedIo<tokio::io::DuplexStream>, Rc<Cell<bool>>) {
        giving_back_warm(server, prefix, &Warm::new(0))
    }

    #[tokio::test]
    async fn an_answered_exchange_ends_the_stream_and_gives_the_connection_back_open() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, given) = giving_back(server, b"GET / HTTP/1.1\r\n\r\n");
        let mut got = vec![0; 64];
        assert_eq!(io.read(&mut got).await.unwrap(), 18);
        assert_eq!(io.read(&mut got).await.unwrap(), 0, "end of the exchange");
        io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        io.shutdown().await.unwrap();
        assert!(given.get(), "given back");
        let mut answer = vec![0; 64];
        let n = client.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        let closed =
            tokio::time::timeout(Duration::from_millis(50), client.read(&mut answer)).await;
        assert!(closed.is_err(), "the connection stays open: {closed:?}");
        // Nothing the client sends next is read by this exchange.
        client
            .write_all(b"GET /next HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(io.read(&mut got).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn up_to_the_warm_bound_idle_connections_wait_in_the_parser() {
        let warm = Warm::new(1);
        let open = |server| giving_back_warm(server, b"GET / HTTP/1.1\r\n\r\n", &warm);
        let mut got = vec![0; 64];
        // The first idle connection stays in the parser, counted warm...
        let (mut first_client, server) = tokio::io::duplex(1024);
        let (mut first, _) = open(server);
        assert_eq!(first.read(&mut got).await.unwrap(), 18);
        let waited = tokio::time::timeout(Duration::from_millis(50), first.read(&mut got)).await;
        assert!(waited.is_err(), "the warm connection waits: {waited:?}");
        assert_eq!(warm.idle(), 1);
        // ...the second, over the bound, is given back.
        let (_second_client, server) = tokio::io::duplex(1024);
        let (mut second, given) = open(server);
        assert_eq!(second.read(&mut got).await.unwrap(), 18);
        assert_eq!(second.read(&mut got).await.unwrap(), 0, "given back");
        second.shutdown().await.unwrap();
        assert!(given.get());
        // The warm one's next request makes room; dropping it too.
        first_client.write_all(b"GET /").await.unwrap();
        assert_eq!(first.read(&mut got).await.unwrap(), 5);
        assert_eq!(warm.idle(), 0);
        drop(first);
        assert_eq!(warm.idle(), 0);
    }

    #[tokio::test]
    async fn bodies_closing_responses_and_partial_heads_keep_the_connection_in_the_parser() {
        // A head with a body: no end of stream while the body may still come.
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HT",
        ] {
            let (_client, server) = tokio::io::duplex(1024);
            let (mut io, _) = giving_back(server, head);
            let mut got = vec![0; 128];
            assert_eq!(io.read(&mut got).await.unwrap(), head.len());
            let more = tokio::time::timeout(Duration::from_millis(50), io.read(&mut got)).await;
            assert!(more.is_err(), "{}: {more:?}", String::from_utf8_lossy(head));
        }
        // A response that closes the connection (its header split across two writes): the
        // shutdown is real.
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, given) = giving_back(server, b"GET / HTTP/1.1\r\n\r\n");
        let mut got = vec![0; 64];
        assert_eq!(io.read(&mut got).await.unwrap(), 18);
        assert_eq!(io.read(&mut got).await.unwrap(), 0);
        io.write_all(b"HTTP/1.1 400 Bad Request\r\nConnec")
            .await
            .unwrap();
        io.write_all(b"tion: Close\r\n\r\n").await.unwrap();
        io.shutdown().await.unwrap();
        assert!(!given.get(), "a closing response is not given back");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.ends_with(b"tion: Close\r\n\r\n"));
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
