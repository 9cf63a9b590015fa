//! Connection admission: how many connections the service serves at once, and how many it
//! holds at all, sized from its memory limit so that no number of clients can push it past
//! that limit.
//!
//! A served slot is held by a connection in an exchange, from its request head until the
//! answer is written and the client has sent nothing more: actix-http's buffers and the
//! application's state ([`SERVED_CONNECTION_BYTES`], the worst case under `guarded_io`'s
//! bounds). Every other held connection waits (see `waiting`): silent before its first
//! request or between two (keep-alive), in a task of about 2.4 KiB, or reading its head into
//! a 1 KiB buffer, or over the served cap waiting for a slot ([`WAITING_CONNECTION_BYTES`]).
//! `MAX_CONNECTIONS=auto` gives served connections 60% of what the limit leaves above
//! [`RESERVED_BYTES`] and waiting connections 20%; the rest is headroom for the allocator and
//! for the few connections over the total cap that get a moment to show a request head (a
//! client with one takes the place of the oldest silent connection; see
//! [`Limits::over_total`]). Beyond those, connections are closed at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use contract::{Count, Settings};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// What the process needs whatever its connections: code, runtime, workers, metrics.
pub const RESERVED_BYTES: u64 = 24 * 1024 * 1024;
/// The budget of one served connection: the bytes `guarded_io` keeps of requests not handed
/// on yet (at most 16 KiB), actix-http's read buffer (one head, 8 KiB reserved) and write
/// buffer (bounded by [`WRITE_BUFFER_BYTES`] plus one answer), its dispatcher and timers.
/// Measured: about 16 KiB in an exchange, 33-39 KiB for a pipelining client that never reads
/// (service/tests/api/limits.rs).
pub const SERVED_CONNECTION_BYTES: u64 = 48 * 1024;
/// actix-http's write buffer: once this much output is queued it writes before it queues more
/// (its default is 32 KiB; 8 KiB is the capacity it starts with).
pub const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// The budget of one connection waiting (silent, idle between requests, reading its head,
/// waiting for a slot) or answered directly (a 503): the release binary holds an idle
/// one in about 2.4 KiB, and a head being read adds its 1 KiB buffer and its copy.
pub const WAITING_CONNECTION_BYTES: u64 = 4 * 1024;
/// What warm connections (waiting for their next request inside actix-http with their slot
/// and its buffers, see `guarded_io::Warm`) may cost when every held connection is one; see
/// [`Admission::warm_allowed`].
pub const IDLE_BUDGET_BYTES: u64 = 16 * 1024 * 1024;
/// The warm connections of the whole process once not every held connection can be one.
pub const WARM_POOL: usize = 256;
/// The budget of a warm connection: actix-http's dispatcher and its two 8 KiB buffers
/// (about 14.5 KiB measured).
pub const WARM_CONNECTION_BYTES: u64 = 16 * 1024;
/// Fewer served connections than this is not a service.
const MIN_SERVED: u64 = 16;

/// Where the memory limit came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitSource {
    /// `MEMORY_LIMIT_BYTES` (the downward API's `limits.memory` in the cluster).
    Environment,
    /// The cgroup's memory limit file.
    Cgroup(PathBuf),
    /// None found: the Deployment's declared limit.
    Contract,
}

impl std::fmt::Display for LimitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitSource::Environment => f.write_str("MEMORY_LIMIT_BYTES"),
            LimitSource::Cgroup(path) => write!(f, "{}", path.display()),
            LimitSource::Contract => f.write_str("the Deployment's declared limit"),
        }
    }
}

/// The connection limits of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory_limit_bytes: u64,
    pub memory_limit_source: LimitSource,
    /// Connections served by the HTTP workers at once.
    pub served: usize,
    /// Connections held at all (served + waiting).
    pub total: usize,
    /// Connections over the total that may still show a request head, to take a silent
    /// connection's place (an eighth of the total).
    pub over_total: usize,
}

impl Limits {
    /// The limits for `settings`, reading the cgroup when `MEMORY_LIMIT_BYTES` is unset.
    pub fn from_settings(settings: &Settings) -> Self {
        let (memory, source) = match settings.config.memory_limit_bytes {
            Some(bytes) => (bytes, LimitSource::Environment),
            None => match cgroup_memory_limit() {
                Some((bytes, path)) => (bytes, LimitSource::Cgroup(path)),
                None => (
                    contract::resources::MEMORY_LIMIT_BYTES,
                    LimitSource::Contract,
                ),
            },
        };
        let limits = Self::sized(memory, source, settings.config.max_connections);
        match raise_open_files_limit().or_else(open_files_limit) {
            Some(soft) => limits.within_open_files(soft),
            None => limits,
        }
    }

    /// The limits cut to fit `soft` open files (the process's own need aside): a process
    /// out of descriptors cannot accept at all (the probe listener's own included).
    pub fn within_open_files(mut self, soft: u64) -> Self {
        let budget = usize::try_from(soft.saturating_sub(OWN_FILES)).unwrap_or(usize::MAX);
        if self.total.saturating_add(self.over_total) > budget {
            // Keep the proportions: served, waiting, over the total.
            let total = (budget - budget / 9).max(1);
            let served = self.served as u128 * total as u128 / self.total.max(1) as u128;
            self.served = usize::try_from(served).unwrap_or(total).clamp(1, total);
            self.total = total;
            self.over_total = over_total(total).min(budget.saturating_sub(total));
        }
        self
    }

    /// The arithmetic of the module documentation.
    pub fn sized(memory: u64, source: LimitSource, max_connections: Count) -> Self {
        let spare = memory.saturating_sub(RESERVED_BYTES);
        let served_auto = (spare / 100 * 60 / SERVED_CONNECTION_BYTES).max(MIN_SERVED);
        let waiting = (spare / 100 * 20 / WAITING_CONNECTION_BYTES).max(MIN_SERVED);
        let served = match max_connections {
            Count::Fixed(n) => n,
            Count::Auto => served_auto,
        };
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let total = as_usize(served.saturating_add(waiting));
        Limits {
            memory_limit_bytes: memory,
            memory_limit_source: source,
            served: as_usize(served),
            total,
            over_total: over_total(total),
        }
    }
}

/// The connections over `total` that get a moment to show a request head.
fn over_total(total: usize) -> usize {
    (total / 8).max(MIN_SERVED as usize)
}

/// Descriptors the process keeps for itself: stdio, the listener, the runtime's.
const OWN_FILES: u64 = 64;

/// Descriptors the process needs whatever its workers (counted in `/proc/<pid>/fd` of a
/// running server): stdio, the HTTP listener and its drain copy, the probe listener, the
/// epoll, wake and timer descriptors of the main runtime, the accept thread and the probe
/// thread, the signal pipe.
pub const FIXED_FILES: u64 = 20;
/// Descriptors of each worker (its runtime's epoll and wake descriptors, its channels).
pub const FILES_PER_WORKER: u64 = 4;

/// The fewest open files `workers` workers can start with and still serve one connection.
pub const fn open_files_needed(workers: u64) -> u64 {
    FIXED_FILES + FILES_PER_WORKER * workers + 1
}

/// Refuses to start when the open-files limit (after raising the soft limit to the hard
/// one) cannot hold the listeners, the workers and one connection: actix-server's workers
/// would otherwise panic when they cannot create their event loops.
pub fn check_open_files(workers: usize) -> Result<(), String> {
    let Some(soft) = raise_open_files_limit().or_else(open_files_limit) else {
        return Ok(()); // no limit known: nothing to refuse
    };
    let workers = u64::try_from(workers).unwrap_or(u64::MAX);
    let needed = open_files_needed(workers);
    if soft < needed {
        return Err(format!(
            "the open-files limit (RLIMIT_NOFILE) is {soft}, and {workers} worker(s) need at \
             least {needed}: the listeners, each worker's event loop and one connection; raise \
             it (ulimit -n, or the container runtime's nofile limit) or lower WORKERS"
        ));
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does at start: the
/// soft default (often 1024) exists for `select(2)`, which nothing here uses. Returns the
/// soft limit in force afterwards.
pub fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` ("Max open files  <soft>  <hard> files").
pub fn open_files_limit() -> Option<u64> {
    let text = read("/proc/self/limits")?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok() // "unlimited" is no limit
}

/// Values at or above this mean "no limit" in cgroup v1 (the page-rounded `i64::MAX`).
const V1_UNLIMITED: u64 = 1 << 60;

/// The memory limit of this process's cgroup (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`), if it has one. Every file is read as a small regular file.
pub fn cgroup_memory_limit() -> Option<(u64, PathBuf)> {
    let own = read("/proc/self/cgroup").unwrap_or_default();
    let mut candidates = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            candidates.push(Path::new("/sys/fs/cgroup").join(path).join("memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            candidates.push(
                Path::new("/sys/fs/cgroup/memory")
                    .join(path)
                    .join("memory.limit_in_bytes"),
            );
        }
    }
    // Inside a container with its own cgroup namespace the root files are the container's.
    candidates.push(PathBuf::from("/sys/fs/cgroup/memory.max"));
    candidates.push(PathBuf::from("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    candidates.into_iter().find_map(|path| {
        let text = read(&path)?;
        let text = text.trim();
        if text == "max" {
            return None; // no limit
        }
        match text.parse::<u64>() {
            Ok(bytes) => (bytes < V1_UNLIMITED).then_some((bytes, path)),
            Err(_) => {
                // Not a silent default: say which file could not be read and go on to the
                // next source (in the cluster, MEMORY_LIMIT_BYTES is set and this is unused).
                tracing::warn!(file = %path.display(), "memory limit file holds no number; ignored");
                None
            }
        }
    })
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    contract::files::read_small_file(path.as_ref(), contract::files::MAX_SMALL_FILE_BYTES).ok()
}

/// The live admission state, shared by every worker.
#[derive(Debug)]
pub struct Admission {
    pub limits: Limits,
    served: Arc<Semaphore>,
    open: AtomicUsize,
    /// Connections under the total cap that have sent nothing yet.
    silent: AtomicUsize,
    /// Wakes the oldest silent connection to close it (see [`Admission::evict_silent`]).
    evict: Notify,
}

/// A connection counted as silent while this lives.
#[derive(Debug)]
pub struct Silent<'a> {
    admission: &'a Admission,
}

impl Drop for Silent<'_> {
    fn drop(&mut self) {
        self.admission.silent.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a new connection stands.
#[derive(Debug)]
pub enum Place {
    /// Under the total cap: served, or waiting for a slot.
    Under(Held),
    /// Over it: kept only if it shows a request head at once (see `waiting::over_total`).
    Over(Held),
}

/// One held connection; dropping it frees its place in the total.
#[derive(Debug)]
pub struct Held {
    admission: Arc<Admission>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Admission {
            served: Arc::new(Semaphore::new(limits.served)),
            open: AtomicUsize::new(0),
            silent: AtomicUsize::new(0),
            evict: Notify::new(),
            limits,
        }
    }

    /// A place among the connections held at all; over the total cap, one of the few that
    /// may show a head to take a silent connection's place; beyond those, `None`.
    pub fn hold(self: &Arc<Self>) -> Option<Place> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let held = Held {
            admission: Arc::clone(self),
        };
        if before < self.limits.total {
            Some(Place::Under(held))
        } else if before < self.limits.total + self.limits.over_total {
            Some(Place::Over(held))
        } else {
            None
        }
    }

    /// A served slot, now, if one is free.
    pub fn try_serve(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.served).try_acquire_owned().ok()
    }

    /// A served slot, waiting for one at most `wait`.
    pub async fn serve_within(&self, wait: std::time::Duration) -> Option<OwnedSemaphorePermit> {
        let acquire = Arc::clone(&self.served).acquire_owned();
        tokio::time::timeout(wait, acquire).await.ok()?.ok()
    }

    /// Counts the caller as a silent connection (one that has sent nothing) while the guard
    /// lives; see [`Admission::evict_silent`].
    pub fn silent(&self) -> Silent<'_> {
        self.silent.fetch_add(1, Ordering::AcqRel);
        Silent { admission: self }
    }

    /// Resolves when this silent connection is chosen to make room (oldest first) while
    /// more connections are held than the total cap. An eviction is taken only while it is
    /// still needed: tokio's `Notify` keeps a notification nobody was waiting for (a silent
    /// connection counted but not yet waiting), and after the flood that asked for it, it
    /// would close the next new connection before its request arrives.
    pub async fn evicted(&self) {
        loop {
            self.evict.notified().await;
            if self.over_total() {
                return;
            }
        }
    }

    /// Over the total cap, a client that has sent its head takes a silent connection's
    /// place: the oldest silent connection is told to close. False when none is silent.
    pub fn evict_silent(&self) -> bool {
        if self.silent.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.evict.notify_one();
        true
    }

    /// More connections are held than the total cap: an eviction asked for by a client over
    /// it is still needed.
    fn over_total(&self) -> bool {
        self.open.load(Ordering::Acquire) > self.limits.total
    }

    /// Connections silent now.
    pub fn silent_now(&self) -> usize {
        self.silent.load(Ordering::Relaxed)
    }

    /// Connections held now (served and waiting).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections served now.
    pub fn serving(&self) -> usize {
        self.limits.served - self.served.available_permits()
    }

    /// How many connections of the whole process may wait warm while `open` are open (the
    /// caller reads [`Admission::open`], and asks again only when it moved). While every held
    /// connection can, all of them: they fit in [`IDLE_BUDGET_BYTES`] (counted at
    /// [`WARM_CONNECTION_BYTES`] each) and leave a fifth of the served slots free for
    /// newcomers (a warm connection keeps its slot until its next request or its keep-alive
    /// timeout). So a thousand busy keep-alive clients keep their dispatcher, as with
    /// actix-http alone. Beyond that, [`WARM_POOL`] (at most a quarter of the served cap):
    /// enough for a busy pod's pool of keep-alive clients, few enough that ten thousand
    /// connections cost what waiting ones cost.
    pub fn warm_allowed(&self, open: usize) -> usize {
        let fit = usize::try_from(IDLE_BUDGET_BYTES / WARM_CONNECTION_BYTES).unwrap_or(usize::MAX);
        let all = fit.min(self.limits.served / 5 * 4);
        if open <= all {
            open
        } else {
            WARM_POOL.min(self.limits.served / 4)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_limit_gives_caps_whose_worst_case_fits_in_it() {
        let memory = contract::resources::MEMORY_LIMIT_BYTES;
        let limits = Limits::sized(memory, LimitSource::Contract, Count::Auto);
        let worst = RESERVED_BYTES
            + limits.served as u64 * SERVED_CONNECTION_BYTES
            + (limits.total - limits.served + limits.over_total) as u64 * WAITING_CONNECTION_BYTES;
        assert!(worst <= memory, "{limits:?}: {worst} > {memory}");
        assert!(limits.served >= 1000, "{limits:?}");
    }

    #[test]
    fn a_fixed_max_connections_is_the_served_cap() {
        let limits = Limits::sized(1 << 30, LimitSource::Environment, Count::Fixed(7));
        assert_eq!(limits.served, 7);
        assert!(limits.total > 7);
        let tiny = Limits::sized(1, LimitSource::Environment, Count::Auto);
        assert_eq!(tiny.served, MIN_SERVED as usize);
    }

    #[test]
    fn the_caps_fit_the_open_files_limit() {
        let limits = Limits::sized(1 << 30, LimitSource::Contract, Count::Auto);
        assert!(limits.total > 20_000, "{limits:?}");
        let fitted = limits.clone().within_open_files(1024);
        assert!(fitted.total + fitted.over_total <= 1024 - 64, "{fitted:?}");
        assert!(
            fitted.served <= fitted.total && fitted.over_total > 0,
            "{fitted:?}"
        );
        assert_eq!(limits.clone().within_open_files(1 << 20), limits);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn every_connection_may_be_warm_while_all_fit_and_a_pool_of_them_beyond() {
        let limits = Limits::sized(128 << 20, LimitSource::Contract, Count::Auto);
        assert_eq!(limits.served, 1331);
        let admission = Arc::new(Admission::new(limits));
        let held: Vec<Place> = (0..1000).map(|_| admission.hold().unwrap()).collect();
        assert_eq!(
            admission.warm_allowed(admission.open()),
            1000,
            "a thousand all warm"
        );
        let more: Vec<Place> = (0..100).map(|_| admission.hold().unwrap()).collect();
        assert_eq!(
            admission.warm_allowed(admission.open()),
            WARM_POOL,
            "beyond the idle budget, the pool"
        );
        drop((held, more));
        // A served cap too small to leave a fifth free: never all warm, no pool.
        let tiny = Arc::new(Admission::new(Limits::sized(
            1,
            LimitSource::Environment,
            Count::Fixed(3),
        )));
        let _one = tiny.hold();
        assert_eq!(tiny.warm_allowed(tiny.open()), 0);
    }

    #[test]
    fn the_total_cap_closes_connections_beyond_it() {
        let admission = Arc::new(Admission::new(Limits {
            memory_limit_bytes: 0,
            memory_limit_source: LimitSource::Contract,
            served: 1,
            total: 2,
            over_total: 3,
        }));
        let a = admission.hold().unwrap();
        let _b = admission.hold().unwrap();
        let over: Vec<Place> = (0..3).map(|_| admission.hold().unwrap()).collect();
        assert!(over.iter().all(|p| matches!(p, Place::Over(_))));
        assert!(admission.hold().is_none());
        drop(over);
        drop(a);
        assert!(matches!(admission.hold(), Some(Place::Under(_))));
        let slot = admission.try_serve().unwrap();
        assert!(admission.try_serve().is_none());
        assert_eq!(admission.serving(), 1);
        drop(slot);
        assert_eq!(admission.serving(), 0);
    }
}
