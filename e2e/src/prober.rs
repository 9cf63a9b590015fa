//! The kubelet's prober for one container: startup first; readiness and liveness once it has
//! succeeded, each on a ticker of its period with its thresholds.
//!
//! A startup probe that reaches its failure threshold or a liveness probe that fails
//! `failureThreshold` times in a row kills the container (the kubelet would restart it);
//! readiness only moves the Ready condition. When termination begins, liveness and startup
//! stop and readiness goes on, as in the kubelet.

use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::lock::lock;
use crate::probe::{ProbeKind, ProbeSpec, ProbeTarget, run_once};

/// One probe result, for assertions and the report.
#[derive(Debug, Clone)]
pub struct ProbeEvent {
    pub kind: ProbeKind,
    pub at: Instant,
    pub ok: bool,
    pub detail: String,
}

/// What the kubelet knows about a container, shared by the pod and its prober.
#[derive(Debug, Default)]
pub struct ContainerStatus {
    events: Mutex<Vec<ProbeEvent>>,
    fatal: Mutex<Option<String>>,
    terminating: AtomicBool,
}

impl ContainerStatus {
    pub fn record(&self, kind: ProbeKind, ok: bool, detail: String) {
        lock(&self.events).push(ProbeEvent {
            kind,
            at: Instant::now(),
            ok,
            detail,
        });
    }

    /// Every probe result so far.
    pub fn events(&self) -> Vec<ProbeEvent> {
        lock(&self.events).clone()
    }

    /// Why the kubelet would have killed or restarted the container, if it would have.
    pub fn fatal(&self) -> Option<String> {
        lock(&self.fatal).clone()
    }

    /// Records why the container dies; the first reason stays unless `overrides` (an OOM
    /// kill explains a death better than the probe failures it caused).
    pub fn set_fatal(&self, reason: String, overrides: bool) {
        let mut f = lock(&self.fatal);
        if f.is_none() || overrides {
            *f = Some(reason);
        }
    }

    pub fn terminating(&self) -> bool {
        self.terminating.load(Ordering::SeqCst)
    }

    pub fn begin_termination(&self) {
        self.terminating.store(true, Ordering::SeqCst);
    }
}

/// The container's exit, once it has exited.
pub type Exit = watch::Receiver<Option<(ExitStatus, Instant)>>;

/// The probe loop of one container.
#[derive(Debug, Clone)]
pub struct Prober {
    pub startup: Option<ProbeSpec>,
    pub readiness: Option<ProbeSpec>,
    pub liveness: Option<ProbeSpec>,
    pub target: ProbeTarget,
    pub status: Arc<ContainerStatus>,
    pub exit: Exit,
    /// The container's main process (what a failed liveness probe kills).
    pub pid: u32,
    pub started: Instant,
}

impl Prober {
    /// Runs the probes in the background; `ready` follows the readiness results.
    pub fn spawn(self, ready: watch::Sender<bool>) {
        tokio::spawn(async move { self.run(ready).await });
    }

    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    fn kill_container(&self, reason: String) {
        self.status.set_fatal(reason, false);
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    async fn run(self, ready: watch::Sender<bool>) {
        if !self.startup_succeeds().await {
            let _ = ready.send(false);
            return;
        }
        if self.liveness.is_some() {
            let liveness = self.clone();
            tokio::spawn(async move { liveness.liveness().await });
        }
        self.readiness(ready).await;
    }

    /// The startup probe until it succeeds; false when the container is gone or killed.
    async fn startup_succeeds(&self) -> bool {
        let Some(spec) = &self.startup else {
            return true;
        };
        tokio::time::sleep_until((self.started + spec.initial_delay).into()).await;
        let mut failures = 0;
        loop {
            if self.exited() {
                return false;
            }
            let tick = Instant::now();
            match run_once(spec, &self.target).await {
                Ok(detail) => {
                    self.status.record(ProbeKind::Startup, true, detail);
                    return true;
                }
                Err(detail) => {
                    self.status
                        .record(ProbeKind::Startup, false, detail.clone());
                    failures += 1;
                    if failures >= spec.failure_threshold {
                        self.kill_container(format!(
                            "startup probe failed {failures} times in a row (last: {detail}); \
                             the kubelet kills the container"
                        ));
                        return false;
                    }
                }
            }
            tokio::time::sleep_until((tick + spec.period).into()).await;
        }
    }

    /// Liveness: stops when termination begins (the kubelet ignores it from then on).
    async fn liveness(&self) {
        let Some(spec) = &self.liveness else { return };
        tokio::time::sleep(spec.initial_delay).await;
        let mut failures = 0;
        loop {
            if self.exited() || self.status.terminating() {
                return;
            }
            let tick = Instant::now();
            let result = run_once(spec, &self.target).await;
            if self.status.terminating() {
                return;
            }
            let ok = result.is_ok();
            let detail = result.unwrap_or_else(|e| e);
            self.status.record(ProbeKind::Liveness, ok, detail.clone());
            failures = if ok { 0 } else { failures + 1 };
            if failures >= spec.failure_threshold {
                self.kill_container(format!(
                    "liveness probe failed {failures} times in a row (last: {detail}); the \
                     kubelet restarts the container (restartCount 1)"
                ));
                return;
            }
            tokio::time::sleep_until((tick + spec.period).into()).await;
        }
    }

    /// Readiness: runs until the container is gone, termination included.
    async fn readiness(&self, ready: watch::Sender<bool>) {
        let Some(spec) = &self.readiness else {
            let _ = ready.send(!self.exited());
            let mut exit = self.exit.clone();
            while exit.borrow().is_none() {
                if exit.changed().await.is_err() {
                    break;
                }
            }
            let _ = ready.send(false);
            return;
        };
        tokio::time::sleep(spec.initial_delay).await;
        let (mut successes, mut failures) = (0u32, 0u32);
        loop {
            if self.exited() {
                let _ = ready.send(false);
                return;
            }
            let tick = Instant::now();
            let result = run_once(spec, &self.target).await;
            let ok = result.is_ok();
            self.status
                .record(ProbeKind::Readiness, ok, result.unwrap_or_else(|e| e));
            if ok {
                successes += 1;
                failures = 0;
                if successes >= spec.success_threshold {
                    let _ = ready.send(true);
                }
            } else {
                failures += 1;
                successes = 0;
                if failures >= spec.failure_threshold {
                    let _ = ready.send(false);
                }
            }
            tokio::time::sleep_until((tick + spec.period).into()).await;
        }
    }
}
