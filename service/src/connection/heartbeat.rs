//! Worker heartbeats: what lets a probe answered off the workers (on the probe listener's own
//! thread, see `probe_listener`) still speak for them.
//!
//! Every serving worker runs a timer on its own event loop that stamps its slot every
//! [`BEAT_EVERY`]. A stamp older than [`STALE_AFTER`] means that worker's loop has not turned
//! for that long (a handler that blocks, a loop that spins, a dead thread): liveness then
//! answers 503, and so does readiness. Under a flood the loop still turns (each turn serves
//! a bounded amount of work per connection); a stamp only goes stale when a worker stops
//! serving everyone, which is what a restart is for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often each worker stamps its heartbeat.
pub const BEAT_EVERY: Duration = Duration::from_millis(250);
/// A heartbeat older than this fails liveness and readiness. Ten seconds is 40 missed beats:
/// far beyond the few hundred milliseconds a loop turn takes under a flood at a 500m CPU
/// quota, and still well inside the kubelet's `failureThreshold x periodSeconds` (3 x 10 s),
/// so a wedged worker is restarted within about 40 s.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// A slot no worker has stamped yet.
const UNSET: u64 = u64::MAX;

/// One heartbeat slot per worker, shared by every thread.
#[derive(Debug)]
pub struct Heartbeats {
    origin: Instant,
    slots: Box<[AtomicU64]>,
}

/// Why liveness fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    /// The worker (0-based, in start order).
    pub worker: usize,
    /// How long its loop has not turned.
    pub silent_for: Duration,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker {} silent for {} ms",
            self.worker,
            self.silent_for.as_millis()
        )
    }
}

impl Heartbeats {
    /// Slots for `workers` workers, none stamped yet.
    pub fn new(workers: usize) -> Self {
        Heartbeats {
            origin: Instant::now(),
            slots: (0..workers.max(1)).map(|_| AtomicU64::new(UNSET)).collect(),
        }
    }

    /// The number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: there is at least one slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Stamps `worker`'s slot with the current time (a restarted worker takes a slot modulo
    /// the count).
    pub fn beat(&self, worker: usize) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.slots[worker % self.slots.len()].store(now, Ordering::Release);
    }

    /// `Ok` when every stamped slot is younger than [`STALE_AFTER`]; slots not stamped yet
    /// (workers still starting) do not count: readiness says `starting` until they serve.
    pub fn check(&self) -> Result<(), Stalled> {
        self.check_within(STALE_AFTER)
    }

    /// [`Heartbeats::check`] with another bound.
    pub fn check_within(&self, bound: Duration) -> Result<(), Stalled> {
        let now = self.origin.elapsed();
        for (worker, slot) in self.slots.iter().enumerate() {
            let stamp = slot.load(Ordering::Acquire);
            if stamp == UNSET {
                continue;
            }
            let silent_for = now.saturating_sub(Duration::from_millis(stamp));
            if silent_for > bound {
                return Err(Stalled { worker, silent_for });
            }
        }
        Ok(())
    }

    /// The oldest stamp's age (what `/metrics` and the bench report).
    pub fn oldest(&self) -> Duration {
        let now = self.origin.elapsed();
        self.slots
            .iter()
            .map(|slot| slot.load(Ordering::Acquire))
            .filter(|&stamp| stamp != UNSET)
            .map(|stamp| now.saturating_sub(Duration::from_millis(stamp)))
            .max()
            .unwrap_or_default()
    }

    /// Runs on a worker's own event loop for as long as that loop runs: the stamp is what
    /// proves the loop turns.
    pub async fn keep(self: std::sync::Arc<Self>, worker: usize) {
        let mut every = tokio::time::interval(BEAT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.beat(worker);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_older_than_the_bound_names_its_worker() {
        let beats = Heartbeats::new(2);
        assert_eq!(
            beats.check(),
            Ok(()),
            "unstamped slots are starting, not stalled"
        );
        beats.beat(0);
        beats.beat(1);
        assert_eq!(beats.check_within(Duration::from_secs(5)), Ok(()));
        std::thread::sleep(Duration::from_millis(30));
        beats.beat(0);
        let stalled = beats.check_within(Duration::from_millis(20)).unwrap_err();
        assert_eq!(stalled.worker, 1);
        assert!(stalled.silent_for >= Duration::from_millis(20));
        assert!(stalled.to_string().starts_with("worker 1 silent for "));
        assert!(beats.oldest() >= Duration::from_millis(30));
    }
}
