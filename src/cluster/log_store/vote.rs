//! A group's vote on disk, one fsync per change: `raft/g<group>/votes` holds two fixed slots,
//! written in turn in place, each with a magic, a sequence number, the vote (JSON) and a
//! CRC-32C. The file is created at its full size, fsynced with its directory, once; a later
//! write changes no metadata, so `fdatasync` makes it durable (an atomic replace costs two
//! fsyncs, file and directory: with a slow disk an election's two vote saves, the candidate's
//! and a voter's, then outlast the election timeout and no leader is ever elected).
//!
//! A write cut by a crash can damage only the slot being written, which held the vote before
//! the last one; the other slot holds the last vote saved, the one openraft acted on, and that
//! is what is read. Both slots damaged is damage, and refuses the start. The `vote` file of
//! earlier builds (JSON, replaced atomically) is read while no slot holds a vote, and removed
//! once one does.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::Vote;
use crate::persist::atomic::{sync_dir, write_atomic};
use crate::persist::{crc32c, durable};

/// Bytes per slot; a vote in JSON is about 60.
const SLOT: usize = 256;
const MAGIC: &[u8; 4] = b"FGV1";
/// Magic, sequence number, length.
const HEAD: usize = 4 + 8 + 2;

pub(super) struct VoteFile {
    path: PathBuf,
    /// The `vote` file of earlier builds, while it may exist.
    legacy: Option<PathBuf>,
    /// The sequence number of the last vote saved (0: none yet).
    seq: u64,
}

/// What a slot holds.
#[derive(Debug, PartialEq)]
enum Slot {
    Empty,
    Damaged,
    Vote(u64, Vote),
}

fn encode(seq: u64, vote: &Vote) -> Result<[u8; SLOT], String> {
    let json = serde_json::to_vec(vote).map_err(|e| e.to_string())?;
    let mut slot = [0u8; SLOT];
    if HEAD + json.len() + 4 > SLOT {
        return Err(format!(
            "a vote of {} bytes does not fit a slot",
            json.len()
        ));
    }
    slot[..4].copy_from_slice(MAGIC);
    slot[4..12].copy_from_slice(&seq.to_le_bytes());
    slot[12..14].copy_from_slice(&(json.len() as u16).to_le_bytes());
    slot[HEAD..HEAD + json.len()].copy_from_slice(&json);
    let end = HEAD + json.len();
    let crc = crc32c(&slot[..end]);
    slot[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(slot)
}

fn decode(slot: &[u8]) -> Slot {
    if slot.iter().all(|b| *b == 0) {
        return Slot::Empty;
    }
    if slot.len() != SLOT || &slot[..4] != MAGIC {
        return Slot::Damaged;
    }
    let seq = u64::from_le_bytes(slot[4..12].try_into().unwrap_or_default());
    let len = u16::from_le_bytes(slot[12..14].try_into().unwrap_or_default()) as usize;
    let end = HEAD + len;
    if end + 4 > SLOT {
        return Slot::Damaged;
    }
    let crc = u32::from_le_bytes(slot[end..end + 4].try_into().unwrap_or_default());
    if crc != crc32c(&slot[..end]) {
        return Slot::Damaged;
    }
    match serde_json::from_slice(&slot[HEAD..end]) {
        Ok(vote) => Slot::Vote(seq, vote),
        Err(_) => Slot::Damaged,
    }
}

impl VoteFile {
    /// Opens the votes file in `dir` (creating it, durable, if there is none): the file and
    /// the last vote saved.
    pub(super) fn open(dir: &Path) -> Result<(VoteFile, Option<Vote>), (PathBuf, String)> {
        let path = dir.join("votes");
        let legacy = dir.join("vote");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(&path, &[0u8; 2 * SLOT]).map_err(|e| (path.clone(), e.to_string()))?;
                vec![0u8; 2 * SLOT]
            }
            Err(e) => return Err((path, format!("cannot read: {e}"))),
        };
        if bytes.len() != 2 * SLOT {
            return Err((
                path,
                format!("is {} bytes long, not {}", bytes.len(), 2 * SLOT),
            ));
        }
        let slots = [decode(&bytes[..SLOT]), decode(&bytes[SLOT..])];
        let last = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Vote(seq, vote) => Some((*seq, *vote)),
                _ => None,
            })
            .max_by_key(|(seq, _)| *seq);
        if slots.iter().all(|s| *s == Slot::Damaged) {
            return Err((path, "both vote slots are damaged".into()));
        }
        let (seq, vote) = match last {
            Some((seq, vote)) => (seq, Some(vote)),
            None => match std::fs::read(&legacy) {
                Ok(b) => (
                    0,
                    Some(
                        serde_json::from_slice(&b)
                            .map_err(|e| (legacy.clone(), format!("does not parse: {e}")))?,
                    ),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, None),
                Err(e) => return Err((legacy, format!("cannot read: {e}"))),
            },
        };
        let legacy = legacy.exists().then_some(legacy);
        Ok((VoteFile { path, legacy, seq }, vote))
    }

    /// Saves `vote` in the slot the last vote is not in; durable on return (one
    /// `fdatasync`). Blocking.
    pub(super) fn save(&mut self, vote: &Vote) -> Result<(), String> {
        let seq = self.seq + 1;
        let slot = encode(seq, vote)?;
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| format!("{}: cannot open: {e}", self.path.display()))?;
        let offset = (seq % 2) * SLOT as u64;
        file.write_all_at(&slot, offset)
            .and_then(|()| durable::sync_data(&file))
            .map_err(|e| format!("{}: cannot write: {e}", self.path.display()))?;
        self.seq = seq;
        if let Some(legacy) = self.legacy.take() {
            // Superseded now; if this fails, the slot still wins at the next start.
            let _ = std::fs::remove_file(&legacy);
            let _ = sync_dir(legacy.parent().unwrap_or(Path::new(".")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64, node: u64) -> Vote {
        Vote::new(term, node)
    }

    #[test]
    fn the_last_vote_saved_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, none) = VoteFile::open(dir.path()).unwrap();
        assert_eq!(none, None);
        for term in 1..=5 {
            file.save(&vote(term, term % 3)).unwrap();
            let (_, read) = VoteFile::open(dir.path()).unwrap();
            assert_eq!(read, Some(vote(term, term % 3)));
        }
        let mut committed = vote(6, 1);
        committed.commit();
        file.save(&committed).unwrap();
        let (_, read) = VoteFile::open(dir.path()).unwrap();
        assert_eq!(read, Some(committed));
    }

    /// A write cut in the middle damages only its own slot: the other holds the last vote
    /// saved. Both damaged refuses.
    #[test]
    fn a_torn_slot_falls_back_to_the_other_and_two_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, _) = VoteFile::open(dir.path()).unwrap();
        file.save(&vote(1, 1)).unwrap();
        file.save(&vote(2, 2)).unwrap();
        // The third save goes to slot 1 (seq 3), over vote 1: cut it half way.
        let torn = encode(3, &vote(3, 3)).unwrap();
        let path = dir.path().join("votes");
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&torn[..20], SLOT as u64).unwrap();
        let (mut file, read) = VoteFile::open(dir.path()).unwrap();
        assert_eq!(read, Some(vote(2, 2)));
        // Saving again overwrites the torn slot.
        file.save(&vote(4, 1)).unwrap();
        assert_eq!(VoteFile::open(dir.path()).unwrap().1, Some(vote(4, 1)));
        f.write_all_at(&[0xff; 8], 20).unwrap();
        f.write_all_at(&[0xff; 8], SLOT as u64 + 20).unwrap();
        let e = VoteFile::open(dir.path()).err().unwrap();
        assert!(e.1.contains("both vote slots are damaged"), "{e:?}");
    }

    /// The `vote` file of earlier builds is read until a vote is saved, then removed.
    #[test]
    fn the_vote_file_of_earlier_builds_is_read_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("vote");
        std::fs::write(&legacy, serde_json::to_vec(&vote(7, 2)).unwrap()).unwrap();
        let (mut file, read) = VoteFile::open(dir.path()).unwrap();
        assert_eq!(read, Some(vote(7, 2)));
        assert_eq!(VoteFile::open(dir.path()).unwrap().1, Some(vote(7, 2)));
        file.save(&vote(8, 1)).unwrap();
        assert!(!legacy.exists());
        assert_eq!(VoteFile::open(dir.path()).unwrap().1, Some(vote(8, 1)));
    }
}
