//! Byte buffers a thread keeps for its next log record or portable view: a push's are past
//! the allocator's per-thread cache (about 5.7 KB of rows and a record as large for 100 rows),
//! so reusing them keeps those allocations off its slow, locked path.

use std::cell::RefCell;
use std::thread::LocalKey;

type Buffers = RefCell<Vec<Vec<u8>>>;

thread_local! {
    static RECORDS: Buffers = const { RefCell::new(Vec::new()) };
    static VIEWS: Buffers = const { RefCell::new(Vec::new()) };
}

/// One pool of a thread's buffers: how many it keeps, and the largest.
pub(super) struct Pool {
    buffers: &'static LocalKey<Buffers>,
    kept: usize,
    pub(super) largest: usize,
}

/// Log records: the writer hands each back to the thread that appended it, which may have
/// dozens waiting.
pub(super) const RECORDS_POOL: Pool = Pool {
    buffers: &RECORDS,
    kept: 32,
    largest: 64 << 10,
};

/// Portable views: given back once encoded into the write's record, before it waits for
/// anything, so a handful does.
pub(super) const VIEWS_POOL: Pool = Pool {
    buffers: &VIEWS,
    kept: 4,
    largest: 64 << 10,
};

impl Pool {
    /// An empty buffer, one given back to this thread when there is one.
    pub(super) fn take(&self) -> Vec<u8> {
        self.buffers.with_borrow_mut(Vec::pop).unwrap_or_default()
    }

    /// Keeps `buffer` for this thread's next [`Pool::take`], or frees it (past the count or
    /// the size kept).
    pub(super) fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() > self.largest {
            return;
        }
        buffer.clear();
        self.buffers.with_borrow_mut(|kept| {
            if kept.len() < self.kept {
                kept.push(buffer);
            }
        });
    }
}
