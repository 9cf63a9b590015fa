//! The IO every served connection goes through, below actix-http: it bounds what one
//! connection can hold and how long, hands actix-http one whole request head at a time, and
//! ends an exchange when actix-http's parser says so (see `exchange`).
//!
//! - Whole heads, one at a time: bytes from the socket are kept here (at most
//!   [`IoLimits::read_ahead`]) until httparse, the parser actix-http runs on the same bytes,
//!   finds a whole head; exactly that head is handed on, and the next only once actix-http
//!   has decoded it (the gate saw it). So actix-http never holds part of a head, never holds
//!   more than one undecoded request (it decodes all it holds at once: 16 KiB of pipelined
//!   one-line requests would be some 900 requests in memory), and never reads a body: a
//!   request with a body ends the connection (see `exchange`), and nothing after its head is
//!   handed on. Where a request ends and whether it closes the connection are actix-http's
//!   to say; httparse here only finds where a head ends, as actix-http's own decoder does.
//! - Oversized heads: [`IoLimits::read_ahead`] bytes without a whole head is a head too
//!   large: it is answered `431` at once and the connection ends.
//! - Write deadline: a client that stops reading its answers is closed once a write has
//!   been blocked for [`IoLimits::progress`]; actix-http has no deadline for it. (A first
//!   head that trickles or stalls is kept here until whole, so actix-http's head timer closes
//!   the connection after 5 s; and no body is ever read.)
//! - Keep-alive: between requests, a connection that waits in actix-http (a warm one, see
//!   [`Warm`]) is closed after [`IoLimits::keep_alive`] without a request, as actix-http's
//!   keep-alive timer would. That timer is off (`KeepAlive::Os`, see `startup`): it took a
//!   timer of its own for every request, allocated, registered and dropped, a tenth of the
//!   service's own work per request. This one is armed once and moved on lazily: an answer
//!   only notes the time, and the timer, when it fires early, is set again from that note.
//! - Backpressure: while a write is blocked (the client does not read), nothing is read or
//!   handed on, so pipelined requests stay in the kernel's socket buffer.
//! - The end of a connection (RFC 9112 section 9.6): once actix-http decoded a request that
//!   ends it, nothing more is handed on; after the answers, actix-http sees the end of the
//!   stream.
//! - Give-back: once the requests handed on are answered and the client has sent nothing
//!   more, actix-http is told the stream ended, and its shutdown hands the connection back
//!   open (see [`GuardedIo::giving_back`]): between requests a keep-alive connection holds
//!   neither a served slot nor actix-http's buffers.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use super::admission::Admission;
use super::exchange::Exchange;

/// The bounds of one connection.
#[derive(Debug, Clone, Copy)]
pub struct IoLimits {
    /// How long a write may stay blocked (see the module documentation).
    pub progress: Duration,
    /// Bytes of requests kept here at most (a whole head must fit).
    pub read_ahead: usize,
    /// How long a connection waiting in actix-http between requests may stay silent.
    pub keep_alive: Duration,
}

/// The answer to an oversized head.
const RESPONSE_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\nconnection: close\r\n\r\nrequest head larger than 16 KiB";

/// A connection's IO with the bounds of [`IoLimits`].
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    /// Bytes read from the client and not yet handed on: the start of the next head(s).
    input: BytesMut,
    limits: IoLimits,
    /// What actix-http decoded in this exchange (see `exchange`).
    exchange: Rc<Exchange>,
    /// Heads handed on in this exchange (counted once handed whole).
    heads: u64,
    /// Bytes of the head being handed on that are still to go (a head larger than what
    /// actix-http's buffer takes in one read).
    handing: usize,
    /// The client's end of stream (or an error) was read: handed on once `input` is.
    eof: bool,
    /// The last write returned `Pending`, or fewer bytes than offered.
    write_blocked: bool,
    /// A read returned `Pending` without polling the socket; woken when the output is out.
    parked: Option<Waker>,
    /// Armed while a write is blocked: the client has until then to read.
    stall: Option<Pin<Box<Sleep>>>,
    /// When the last answer was written out in full with nothing else in flight.
    answered_at: Option<Instant>,
    /// Armed once a connection first waits in actix-http for its next request; it may fire
    /// early (it is not moved on for every answer) and is then set from `answered_at`.
    keep_alive: Option<Pin<Box<Sleep>>>,
    /// Bytes of the 431 written so far, once the head is found oversized.
    oversized: Option<usize>,
    /// Set when the connection goes back to its owner between requests.
    give_back: Option<GiveBack>,
}

/// The give-back of a connection between requests (see [`GuardedIo::giving_back`]).
#[derive(Debug)]
struct GiveBack {
    /// The client's end of stream or an error: the connection is not given back.
    ruled_out: bool,
    /// End of stream was reported to actix-http in place of a wait for the next request.
    ended: bool,
    /// The worker's warm connections, this one among them while `is_warm`.
    warm: Rc<Warm>,
    is_warm: bool,
}

impl GiveBack {
    /// Counts this connection, idle in actix-http, as warm if the worker's bound allows (or
    /// it already is); false when it must be given back instead.
    fn warm_up(&mut self) -> bool {
        if !self.is_warm && self.warm.idle.get() < self.warm.max() {
            self.warm.idle.set(self.warm.idle.get() + 1);
            self.is_warm = true;
        }
        self.is_warm
    }

    /// This connection, idle in actix-http, is no longer counted as warm.
    fn cool(&mut self) {
        if std::mem::take(&mut self.is_warm) {
            self.warm.idle.set(self.warm.idle.get() - 1);
        }
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        self.cool();
    }
}

/// The connections of one worker that may wait for their next request inside actix-http
/// ("warm": with its buffers and their served slot, as actix-http alone would keep every
/// connection) instead of being given back: a new exchange costs a new dispatcher. How many
/// may is the worker's share of [`Admission::warm_allowed`], which shrinks as connections
/// grow: a thousand busy keep-alive clients keep actix-http's speed, and ten thousand cost
/// what waiting ones cost.
#[derive(Debug)]
pub struct Warm {
    idle: Cell<usize>,
    admission: Arc<Admission>,
    workers: usize,
    /// [`Warm::max`] as of the last count of open connections it was worked out for: it is
    /// asked at every answer, and the count seldom moves between two.
    bound: Cell<(usize, usize)>,
}

impl Warm {
    /// The warm connections of one of `workers` workers.
    pub fn new(admission: Arc<Admission>, workers: usize) -> Rc<Self> {
        Rc::new(Warm {
            idle: Cell::new(0),
            admission,
            workers: workers.max(1),
            bound: Cell::new((usize::MAX, 0)),
        })
    }

    /// Connections idle in actix-http now.
    pub fn idle(&self) -> usize {
        self.idle.get()
    }

    /// How many may be, now.
    fn max(&self) -> usize {
        let open = self.admission.open();
        let (counted, max) = self.bound.get();
        if counted == open {
            return max;
        }
        let max = self.admission.warm_allowed(open) / self.workers;
        self.bound.set((open, max));
        max
    }
}

impl<T> GuardedIo<T> {
    /// `prefix` is handed on first; `exchange` is what the gate records of this exchange.
    pub fn new(inner: T, prefix: Bytes, limits: IoLimits, exchange: Rc<Exchange>) -> Self {
        GuardedIo {
            inner,
            limits,
            exchange,
            heads: 0,
            handing: 0,
            eof: false,
            write_blocked: false,
            parked: None,
            input: BytesMut::from(&prefix[..]),
            stall: None,
            answered_at: None,
            keep_alive: None,
            oversized: None,
            give_back: None,
        }
    }

    /// Gives the connection back between requests instead of keeping it open in actix-http:
    /// once the requests of this exchange are answered and the client has sent nothing more,
    /// actix-http is told the stream ended; it finishes what it has, then shuts the
    /// connection down, and that shutdown marks the exchange given back
    /// ([`Exchange::given_back`]) instead of closing the socket. The
    /// owner then takes its connection back (see [`Lent`]) and waits for the next request
    /// without actix-http's buffers. A connection that ends (see `exchange`), an error and
    /// the client's own end of stream keep the real shutdown.
    ///
    /// While fewer than `warm`'s bound are idle in actix-http, the connection waits there
    /// instead (see [`Warm`]) and is given back only once its dispatcher ends for another
    /// reason, or after a later exchange when the bound is reached.
    pub fn giving_back(mut self, warm: Rc<Warm>) -> Self {
        self.give_back = Some(GiveBack {
            ruled_out: false,
            ended: false,
            warm,
            is_warm: false,
        });
        self
    }

    /// Every request decoded so far has been answered and the answers are written out.
    fn answered(&self) -> bool {
        !self.write_blocked && self.exchange.unwritten() == 0
    }

    /// actix-http has decoded every head handed on (the gate saw each).
    fn decoded(&self) -> bool {
        self.exchange.requests() >= self.heads
    }

    /// The exchange may end here and the connection go back to its owner.
    fn may_give_back(&self) -> bool {
        self.give_back
            .as_ref()
            .is_some_and(|g| !g.ruled_out && !g.ended)
            && self.heads > 0
            && self.handing == 0
            && self.input.is_empty()
            && !self.eof
            && !self.exchange.ends()
            && self.oversized.is_none()
            && self.decoded()
            && self.answered()
    }

    fn rule_out_give_back(&mut self) {
        if let Some(give_back) = &mut self.give_back {
            give_back.ruled_out = true;
            give_back.cool();
        }
    }

    /// `Ready(error)` once a write has been blocked for [`IoLimits::progress`]; otherwise
    /// the task is woken when it has.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let progress = self.limits.progress;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(progress)));
        ready!(stall.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read none of its answers within the deadline",
        ))
    }

    /// Parks the reading task until the output is written out.
    fn park(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        self.parked = Some(cx.waker().clone());
        Poll::Pending
    }

    fn unpark(&mut self) {
        if let Some(waker) = self.parked.take() {
            waker.wake();
        }
    }

    /// Between requests: every head handed on is decoded and answered, none is being handed.
    fn between_requests(&self) -> bool {
        self.heads > 0 && self.handing == 0 && self.decoded() && self.answered()
    }

    /// Keeps the keep-alive timer armed for a connection waiting in actix-http between
    /// requests: `true` once it has waited [`IoLimits::keep_alive`] since its last answer.
    /// The timer wakes the task when it fires; it is set again only then (or when first
    /// armed), so a busy connection costs one clock read per answer, not a timer.
    fn keep_alive_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(answered_at) = self.answered_at else {
            return false;
        };
        let deadline = answered_at + self.limits.keep_alive;
        let timer = match &mut self.keep_alive {
            Some(timer) if !timer.is_elapsed() => return false, // armed, no later than due
            Some(timer) => {
                if Instant::now() >= deadline {
                    return true;
                }
                timer.as_mut().reset(deadline);
                timer
            }
            None => self
                .keep_alive
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        timer.as_mut().poll(cx).is_ready()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> GuardedIo<T> {
    /// The 431 of an oversized head, then the end of the stream for actix-http (which closes
    /// the connection; the owner reads what the client still sends before the socket goes,
    /// so the close does not reset the answer away).
    fn poll_oversized(&mut self, cx: &mut Context<'_>, written: usize) -> Poll<io::Result<()>> {
        let mut written = written;
        while written < RESPONSE_431.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &RESPONSE_431[written..]))? {
                0 => break,
                n => written += n,
            }
            self.oversized = Some(written);
        }
        self.oversized = Some(RESPONSE_431.len());
        self.rule_out_give_back();
        Poll::Ready(Ok(()))
    }
}

/// Where the first whole head in `bytes` ends, as httparse (actix-http's parser) finds it
/// with actix-http's header bound: `Some(len)` for a whole head, `Some(bytes.len())` for
/// bytes that are no head at all (actix-http refuses them with a 400 and closes), `None`
/// while more is needed.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut headers = [std::mem::MaybeUninit::uninit(); ACTIX_MAX_HEADERS];
    match httparse::Request::new(&mut []).parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(len)) => Some(len),
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(bytes.len()),
    }
}

/// The headers actix-http's decoder parses a head with (more is refused by it).
const ACTIX_MAX_HEADERS: usize = 96;

impl<T: AsyncRead + Unpin> GuardedIo<T> {
    /// Reads what the client sent into `input` (up to the read-ahead): `Pending` once the
    /// socket has nothing more (the task is woken when it has), `Ready` once `input` is full
    /// or the client's stream ended.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.eof && self.input.len() < self.limits.read_ahead {
            let room = (self.limits.read_ahead - self.input.len()).min(READ_BYTES);
            make_room(&mut self.input, room, self.limits.read_ahead);
            let mut spare = (&mut self.input).limit(room);
            let n = ready!(poll_read_buf(Pin::new(&mut self.inner), cx, &mut spare))?;
            if n == 0 {
                self.eof = true;
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// What one read from the socket takes at most.
const READ_BYTES: usize = 4096;

/// Makes room in `input` for `additional` more bytes, its allocation never larger than
/// `read_ahead` (or what it must hold, if more): in place when the bytes already handed on
/// leave the room, else in a fresh buffer of `read_ahead` that the kept bytes move to.
/// `BytesMut::reserve` instead doubles the allocation whenever fewer bytes were handed on than
/// are kept (it moves bytes to the front only past that point), so a pipelining client's
/// buffer grew from the first read's size by doubling to 32 or 40 KiB, not 16: 300 such
/// connections held 7 MiB more than their budget in one run in three (limits.rs).
fn make_room(input: &mut BytesMut, additional: usize, read_ahead: usize) {
    if input.try_reclaim(additional) {
        return;
    }
    let mut fresh = BytesMut::with_capacity(read_ahead.max(input.len() + additional));
    fresh.extend_from_slice(input);
    *input = fresh;
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
        if this
            .keep_alive
            .as_ref()
            .is_some_and(|timer| timer.is_elapsed())
            && this.between_requests()
            && this.keep_alive_expired(cx)
        {
            // No request within the keep-alive timeout: actix-http sees the end of the stream
            // and closes the connection (a head begun since is dropped, as actix-http's own
            // timer would).
            this.eof = true;
            this.rule_out_give_back();
            return Poll::Ready(Ok(()));
        }
        if let Some(written) = this.oversized {
            return this.poll_oversized(cx, written);
        }
        if this.exchange.ends() {
            // Nothing after the request that ends the connection is handed on. Once the
            // answers are written, actix-http sees the end of the stream and closes; or, when
            // it decoded a request after that one (parked, see `exchange`), the exchange is
            // aborted so that it is never answered.
            if !this.answered() {
                return this.park(cx);
            }
            this.rule_out_give_back();
            if this.exchange.refused() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "a request after one that ends the connection is not processed",
                )));
            }
            return Poll::Ready(Ok(()));
        }
        if this.write_blocked {
            if let Poll::Ready(err) = this.poll_stall(cx) {
                return Poll::Ready(Err(err));
            }
            return this.park(cx);
        }
        if this.input.is_empty() && this.handing == 0 && this.decoded() && !this.eof {
            // The common case, one head per read: it is read straight into actix-http's buffer,
            // and only what follows a whole head (or a head not yet whole) is kept here.
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() > before => {
                    let read = &buf.filled()[before..];
                    let whole = head_end(read);
                    let kept = whole.unwrap_or(0);
                    make_room(&mut this.input, read.len() - kept, this.limits.read_ahead);
                    this.input.extend_from_slice(&read[kept..]);
                    buf.set_filled(before + kept);
                    if whole.is_some() {
                        this.heads += 1;
                        if let Some(give_back) = &mut this.give_back {
                            give_back.cool(); // the next request is here
                        }
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => this.eof = true,
                Poll::Ready(Err(err)) => {
                    this.rule_out_give_back();
                    return Poll::Ready(Err(err));
                }
                Poll::Pending => return this.idle(),
            }
        }
        // What the client sent comes into `input`; the socket is polled, so the task is woken
        // when more arrives.
        let filled = this.fill(cx);
        if let Poll::Ready(Err(err)) = filled {
            this.rule_out_give_back();
            return Poll::Ready(Err(err));
        }
        if this.handing == 0 && !this.decoded() {
            // The head handed last is not decoded yet: actix-http decodes it after this read
            // returns. A connection that is to be given back after it (nothing more sent, not
            // warm) ends its exchange here: actix-http sees the end of the stream, answers the
            // request it holds (half-closed connections are allowed), then shuts down, which
            // hands the connection back (see `poll_shutdown`), all in this one poll. Otherwise
            // it is polled again once its answer is written (see `poll_flush`): under a flood
            // that is after every other connection of the worker had its turn, and the slot
            // and the buffers would be held all that time.
            if this.input.is_empty()
                && !this.eof
                && !this.write_blocked
                && let Some(give_back) = &mut this.give_back
                && !give_back.ruled_out
                && !give_back.warm_up()
            {
                give_back.ended = true;
                return Poll::Ready(Ok(()));
            }
            return Poll::Pending;
        }
        if this.handing == 0
            && let Some(len) = head_end(&this.input)
        {
            this.handing = len;
            if let Some(give_back) = &mut this.give_back {
                give_back.cool(); // the next request is here
            }
        }
        if this.handing > 0 {
            let n = this.handing.min(buf.remaining());
            buf.put_slice(&this.input.split_to(n));
            this.handing -= n;
            if this.handing == 0 {
                this.heads += 1;
            }
            return Poll::Ready(Ok(()));
        }
        if this.input.len() >= this.limits.read_ahead {
            // No whole head in `read_ahead` bytes: a head too large.
            this.oversized = Some(0);
            return this.poll_oversized(cx, 0);
        }
        if this.eof {
            // The client's end of stream (what it sent before is a part of a head at most):
            // actix-http sees it, answers what it has and closes.
            this.rule_out_give_back();
            return Poll::Ready(Ok(()));
        }
        if filled.is_pending() {
            return this.idle();
        }
        Poll::Pending
    }
}

impl<T> GuardedIo<T> {
    /// The client has sent nothing more: once the exchange's answers are written it waits
    /// warm in actix-http while the worker's bound allows, else the exchange ends (end of
    /// stream for actix-http) and the connection waits for its next request outside it.
    fn idle(&mut self) -> Poll<io::Result<()>> {
        if self.may_give_back()
            && let Some(give_back) = &mut self.give_back
            && !give_back.warm_up()
        {
            give_back.ended = true;
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
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
                    this.stall = None;
                }
                this.write_blocked = n < buf.len();
                if n == buf.len() {
                    // The output is written out: reading may go on.
                    this.exchange.written_out();
                    this.answered_at = Some(Instant::now());
                    this.unpark();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                this.write_blocked = true;
                match this.poll_stall(cx) {
                    Poll::Ready(err) => Poll::Ready(Err(err)),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // actix-http reads only when woken. After the answers of a connection that ends, wake
        // it to read the end of the stream; after those of a keep-alive exchange, either the
        // connection waits warm in actix-http (woken by the socket) or the exchange ends here,
        // with its last answer (a give-back): actix-http is woken to read the end of the
        // stream. Deciding it now, not when actix-http is polled again, keeps the slot to one
        // exchange: under a flood that next poll comes after every other connection of the
        // worker had its turn, by when a busy client has sent its next request, and the
        // connection would go on holding its slot while others wait for one.
        if this.answered() && (this.exchange.ends() || !this.input.is_empty() || this.eof) {
            cx.waker().wake_by_ref();
        } else if this.may_give_back()
            && let Some(give_back) = &mut this.give_back
            && !give_back.warm_up()
        {
            give_back.ended = true;
            cx.waker().wake_by_ref();
        } else if this.between_requests()
            && !this.exchange.ends()
            && !this.eof
            && !this
                .give_back
                .as_ref()
                .is_some_and(|g| g.ended || g.ruled_out)
        {
            // It waits in actix-http for its next request (warm): the keep-alive timer is
            // armed (an answer was just written, so it is not due). An exchange that ends
            // here, given back or closed, needs none.
            let _ = this.keep_alive_expired(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(give_back) = &this.give_back
            && give_back.ended
            && !give_back.ruled_out
            && !this.exchange.ends()
            && this.decoded()
        {
            // The exchange is over and nothing ends the connection: it goes back open.
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
            this.exchange.give_back();
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A connection lent to actix-http for one exchange (see [`GuardedIo::giving_back`]): the
/// dispatcher owns it, inline, for the exchange, and when it drops it the connection goes back
/// to its owner's [`LentBack`]. (Held through an `Rc<RefCell>` both sides share, every read and
/// write went through one more allocation, a cache line of its own per connection: at a
/// thousand connections, one more miss per request.)
#[derive(Debug)]
pub struct Lent<T> {
    stream: Option<T>,
    back: Rc<RefCell<Option<T>>>,
}

/// Where a [`Lent`] connection comes back to.
#[derive(Debug)]
pub struct LentBack<T>(Rc<RefCell<Option<T>>>);

impl<T> Lent<T> {
    /// Lends `stream`: the lent side for actix-http, and where it comes back.
    pub fn new(stream: T) -> (Self, LentBack<T>) {
        let back = Rc::new(RefCell::new(None));
        (
            Lent {
                stream: Some(stream),
                back: Rc::clone(&back),
            },
            LentBack(back),
        )
    }

    #[inline]
    fn stream(self: Pin<&mut Self>) -> Option<Pin<&mut T>>
    where
        T: Unpin,
    {
        self.get_mut().stream.as_mut().map(Pin::new)
    }
}

/// A lent connection used after it went back: cannot happen, the dispatcher owns it until it
/// drops it.
#[cold]
fn given_back<R>() -> Poll<io::Result<R>> {
    Poll::Ready(Err(io::Error::other("the lent connection was given back")))
}

impl<T> LentBack<T> {
    /// The connection, once actix-http dropped its side; `None` while it holds it.
    pub fn take(&self) -> Option<T> {
        self.0.borrow_mut().take()
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        *self.back.borrow_mut() = self.stream.take();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lent<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.stream() {
            Some(stream) => stream.poll_read(cx, buf),
            None => given_back(),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Lent<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Some(stream) => stream.poll_write(cx, buf),
            None => given_back(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Some(stream) => stream.poll_flush(cx),
            None => given_back(),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Some(stream) => stream.poll_shutdown(cx),
            None => given_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipelining client's bytes through `input` as `GuardedIo` moves them: what the first
    /// read kept after a head (its size was the first allocation's), then reads of up to
    /// `READ_BYTES` while heads of 27 bytes are handed on one at a time.
    #[test]
    fn the_read_ahead_buffer_never_grows_past_the_read_ahead() {
        const READ_AHEAD: usize = 16 * 1024;
        const HEAD: usize = 27;
        for first in [27, 1000, 1280, 2560, 4069] {
            let mut input = BytesMut::new();
            make_room(&mut input, first, READ_AHEAD);
            input.extend_from_slice(&vec![b'x'; first]);
            for round in 0..5_000 {
                if round % 4 == 0 || input.len() == READ_AHEAD {
                    drop(input.split_to(HEAD));
                }
                let room = (READ_AHEAD - input.len()).min(READ_BYTES);
                make_room(&mut input, room, READ_AHEAD);
                assert!(input.capacity() - input.len() >= room, "no room made");
                assert!(
                    input.capacity() <= READ_AHEAD,
                    "first read of {first} bytes, round {round}: {} bytes of capacity",
                    input.capacity()
                );
                input.extend_from_slice(&vec![b'x'; room.min(HEAD * 3)]);
            }
        }
    }
}
