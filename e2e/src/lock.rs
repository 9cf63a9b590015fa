//! Mutex locking that survives a panicked holder: the harness's shared records (checks, logs,
//! probe events) stay readable after a failed task, which is when they matter most.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking over the data if a previous holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
