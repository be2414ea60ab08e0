//! [`EventStore`]: where an [`super::EventLog`] keeps its events, by index, as JSON texts.
//!
//! Two implementations: [`super::files::FileEvents`] (append-only segment files in the data dir:
//! what a controller runs on) and [`super::kv_store::KvEvents`] (batches in a tree of a
//! [`crate::storage::KvBackend`]: in-memory logs of unit tests, and the sled tree where earlier
//! versions kept events, moved into files when a controller starts). Both pass
//! [`conformance`].
//!
//! The contract: events are stored in runs of consecutive indexes; an index already stored is
//! never written again (a restart re-derives the events after its snapshot, identical, and they
//! are skipped); reads return contiguous events and stop at the first missing index.

use crate::storage::KvError;

pub trait EventStore: Send + Sync {
    /// Stores the events `start, start + 1, …` (their JSON texts, one line each: compact JSON
    /// holds no raw newline). Indexes already stored are skipped.
    fn append(&self, start: u64, jsons: &[&str]) -> Result<(), KvError>;

    /// The stored events `from..end`, contiguous from `from` (fewer when one is missing).
    fn read(&self, from: u64, end: u64) -> Vec<(u64, String)>;

    /// The highest index stored.
    fn last_stored(&self) -> Option<u64>;

    /// The first index at or after `from` that is not stored (`from` itself when it is not).
    fn first_missing(&self, from: u64) -> u64;

    /// Forgets stored events below `first` (whole runs; a run holding `first` may stay, and
    /// readers below `first` are refused by the log before they get here).
    fn delete_below(&self, first: u64) -> Result<(), KvError>;

    /// Makes every appended event durable (fsync).
    fn sync(&self) -> Result<(), KvError>;
}

/// The contract, run against each implementation by its tests.
#[cfg(test)]
pub mod conformance {
    use super::EventStore;

    fn texts(start: u64, n: u64) -> Vec<String> {
        (start..start + n).map(|i| format!("{{\"index\":{i}}}")).collect()
    }

    pub fn append(s: &dyn EventStore, start: u64, n: u64) {
        let t = texts(start, n);
        let refs: Vec<&str> = t.iter().map(String::as_str).collect();
        s.append(start, &refs).expect("append");
    }

    fn indexes(r: &[(u64, String)]) -> Vec<u64> {
        r.iter().map(|(i, _)| *i).collect()
    }

    pub fn reads_across_runs_from_the_middle_of_one(s: &dyn EventStore) {
        append(s, 1, 3);
        append(s, 4, 1);
        append(s, 5, 4);
        assert_eq!(indexes(&s.read(2, 7)), vec![2, 3, 4, 5, 6]);
        let r = s.read(6, 100);
        assert_eq!(indexes(&r), vec![6, 7, 8]);
        assert_eq!(r[0].1, "{\"index\":6}");
        assert_eq!(s.last_stored(), Some(8));
        assert!(s.read(9, 20).is_empty());
    }

    pub fn a_gap_ends_the_read(s: &dyn EventStore) {
        append(s, 1, 2);
        append(s, 10, 2);
        assert_eq!(indexes(&s.read(1, 20)), vec![1, 2]);
        assert!(s.read(5, 20).is_empty());
        assert_eq!(indexes(&s.read(10, 20)), vec![10, 11]);
        assert_eq!(s.last_stored(), Some(11));
        assert_eq!((s.first_missing(1), s.first_missing(2)), (3, 3));
        assert_eq!((s.first_missing(5), s.first_missing(10)), (5, 12));
        // The gap filled later (a member's backfill) joins both sides.
        append(s, 3, 4);
        assert_eq!(s.first_missing(1), 7);
        append(s, 7, 3);
        assert_eq!(indexes(&s.read(1, 20)), (1..=11).collect::<Vec<_>>());
        assert_eq!(s.first_missing(1), 12);
    }

    pub fn stored_indexes_are_not_written_again(s: &dyn EventStore) {
        append(s, 1, 4);
        // A replay re-derives 3..=6: 3 and 4 are kept as they are, 5 and 6 added.
        let replay = [
            "{\"index\":3,\"again\":true}",
            "{\"index\":4,\"again\":true}",
            "{\"index\":5}",
            "{\"index\":6}",
        ];
        s.append(3, &replay).expect("append");
        let r = s.read(1, 10);
        assert_eq!(indexes(&r), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(r[2].1, "{\"index\":3}");
        assert_eq!(r[4].1, "{\"index\":5}");
    }

    pub fn deleting_below_keeps_what_first_needs(s: &dyn EventStore) {
        append(s, 1, 3);
        append(s, 10, 3);
        append(s, 20, 3);
        s.delete_below(11).expect("delete");
        assert!(s.read(1, 4).is_empty());
        assert_eq!(indexes(&s.read(11, 13)), vec![11, 12]);
        s.delete_below(21).expect("delete");
        assert!(s.read(10, 13).is_empty());
        assert_eq!(indexes(&s.read(21, 30)), vec![21, 22]);
        s.sync().expect("sync");
        assert_eq!(s.last_stored(), Some(22));
    }
}
