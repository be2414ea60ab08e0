//! [`LogStore`]: raft-rs `Storage` on a [`KvBackend`].
//!
//! Layout (all integers big-endian, so byte order is index order):
//! * tree `raft_log`:  `index (u64 BE)` → `Entry` (protobuf)
//! * tree `raft_meta`: `hard_state` → `HardState`, `conf_state` → `ConfState`,
//!   `snapshot_meta` → `SnapshotMetadata` (so opening never parses snapshot data)
//! * tree `snapshot`:  `latest` → `Snapshot` (metadata + state-machine data)
//!
//! `first_index() = snapshot index + 1`; `term(snapshot index)` comes from the snapshot
//! metadata, so it stays valid after compaction.
//!
//! `conf_state` is the membership as of the latest snapshot (or bootstrap), never of a later
//! applied entry: on restart raft replays every entry after the snapshot, conf changes
//! included, and replaying a conf change onto a conf that already contains it would fail.
//!
//! Writes are staged ([`LogStore::append`], [`LogStore::set_hard_state`], …) into one
//! [`WriteBatch`] and become visible to raft only at [`LogStore::commit`], which writes the batch
//! atomically and optionally flushes. Reads (`raft::Storage`) see committed state only.

use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::RaftError;
use crate::storage::{KeyRange, KvBackend, WriteBatch};

pub(crate) const LOG_TREE: &str = "raft_log";
pub(crate) const META_TREE: &str = "raft_meta";
pub(crate) const SNAPSHOT_TREE: &str = "snapshot";
const HARD_STATE_KEY: &[u8] = b"hard_state";
const CONF_STATE_KEY: &[u8] = b"conf_state";
const SNAPSHOT_META_KEY: &[u8] = b"snapshot_meta";
/// Where snapshots of data dirs written before index-keyed blobs lived (read, then replaced).
const LEGACY_SNAPSHOT_KEY: &[u8] = b"latest";

/// Key of the snapshot blob (the whole encoded `Snapshot`) taken at `index`. Blobs are keyed by
/// index so one can be written (and flushed) off the Ready loop before the metadata points at
/// it; the metadata's snapshot index names the current one.
/// Log entries deleted per batch by [`LogStore::compact_log_below`].
pub const COMPACT_BATCH: usize = 512;

fn snapshot_key(index: u64) -> Vec<u8> {
    let mut k = b"at-".to_vec();
    k.extend_from_slice(&index_key(index));
    k
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn encode(what: &'static str, msg: &impl protobuf::Message) -> Result<Vec<u8>, RaftError> {
    msg.write_to_bytes().map_err(|source| RaftError::Encode { what, source })
}

fn decode<M: protobuf::Message>(what: &'static str, bytes: &[u8]) -> Result<M, RaftError> {
    M::parse_from_bytes(bytes).map_err(|source| RaftError::Decode { what, source })
}

fn to_raft_error(e: RaftError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

/// Everything raft reads from metadata, kept in memory (the Ready loop is the only writer).
#[derive(Debug, Clone, Default)]
struct LogMeta {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_index: u64,
    snapshot_term: u64,
    last_index: u64,
}

/// The Raft log, hard state, conf state and latest snapshot of one node.
pub struct LogStore {
    backend: Arc<dyn KvBackend>,
    /// State as of the last [`LogStore::commit`]; what raft sees.
    meta: LogMeta,
    /// State including staged writes; becomes `meta` at commit.
    staged: LogMeta,
    batch: WriteBatch,
    /// Set when raft asked for a snapshot the stored one cannot serve (it predates the
    /// recipient's membership); the node takes a fresh one ([`LogStore::take_snapshot_request`]).
    snapshot_requested: std::sync::atomic::AtomicBool,
}

impl LogStore {
    /// Loads the log's metadata from `backend` (empty metadata for a fresh backend).
    pub fn open(backend: Arc<dyn KvBackend>) -> Result<Self, RaftError> {
        let hard_state = match backend.get(META_TREE, HARD_STATE_KEY)? {
            Some(b) => decode("hard state", &b)?,
            None => HardState::default(),
        };
        let conf_state = match backend.get(META_TREE, CONF_STATE_KEY)? {
            Some(b) => decode("conf state", &b)?,
            None => ConfState::default(),
        };
        let snap_meta: SnapshotMetadata = match backend.get(META_TREE, SNAPSHOT_META_KEY)? {
            Some(b) => decode("snapshot metadata", &b)?,
            None => SnapshotMetadata::default(),
        };
        let last_in_log = match backend.scan(LOG_TREE, KeyRange::all())?.next_back() {
            Some(pair) => {
                let (key, _) = pair?;
                let bytes: [u8; 8] =
                    key.as_slice().try_into().map_err(|_| RaftError::CorruptLog {
                        index: 0,
                        message: format!("log key of {} bytes, want 8", key.len()),
                    })?;
                Some(u64::from_be_bytes(bytes))
            }
            None => None,
        };
        let meta = LogMeta {
            hard_state,
            conf_state,
            snapshot_index: snap_meta.index,
            snapshot_term: snap_meta.term,
            last_index: last_in_log.unwrap_or(0).max(snap_meta.index),
        };
        Ok(Self {
            backend,
            staged: meta.clone(),
            meta,
            batch: WriteBatch::new(),
            snapshot_requested: Default::default(),
        })
    }

    /// True once the node has a membership (bootstrap, or a snapshot from a leader).
    pub fn is_initialized(&self) -> bool {
        self.meta.conf_state != ConfState::default()
    }

    pub fn hard_state(&self) -> &HardState {
        &self.meta.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.meta.conf_state
    }

    /// Index of the latest stored snapshot (0 if none).
    pub fn snapshot_index(&self) -> u64 {
        self.meta.snapshot_index
    }

    /// The latest stored snapshot, data included.
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>, RaftError> {
        if self.meta.snapshot_index == 0 {
            return Ok(None);
        }
        let blob = match self.backend.get(SNAPSHOT_TREE, &snapshot_key(self.meta.snapshot_index))? {
            Some(b) => Some(b),
            None => self.backend.get(SNAPSHOT_TREE, LEGACY_SNAPSHOT_KEY)?,
        };
        match blob {
            Some(b) => Ok(Some(decode("snapshot", &b)?)),
            None => Ok(None),
        }
    }

    /// Deletes the log entries up to and including `index`, in batches of [`COMPACT_BATCH`]
    /// (a single batch of ten thousand deletes held sled, and so the Ready loop, for hundreds
    /// of milliseconds). Safe on any thread once a snapshot at `index` is stored: raft reads
    /// nothing below its first index and never rewrites a committed entry. Not flushed: a
    /// crash leaves garbage that the next compaction deletes.
    pub fn compact_log_below(backend: &dyn KvBackend, index: u64) -> Result<(), RaftError> {
        let range = || KeyRange::between(index_key(0), index_key(index.saturating_add(1)));
        loop {
            let pairs: Vec<_> = backend
                .scan(LOG_TREE, range())?
                .take(COMPACT_BATCH)
                .collect::<Result<Vec<_>, _>>()?;
            let keys: Vec<Vec<u8>> = pairs.into_iter().map(|(k, _)| k).collect();
            if keys.is_empty() {
                return Ok(());
            }
            let mut batch = WriteBatch::new();
            for k in keys {
                batch.delete(LOG_TREE, k);
            }
            backend.write(batch)?;
        }
    }

    /// The backend, for [`LogStore::write_snapshot_blob`] on another thread.
    pub fn backend(&self) -> Arc<dyn KvBackend> {
        self.backend.clone()
    }

    /// Writes `snapshot` (data included) as the blob for its index and flushes. Safe on any
    /// thread: it touches only that one key, which nothing reads until
    /// [`LogStore::save_stored_snapshot_and_compact`] points the metadata at it.
    pub fn write_snapshot_blob(
        backend: &dyn KvBackend,
        snapshot: &Snapshot,
    ) -> Result<(), RaftError> {
        let mut batch = WriteBatch::new();
        batch.put(
            SNAPSHOT_TREE,
            snapshot_key(snapshot.get_metadata().index),
            encode("snapshot", snapshot)?,
        );
        backend.write(batch)?;
        backend.flush()?;
        Ok(())
    }

    /// True (once) if raft needed a newer snapshot than the stored one since the last call.
    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_requested.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Stages the bootstrap membership of a fresh log.
    pub fn initialize(&mut self, conf_state: ConfState) -> Result<(), RaftError> {
        self.batch.put(META_TREE, CONF_STATE_KEY, encode("conf state", &conf_state)?);
        self.staged.conf_state = conf_state;
        Ok(())
    }

    /// Stages `entries` (contiguous, ascending), first dropping every stored entry at or after
    /// `entries[0].index` (a leader overwriting a conflicting suffix).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), RaftError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let first_index = self.staged.snapshot_index + 1;
        if first.index < first_index || first.index > self.staged.last_index + 1 {
            return Err(RaftError::LogAppendOutOfRange {
                append_from: first.index,
                first_index,
                last_index: self.staged.last_index,
            });
        }
        if first.index <= self.staged.last_index {
            self.batch.delete_range(LOG_TREE, KeyRange::from(index_key(first.index)));
        }
        for entry in entries {
            self.batch.put(LOG_TREE, index_key(entry.index), encode("entry", entry)?);
        }
        self.staged.last_index = last.index;
        Ok(())
    }

    /// Stages the hard state (term, vote, commit).
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), RaftError> {
        self.batch.put(META_TREE, HARD_STATE_KEY, encode("hard state", &hard_state)?);
        self.staged.hard_state = hard_state;
        Ok(())
    }

    /// Stages a new commit index (from a `LightReady`).
    pub fn set_commit(&mut self, commit: u64) -> Result<(), RaftError> {
        let mut hs = self.staged.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(hs)
    }

    /// Stages a snapshot received from the leader: it replaces the whole log, the membership
    /// and the commit index.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), RaftError> {
        let meta = snapshot.get_metadata();
        if meta.index <= self.staged.snapshot_index {
            return Err(RaftError::SnapshotOutOfDate {
                index: meta.index,
                stored: self.staged.snapshot_index,
            });
        }
        self.batch.delete_range(LOG_TREE, KeyRange::all());
        self.stage_snapshot(snapshot)?;
        self.staged.last_index = meta.index;
        let mut hs = self.staged.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.set_hard_state(hs)
    }

    /// Stages a snapshot of the local state machine at an applied index, then compacts the
    /// log: entries up to and including the snapshot index are deleted.
    pub fn save_snapshot_and_compact(&mut self, snapshot: &Snapshot) -> Result<(), RaftError> {
        let meta = snapshot.get_metadata();
        self.check_local_snapshot(meta)?;
        self.batch
            .delete_range(LOG_TREE, KeyRange::between(index_key(0), index_key(meta.index + 1)));
        self.stage_snapshot(snapshot)?;
        if self.staged.hard_state.commit < meta.index {
            self.set_commit(meta.index)?;
        }
        Ok(())
    }

    /// A local snapshot must be newer than the stored one and within the log.
    fn check_local_snapshot(&self, meta: &SnapshotMetadata) -> Result<(), RaftError> {
        if meta.index <= self.staged.snapshot_index {
            return Err(RaftError::SnapshotOutOfDate {
                index: meta.index,
                stored: self.staged.snapshot_index,
            });
        }
        if meta.index > self.staged.last_index {
            return Err(RaftError::CorruptLog {
                index: meta.index,
                message: format!("snapshot beyond last log index {}", self.staged.last_index),
            });
        }
        Ok(())
    }

    /// [`LogStore::save_snapshot_and_compact`] for a snapshot whose blob
    /// [`LogStore::write_snapshot_blob`] already wrote and flushed: stages only the metadata,
    /// so the Ready loop neither copies the data again nor deletes thousands of entries; the
    /// caller runs [`LogStore::compact_log_below`] on another thread.
    pub fn save_stored_snapshot_and_compact(
        &mut self,
        meta: &SnapshotMetadata,
    ) -> Result<(), RaftError> {
        self.check_local_snapshot(meta)?;
        // The entries up to the snapshot are deleted off the loop (`compact_log_below`): raft
        // never reads below the first index again, and nothing rewrites them.
        self.stage_snapshot_meta(meta)?;
        if self.staged.hard_state.commit < meta.index {
            self.set_commit(meta.index)?;
        }
        Ok(())
    }

    fn stage_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), RaftError> {
        let meta = snapshot.get_metadata();
        self.batch.put(SNAPSHOT_TREE, snapshot_key(meta.index), encode("snapshot", snapshot)?);
        self.stage_snapshot_meta(meta)
    }

    /// Points the metadata at the blob of `meta.index` and drops older blobs (never newer
    /// ones: one may be being written for a later snapshot).
    fn stage_snapshot_meta(&mut self, meta: &SnapshotMetadata) -> Result<(), RaftError> {
        self.batch.delete_range(
            SNAPSHOT_TREE,
            KeyRange::between(snapshot_key(0), snapshot_key(meta.index)),
        );
        self.batch.delete(SNAPSHOT_TREE, LEGACY_SNAPSHOT_KEY);
        self.batch.put(META_TREE, SNAPSHOT_META_KEY, encode("snapshot metadata", meta)?);
        self.batch.put(META_TREE, CONF_STATE_KEY, encode("conf state", meta.get_conf_state())?);
        self.staged.snapshot_index = meta.index;
        self.staged.snapshot_term = meta.term;
        self.staged.conf_state = meta.get_conf_state().clone();
        Ok(())
    }

    /// Writes every staged change as one atomic batch; with `durable`, flushes it to disk
    /// before returning. Only then does raft see the new state.
    pub fn commit(&mut self, durable: bool) -> Result<(), RaftError> {
        if !self.batch.is_empty() {
            self.backend.write(std::mem::take(&mut self.batch))?;
        }
        if durable {
            self.backend.flush()?;
        }
        self.meta = self.staged.clone();
        Ok(())
    }

    fn first(&self) -> u64 {
        self.meta.snapshot_index + 1
    }

    fn read_entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Vec<Entry>, RaftError> {
        let mut out = Vec::new();
        let mut size = 0u64;
        let range = KeyRange::between(index_key(low), index_key(high));
        for pair in self.backend.scan(LOG_TREE, range)? {
            let (_, value) = pair?;
            let entry: Entry = decode("entry", &value)?;
            let want = low + out.len() as u64;
            if entry.index != want {
                return Err(RaftError::CorruptLog {
                    index: want,
                    message: format!("found entry {} instead", entry.index),
                });
            }
            size += u64::from(entry.compute_size());
            if !out.is_empty() && max_size.is_some_and(|max| size > max) {
                return Ok(out);
            }
            out.push(entry);
        }
        if out.len() as u64 != high - low {
            return Err(RaftError::CorruptLog {
                index: low + out.len() as u64,
                message: "entry missing".into(),
            });
        }
        Ok(out)
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.meta.hard_state.clone(), self.meta.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.meta.last_index + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().filter(|m| *m != raft::NO_LIMIT);
        self.read_entries(low, high, max_size).map_err(to_raft_error)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.meta.snapshot_index {
            return Ok(self.meta.snapshot_term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.meta.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let entries = self.read_entries(idx, idx + 1, None).map_err(to_raft_error)?;
        entries.first().map(|e| e.term).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.meta.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        match self.latest_snapshot().map_err(to_raft_error)? {
            // A recipient missing from the snapshot's membership would refuse it (a member
            // added after the snapshot was taken).
            Some(snap)
                if snap.get_metadata().index >= request_index
                    && conf_contains(snap.get_metadata().get_conf_state(), to) =>
            {
                Ok(snap)
            }
            // Raft retries later; the node takes a fresh snapshot after this Ready.
            _ => {
                self.snapshot_requested.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

fn conf_contains(cs: &ConfState, id: u64) -> bool {
    cs.voters.contains(&id)
        || cs.learners.contains(&id)
        || cs.voters_outgoing.contains(&id)
        || cs.learners_next.contains(&id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemBackend;

    fn entry(index: u64, term: u64, payload: &[u8]) -> Entry {
        Entry { index, term, data: payload.to_vec().into(), ..Default::default() }
    }

    fn store_with(entries: &[Entry]) -> LogStore {
        let mut s = LogStore::open(Arc::new(MemBackend::new())).expect("open");
        s.append(entries).expect("append");
        s.commit(true).expect("commit");
        s
    }

    fn terms(s: &LogStore, lo: u64, hi: u64) -> Vec<u64> {
        s.entries(lo, hi, None, GetEntriesContext::empty(false))
            .expect("entries")
            .iter()
            .map(|e| e.term)
            .collect()
    }

    fn snapshot_at(index: u64, term: u64, data: &[u8]) -> Snapshot {
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = index;
        snap.mut_metadata().term = term;
        snap.mut_metadata().mut_conf_state().voters = vec![1];
        snap.data = data.to_vec().into();
        snap
    }

    #[test]
    fn fresh_log_has_first_index_one_and_term_zero_at_zero() {
        let s = store_with(&[]);
        assert_eq!(s.first_index().expect("first"), 1);
        assert_eq!(s.last_index().expect("last"), 0);
        assert_eq!(s.term(0).expect("term"), 0);
        assert!(!s.is_initialized());
    }

    #[test]
    fn append_then_read_entries_terms_and_bounds() {
        let s = store_with(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 2, b"c")]);
        assert_eq!((s.first_index().expect("f"), s.last_index().expect("l")), (1, 3));
        assert_eq!(terms(&s, 1, 4), vec![1, 1, 2]);
        assert_eq!(s.term(3).expect("term"), 2);
        assert!(matches!(s.term(4), Err(raft::Error::Store(StorageError::Unavailable))));
    }

    #[test]
    fn append_truncates_conflicting_suffix() {
        let mut s = store_with(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]);
        s.append(&[entry(2, 2, b"B")]).expect("append");
        s.commit(true).expect("commit");
        assert_eq!(s.last_index().expect("last"), 2);
        assert_eq!(terms(&s, 1, 3), vec![1, 2]);
        let e = s.entries(2, 3, None, GetEntriesContext::empty(false)).expect("e");
        assert_eq!(&e[0].data[..], b"B");
    }

    #[test]
    fn append_with_gap_or_below_first_index_is_an_error() {
        let mut s = store_with(&[entry(1, 1, b"a")]);
        assert!(matches!(
            s.append(&[entry(3, 1, b"gap")]),
            Err(RaftError::LogAppendOutOfRange { append_from: 3, .. })
        ));
        s.append(&[entry(2, 1, b"b"), entry(3, 1, b"c")]).expect("append");
        s.save_snapshot_and_compact(&snapshot_at(2, 1, b"s")).expect("snap");
        s.commit(true).expect("commit");
        assert!(matches!(
            s.append(&[entry(2, 1, b"old")]),
            Err(RaftError::LogAppendOutOfRange { append_from: 2, .. })
        ));
    }

    #[test]
    fn staged_writes_are_invisible_until_commit() {
        let mut s = store_with(&[entry(1, 1, b"a")]);
        s.append(&[entry(2, 1, b"b")]).expect("append");
        assert_eq!(s.last_index().expect("last"), 1);
        s.commit(false).expect("commit");
        assert_eq!(s.last_index().expect("last"), 2);
    }

    #[test]
    fn compaction_keeps_term_of_snapshot_index_and_rejects_older_reads() {
        let mut s = store_with(&[
            entry(1, 1, b"a"),
            entry(2, 1, b"b"),
            entry(3, 2, b"c"),
            entry(4, 2, b"d"),
        ]);
        s.save_snapshot_and_compact(&snapshot_at(3, 2, b"state@3")).expect("snap");
        s.commit(true).expect("commit");
        assert_eq!(s.first_index().expect("first"), 4);
        assert_eq!(s.last_index().expect("last"), 4);
        assert_eq!(s.term(3).expect("term of first_index-1"), 2);
        assert!(matches!(s.term(2), Err(raft::Error::Store(StorageError::Compacted))));
        assert!(matches!(
            s.entries(3, 5, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(terms(&s, 4, 5), vec![2]);
        assert!(s.hard_state().commit >= 3);
        let snap = s.snapshot(0, 1).expect("snapshot");
        assert!(!s.take_snapshot_request());
        assert!(
            matches!(
                s.snapshot(0, 2),
                Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            ),
            "node 2 is not in the snapshot's membership"
        );
        assert!(s.take_snapshot_request(), "a fresh snapshot is requested");
        assert_eq!(&snap.data[..], b"state@3");
        assert_eq!(s.conf_state().voters, vec![1]);
    }

    #[test]
    fn entries_honour_max_size_but_return_at_least_one() {
        let big = vec![7u8; 100];
        let s = store_with(&[entry(1, 1, &big), entry(2, 1, &big), entry(3, 1, &big)]);
        let one = u64::from(entry(1, 1, &big).compute_size());
        let get = |max: u64| {
            s.entries(1, 4, max, GetEntriesContext::empty(false)).expect("entries").len()
        };
        assert_eq!(get(1), 1, "at least one entry even if it is too big");
        assert_eq!(get(2 * one), 2);
        assert_eq!(get(2 * one + 1), 2);
        assert_eq!(get(3 * one), 3);
        assert_eq!(get(raft::NO_LIMIT), 3);
    }

    #[test]
    fn received_snapshot_replaces_log_and_sets_commit() {
        let mut s = store_with(&[entry(1, 1, b"a"), entry(2, 1, b"b")]);
        s.apply_snapshot(&snapshot_at(10, 3, b"leader-state")).expect("apply");
        s.commit(true).expect("commit");
        assert_eq!((s.first_index().expect("f"), s.last_index().expect("l")), (11, 10));
        assert_eq!(s.term(10).expect("term"), 3);
        assert_eq!(s.hard_state().commit, 10);
        assert!(s.is_initialized());
    }

    #[test]
    fn a_snapshot_blob_written_off_the_loop_becomes_current_and_replaces_older_ones() {
        let backend: Arc<dyn KvBackend> = Arc::new(MemBackend::new());
        {
            let mut s = LogStore::open(backend.clone()).expect("open");
            s.initialize(ConfState::from((vec![1], vec![]))).expect("init");
            let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1, b"x")).collect();
            s.append(&entries).expect("append");
            s.save_snapshot_and_compact(&snapshot_at(2, 1, b"old")).expect("snap 2");
            s.commit(true).expect("commit");
            // Written by another thread; invisible until the metadata points at it.
            LogStore::write_snapshot_blob(s.backend().as_ref(), &snapshot_at(4, 1, b"new"))
                .expect("blob");
            assert_eq!(
                s.latest_snapshot().expect("read").map(|x| x.data.to_vec()),
                Some(b"old".to_vec())
            );
            s.save_stored_snapshot_and_compact(snapshot_at(4, 1, b"").get_metadata())
                .expect("stored snap 4");
            s.commit(true).expect("commit");
            let latest = s.latest_snapshot().expect("read").expect("a snapshot");
            assert_eq!((latest.get_metadata().index, latest.data.to_vec()), (4, b"new".to_vec()));
            assert_eq!(s.first_index().expect("first"), 5);
            // The entries below are deleted off the loop, in batches.
            LogStore::compact_log_below(backend.as_ref(), 4).expect("compact");
            let left: Vec<_> = backend.scan(LOG_TREE, KeyRange::all()).expect("scan").collect();
            assert_eq!(left.len(), 1, "only entry 5 is left");
            // The older blob is gone; an older index is refused.
            assert!(backend.get(SNAPSHOT_TREE, &snapshot_key(2)).expect("get").is_none());
            assert!(
                s.save_stored_snapshot_and_compact(snapshot_at(3, 1, b"").get_metadata()).is_err()
            );
        }
        let s = LogStore::open(backend).expect("reopen");
        assert_eq!(s.snapshot_index(), 4);
        assert_eq!(
            s.latest_snapshot().expect("read").map(|x| x.data.to_vec()),
            Some(b"new".to_vec())
        );
    }

    #[test]
    fn reopening_the_backend_restores_metadata_and_log() {
        let backend: Arc<dyn KvBackend> = Arc::new(MemBackend::new());
        {
            let mut s = LogStore::open(backend.clone()).expect("open");
            s.initialize(ConfState::from((vec![1], vec![]))).expect("init");
            s.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")]).expect("append");
            s.save_snapshot_and_compact(&snapshot_at(1, 1, b"s")).expect("snap");
            let hs = HardState { term: 1, commit: 3, ..Default::default() };
            s.set_hard_state(hs).expect("hs");
            s.commit(true).expect("commit");
        }
        let s = LogStore::open(backend).expect("reopen");
        assert_eq!((s.first_index().expect("f"), s.last_index().expect("l")), (2, 3));
        assert_eq!(s.hard_state().commit, 3);
        assert_eq!(s.snapshot_index(), 1);
        assert_eq!(terms(&s, 2, 4), vec![1, 1]);
    }
}
