//! Clients that loop through the NodePort while the cluster changes under them.
//!
//! Each client thread keeps one keep-alive connection (reopened when the server closes it,
//! as well-behaved clients do) and sends `GET /` back to back; an answer other than `200` with
//! the greeting, or no answer within [`TIMEOUT`], is a failed request, kept with the time it
//! happened. Bounded: the loop runs until [`Looper::stop`], which every caller does within the
//! suite's own time bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request without an answer after this long has failed.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Counts of one looping run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// The first failures: seconds since the start and what happened.
    pub samples: Vec<(f64, String)>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        for s in other.samples {
            if self.samples.len() < 10 {
                self.samples.push(s);
            }
        }
    }

    /// `N ok, M failed` and the first failures.
    pub fn describe(&self) -> String {
        let mut s = format!("{} requests answered 200, {} failed", self.ok, self.failed);
        for (t, what) in &self.samples {
            s.push_str(&format!("; at {t:.1} s: {what}"));
        }
        s
    }
}

/// Client threads looping `GET url` until stopped.
#[derive(Debug)]
pub struct Looper {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

/// A blocking HTTP client with the harness's timeouts, no proxy, no redirects.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build(),
    )
}

/// One GET: the status and body, or what went wrong.
pub fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, String), String> {
    match agent.get(url).call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("{url}: reading the body: {e}"))?;
            Ok((status, body))
        }
        Err(err) => Err(format!("{url}: {err}")),
    }
}

impl Looper {
    /// Starts `clients` threads sending `GET url` and expecting `200` with `expect` in the body.
    pub fn start(url: &str, clients: usize, expect: &'static str) -> Looper {
        let stop = Arc::new(AtomicBool::new(false));
        let begin = Instant::now();
        let threads = (0..clients)
            .map(|_| {
                let (stop, url) = (stop.clone(), url.to_string());
                std::thread::spawn(move || {
                    let agent = agent(TIMEOUT);
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        match get(&agent, &url) {
                            Ok((200, body)) if body.contains(expect) => tally.ok += 1,
                            other => {
                                tally.failed += 1;
                                if tally.samples.len() < 10 {
                                    let what = match other {
                                        Ok((status, body)) => format!("{status} {}", body.trim()),
                                        Err(e) => e,
                                    };
                                    tally.samples.push((begin.elapsed().as_secs_f64(), what));
                                }
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        Looper { stop, threads }
    }

    /// Stops every client and adds up what they saw.
    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            if let Ok(tally) = t.join() {
                all.merge(tally);
            }
        }
        all
    }
}
