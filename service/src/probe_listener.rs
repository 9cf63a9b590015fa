//! The probe listener: `/healthz` and `/readyz` (and nothing else) on a port of their own
//! ([`contract::PROBE_PORT`], `PROBE_PORT`), with their own accept queue, tiny socket buffers
//! and a thread of their own running a single-threaded runtime, as linkerd2-proxy and kubert
//! serve their `admin` endpoints.
//!
//! Why: under a flood of the HTTP port at the pod's CPU quota, a probe sent there waits in
//! the same accept queue and behind the same event loop as thousands of connections (seconds,
//! more than the probe's timeout). Here it waits for nothing but a CPU slice: the thread
//! sleeps in `epoll_wait` until a probe arrives, and the kernel's scheduler gives a thread
//! that wakes after sleeping its share at once, flood or not.
//!
//! The answers still speak for the workers that serve users: liveness checks every worker's
//! heartbeat (see `heartbeat`), readiness the shared readiness state and the same heartbeats.
//! The listener holds at most [`MAX_OPEN`] connections (more are closed at once), reads at
//! most [`overflow::HEAD_BYTES`] of a head within [`HEAD_WAIT`], answers and closes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::overflow::{self, Head, Linger};
use crate::state::Shared;

/// The probe listener's accept queue: probes arrive a few per second.
pub const BACKLOG: i32 = 64;
/// Probe connections held at once; beyond, a connection is closed at once.
pub const MAX_OPEN: usize = 64;
/// Receive and send buffers of each probe connection (the kernel doubles and floors it).
pub const SOCKET_BUFFER_BYTES: usize = 4096;
/// How long a probe connection gets to send its head.
pub const HEAD_WAIT: Duration = Duration::from_secs(1);
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
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Beyond MAX_OPEN the connection is dropped (closed) at once.
                    if let Ok(permit) = Arc::clone(&open).try_acquire_owned() {
                        tokio::spawn(answer(stream, Arc::clone(&shared), permit));
                    }
                }
                Err(err) => {
                    tracing::debug!(error = %err, "probe listener: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}

/// One probe connection: one request, one answer, closed.
async fn answer(mut stream: TcpStream, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; overflow::HEAD_BYTES];
    let Some((probe, len)) = overflow::read_head(&mut stream, &mut buf, HEAD_WAIT).await else {
        return;
    };
    match probe {
        Some(probe) => overflow::answer_probe(&mut stream, probe, &shared).await,
        None => {
            let (status, body) = match overflow::parse(&buf[..len]) {
                Head::Complete(_) => (
                    "404 Not Found",
                    "not found: this port serves GET and HEAD /healthz and /readyz only",
                ),
                Head::Partial | Head::Invalid => ("400 Bad Request", "bad request"),
            };
            overflow::respond(&mut stream, status, body, false, "", Linger::No).await;
        }
    }
}
