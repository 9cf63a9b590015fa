//! The shutdown sequence. [`ShutdownHandle`] starts it, from an OS signal or programmatically
//! (tests); [`supervise`] runs it: readiness 503 at once, keep serving for the drain delay
//! (SIGTERM and SIGHUP), then stop accepting and let in-flight requests finish within the
//! shutdown timeout. SIGUSR1 and SIGUSR2 are logged and ignored: no signal whose default
//! action is to terminate can kill the process mid-drain (SIGKILL aside).
//!
//! The end of the drain loses no request:
//! - closing a listening socket resets every connection the kernel has completed but the
//!   server has not accepted yet, and a client may have sent its request on it. So a socket
//!   filter first drops every new SYN (the client retransmits after about 1 s, finds the port
//!   closed and gets "connection refused": nothing was sent), handshakes already under way
//!   complete, and the server keeps accepting until the kernel's accept queue is empty
//!   (at most [`FINAL_ACCEPT`]); only then does it stop accepting and close the socket;
//! - connections already accepted are not cut: each is answered (every answer of the drain
//!   says `Connection: close`) or ends at its keep-alive timeout, within the shutdown
//!   timeout (see `connection::waiting`).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::sync::mpsc;

use crate::state::Shared;

/// What started the shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM (the kubelet): drain for the configured delay, then stop.
    Term,
    /// SIGINT (Ctrl-C): stop without the drain delay.
    Int,
    /// SIGHUP (a closed terminal, or an operator): as SIGTERM.
    Hup,
}

impl Signal {
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
        }
    }

    /// Whether the drain delay applies.
    pub const fn drains(self) -> bool {
        matches!(self, Signal::Term | Signal::Hup)
    }
}

/// How long connections already queued by the kernel get to be accepted at the drain's end.
pub const FINAL_ACCEPT: Duration = Duration::from_secs(1);
/// How often the accept queue is looked at while it empties.
const QUEUE_CHECK: Duration = Duration::from_millis(5);

/// Starts the shutdown sequence of one running application; cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: mpsc::UnboundedSender<Signal>,
}

impl ShutdownHandle {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Signal>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ShutdownHandle { tx }, rx)
    }

    /// Behaves as if the process received `signal`. A second call during the drain skips the
    /// rest of the drain delay. Returns false once the application has stopped.
    pub fn begin(&self, signal: Signal) -> bool {
        self.tx.send(signal).is_ok()
    }
}

/// Forwards SIGTERM, SIGINT and SIGHUP to `handle` until the application stops; logs and
/// ignores SIGUSR1 and SIGUSR2 (their default action would kill the process).
pub(crate) fn forward_os_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                Some(()) = term.recv() => Signal::Term,
                Some(()) = int.recv() => Signal::Int,
                Some(()) = hup.recv() => Signal::Hup,
                Some(()) = usr1.recv() => {
                    tracing::warn!(signal = "SIGUSR1", "signal ignored: it has no meaning here");
                    continue;
                }
                Some(()) = usr2.recv() => {
                    tracing::warn!(signal = "SIGUSR2", "signal ignored: it has no meaning here");
                    continue;
                }
                else => break,
            };
            if !handle.begin(received) {
                break;
            }
        }
    });
    Ok(())
}

/// Runs the shutdown sequence when the first signal arrives.
pub(crate) async fn supervise(
    mut signals: mpsc::UnboundedReceiver<Signal>,
    shared: Arc<Shared>,
    server: ServerHandle,
    listener: TcpListener,
    drain_delay: Duration,
) {
    let Some(first) = signals.recv().await else {
        return;
    };
    shared.readiness.begin_draining();
    let delay = if first.drains() {
        drain_delay
    } else {
        Duration::ZERO
    };
    tracing::info!(
        signal = first.as_str(),
        drain_delay_seconds = delay.as_secs(),
        "draining: /readyz answers 503, still serving until the drain delay ends"
    );
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            Some(second) = signals.recv() => {
                tracing::info!(signal = second.as_str(), "second signal: skipping the rest of the drain delay");
            }
        }
    }
    // See the module documentation: accept what the kernel already queued, nothing more.
    if let Err(err) = refuse_new_handshakes(&listener) {
        tracing::warn!(error = %err, "could not refuse new connections before closing");
    }
    let queued = tokio::time::timeout(FINAL_ACCEPT, async {
        while accept_queue_len(&listener).is_some_and(|n| n > 0) {
            tokio::time::sleep(QUEUE_CHECK).await;
        }
    })
    .await;
    if queued.is_err() {
        tracing::warn!(
            queued = accept_queue_len(&listener),
            "connections still queued at the end of the drain"
        );
    }
    tracing::info!("stopping: no longer accepting connections, finishing in-flight requests");
    // The stop command is sent now; this copy of the socket must not keep it open (and
    // queueing) while in-flight requests finish.
    let stopped = server.stop(true);
    drop(listener);
    stopped.await;
}

/// Attaches a socket filter to the listening socket that drops every TCP segment with SYN set
/// (a new handshake), and lets through the rest (the last ACK of a handshake under way, which
/// puts it in the accept queue). Classic BPF, run on the TCP header (the kernel has already
/// pulled the IP header off when it runs a socket's filter): load the flags byte, jump on SYN.
pub fn refuse_new_handshakes(listener: &TcpListener) -> std::io::Result<()> {
    use socket2::SockFilter;
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const TCP_FLAGS: u32 = 13;
    const SYN: u32 = 0x02;
    let program = [
        SockFilter::new(LD_B_ABS, 0, 0, TCP_FLAGS),
        SockFilter::new(JSET_K, 0, 1, SYN),
        SockFilter::new(RET_K, 0, 0, 0),        // SYN: dropped
        SockFilter::new(RET_K, 0, 0, u32::MAX), // anything else: kept whole
    ];
    socket2::SockRef::from(listener).attach_filter(&program)
}

/// Connections in `listener`'s accept queue (completed by the kernel, not yet accepted): for a
/// listening socket, the receive-queue column of `/proc/net/tcp` (or `tcp6`). `None` when the
/// socket is not found there.
pub fn accept_queue_len(listener: &TcpListener) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).ok()?;
    let inode = link
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .to_owned();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.get(9) != Some(&inode.as_str()) {
                    return None;
                }
                let (_, rx) = fields.get(4)?.split_once(':')?;
                u64::from_str_radix(rx, 16).ok()
            })
        })
}
