//! Probes as the kubelet sends them, from outside the pod, for the flood suite's timeline.
//!
//! A [`Poller`] sends `GET <path>` to one pod's probe port at a fixed period with the probe's
//! own timeout, from the pod's node (its network namespace: where the kubelet probes from, and
//! the one source prod's NetworkPolicy lets reach the probe port), and records each result. The real kubelet probes the same pods meanwhile at the
//! manifests' timing; its verdict (restarts, `Unhealthy` events) is read from the API server.
//! The poller's timeline adds what the kubelet does not keep: every result and the longest run
//! of failures.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::traffic::{agent, get};

/// One probe's results.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub label: String,
    /// (seconds since start, passed, latency in ms)
    pub results: Vec<(f64, bool, u128)>,
}

impl Timeline {
    pub fn failures(&self) -> usize {
        self.results.iter().filter(|r| !r.1).count()
    }

    /// The longest run of consecutive failures (the kubelet's restart rule counts these).
    pub fn longest_run(&self) -> usize {
        let (mut best, mut run) = (0, 0);
        for r in &self.results {
            run = if r.1 { 0 } else { run + 1 };
            best = best.max(run);
        }
        best
    }

    /// The share of failed probes, in percent.
    pub fn failure_percent(&self) -> f64 {
        if self.results.is_empty() {
            return 0.0;
        }
        100.0 * self.failures() as f64 / self.results.len() as f64
    }

    /// One character per probe: `.` passed, `x` failed (the timeline the report prints).
    pub fn strip(&self) -> String {
        self.results
            .iter()
            .map(|r| if r.1 { '.' } else { 'x' })
            .collect()
    }

    pub fn slowest_ms(&self) -> u128 {
        self.results.iter().map(|r| r.2).max().unwrap_or(0)
    }
}

/// A probe loop on its own thread.
#[derive(Debug)]
pub struct Poller {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Timeline>>,
}

impl Poller {
    /// Probes `url` from the network namespace `netns` every `period` with `timeout` until
    /// stopped.
    pub fn start(
        label: String,
        netns: PathBuf,
        url: String,
        period: Duration,
        timeout: Duration,
    ) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = crate::netns::spawn_in(Some(netns), move || {
            let agent = agent(timeout);
            let begin = Instant::now();
            let mut timeline = Timeline {
                label,
                results: Vec::new(),
            };
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let passed = matches!(get(&agent, &url), Ok((200..=399, _)));
                timeline.results.push((
                    begin.elapsed().as_secs_f64(),
                    passed,
                    sent.elapsed().as_millis(),
                ));
                next += period;
                let now = Instant::now();
                if next > now {
                    // Sleep in small steps so that stop() is prompt.
                    while Instant::now() < next && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50).min(next - Instant::now()));
                    }
                } else {
                    next = now;
                }
            }
            timeline
        });
        Poller { stop, thread }
    }

    /// Stops probing; the timeline, or why there is none (the namespace could not be entered).
    pub fn stop(self) -> anyhow::Result<Timeline> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the prober panicked"))?
    }
}
