//! Atomic file replacement, the one way featgrid writes a whole file: a temporary file in the
//! same directory, the bytes, `sync_all`, `rename` over the target, then an fsync of the
//! directory so the rename itself survives a crash. A reader sees the old file or the new
//! one, never a mix. Every error names the path and the step that failed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An I/O failure on one path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot {action}: {source}")]
pub struct FileError {
    pub path: PathBuf,
    pub action: &'static str,
    #[source]
    pub source: io::Error,
}

impl FileError {
    pub fn new(path: &Path, action: &'static str, source: io::Error) -> FileError {
        FileError {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// Attaches a path and an action to an I/O result.
pub trait Context<T> {
    fn at(self, path: &Path, action: &'static str) -> Result<T, FileError>;
}

impl<T> Context<T> for io::Result<T> {
    fn at(self, path: &Path, action: &'static str) -> Result<T, FileError> {
        self.map_err(|e| FileError::new(path, action, e))
    }
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Replaces `path` with what `write` writes into the temporary file, atomically and durably.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), FileError> {
    let dir = parent(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .at(&temp, "create")?;
        write(&mut file).at(&temp, "write")?;
        super::durable::sync_all(&file).at(&temp, "fsync")?;
        drop(file);
        fs::rename(&temp, path).at(path, "rename a temporary file over")?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Fsyncs a directory, so that files created, renamed or removed in it stay so after a crash.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    super::durable::sync_dir(dir).at(dir, "fsync the directory")
}

/// Creates a directory and its parents, and fsyncs its parent.
pub fn create_dir(dir: &Path) -> Result<(), FileError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).at(dir, "create the directory")?;
    sync_dir(parent(dir))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("MANIFEST");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["MANIFEST"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old").unwrap();
        let e = write_atomic_with(&path, |_| Err(io::Error::other("disk full"))).unwrap_err();
        assert!(
            e.to_string().contains(".f.tmp: cannot write: disk full"),
            "{e}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let missing = dir.path().join("no/such/dir/f");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert!(
            e.to_string().contains("no/such/dir/.f.tmp: cannot create"),
            "{e}"
        );
    }
}
