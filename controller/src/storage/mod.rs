//! # storage — the narrow key-value seam under Raft (and, later, the store)
//!
//! Owns: the [`KvBackend`] trait, its batch type [`WriteBatch`], its error [`KvError`], and two
//! implementations:
//! * [`SledBackend`] — the real one, on sled 0.34 (`sled_backend.rs`);
//! * [`MemBackend`] — a fake for unit tests, a `BTreeMap` per tree (`mem_backend.rs`).
//!
//! Data flow: callers name a tree (`"raft_log"`, `"raft_meta"`, `"snapshot"`, …), read with
//! [`KvBackend::get`] / [`KvBackend::scan`], and write only through [`KvBackend::write`], one
//! atomic [`WriteBatch`] (puts, deletes, range deletes, possibly across trees). Nothing is
//! durable until [`KvBackend::flush`] returns: sled's default only syncs every 500 ms.
//!
//! Must not touch: Raft, the state machine, tokio. No sled type appears in this module's public
//! API, so the backend can be replaced without touching callers. Both implementations pass the
//! same conformance suite (`conformance.rs`).

mod mem_backend;
mod sled_backend;

#[cfg(test)]
mod conformance;

use std::ops::{Bound, RangeBounds};

pub use mem_backend::MemBackend;
pub use sled_backend::SledBackend;

/// Errors from a key-value backend. Backend-specific errors are carried as text so that no
/// backend type leaks through the seam.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The backend could not be opened (bad path, lock held by another process, corrupt files).
    #[error("cannot open storage at {path}: {message}")]
    Open { path: String, message: String },
    /// A read, write or flush failed inside the backend.
    #[error("storage {op} failed on tree {tree:?}: {message}")]
    Backend { op: &'static str, tree: String, message: String },
}

/// A half-open or open key range over one tree, in byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key of the tree.
    pub fn all() -> Self {
        Self { start: Bound::Unbounded, end: Bound::Unbounded }
    }

    /// Keys `>= start`.
    pub fn from(start: impl Into<Vec<u8>>) -> Self {
        Self { start: Bound::Included(start.into()), end: Bound::Unbounded }
    }

    /// Keys in `[start, end)`.
    pub fn between(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self { start: Bound::Included(start.into()), end: Bound::Excluded(end.into()) }
    }

    /// True if `key` falls inside the range.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    /// True if no key can fall in the range (start after end, or an empty half-open range).
    /// Backends check this first: `BTreeMap::range` panics on such ranges.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e))
            | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        }
    }
}

impl RangeBounds<Vec<u8>> for KeyRange {
    fn start_bound(&self) -> Bound<&Vec<u8>> {
        self.start.as_ref()
    }
    fn end_bound(&self) -> Bound<&Vec<u8>> {
        self.end.as_ref()
    }
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        tree: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        tree: String,
        key: Vec<u8>,
    },
    /// Deletes every key of `tree` inside `range`, including keys put earlier in the same batch.
    DeleteRange {
        tree: String,
        range: KeyRange,
    },
}

/// Writes applied atomically and in order by [`KvBackend::write`]: either all of them are
/// visible afterwards or none is. A later op wins over an earlier one on the same key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, tree: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put { tree: tree.to_owned(), key: key.into(), value: value.into() });
    }

    pub fn delete(&mut self, tree: &str, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete { tree: tree.to_owned(), key: key.into() });
    }

    pub fn delete_range(&mut self, tree: &str, range: KeyRange) {
        self.ops.push(WriteOp::DeleteRange { tree: tree.to_owned(), range });
    }

    /// Moves every op of `other` to the end of this batch.
    pub fn append(&mut self, other: &mut WriteBatch) {
        self.ops.append(&mut other.ops);
    }

    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key-value pair read from a tree.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// Iterator returned by [`KvBackend::scan`], ascending by key; `.rev()` gives descending order.
pub type KvIter = Box<dyn DoubleEndedIterator<Item = Result<KvPair, KvError>> + Send>;

/// A key-value store with named trees (independent key spaces), atomic multi-tree batches and
/// an explicit durability point.
///
/// Trees are created on first use. Reads see every completed `write`, flushed or not.
pub trait KvBackend: Send + Sync + 'static {
    /// The value stored at `key` in `tree`, if any.
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// The pairs of `tree` whose keys fall in `range`, in ascending byte order.
    fn scan(&self, tree: &str, range: KeyRange) -> Result<KvIter, KvError>;

    /// Applies `batch` atomically. Not durable until [`KvBackend::flush`].
    fn write(&self, batch: WriteBatch) -> Result<(), KvError>;

    /// Makes every completed `write` durable (fsync) before returning.
    fn flush(&self) -> Result<(), KvError>;
}
