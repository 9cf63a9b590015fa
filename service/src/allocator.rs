//! The memory allocator's part in the memory bound: jemalloc (the binary's global allocator,
//! see `main.rs`), with background threads that give freed memory back to the OS.
//!
//! A flood of connections allocates actix-http's 8 KiB read and write buffers by the thousand,
//! from every worker thread. glibc's malloc keeps what they free in its per-thread arenas,
//! fragmented, so after the flood the process stayed at its peak RSS (about 51 MiB after
//! 10,000 connections against 4 MiB idle). jemalloc purges unused pages on a decay schedule
//! (`dirty_decay_ms`, 10 s by default, then `MADV_DONTNEED`), but without background threads
//! only when an application thread next allocates: an idle server after a flood would keep
//! them. With background threads the purge runs on schedule whether or not traffic follows.
//!
//! The decay time is jemalloc's default: tikv-jemalloc-ctl has no safe setter for
//! `arenas.dirty_decay_ms`, and the workspace forbids unsafe code.
//!
//! Without the default `jemalloc` feature (`make run`'s dev build, which skips jemalloc's C
//! build) the binary runs on the system allocator and says so at start-up.

#[cfg(feature = "jemalloc")]
use tikv_jemalloc_ctl::{background_thread, max_background_threads};

/// The allocator this build runs on, for the start-up log.
pub const NAME: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else {
    "system"
};

/// Logs the allocator, and with jemalloc turns its background purging on (a warning when
/// jemalloc refuses it).
pub fn start() {
    #[cfg(feature = "jemalloc")]
    match enable_background_purging() {
        Ok(()) => tracing::info!(allocator = NAME, "allocator background purging on"),
        Err(err) => tracing::warn!(
            allocator = NAME,
            error = %err,
            "allocator background purging unavailable; memory freed after a flood is returned only as traffic allocates again"
        ),
    }
    #[cfg(not(feature = "jemalloc"))]
    tracing::info!(
        allocator = NAME,
        "built without the jemalloc feature (make run's dev build): the system allocator keeps a flood's memory after it"
    );
}

#[cfg(feature = "jemalloc")]
/// Background purging threads: one is enough for a service of a few threads (jemalloc's
/// default is 4, each with its own stack).
const PURGING_THREADS: usize = 1;

#[cfg(feature = "jemalloc")]
/// Turns on jemalloc's background purging thread.
///
/// # Errors
/// When jemalloc refuses the setting (a build without background thread support).
pub fn enable_background_purging() -> Result<(), tikv_jemalloc_ctl::Error> {
    max_background_threads::write(PURGING_THREADS)?;
    background_thread::write(true)?;
    Ok(())
}
