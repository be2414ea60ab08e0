//! [`KvEvents`]: an [`EventStore`] in the `events` tree of a [`KvBackend`] — the in-memory logs
//! of unit tests, and the sled tree where earlier versions kept the events (read once at start,
//! to move them into [`super::files::FileEvents`]).
//!
//! Layout: one value per stored batch, keyed by the batch's first index (8 bytes, big-endian),
//! holding the events' JSON texts joined by `\n`. A batch's events have consecutive indexes, so
//! the `i`th line is index `start + i` and a reader skips lines without parsing them. Earlier
//! versions stored one event per key: the same layout (a batch of one).
//!
//! Not the controller's store: sled copies a leaf page on every insert, and tens of thousands of
//! 2–4 KiB events spent most of the writer thread copying and re-writing large pages.

use super::store::EventStore;
use crate::storage::{KeyRange, KvBackend, KvError, WriteBatch};
use std::sync::Arc;

pub const EVENTS_TREE: &str = "events";

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn start_of(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.try_into().ok()?))
}

/// The stored value of a batch of JSON texts.
fn encode<'a>(jsons: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, json) in jsons.enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(json.as_bytes());
    }
    out
}

/// Each line of a stored batch starting at `start`, with its index.
fn lines(start: u64, value: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    (start..).zip(value.split(|b| *b == b'\n'))
}

/// Puts a batch of consecutive events starting at `start` into `batch`, and deletes any key
/// the batch covers after its first (what an earlier version stored one event per key), so
/// batches do not overlap.
fn put(batch: &mut WriteBatch, start: u64, count: u64, value: Vec<u8>) {
    if count > 1 {
        let end = start.saturating_add(count);
        batch.delete_range(EVENTS_TREE, KeyRange::between(key(start + 1), key(end)));
    }
    batch.put(EVENTS_TREE, key(start), value);
}

/// The start of the stored batch holding `index`, or of the last batch before it.
fn batch_at_or_below(backend: &dyn KvBackend, index: u64) -> Option<u64> {
    let range = KeyRange::between(key(0), key(index.saturating_add(1)));
    let mut it = backend.scan(EVENTS_TREE, range).ok()?;
    let (k, _) = it.next_back()?.ok()?;
    start_of(&k)
}

/// The highest index stored.
fn last_stored(backend: &dyn KvBackend) -> Option<u64> {
    let mut it = backend.scan(EVENTS_TREE, KeyRange::all()).ok()?;
    let (k, v) = it.next_back()?.ok()?;
    let start = start_of(&k)?;
    lines(start, &v).last().map(|(i, _)| i)
}

/// The first index at or after `from` that no stored batch holds.
fn first_missing(backend: &dyn KvBackend, from: u64) -> u64 {
    let Some(first) = batch_at_or_below(backend, from) else { return from };
    let Ok(iter) = backend.scan(EVENTS_TREE, KeyRange::from(key(first))) else { return from };
    let mut want = from;
    for item in iter {
        let Ok((k, v)) = item else { break };
        let Some(start) = start_of(&k) else { break };
        if start > want {
            break; // a gap
        }
        want = want.max(start.saturating_add(lines(start, &v).count() as u64));
    }
    want
}

/// The JSON texts of the contiguous stored events `from..end` (fewer when a gap comes first),
/// each with its index.
fn read(backend: &dyn KvBackend, from: u64, end: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    if from >= end {
        return out;
    }
    let first = batch_at_or_below(backend, from).unwrap_or(from);
    let Ok(iter) = backend.scan(EVENTS_TREE, KeyRange::between(key(first), key(end))) else {
        return out;
    };
    let mut want = from;
    'batches: for item in iter {
        let Ok((k, v)) = item else { break };
        let Some(start) = start_of(&k) else { break };
        if start > want {
            break; // a gap
        }
        for (index, line) in lines(start, &v) {
            if index < want {
                continue; // before `from`, or already read from an overlapping batch
            }
            if index >= end {
                break 'batches;
            }
            match std::str::from_utf8(line) {
                Ok(s) => out.push((index, s.to_string())),
                Err(_) => break 'batches,
            }
            want = index + 1;
        }
    }
    out
}

/// Deletes every batch that lies wholly below `first` (a batch holding `first` stays: readers
/// skip its older lines).
fn delete_below(backend: &dyn KvBackend, first: u64) -> Result<(), KvError> {
    let Some(keep) = batch_at_or_below(backend, first) else { return Ok(()) };
    let mut batch = WriteBatch::new();
    batch.delete_range(EVENTS_TREE, KeyRange::between(key(0), key(keep)));
    backend.write(batch)
}

/// Events in a key-value tree (see the module docs).
pub struct KvEvents {
    backend: Arc<dyn KvBackend>,
}

impl KvEvents {
    pub fn new(backend: Arc<dyn KvBackend>) -> KvEvents {
        KvEvents { backend }
    }

    /// The first index stored at or after `index`.
    pub fn first_stored_after(&self, index: u64) -> Option<u64> {
        let mut it = self.backend.scan(EVENTS_TREE, KeyRange::from(key(index))).ok()?;
        let (k, _) = it.next()?.ok()?;
        start_of(&k)
    }

    /// Removes every stored event (after they moved elsewhere).
    pub fn clear(&self) -> Result<(), KvError> {
        let mut batch = WriteBatch::new();
        batch.delete_range(EVENTS_TREE, KeyRange::all());
        self.backend.write(batch)?;
        self.backend.flush()
    }
}

impl EventStore for KvEvents {
    fn append(&self, start: u64, jsons: &[&str]) -> Result<(), KvError> {
        let n = jsons.len() as u64;
        let stored = read(&*self.backend, start, start.saturating_add(n)).len();
        let (Some(rest), Some(first)) = (jsons.get(stored..), start.checked_add(stored as u64))
        else {
            return Ok(());
        };
        if rest.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        put(&mut batch, first, rest.len() as u64, encode(rest.iter().copied()));
        self.backend.write(batch)
    }

    fn read(&self, from: u64, end: u64) -> Vec<(u64, String)> {
        read(&*self.backend, from, end)
    }

    fn last_stored(&self) -> Option<u64> {
        last_stored(&*self.backend)
    }

    fn first_missing(&self, from: u64) -> u64 {
        first_missing(&*self.backend, from)
    }

    fn delete_below(&self, first: u64) -> Result<(), KvError> {
        delete_below(&*self.backend, first)
    }

    fn sync(&self) -> Result<(), KvError> {
        self.backend.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::store::conformance;
    use crate::storage::MemBackend;

    fn events() -> KvEvents {
        KvEvents::new(Arc::new(MemBackend::new()))
    }

    #[test]
    fn conforms() {
        conformance::reads_across_runs_from_the_middle_of_one(&events());
        conformance::a_gap_ends_the_read(&events());
        conformance::stored_indexes_are_not_written_again(&events());
        conformance::deleting_below_keeps_what_first_needs(&events());
    }

    #[test]
    fn single_event_keys_of_earlier_versions_read_as_batches_of_one() {
        let b = Arc::new(MemBackend::new());
        for i in 1..=6u64 {
            let mut batch = WriteBatch::new();
            batch.put(EVENTS_TREE, key(i), format!("{{\"index\":{i}}}").into_bytes());
            b.write(batch).expect("write");
        }
        let s = KvEvents::new(b.clone());
        let got: Vec<u64> = s.read(2, 10).iter().map(|(i, _)| *i).collect();
        assert_eq!(got, vec![2, 3, 4, 5, 6]);
        assert_eq!(s.last_stored(), Some(6));
        s.clear().expect("clear");
        assert_eq!(s.last_stored(), None);
    }
}
