//! The memory ceiling (`max_memory`, `--max-memory`): a push that would grow the store past it
//! is refused with 507 before anything is logged or applied; reads keep working.
//!
//! The store's size is what `/stats` reports (`memory_bytes`, the partitions' heap), sampled
//! once a second off the request path, plus the encoded size of every write accepted since
//! the last sample. A write counts its encoded rows, so a push of rows that replace older
//! ones is still counted until the next sample.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;

use crate::error::ApiError;
use crate::grid::coordinator::Coordinator;

/// The ceiling and the running estimate of the store's size.
#[derive(Debug)]
pub struct MemoryGuard {
    /// Bytes; 0: no ceiling.
    limit: usize,
    estimate: AtomicUsize,
}

impl MemoryGuard {
    pub fn new(limit: usize) -> MemoryGuard {
        MemoryGuard {
            limit,
            estimate: AtomicUsize::new(0),
        }
    }

    /// 507 when `incoming` more bytes would take the store past the ceiling.
    pub fn check(&self, incoming: usize) -> Result<(), ApiError> {
        if self.limit == 0 {
            return Ok(());
        }
        let now = self.estimate.load(Ordering::Relaxed);
        if now.saturating_add(incoming) <= self.limit {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "memory_limit",
            format!(
                "the store holds about {now} bytes and this write adds about {incoming}: more than max_memory ({} bytes). Nothing was written; reads keep working. Raise --max-memory or write to fewer entities",
                self.limit
            ),
        ))
    }

    /// Bytes left under the ceiling (`None`: no ceiling).
    pub fn headroom(&self) -> Option<u64> {
        (self.limit != 0).then(|| {
            self.limit
                .saturating_sub(self.estimate.load(Ordering::Relaxed)) as u64
        })
    }

    /// Counts a write accepted since the last sample.
    pub fn add(&self, bytes: usize) {
        if self.limit != 0 {
            self.estimate.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn set(&self, bytes: usize) {
        self.estimate.store(bytes, Ordering::Relaxed);
    }

    /// Samples the store's size once a second, for as long as the actix system runs.
    /// Does nothing without a ceiling.
    pub fn start_sampling(guard: std::sync::Arc<MemoryGuard>, grid: Coordinator) {
        if guard.limit == 0 {
            return;
        }
        actix_rt::spawn(async move {
            loop {
                if let Ok(stats) = grid.stats().await {
                    guard.set(stats.iter().map(|s| s.memory_bytes).sum());
                }
                actix_rt::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_ceiling_are_507_and_none_without_one() {
        let guard = MemoryGuard::new(1000);
        guard.set(600);
        assert!(guard.check(400).is_ok());
        guard.add(300);
        let e = guard.check(200).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (507, "memory_limit"));
        assert!(e.message.contains("max_memory (1000 bytes)"), "{e}");
        let none = MemoryGuard::new(0);
        none.add(usize::MAX);
        assert!(none.check(usize::MAX).is_ok());
    }
}
