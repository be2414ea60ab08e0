//! Periodic snapshots without stalling the Ready loop (same [`RaftNode`] type, third `impl`).
//!
//! A snapshot serializes the whole state machine, which grows with the cluster: done inline it
//! stopped the loop for hundreds of milliseconds under write load, long enough for followers to
//! miss heartbeats and elect someone else (`bench -- raft`, 256 clients). So when the state
//! machine defers ([`SnapshotData::Deferred`]), the loop
//! 1. records index, term, membership and address book as of `applied`, and takes the state
//!    machine's cheap capture (e.g. a clone) — all at the same applied index;
//! 2. on a blocking thread: runs the encoding job, writes the snapshot blob under its own index
//!    key and flushes it ([`LogStore::write_snapshot_blob`]), then sends
//!    [`Input::SnapshotEncoded`] back — the data never crosses the loop;
//! 3. points the log's metadata at that blob, unless a newer snapshot was installed meanwhile,
//!    and deletes the log up to its index on a blocking thread again
//!    ([`LogStore::compact_log_below`], in small batches). Entries after that index stay in the log, so
//!    nothing is lost if the process dies at any point: until step 3 the previous snapshot plus
//!    the log still hold it (an orphaned newer blob is dropped by a later snapshot).
//!
//! Measured (`bench -- raft`, 256 clients): with the encoding off the loop but the 25 MB blob
//! still stored from it, p99 was ~600 ms; with the blob written here too, ~140 ms.
//!
//! At most one deferred snapshot is in flight. A snapshot raft itself asks for (to catch up a
//! follower) and the one on a clean stop are still taken inline (`RaftNode::take_snapshot`).

use raft::Storage;
use raft::eraftpb::{ConfState, Snapshot};

use super::handle::Input;
use super::log_store::LogStore;
use super::members::{AddressBook, encode_envelope};
use super::node::RaftNode;
use super::{RaftError, SnapshotData, StateMachine};

/// A deferred snapshot, encoded, with the metadata captured when it was started.
pub struct EncodedSnapshot {
    index: u64,
    term: u64,
    conf_state: ConfState,
    /// `None`: the blob is already stored (written off the loop).
    data: Option<Vec<u8>>,
    /// When the snapshot was started (`berth_raft_snapshot_duration_seconds`).
    started: std::time::Instant,
}

impl<S: StateMachine> RaftNode<S> {
    /// Starts the periodic snapshot at the applied index: inline when the state machine's data
    /// is ready, else on a blocking thread.
    pub(super) fn start_periodic_snapshot(&mut self) -> Result<(), RaftError> {
        let index = self.applied;
        if index <= self.raw.store().snapshot_index() {
            return Ok(());
        }
        let term = self.raw.store().term(index)?;
        let conf_state = self.conf_state.clone();
        let started = std::time::Instant::now();
        match self.state_machine.snapshot_data() {
            SnapshotData::Ready(state) => {
                let data = Some(encode_envelope(&self.book, &state));
                self.store_encoded_snapshot(EncodedSnapshot {
                    index,
                    term,
                    conf_state,
                    data,
                    started,
                })
            }
            SnapshotData::Deferred(job) => {
                let book: AddressBook = self.book.clone();
                let inputs = self.weak_inputs.clone();
                let backend = self.raw.store().backend();
                self.snapshot_in_flight = true;
                tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let snapshot =
                        snapshot_message(index, term, &conf_state, encode_envelope(&book, &job()));
                    let bytes = snapshot.data.len();
                    let written = LogStore::write_snapshot_blob(backend.as_ref(), &snapshot);
                    tracing::debug!(
                        index,
                        bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "snapshot encoded and written"
                    );
                    let Some(tx) = inputs.upgrade() else { return }; // the node stopped
                    let data = match written {
                        Ok(()) => None,
                        Err(e) => {
                            // The loop stores it itself (and meets a real storage fault there).
                            tracing::warn!(index, error = %e, "writing the snapshot blob failed; storing it inline");
                            Some(snapshot.data.to_vec())
                        }
                    };
                    let encoded = EncodedSnapshot { index, term, conf_state, data, started };
                    let _ = tx.blocking_send(Input::SnapshotEncoded(encoded));
                });
                Ok(())
            }
        }
    }

    /// Stores a snapshot and compacts the log up to it (flushed), unless the log already holds
    /// a snapshot at least as new.
    pub(super) fn store_encoded_snapshot(&mut self, s: EncodedSnapshot) -> Result<(), RaftError> {
        if s.index <= self.raw.store().snapshot_index() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let store = self.raw.mut_store();
        let stored_off_loop = s.data.is_none();
        let snapshot = snapshot_message(s.index, s.term, &s.conf_state, s.data.unwrap_or_default());
        if stored_off_loop {
            store.save_stored_snapshot_and_compact(snapshot.get_metadata())?;
        } else {
            store.save_snapshot_and_compact(&snapshot)?;
        }
        store.commit(true)?;
        self.config.metrics.snapshot_taken(s.started.elapsed());
        if stored_off_loop {
            let (backend, index) = (store.backend(), s.index);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = LogStore::compact_log_below(backend.as_ref(), index) {
                    tracing::warn!(index, error = %e, "compacting the log failed; the next snapshot retries");
                }
            });
        }
        tracing::debug!(
            id = self.config.id,
            index = s.index,
            store_ms = started.elapsed().as_millis() as u64,
            "state machine snapshot stored"
        );
        Ok(())
    }
}

fn snapshot_message(index: u64, term: u64, conf_state: &ConfState, data: Vec<u8>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let meta = snapshot.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(conf_state.clone());
    snapshot.data = data.into();
    snapshot
}
