//! This node's own store, as the cluster sees it: a replica of its groups. A committed entry's
//! online rows are applied to the shards without a second log (the Raft log is the replica's
//! only log, see [`super::state_machine`]); its offline rows go through the node's write-ahead
//! log to the offline sink, as a local push's do. Rows travel between nodes in the portable
//! form of the log. `rows_written_total` and
//! `rows_skipped_older_total` count what this node's own store did: every replica counts the
//! rows it applies.
//!
//! Applies are fail-stop: what may succeed later (a full mailbox, a log that cannot take writes
//! now) is retried, a write queued but not answered in time is waited for, and anything else
//! (rows this node's registry does not know, a full table, a stopped shard) is an
//! [`ApplyError`]: the group's state machine then stops on this node instead of skipping the
//! entry, so no replica ever counts as applied what it does not hold.

use std::ops::Deref;
use std::time::Duration;

use crate::grid::partition::{
    ApplyStats, Partition, PortableRow, PortableRows, ReadBatch, ReadOutput, RowBatch, RowLayout,
    RowRef,
};
use crate::grid::routing::slot;
use crate::persist::codec::Blob;
use crate::persist::wal::{portable_len, Destination, RecordView};
use crate::store::{Admission, LocalStore, StoreError};

use super::types::{GroupBatch, GroupWrite};

/// How long an apply waits before trying again when the shards or the log refuse for now.
const APPLY_RETRY: Duration = Duration::from_millis(20);
/// How often a stalled apply says so in the log.
const STALL_REPORT_EVERY: u32 = 250;

/// Why a committed entry cannot be applied on this node (the group stops here).
#[derive(Debug, Clone, thiserror::Error)]
#[error("a committed entry cannot be applied on this node: {0}")]
pub struct ApplyError(pub String);

/// This node's store as a replica of its groups. Cheap to clone.
#[derive(Clone)]
pub struct Replica(LocalStore);

impl Deref for Replica {
    type Target = LocalStore;

    fn deref(&self) -> &LocalStore {
        &self.0
    }
}

impl Replica {
    pub fn new(store: LocalStore) -> Replica {
        Replica(store)
    }

    /// Applies a committed batch: consecutive writes with the same destination as one local
    /// write (one log record, one job per shard), in the batch's order, so later rows of a
    /// key land after earlier ones exactly as if the pushes had been applied one by one.
    pub async fn apply_batch(&self, batch: &GroupBatch) -> Result<(), ApplyError> {
        for run in batch.writes.chunk_by(|a, b| a.dest == b.dest) {
            self.apply_views(run[0].dest, run.iter().flat_map(|w| &w.views))
                .await?;
        }
        Ok(())
    }

    /// Applies a committed write ([`Self::apply_views`]).
    pub async fn apply(&self, write: &GroupWrite) -> Result<(), ApplyError> {
        self.apply_views(write.dest, &write.views).await
    }

    /// Applies committed rows: online ones straight to the shards (the Raft log is their
    /// log), offline ones through the node's write-ahead log to the offline sink (the sink's
    /// own queue), whatever the sink's health. A full mailbox or an unavailable log is waited
    /// out (the entry is committed: it must be applied, in order); after a shard timeout
    /// (queued, not yet applied) it waits until the shards have run it. Anything else is an
    /// [`ApplyError`]. The rows are routed to the shards for each attempt, straight from the
    /// entry: no copy of them is kept for a retry.
    async fn apply_views<'a, V>(&self, dest: Destination, views: V) -> Result<(), ApplyError>
    where
        V: IntoIterator<Item = &'a RecordView> + Clone,
    {
        let layouts = self.grid.layouts();
        let per_shard = || {
            self.to_shards(views.clone(), &layouts).map_err(|problem| {
                ApplyError(format!(
                    "the rows do not fit this node's registry ({problem}): every node must serve the same registry"
                ))
            })
        };
        if dest.online {
            self.until_applied(|| Ok(self.apply_online(per_shard()?)))
                .await?;
        }
        if dest.offline {
            let offline = Destination {
                online: false,
                offline: true,
            };
            self.until_applied(|| {
                Ok(self.store(per_shard()?, &layouts, offline, Admission::Committed))
            })
            .await?;
        }
        Ok(())
    }

    /// Runs `attempt` until it applies: again after what may succeed later, waiting for a
    /// write that was queued but not answered in time.
    async fn until_applied<F, Fut>(&self, mut attempt: F) -> Result<(), ApplyError>
    where
        F: FnMut() -> Result<Fut, ApplyError>,
        Fut: std::future::Future<Output = Result<ApplyStats, StoreError>>,
    {
        let mut attempts = 0u32;
        loop {
            match attempt()?.await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_retryable() => {
                    attempts += 1;
                    if attempts.is_multiple_of(STALL_REPORT_EVERY) {
                        tracing::warn!(error = %e, attempts, "a committed write waits for the local store");
                    }
                    actix_rt::time::sleep(APPLY_RETRY).await;
                }
                Err(e) if e.is_queued() => {
                    // Queued, not yet applied: wait until it is, so that a read after the
                    // answer sees it (a job queued after it on every shard thread runs after it).
                    while self.grid.stats().await.is_err() {
                        actix_rt::time::sleep(APPLY_RETRY).await;
                    }
                    return Ok(());
                }
                Err(e) => return Err(ApplyError(e.to_string())),
            }
        }
    }

    /// Routes portable rows to this node's shards. Each batch is sized once, for an even share
    /// of its view's rows (estimated from the view's bytes and its first row's size), from
    /// this thread's spare batches ([`RowBatch::with_capacity`]).
    pub fn to_shards<'a, V>(
        &self,
        views: V,
        layouts: &[RowLayout],
    ) -> Result<Vec<Vec<RowBatch>>, String>
    where
        V: IntoIterator<Item = &'a RecordView> + Clone,
    {
        let router = self.grid.router();
        let shards = router.shards();
        // Each view's portable bytes in this write.
        let mut view_bytes: Vec<(usize, usize)> = Vec::new();
        for rv in views.clone() {
            let (view, len) = (rv.view as usize, rv.data.0.len());
            match view_bytes.iter_mut().find(|(v, _)| *v == view) {
                Some((_, total)) => *total += len,
                None => view_bytes.push((view, len)),
            }
        }
        let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); shards];
        // Per shard, where each view's batch sits in its list.
        let mut at_shard: Vec<Vec<(usize, usize)>> = vec![Vec::new(); shards];
        each_row(views, layouts, |view, layout, row| {
            let shard = router.shard_of_key(row.key);
            let batches = &mut per_shard[shard];
            let at = match at_shard[shard].iter().find(|(v, _)| *v == view) {
                Some(&(_, at)) => at,
                None => {
                    let bytes = view_bytes
                        .iter()
                        .find(|(v, _)| *v == view)
                        .map_or(0, |(_, b)| *b);
                    let row_bytes = 4 + row.key.len() + row.value.len() + row.vars_len();
                    let share = bytes / row_bytes.max(1) / shards;
                    batches.push(RowBatch::with_capacity(
                        view,
                        layout,
                        share + share / 4 + 2,
                        row.key.len(),
                    ));
                    at_shard[shard].push((view, batches.len() - 1));
                    batches.len() - 1
                }
            };
            batches[at].push_portable(layout, row);
        })?;
        Ok(per_shard)
    }

    /// Reads `keys` (view id, canonical key) from this node's shards; answers the rows found,
    /// in the portable form.
    pub async fn read_rows(
        &self,
        keys: &[(u32, Blob)],
    ) -> Result<Vec<RecordView>, crate::grid::coordinator::GridError> {
        let router = self.grid.router();
        let mut per_shard = vec![ReadBatch::default(); router.shards()];
        let mut located = Vec::with_capacity(keys.len());
        for (view, key) in keys {
            let shard = router.shard_of_key(&key.0);
            located.push((shard, per_shard[shard].len()));
            per_shard[shard].push(*view as usize, &key.0);
        }
        let outputs = self.grid.read(per_shard).await?;
        let layouts = self.grid.layouts();
        let mut found = Found::default();
        for ((view, key), (shard, i)) in keys.iter().zip(located) {
            let row = outputs[shard].as_ref().and_then(|o| o.row(&layouts, i));
            if let (Some(row), Some(layout)) = (row, layouts.get(*view as usize)) {
                found.add(*view as usize, layout, &key.0, row);
            }
        }
        Ok(found.into_views(&layouts))
    }
}

/// Calls `f(view, layout, row)` for every portable row of `views`, checking each against the
/// view's layout.
fn each_row<'a>(
    views: impl IntoIterator<Item = &'a RecordView>,
    layouts: &[RowLayout],
    mut f: impl FnMut(usize, &RowLayout, &PortableRow<'_>),
) -> Result<(), String> {
    for rv in views {
        let view = rv.view as usize;
        let layout = layouts
            .get(view)
            .ok_or_else(|| format!("feature view id {view} is unknown here"))?;
        for row in PortableRows::new(layout, &rv.data.0) {
            f(view, layout, &row.map_err(|e| e.to_string())?);
        }
    }
    Ok(())
}

/// Rows gathered per view, to send or to merge.
#[derive(Default)]
pub struct Found {
    batches: Vec<RowBatch>,
}

impl Found {
    /// The batch of `view`, started if there is none yet.
    fn batch(&mut self, view: usize) -> &mut RowBatch {
        let at = match self.batches.iter().position(|b| b.view == view) {
            Some(at) => at,
            None => {
                self.batches.push(RowBatch::new(view));
                self.batches.len() - 1
            }
        };
        &mut self.batches[at]
    }

    /// Copies a stored row (its key given) into the batch of its view.
    pub fn add(&mut self, view: usize, layout: &RowLayout, key: &[u8], row: RowRef<'_>) {
        let batch = self.batch(view);
        batch.start_row(layout, key, row.event_ts(), row.created_ts());
        for f in 0..layout.field_count() {
            if !row.is_null(f) {
                let bytes = row.field(f);
                let _ = batch.encode_field(layout, f, |out| {
                    out.extend_from_slice(bytes);
                    Ok::<(), std::convert::Infallible>(())
                });
            }
        }
    }

    /// Adds rows in the portable form.
    pub fn add_portable(
        &mut self,
        views: &[RecordView],
        layouts: &[RowLayout],
    ) -> Result<(), String> {
        each_row(views, layouts, |view, layout, row| {
            self.batch(view).push_portable(layout, row)
        })
    }

    pub fn into_views(self, layouts: &[RowLayout]) -> Vec<RecordView> {
        self.batches
            .iter()
            .map(|b| {
                let mut data = Vec::new();
                b.encode_portable(&layouts[b.view], &mut data);
                RecordView {
                    view: b.view as u32,
                    data: Blob(data),
                }
            })
            .collect()
    }

    /// The answer to `batch` from these rows alone: a scratch partition holds them, so the
    /// answer has the shard's own form.
    pub fn answer(
        &self,
        layouts: std::sync::Arc<[RowLayout]>,
        batch: &ReadBatch,
    ) -> Result<ReadOutput, crate::grid::partition::PartitionError> {
        let mut scratch = Partition::new(layouts);
        for b in &self.batches {
            let _ = scratch.apply(b);
        }
        scratch.read(batch)
    }
}

/// Splits a write's per-shard batches by the group of each row's slot (`group_of` maps a slot
/// to a group): answers, per group touched, its rows in the portable form, one entry per view,
/// in the order [`split_by_group`] of [`crate::persist::wal::portable_views`] gives them, but
/// encoded once, straight from the batches, into buffers sized once (a group's even share of
/// its view's bytes, and a quarter more).
pub fn batches_by_group(
    per_shard: &[Vec<RowBatch>],
    layouts: &[RowLayout],
    groups: usize,
    group_of: impl Fn(u16) -> usize,
) -> Vec<Option<Vec<RecordView>>> {
    let mut per_group: Vec<Vec<RecordView>> = (0..groups).map(|_| Vec::new()).collect();
    for batch in per_shard.iter().flatten() {
        let Some(layout) = layouts.get(batch.view) else {
            continue;
        };
        for i in 0..batch.len() {
            let views = &mut per_group[group_of(slot(batch.key(i)))];
            let at = match views.iter().position(|v| v.view as usize == batch.view) {
                Some(at) => at,
                None => {
                    let share = portable_len(per_shard, batch.view) / groups;
                    views.push(RecordView {
                        view: batch.view as u32,
                        data: Blob(Vec::with_capacity(share + share / 4 + 64)),
                    });
                    views.len() - 1
                }
            };
            batch.encode_portable_row(layout, i, &mut views[at].data.0);
        }
    }
    per_group
        .into_iter()
        .map(|views| (!views.is_empty()).then_some(views))
        .collect()
}

/// Splits portable rows by the group of their slot (`group_of` maps a slot to a group):
/// answers, per group touched, its rows.
pub fn split_by_group(
    views: &[RecordView],
    layouts: &[RowLayout],
    groups: usize,
    group_of: impl Fn(u16) -> usize,
) -> Result<Vec<Option<Vec<RecordView>>>, String> {
    let mut per_group: Vec<Found> = (0..groups).map(|_| Found::default()).collect();
    let mut touched = vec![false; groups];
    each_row(views, layouts, |view, layout, row| {
        let g = group_of(slot(row.key));
        touched[g] = true;
        per_group[g].batch(view).push_portable(layout, row);
    })?;
    Ok(per_group
        .into_iter()
        .zip(touched)
        .map(|(found, touched)| touched.then(|| found.into_views(layouts)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::partition::NO_CREATED;
    use crate::registry::Registry;
    use proptest::prelude::*;

    proptest! {
        /// Straight from the batches, or through the portable form and back: the same rows
        /// per group and view, in the same order.
        #[test]
        fn batches_split_by_group_as_their_portable_form_does(
            rows in proptest::collection::vec((any::<i64>(), 0usize..4, any::<bool>()), 0..200),
            groups in 1usize..5,
        ) {
            let example = include_str!("../../config/example_registry.toml");
            let layouts = RowLayout::for_registry(&Registry::parse(example, "example").unwrap());
            // Two views, four "shards", rows (with repeated keys) spread over them.
            let mut per_shard: Vec<Vec<RowBatch>> =
                (0..4).map(|_| vec![RowBatch::new(0), RowBatch::new(1)]).collect();
            for (i, (id, shard, second)) in rows.iter().enumerate() {
                let view = usize::from(*second);
                let key = (id % 50).to_le_bytes();
                per_shard[*shard][view].start_row(&layouts[view], &key, i as i64, NO_CREATED);
            }
            let group_of = |s: u16| s as usize * groups / crate::grid::routing::SLOTS;
            let direct = batches_by_group(&per_shard, &layouts, groups, group_of);
            let views = crate::persist::wal::portable_views(&per_shard, &layouts);
            let through = split_by_group(&views, &layouts, groups, group_of).unwrap();
            let bytes = |g: &Option<Vec<RecordView>>| {
                g.as_ref().map(|views| {
                    let mut v: Vec<(u32, Vec<u8>)> =
                        views.iter().map(|r| (r.view, r.data.0.clone())).collect();
                    v.sort_by_key(|(view, _)| *view);
                    v
                })
            };
            prop_assert_eq!(direct.len(), groups);
            for (a, b) in direct.iter().zip(&through) {
                prop_assert_eq!(bytes(a), bytes(b));
            }
        }
    }
}
