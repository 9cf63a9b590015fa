//! The shutdown sequence. [`ShutdownHandle`] starts it, from an OS signal or programmatically
//! (tests); [`supervise`] runs it: readiness 503 at once, keep serving for the drain delay
//! (SIGTERM only), then stop accepting and let in-flight requests finish within the shutdown
//! timeout.

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
}

impl Signal {
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        }
    }
}

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

/// Forwards SIGTERM and SIGINT to `handle` until the application stops.
pub(crate) fn forward_os_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                Some(()) = term.recv() => Signal::Term,
                Some(()) = int.recv() => Signal::Int,
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
    drain_delay: Duration,
) {
    let Some(first) = signals.recv().await else {
        return;
    };
    shared.readiness.begin_draining();
    let delay = if first == Signal::Term {
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
    tracing::info!("stopping: no longer accepting connections, finishing in-flight requests");
    server.stop(true).await;
}
