//! The part of a table that readers on other threads may read while the shard actor writes:
//! fixed-width records in chunks that never move, a sequence number per 16 rows (a striped
//! seqlock), and an open-addressing index whose slots are atomics, replaced whole (and retired
//! through `crossbeam-epoch`) when it grows. The one module with `unsafe` in the grid.
//!
//! One writer: the shard actor that owns the table (through [`super::Table`]); any number of
//! readers, which never block it and never wait for it, except to retry a row that was being
//! overwritten at that instant.
//!
//! - Records: chunk `k` holds `FIRST_CHUNK << k` records; a chunk is allocated zeroed (pages
//!   are touched only when used), published with a release store and freed only when the
//!   table is dropped, so a reader's record address stays valid. Every byte is an `AtomicU8`:
//!   the writer stores with relaxed atomics, readers load with relaxed atomics, so there is no
//!   data race, only possibly torn rows, which the sequence numbers catch.
//! - Sequence numbers (Linux's seqlock, in the form Boehm gives for C++/Rust memory models),
//!   one per 16 rows: the writer makes a row's number odd, fences, stores the bytes, makes it even with a
//!   release store; a reader loads it (acquire), loads the bytes, fences (acquire), loads it
//!   again, and keeps the copy only if both loads are equal and even.
//! - A new row is written whole before its index slot is stored (release); a reader that finds
//!   the slot (acquire) sees the whole row. Rows are never removed, and a row's key never
//!   changes, so a key compare needs no sequence check.
//! - The index: open addressing with linear probing, any number of slots (a probe starts at
//!   the hash scaled to the slot count, not at its low bits), at most 3/4 full. A slot holds
//!   `row id + 1` (0: empty) in its low bits and, above them, a tag of the key's hash: a probe
//!   compares a row's key only when the tag matches, so it rarely touches a row that is not
//!   the one it looks for. Growing builds a new index half full (half as large again, not
//!   twice: 5.3-8 bytes a row, where doubling cost 5.3-10.7), publishes it, and retires the old one
//!   to the epoch collector: a reader pinned before the swap keeps probing the old one safely;
//!   it can only miss rows inserted after the swap, which were not acknowledged when its read
//!   began.

use std::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU8, Ordering};

use crossbeam::epoch::{self, Atomic, Owned};
pub use crossbeam::epoch::{pin, Guard};

mod index;

use index::{Index, GROWN_LOAD, KNOWN_LOAD, MAX_LOAD};

/// Records in the first chunk; chunk `k` holds `FIRST_CHUNK << k`.
const FIRST_CHUNK: usize = 1024;
/// Rows that share one sequence number (a striped seqlock): a quarter of a byte per row
/// instead of four. A write to one row makes readers of the other 15 retry too, which costs
/// nothing measurable when a write takes tens of nanoseconds.
const STRIPE: usize = 16;
/// Chunks a table may have: enough for every `u32` row id.
const CHUNKS: usize = 23;
/// Slots a prefetch looks along a probe for the key's tag before it gives up on the row.
const PREFETCH_PROBE: usize = 4;
/// Rows whose new index slots are prefetched together when the index grows.
const REHASH_BLOCK: usize = 16;

struct Chunk {
    bytes: Box<[AtomicU8]>,
    seqs: Box<[AtomicU32]>,
}

impl Chunk {
    fn zeroed(rows: usize, record_len: usize) -> Chunk {
        Chunk {
            // Zeroed allocations are valid atomics, and large ones are mapped lazily: a chunk
            // costs memory only as rows fill it.
            bytes: Box::<[AtomicU8]>::new_zeroed_slice(rows * record_len).into_boxed_atomic(),
            seqs: Box::<[AtomicU32]>::new_zeroed_slice(rows / STRIPE).into_boxed_atomic(),
        }
    }
}

/// `Box<[MaybeUninit<A>]>` of zeroed atomics into `Box<[A]>`.
trait ZeroedAtomics<A> {
    fn into_boxed_atomic(self) -> Box<[A]>;
}

macro_rules! zeroed_atomics {
    ($($atomic:ty),*) => {$(
        impl ZeroedAtomics<$atomic> for Box<[std::mem::MaybeUninit<$atomic>]> {
            fn into_boxed_atomic(self) -> Box<[$atomic]> {
                // SAFETY: the all-zero bit pattern is a valid value of this atomic integer
                // type (its `new(0)`), and the allocation was zeroed by `new_zeroed_slice`.
                unsafe { self.assume_init() }
            }
        }
    )*};
}

zeroed_atomics!(AtomicU8, AtomicU32);

/// A hint to the CPU to load the cache line at `at`; nothing where there is no such hint.
#[inline(always)]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it reads nothing and faults on no address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(at as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Chunk and position within it of row `id`.
fn locate(id: u32) -> (usize, usize) {
    let x = id as usize / FIRST_CHUNK + 1;
    let k = (usize::BITS - 1 - x.leading_zeros()) as usize;
    (k, id as usize - FIRST_CHUNK * ((1 << k) - 1))
}

/// Records, sequence numbers and index of one table (see the module documentation).
pub struct SharedTable {
    record_len: usize,
    chunks: [AtomicPtr<Chunk>; CHUNKS],
    index: Atomic<Index>,
    /// Index slots (the writer's copy of the current index size).
    slots: std::sync::atomic::AtomicUsize,
    /// Rows in the index: ids `0..published` (the writer's count; rows are published in id
    /// order).
    published: std::sync::atomic::AtomicUsize,
}

impl SharedTable {
    pub fn new(record_len: usize) -> SharedTable {
        SharedTable {
            record_len,
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            index: Atomic::new(Index::with_slots(16)),
            slots: std::sync::atomic::AtomicUsize::new(16),
            published: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn chunk(&self, k: usize) -> Option<&Chunk> {
        let chunk = self.chunks[k].load(Ordering::Acquire);
        // SAFETY: a non-null chunk pointer came from `Box::into_raw` in `ensure_row` and is
        // freed only in `drop`, which needs `&mut self`: it outlives this borrow.
        unsafe { chunk.as_ref() }
    }

    /// The bytes and sequence number of row `id`, which must exist (be below the writer's
    /// row count, or found in the index).
    fn row(&self, id: u32) -> (&[AtomicU8], &AtomicU32) {
        let (k, at) = locate(id);
        let chunk = self
            .chunk(k)
            .expect("a row's chunk is allocated before the row");
        let start = at * self.record_len;
        (
            &chunk.bytes[start..start + self.record_len],
            &chunk.seqs[at / STRIPE],
        )
    }

    // --- The writer's side: called only by the table's owner, on the shard thread. ---

    /// Writes row `id` (the next one) whole, its record the concatenation of `parts`; it
    /// becomes visible to readers with [`Self::publish`].
    pub fn write_new(&self, id: u32, parts: &[&[u8]]) {
        let (k, _) = locate(id);
        if self.chunk(k).is_none() {
            let chunk = Box::new(Chunk::zeroed(FIRST_CHUNK << k, self.record_len));
            self.chunks[k].store(Box::into_raw(chunk), Ordering::Release);
        }
        let (bytes, _) = self.row(id);
        for (dst, &b) in bytes.iter().zip(parts.iter().flat_map(|p| p.iter())) {
            dst.store(b, Ordering::Relaxed);
        }
    }

    /// Overwrites bytes `at..` of row `id` under its sequence number.
    pub fn overwrite(&self, id: u32, at: usize, bytes: &[u8]) {
        let (row, seq) = self.row(id);
        let s = seq.load(Ordering::Relaxed);
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (dst, &b) in row[at..].iter().zip(bytes) {
            dst.store(b, Ordering::Relaxed);
        }
        seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The current index, for the writer: it is the only thread that replaces the index, so
    /// what it loads cannot be retired while it uses it.
    fn writer_index(&self) -> &Index {
        // SAFETY: the pointer is never null (set in `new`, replaced only by `reserve` with
        // another valid index), and only the writer, this thread, retires an index.
        unsafe {
            self.index
                .load(Ordering::Acquire, epoch::unprotected())
                .deref()
        }
    }

    /// Adds row `id` (written with [`Self::write_new`]; the next id) to the index; `rows` is
    /// the row count with it, `hash_of` hashes a published row's key (to move it when the
    /// index grows).
    pub fn publish(&self, id: u32, hash: u64, rows: usize, hash_of: impl Fn(u32) -> u64) {
        self.reserve(rows, hash_of);
        let published = self.published.load(Ordering::Relaxed);
        debug_assert_eq!(id as usize, published, "rows are published in id order");
        self.writer_index().insert(hash, id);
        self.published.store(published + 1, Ordering::Relaxed);
    }

    /// Grows the index, if needed, to hold `rows` rows at most [`MAX_LOAD`] full (it is then
    /// [`GROWN_LOAD`] full); `hash_of` hashes the key of a published row.
    pub fn reserve(&self, rows: usize, hash_of: impl Fn(u32) -> u64) {
        self.grow(rows, GROWN_LOAD, hash_of);
    }

    /// [`Self::reserve`] for a count known in advance (a restore's): the index is then
    /// [`KNOWN_LOAD`] full, not [`GROWN_LOAD`], since no growth is expected soon.
    pub fn reserve_known(&self, rows: usize, hash_of: impl Fn(u32) -> u64) {
        self.grow(rows, KNOWN_LOAD, hash_of);
    }

    fn grow(&self, rows: usize, load: (usize, usize), hash_of: impl Fn(u32) -> u64) {
        let slots = self.slots.load(Ordering::Relaxed);
        if rows * MAX_LOAD.1 <= slots * MAX_LOAD.0 {
            return;
        }
        let index = Index::with_slots(Index::slots_for(rows, load));
        // Every published row moves, in id order: the records are read one after another,
        // not in the old index's (random) order; the new slots of a block of rows are loaded
        // into the cache before any of them is filled, so their misses overlap.
        let published = self.published.load(Ordering::Relaxed) as u32;
        let mut hashes = [0u64; REHASH_BLOCK];
        for start in (0..published).step_by(REHASH_BLOCK) {
            let ids = start..published.min(start + REHASH_BLOCK as u32);
            for (id, hash) in ids.clone().zip(&mut hashes) {
                *hash = hash_of(id);
                self.prefetch_in(&index, *hash, false);
            }
            for (id, &hash) in ids.zip(&hashes) {
                index.insert(hash, id);
            }
        }
        self.slots.store(index.slots.len(), Ordering::Relaxed);
        let guard = epoch::pin();
        let old = self.index.swap(Owned::new(index), Ordering::AcqRel, &guard);
        // SAFETY: `old` is unreachable from now on (the pointer was swapped out); readers
        // pinned before the swap may still hold it, which is what deferring waits for.
        unsafe { guard.defer_destroy(old) };
        // Hand it to the collector now, not whenever this thread's bag fills up: an old index
        // is as large as the rows it indexed.
        guard.flush();
    }

    /// The writer's lookup: the first row on `hash`'s probe sequence for which `eq` holds.
    pub fn writer_find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.writer_index().find(hash, eq)
    }

    /// Row `id`'s bytes as plain bytes, for the writer. Sound because only the writer stores
    /// to a row and readers on other threads only load (concurrent reads are no data race),
    /// and the writer drops the slice before its next store (it never holds it across
    /// [`Self::write_new`] or [`Self::overwrite`]). Readers use [`Self::read`].
    pub fn writer_row(&self, id: u32) -> &[u8] {
        let (row, _) = self.row(id);
        // SAFETY: `AtomicU8` has the size, alignment and bit validity of `u8`; see above for
        // why no store can happen while the slice is alive.
        unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<u8>(), row.len()) }
    }

    /// Index slots, for memory accounting.
    pub fn index_slots(&self) -> usize {
        self.slots.load(Ordering::Relaxed)
    }

    /// Bytes allocated for records and sequence numbers.
    pub fn chunk_bytes(&self) -> usize {
        (0..CHUNKS)
            .filter(|&k| self.chunk(k).is_some())
            .map(|k| (FIRST_CHUNK << k) * self.record_len + (FIRST_CHUNK << k) / STRIPE * 4)
            .sum()
    }

    // --- Both sides. ---

    /// The row whose key part (the first `key.len()` bytes of the record, for tables with
    /// fixed-width keys) is `key`. Readers and the writer alike.
    #[cfg(test)]
    pub fn find_key(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.find_key_pinned(&epoch::pin(), hash, key)
    }

    /// The index as of `guard`, which keeps it alive.
    fn index<'g>(&self, guard: &'g Guard) -> &'g Index {
        // SAFETY: the pointer is never null (see `writer_index`), and the guard keeps the
        // index it points to alive while it is borrowed.
        unsafe { self.index.load(Ordering::Acquire, guard).deref() }
    }

    /// [`SharedTable::find_key`] under a pin the caller holds (one for a whole batch).
    pub fn find_key_pinned(&self, guard: &Guard, hash: u64, key: &[u8]) -> Option<u32> {
        let eq = |id| {
            let (row, _) = self.row(id);
            // A key longer than a row never matches (and never reads past it).
            row.get(..key.len()).is_some_and(|part| {
                part.iter()
                    .zip(key)
                    .all(|(b, &k)| b.load(Ordering::Relaxed) == k)
            })
        };
        self.index(guard).find(hash, eq)
    }

    /// Starts loading the index slot where `hash`'s probe begins into the cache; with `row`,
    /// the row that slot names too (its slot should be cached by then). A batch read
    /// prefetches every key's slot, then every key's row, then probes: the cache misses of
    /// its keys overlap instead of following each other.
    pub fn prefetch(&self, guard: &Guard, hash: u64, row: bool) {
        self.prefetch_in(self.index(guard), hash, row);
    }

    /// [`SharedTable::prefetch`] for the writer (a batch of rows to apply).
    pub fn writer_prefetch(&self, hash: u64, row: bool) {
        self.prefetch_in(self.writer_index(), hash, row);
    }

    fn prefetch_in(&self, index: &Index, hash: u64, row: bool) {
        if !row {
            let slot = &index.slots[index.home(hash)];
            prefetch(slot as *const AtomicU32 as *const u8);
            return;
        }
        // The row of the first slot on the probe with the key's tag (the slots are cached by
        // now): nearly always the key's own row, where without tags the rows of the first
        // two slots were loaded (a key often sits one slot past where its probe starts).
        if let Some(id) = index.first_candidate(hash, PREFETCH_PROBE) {
            self.prefetch_row(id);
        }
    }

    /// Starts loading both ends of row `id`: a record (41 bytes for the quickstart view)
    /// spans two cache lines more often than not, and a write or a read touches all of it.
    fn prefetch_row(&self, id: u32) {
        let (k, at) = locate(id);
        let Some(chunk) = self.chunk(k) else {
            return;
        };
        let start = at * self.record_len;
        for byte in [start, (start + self.record_len).saturating_sub(1)] {
            if let Some(b) = chunk.bytes.get(byte) {
                prefetch(b as *const AtomicU8 as *const u8);
            }
        }
    }

    /// Appends a consistent copy of bytes `range` of row `id`: never a row half overwritten.
    pub fn read(&self, id: u32, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
        let (row, seq) = self.row(id);
        let row = &row[range];
        let start = out.len();
        loop {
            let before = seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                out.extend(row.iter().map(|b| b.load(Ordering::Relaxed)));
                fence(Ordering::Acquire);
                if seq.load(Ordering::Relaxed) == before {
                    return;
                }
                out.truncate(start);
            }
            std::hint::spin_loop();
        }
    }
}

impl Drop for SharedTable {
    fn drop(&mut self) {
        for chunk in &self.chunks {
            let chunk = chunk.load(Ordering::Relaxed);
            if !chunk.is_null() {
                // SAFETY: made by `Box::into_raw` in `write_new`; `&mut self` means no reader
                // or writer holds the table any more.
                drop(unsafe { Box::from_raw(chunk) });
            }
        }
        // SAFETY: as above, nothing else can reach the index now.
        drop(unsafe {
            self.index
                .load(Ordering::Relaxed, epoch::unprotected())
                .into_owned()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_land_in_growing_chunks_without_gaps() {
        let mut expected_k = 0;
        let mut expected_at = 0;
        for id in 0..(FIRST_CHUNK as u32 * 15) {
            assert_eq!(locate(id), (expected_k, expected_at), "row {id}");
            expected_at += 1;
            if expected_at == FIRST_CHUNK << expected_k {
                expected_k += 1;
                expected_at = 0;
            }
        }
        assert_eq!(locate(u32::MAX).0, CHUNKS - 1);
    }

    #[test]
    fn published_rows_are_found_across_index_growth() {
        let table = SharedTable::new(16);
        let hash = |id: u32| (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for id in 0..5000u32 {
            let mut record = [0u8; 16];
            record[..4].copy_from_slice(&id.to_le_bytes());
            table.write_new(id, &[&record]);
            table.publish(id, hash(id), id as usize + 1, hash);
        }
        for id in 0..5000u32 {
            assert_eq!(table.find_key(hash(id), &id.to_le_bytes()), Some(id));
        }
        assert_eq!(table.find_key(hash(9999), &9999u32.to_le_bytes()), None);
        assert!(table.index_slots() * MAX_LOAD.0 >= 5000 * MAX_LOAD.1);
        // Last grown for at most 5,000 rows.
        assert!(table.index_slots() <= Index::slots_for(5000, GROWN_LOAD));
    }

    proptest::proptest! {
        /// Any keys, any hashes (here with many collisions: few distinct hashes, or hashes that
        /// differ only in their tag bits, or only above them): every published row is found
        /// by its key, across every growth, and nothing else is.
        #[test]
        fn every_published_key_is_found_and_no_other(
            keys in proptest::collection::hash_set(0u32..1_000_000, 1..3000),
            spread in 0u32..3,
        ) {
            let hash = |key: u32| match spread {
                0 => (key % 7) as u64,
                1 => (key as u64) << 40,
                _ => (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let table = SharedTable::new(4);
            let keys: Vec<u32> = keys.into_iter().collect();
            for (id, &key) in keys.iter().enumerate() {
                table.write_new(id as u32, &[&key.to_le_bytes()]);
                table.publish(id as u32, hash(key), id + 1, |other| {
                    hash(keys[other as usize])
                });
            }
            for (id, &key) in keys.iter().enumerate() {
                proptest::prop_assert_eq!(table.find_key(hash(key), &key.to_le_bytes()), Some(id as u32));
            }
            proptest::prop_assert_eq!(table.find_key(hash(2_000_000), &2_000_000u32.to_le_bytes()), None);
        }
    }
}
