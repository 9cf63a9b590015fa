//! The probe listener: `/healthz` and `/readyz` (and nothing else) on a port of their own
//! ([`contract::PROBE_PORT`], `PROBE_PORT`), with their own accept queue, tiny socket buffers
//! and a thread of their own running a single-threaded runtime, as linkerd2-proxy and kubert
//! serve their `admin` endpoints. It is the only place probes are answered off the routes.
//!
//! Why: under a flood of the HTTP port at the pod's CPU quota, a probe sent there waits in
//! the same accept queue and behind the same event loop as thousands of connections (seconds,
//! more than the probe's timeout). Here it waits for nothing but a CPU slice: the thread
//! sleeps in `epoll_wait` until a probe arrives, and the kernel's scheduler gives a thread
//! that wakes after sleeping its share at once, flood or not.
//!
//! The answers still speak for the workers that serve users: liveness checks every worker's
//! heartbeat (see `heartbeat`), readiness the shared readiness state and the same heartbeats.
//!
//! No client can starve it: it holds at most [`MAX_OPEN`] connections, each gets [`HEAD_WAIT`]
//! to send its head, and a connection accepted while all are held takes the place of the
//! oldest one still waiting for its head (a probe sends its head with the handshake and is
//! answered at once, so it is never the one waiting). Silent or slow connections, however many,
//! only push each other out.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::state::Shared;

/// The probe listener's accept queue: room for a burst of connections while the accept loop
/// turns (probes arrive a few per second; a flood of connects must not fill it first).
pub const BACKLOG: i32 = 1024;
/// Probe connections held at once (see the module documentation for the one over).
pub const MAX_OPEN: usize = 64;
/// Receive and send buffers of each probe connection (the kernel doubles and floors it).
pub const SOCKET_BUFFER_BYTES: usize = 4096;
/// How long a probe connection gets to send its head.
pub const HEAD_WAIT: Duration = Duration::from_secs(1);
/// The most of a probe's head read.
pub const HEAD_BYTES: usize = 1024;
/// How long the accept loop pauses after an accept error (e.g. out of descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Binds the probe listener at `address` (port 0 picks a free port).
pub fn bind(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    // Accepted sockets inherit these: a probe's request and answer are a few hundred bytes.
    socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket
        .bind(&address.into())
        .map_err(|err| io::Error::new(err.kind(), format!("cannot bind {address}: {err}")))?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The running probe listener; dropping it stops its thread and closes the port.
#[derive(Debug)]
pub struct ProbeServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ProbeServer {
    /// Serves probes on `listener` from a thread of its own until dropped.
    pub fn start(listener: std::net::TcpListener, shared: Arc<Shared>) -> io::Result<Self> {
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("probes".to_owned())
            .spawn(move || runtime.block_on(serve(listener, shared, stopped)))?;
        Ok(ProbeServer {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for ProbeServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One held connection, in accept order.
struct Held {
    task: AbortHandle,
    /// Where it stands: [`NOT_RUN`], [`WAITING`] or [`ANSWERING`].
    stage: Arc<AtomicU8>,
}

/// A connection's task has not run yet (it has not had its chance to read its head).
const NOT_RUN: u8 = 0;
/// It has run and waits for its head: it may make room for a new connection.
const WAITING: u8 = 1;
/// Its head arrived: it is being answered.
const ANSWERING: u8 = 2;

impl Held {
    fn waiting(&self) -> bool {
        self.stage.load(Ordering::Acquire) == WAITING
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(error = %err, "the probe listener could not start");
            return;
        }
    };
    let mut held: VecDeque<Held> = VecDeque::with_capacity(MAX_OPEN + 1);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let mut buf = [0u8; HEAD_BYTES];
                    // A probe sends its head with the handshake: it is usually here already,
                    // and then answered at once, holding nothing.
                    let len = match stream.try_read(&mut buf) {
                        Ok(0) => continue, // closed
                        Ok(len) => len,
                        Err(_) => 0,
                    };
                    if len > 0 && let Some(answer) = answer_for(parse(&buf[..len]), &shared) {
                        respond_now(&stream, &answer);
                        continue;
                    }
                    held.retain(|h| !h.task.is_finished());
                    if held.len() >= MAX_OPEN && !make_room(&mut held).await {
                        continue; // every one is being answered or about to read: closed
                    }
                    let stage = Arc::new(AtomicU8::new(NOT_RUN));
                    let task = tokio::spawn(answer(stream, Arc::clone(&shared), Arc::clone(&stage), buf, len));
                    held.push_back(Held { task: task.abort_handle(), stage });
                }
                Err(err) => {
                    tracing::debug!(error = %err, "probe listener: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}

/// Makes room among `held` for a new connection: the oldest one still waiting for its head
/// goes (closed as its task is dropped). A connection whose task has not run yet has not had
/// its chance to read, so the tasks are let run once first when none is waiting. False when
/// no room can be made.
async fn make_room(held: &mut VecDeque<Held>) -> bool {
    if !held.iter().any(Held::waiting) {
        tokio::task::yield_now().await;
        held.retain(|h| !h.task.is_finished());
        if held.len() < MAX_OPEN {
            return true;
        }
    }
    match held.iter().position(Held::waiting) {
        Some(oldest) => {
            if let Some(evicted) = held.remove(oldest) {
                evicted.task.abort();
            }
            true
        }
        None => false,
    }
}

/// One probe connection whose head was not whole when accepted (`len` bytes of it in `buf`):
/// read the rest within [`HEAD_WAIT`], answer, close.
async fn answer(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    stage: Arc<AtomicU8>,
    mut buf: [u8; HEAD_BYTES],
    mut len: usize,
) {
    stage.store(WAITING, Ordering::Release);
    let _ = stream.set_nodelay(true);
    let request = tokio::time::timeout(HEAD_WAIT, async {
        loop {
            match parse(&buf[..len]) {
                Parsed::Partial if len < buf.len() => {}
                parsed => return Some(parsed),
            }
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => len += n,
            }
        }
    })
    .await;
    let Ok(Some(parsed)) = request else {
        return; // no head in time, or the client closed
    };
    stage.store(ANSWERING, Ordering::Release);
    let answer = answer_for(parsed, &shared).unwrap_or_else(bad_request);
    // A probe sends nothing after its head: the close needs no lingering read.
    let _ = tokio::time::timeout(HEAD_WAIT, async {
        if stream.write_all(answer.as_bytes()).await.is_ok() {
            let _ = stream.shutdown().await;
        }
    })
    .await;
}

/// The whole answer (status line to body, `Connection: close`) to a head, once it is whole:
/// `None` while it is partial.
fn answer_for(parsed: Parsed, shared: &Shared) -> Option<String> {
    let (status, body, head_only) = match parsed {
        Parsed::Probe { probe, head_only } => {
            let (status, body) = probe_answer(probe, shared);
            (status, body, head_only)
        }
        Parsed::Other => (
            "404 Not Found",
            "not found: this port serves GET and HEAD /healthz and /readyz only".to_owned(),
            false,
        ),
        Parsed::Invalid => return Some(bad_request()),
        Parsed::Partial => return None,
    };
    Some(response(status, &body, head_only))
}

fn bad_request() -> String {
    response("400 Bad Request", "bad request", false)
}

fn response(status: &str, body: &str, head_only: bool) -> String {
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(body);
    }
    response
}

/// Writes a whole answer without waiting (the socket's buffer is empty and 4 KiB: it fits),
/// shuts the write side and closes.
fn respond_now(stream: &TcpStream, answer: &str) {
    if stream
        .try_write(answer.as_bytes())
        .is_ok_and(|n| n == answer.len())
    {
        let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
    }
}

/// The status line and body of a probe's answer: what the routes answer.
fn probe_answer(probe: Probe, shared: &Shared) -> (&'static str, String) {
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
enum Probe {
    Liveness,
    Readiness,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Probe {
        probe: Probe,
        head_only: bool,
    },
    /// A whole head, not a probe.
    Other,
    Partial,
    Invalid,
}

fn parse(bytes: &[u8]) -> Parsed {
    let mut headers = [MaybeUninit::uninit(); 32];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(_)) => {
            let head_only = match request.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => return Parsed::Other,
            };
            let probe = match request.path {
                Some(contract::paths::LIVENESS) => Probe::Liveness,
                Some(contract::paths::READINESS) => Probe::Readiness,
                _ => return Parsed::Other,
            };
            Parsed::Probe { probe, head_only }
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Other,
        Err(_) => Parsed::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_recognised_and_everything_else_is_not_a_probe() {
        let probe = |probe, head_only| Parsed::Probe { probe, head_only };
        assert_eq!(
            parse(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            probe(Probe::Liveness, false)
        );
        assert_eq!(
            parse(b"HEAD /readyz HTTP/1.1\r\n\r\n"),
            probe(Probe::Readiness, true)
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Parsed::Other);
        assert_eq!(parse(b"POST /healthz HTTP/1.1\r\n\r\n"), Parsed::Other);
        assert_eq!(parse(b"GET /healthz?x HTTP/1.1\r\n\r\n"), Parsed::Other);
        assert_eq!(parse(b"GET /healthz HTTP/1.1\r\nHo"), Parsed::Partial);
        assert_eq!(parse(b"\x00\x01 nonsense\r\n\r\n"), Parsed::Invalid);
    }
}
