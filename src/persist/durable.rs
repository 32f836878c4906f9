//! Every fsync of a log segment or a directory goes through here. In unit tests it also
//! notes what the fsync made durable (a file's length, a directory's names), so that a test
//! can emulate a power cut: [`power_cut::cut`] keeps only the bytes and names that were
//! fsynced, as the disk would after losing its page cache. Integration tests may make every
//! fsync slower, as a slow disk would ([`slow_disk`]).

use std::fs::File;
use std::io;
use std::path::Path;

/// `fdatasync`: the file's bytes written so far are durable.
pub fn sync_data(file: &File) -> io::Result<()> {
    slow_disk();
    file.sync_data()?;
    #[cfg(test)]
    power_cut::file_synced(file);
    Ok(())
}

/// `fsync`: the file's bytes and metadata are durable.
pub fn sync_all(file: &File) -> io::Result<()> {
    slow_disk();
    file.sync_all()?;
    #[cfg(test)]
    power_cut::file_synced(file);
    Ok(())
}

/// Starts writing `len` bytes of `file` from `offset` back to the disk, without waiting
/// (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`; nothing elsewhere). It makes nothing
/// durable and promises nothing: it spreads the disk writes of a log segment as it grows, so
/// the fsync that closes the segment waits for the last few of them rather than for the
/// whole segment (RocksDB's `bytes_per_sync`). Errors are left to the next fsync to report.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor is open for as long as `file` is borrowed; the call only
        // schedules writeback of the file's own pages.
        let rc = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        if rc != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "sync_file_range failed; the next fsync will write the range");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Fsyncs a directory: its names (files created, renamed, removed) are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    slow_disk();
    File::open(dir)?.sync_all()?;
    #[cfg(test)]
    power_cut::dir_synced(dir);
    Ok(())
}

/// Tests (`FEATGRID_TEST_HOOKS=1`) may make every fsync this process does
/// `FEATGRID_TEST_FSYNC_DELAY_MS` slower, as a slow disk would.
fn slow_disk() {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        crate::test_setting("FEATGRID_TEST_FSYNC_DELAY_MS").map(std::time::Duration::from_millis)
    });
    if let Some(delay) = delay {
        std::thread::sleep(*delay);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};

    #[test]
    fn starting_writeback_changes_nothing_and_takes_any_range() {
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..(2u32 << 20)).map(|i| i as u8).collect();
        file.write_all(&bytes).unwrap();
        super::start_writeback(&file, 0, 1 << 20);
        super::start_writeback(&file, 1 << 20, 1 << 20);
        // Past the end, and past what the call can take: ignored.
        super::start_writeback(&file, 4 << 20, 1 << 20);
        super::start_writeback(&file, 0, u64::MAX);
        let mut back = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes);
    }
}

#[cfg(test)]
pub mod power_cut {
    //! What the fsyncs of this test process made durable, per path (tests run in parallel, each
    //! in its own temporary directory).

    use std::collections::{HashMap, HashSet};
    use std::ffi::OsString;
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Durable {
        /// File path -> bytes durable.
        files: HashMap<PathBuf, u64>,
        /// Directory -> the names durable in it.
        dirs: HashMap<PathBuf, HashSet<OsString>>,
    }

    static DURABLE: Mutex<Option<Durable>> = Mutex::new(None);

    fn with<T>(f: impl FnOnce(&mut Durable) -> T) -> T {
        let mut guard = DURABLE.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.get_or_insert_with(Durable::default))
    }

    // Each note is measured under the lock: two fsyncs of one file or directory finishing at
    // once (the writer closing a segment while a tidy fsyncs it, a segment created while a
    // tidy fsyncs the directory) are then noted in the order they look, and a later note
    // never holds less than an earlier one saw. Measured before taking the lock, an earlier
    // look could be noted last and undo what a later fsync made durable.

    pub(super) fn file_synced(file: &File) {
        let link = format!("/proc/self/fd/{}", file.as_raw_fd());
        with(|d| {
            if let (Ok(path), Ok(meta)) = (std::fs::read_link(link), file.metadata()) {
                d.files.insert(path, meta.len());
            }
        });
    }

    pub(super) fn dir_synced(dir: &Path) {
        with(|d| {
            let (Ok(canonical), Ok(list)) = (dir.canonicalize(), std::fs::read_dir(dir)) else {
                return;
            };
            let names = list.flatten().map(|e| e.file_name()).collect();
            d.dirs.insert(canonical, names);
        });
    }

    /// A power cut in `dir`: a file whose name was never fsynced into the directory
    /// disappears, and every other file keeps only the bytes an fsync covered (none if it was
    /// never fsynced).
    pub fn cut(dir: &Path) {
        let dir = dir.canonicalize().unwrap();
        with(|d| {
            let names = d.dirs.get(&dir);
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if names.is_some_and(|n| !n.contains(&entry.file_name())) {
                    std::fs::remove_file(&path).unwrap();
                    continue;
                }
                let durable = d.files.get(&path).copied().unwrap_or(0);
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                if file.metadata().unwrap().len() > durable {
                    file.set_len(durable).unwrap();
                }
            }
        });
    }
}
