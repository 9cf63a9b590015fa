//! The shutdown sequence. [`ShutdownHandle`] starts it, from an OS signal or programmatically
//! (tests); [`supervise`] runs it: readiness 503 at once, keep serving for the drain delay
//! (SIGTERM and SIGHUP), then stop accepting and let in-flight requests finish within the
//! shutdown timeout. SIGUSR1 and SIGUSR2 are logged and ignored: no signal whose default
//! action is to terminate can kill the process mid-drain (SIGKILL aside).
//!
//! The end of the drain: closing a listening socket resets every connection the kernel has
//! completed but the server has not accepted yet. So the accept queue is first shrunk to its
//! minimum (`listen(fd, 0)`): from then on the kernel drops new handshakes (the client
//! retransmits its SYN after about 1 s, finds the port closed and gets "connection refused":
//! nothing was sent), while what is already queued is still accepted and served. After
//! [`FINAL_ACCEPT`], the server stops accepting and closes the socket.

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
pub const FINAL_ACCEPT: Duration = Duration::from_millis(100);

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
    if let Err(err) = socket2::SockRef::from(&listener).listen(0) {
        tracing::warn!(error = %err, "could not shrink the accept queue before closing");
    }
    tokio::time::sleep(FINAL_ACCEPT).await;
    tracing::info!("stopping: no longer accepting connections, finishing in-flight requests");
    // The stop command is sent now; this copy of the socket must not keep it open (and
    // queueing) while in-flight requests finish.
    let stopped = server.stop(true);
    drop(listener);
    stopped.await;
}
