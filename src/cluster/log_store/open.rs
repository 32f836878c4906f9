//! Opening the node's Raft log: the segments replayed into each group's state, the votes
//! read, the writer started.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::vote::VoteFile;
use super::{
    group_dir, Deferred, Group, GroupState, LogOpenError, LogOptions, Op, Pin, Pins, RaftLog,
    Shared,
};
use crate::persist::atomic::create_dir;
use crate::persist::wal::{self, Wal, WalOptions};

/// The file of a group's Raft log in the format of earlier featgrid versions.
const OLD_LOG: &str = "log";

impl RaftLog {
    /// Opens (or creates) the log of `groups` groups under `raft_dir` (`data_dir/raft`):
    /// replays `raft_dir/log/`, cutting a torn last record, and reads each group's vote.
    /// Damage before the end refuses the start (naming the segment and offset) unless
    /// `options.recover`, which drops the rest of the damaged segment. Each group is then
    /// squared with its kept snapshot by [`RaftLog::settle`] before it starts.
    pub fn open(
        raft_dir: &Path,
        options: LogOptions,
        groups: usize,
    ) -> Result<RaftLog, LogOpenError> {
        refuse_old_format(raft_dir, groups)?;
        let dir = raft_dir.join("log");
        let mut states: Vec<GroupState> = (0..groups).map(|_| GroupState::default()).collect();
        let mut pins: Vec<Pins> = (0..groups).map(|_| Pins::default()).collect();
        let next_lsn = replay(&dir, options.recover, &mut states, &mut pins)?;
        let mut opened = Vec::with_capacity(groups);
        for (g, (mut state, pins)) in states.into_iter().zip(pins).enumerate() {
            let gdir = group_dir(raft_dir, g);
            create_dir(&gdir).map_err(wal::WalError::from)?;
            let (vote_file, vote) = VoteFile::open(&gdir)
                .map_err(|(path, problem)| LogOpenError::File { path, problem })?;
            state.vote = vote;
            opened.push(Group {
                state: Mutex::new(state),
                pins: Mutex::new(pins),
                deferred: Mutex::new(Deferred::default()),
                vote_file: Mutex::new(vote_file),
            });
        }
        let wal = Wal::open(WalOptions {
            dir: dir.clone(),
            fsync: options.fsync,
            segment_bytes: options.segment_bytes,
            views: Vec::new(),
            next_lsn,
            existing: wal::list_segments(&dir)?,
        })?;
        Ok(RaftLog {
            shared: Arc::new(Shared {
                wal,
                groups: opened,
                tidying: Mutex::new(()),
            }),
        })
    }
}

/// A log of the earlier format (one file per group) is not read: refuse rather than start
/// with an empty log, which would forget entries this node acknowledged.
fn refuse_old_format(raft_dir: &Path, groups: usize) -> Result<(), LogOpenError> {
    for g in 0..groups {
        let path = group_dir(raft_dir, g).join(OLD_LOG);
        if path.exists() {
            return Err(LogOpenError::File {
                path,
                problem: format!(
                    "a Raft log in the format of an earlier featgrid, which this version does not read (it keeps the node's Raft log in {}). Start this node on an empty data directory: the group leaders bring it up to date (see \"Replacing a dead node\" in the README)",
                    raft_dir.join("log").display()
                ),
            });
        }
    }
    Ok(())
}

/// Replays every segment into the groups' states and pins; answers the next lsn.
fn replay(
    dir: &Path,
    recover: bool,
    states: &mut [GroupState],
    pins: &mut [Pins],
) -> Result<u64, LogOpenError> {
    let segments = wal::list_segments(dir)?;
    let mut next_lsn = 1;
    let mut unknown = 0u64;
    for (i, segment) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        next_lsn = next_lsn.max(segment.first_lsn);
        let read = wal::read_segment(
            &segment.path,
            newest,
            recover,
            |lsn, _, (group, op): (u32, Op)| {
                let g = group as usize;
                match (states.get_mut(g), pins.get_mut(g)) {
                    (Some(state), Some(pins)) => {
                        pins.note(lsn, Pin::of(&op));
                        state.apply(op);
                    }
                    _ => unknown += 1,
                }
                Ok(())
            },
        )?;
        if let Some(last) = read.last_lsn {
            next_lsn = next_lsn.max(last + 1);
        }
        let file = segment.path.display();
        for skipped in &read.skipped {
            tracing::warn!(%file, %skipped, "recover: raft log record skipped");
        }
        if let Some(dropped) = read.dropped {
            if dropped.starts_with("torn") {
                tracing::warn!(%file, %dropped, "dropped a torn write at the end of the raft log");
            } else {
                tracing::warn!(%file, %dropped, "recover: raft log records dropped");
            }
            wal::cut_segment(&segment.path, read.valid_len).map_err(wal::WalError::from)?;
        }
    }
    if unknown > 0 {
        tracing::warn!(
            records = unknown,
            groups = states.len(),
            "raft log records of groups the topology no longer has were ignored"
        );
    }
    Ok(next_lsn)
}
