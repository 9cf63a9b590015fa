//! Readiness: what `/readyz` answers. Starting until every worker serves, then ready, unless
//! an operator switched it off, and draining for good once shutdown began.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const DRAINING: u8 = 2;

/// Why the pod should not receive traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The server is bound but its workers are not all serving yet.
    Starting,
    /// Shutdown began; this never reverts.
    Draining,
    /// An operator switched readiness off.
    SwitchedOff,
}

impl NotReady {
    /// The reason as `/readyz` reports it.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotReady::Starting => "starting",
            NotReady::Draining => "draining",
            NotReady::SwitchedOff => "switched off",
        }
    }
}

/// The readiness state, shared by every worker (two atomics: `/readyz` must stay cheap).
#[derive(Debug)]
pub struct Readiness {
    phase: AtomicU8,
    switched_off: AtomicBool,
    gauge: Option<Gauge>,
    /// Notified when the phase moves (see [`Readiness::wait_until_serving`]).
    moved: (Mutex<()>, Condvar),
}

impl Readiness {
    /// A starting state; `gauge` (the `hello_k8s_ready` metric) follows every change.
    pub fn new(gauge: Option<Gauge>) -> Self {
        Readiness {
            phase: AtomicU8::new(STARTING),
            switched_off: AtomicBool::new(false),
            gauge,
            moved: (Mutex::new(()), Condvar::new()),
        }
    }

    /// `Ok` when the pod should receive traffic, else the reason.
    pub fn check(&self) -> Result<(), NotReady> {
        match self.phase.load(Ordering::Acquire) {
            STARTING => Err(NotReady::Starting),
            DRAINING => Err(NotReady::Draining),
            _ if self.switched_off.load(Ordering::Acquire) => Err(NotReady::SwitchedOff),
            _ => Ok(()),
        }
    }

    /// True once shutdown began.
    pub fn is_draining(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == DRAINING
    }

    /// Starting -> serving; returns false if the state had already moved on (e.g. draining).
    pub fn mark_serving(&self) -> bool {
        let moved = self
            .phase
            .compare_exchange(STARTING, SERVING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.refresh_gauge();
        self.notify_moved();
        moved
    }

    /// Enters draining for good; returns false if it was already draining.
    pub fn begin_draining(&self) -> bool {
        let first = self.phase.swap(DRAINING, Ordering::AcqRel) != DRAINING;
        self.refresh_gauge();
        self.notify_moved();
        first
    }

    /// Blocks until the workers serve (or shutdown began), at most `within`: true when they
    /// serve. For whoever started the server in-process and must wait for it (tests).
    pub fn wait_until_serving(&self, within: Duration) -> bool {
        let started = Instant::now();
        let (lock, moved) = &self.moved;
        let mut guard = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while self.phase.load(Ordering::Acquire) == STARTING {
            let left = within.saturating_sub(started.elapsed());
            if left.is_zero() {
                return false;
            }
            guard = moved
                .wait_timeout(guard, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        self.phase.load(Ordering::Acquire) == SERVING
    }

    fn notify_moved(&self) {
        let _guard = self.moved.0.lock();
        self.moved.1.notify_all();
    }

    /// The operator's "off".
    pub fn switch_off(&self) {
        self.switched_off.store(true, Ordering::Release);
        self.refresh_gauge();
    }

    /// The operator's "on"; refused while draining, because a pod that is shutting down
    /// must not be put back behind the Service.
    pub fn switch_on(&self) -> Result<(), NotReady> {
        if self.is_draining() {
            return Err(NotReady::Draining);
        }
        self.switched_off.store(false, Ordering::Release);
        self.refresh_gauge();
        Ok(())
    }

    fn refresh_gauge(&self) {
        if let Some(gauge) = &self.gauge {
            gauge.set(i64::from(self.check().is_ok()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_moves_from_starting_to_serving_to_draining_and_never_back() {
        let gauge = Gauge::default();
        let r = Readiness::new(Some(gauge.clone()));
        assert_eq!(r.check(), Err(NotReady::Starting));
        assert!(r.mark_serving());
        assert_eq!(r.check(), Ok(()));
        assert_eq!(gauge.get(), 1);
        r.switch_off();
        assert_eq!(r.check(), Err(NotReady::SwitchedOff));
        assert_eq!(gauge.get(), 0);
        assert_eq!(r.switch_on(), Ok(()));
        assert!(r.begin_draining());
        assert!(!r.begin_draining());
        assert!(!r.mark_serving());
        assert_eq!(r.check(), Err(NotReady::Draining));
        assert_eq!(r.switch_on(), Err(NotReady::Draining));
        assert_eq!(gauge.get(), 0);
    }
}
