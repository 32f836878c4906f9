//! Locking that survives a panic elsewhere: a mutex poisoned by a thread that panicked while
//! holding it still guards consistent data here (every holder leaves it whole between
//! statements), so the guard is taken anyway rather than panicking in turn.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, poisoned or not.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
