//! [`FileEvents`]: the controller's [`EventStore`] — append-only segment files in
//! `DATA_DIR/events/`.
//!
//! A segment holds a run of consecutive events, one JSON text per line, and is named by its
//! first index (`00000000000000000001.events`). The writer appends to the last segment while
//! the run goes on, up to [`SEGMENT_BYTES`]; a run that starts elsewhere (a member's backfill
//! into the hole a snapshot left) gets a segment of its own. In memory: each segment's line
//! offsets (8 bytes an event), so a read is one positioned read per segment.
//!
//! Durability: appends are written, not flushed; [`EventStore::sync`] flushes them, and the
//! log calls it before a Raft snapshot captures the state (`store::Store::snapshot`), so the
//! snapshot's event cursor never covers an event a crash could lose. A crash loses at most
//! events after the last snapshot, which replaying the Raft log derives again. At open, a torn
//! last line (a crash mid-write) is cut off.
//!
//! Why not the sled tree beside the Raft log: sled copies a leaf page on every insert, and the
//! event writer of `bench -- sim` (50,000 tasks, ~150,000 events of 2–4 KiB) spent most of its
//! time copying and re-writing pages; storing none at all took a third off the controllers' CPU.

use super::store::EventStore;
use crate::storage::KvError;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A segment stops taking appends past this size (retention deletes whole segments).
pub const SEGMENT_BYTES: u64 = 64 << 20;

const SUFFIX: &str = ".events";

struct Segment {
    path: PathBuf,
    file: File,
    first: u64,
    /// Where each line starts, then where the last one ends (`len() == count + 1`).
    offsets: Vec<u64>,
}

impl Segment {
    fn next(&self) -> u64 {
        self.first + (self.offsets.len() as u64 - 1)
    }
    fn bytes(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }
    fn holds(&self, index: u64) -> bool {
        index >= self.first && index < self.next()
    }
}

#[derive(Default)]
struct Segments {
    by_first: BTreeMap<u64, Segment>,
    /// Segments appended to since the last sync.
    dirty: BTreeSet<u64>,
    /// A segment file was created or removed since the last sync.
    dir_dirty: bool,
}

impl Segments {
    /// The segment holding `index`.
    fn holding(&self, index: u64) -> Option<&Segment> {
        self.by_first.range(..=index).next_back().map(|(_, s)| s).filter(|s| s.holds(index))
    }
    /// The first index of the first segment after `index`.
    fn next_start_after(&self, index: u64) -> Option<u64> {
        self.by_first.range(index.saturating_add(1)..).next().map(|(k, _)| *k)
    }
}

pub struct FileEvents {
    dir: PathBuf,
    /// [`SEGMENT_BYTES`] (smaller in tests).
    segment_bytes: u64,
    segments: Mutex<Segments>,
    /// Held through a whole [`EventStore::sync`]: a second sync returns only once the first
    /// one's flushes are done (it found nothing dirty because the first took it).
    syncing: Mutex<()>,
}

fn io_error(op: &'static str, path: &Path, e: std::io::Error) -> KvError {
    KvError::Backend { op, tree: path.display().to_string(), message: e.to_string() }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}{SUFFIX}"))
}

/// The `"index"` of an event's JSON text, if it parses.
fn index_of(line: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("index")?.as_u64()
}

impl FileEvents {
    /// Opens (creating) the store in `dir`, cutting off a torn tail of any segment.
    pub fn open(dir: &Path) -> Result<FileEvents, KvError> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    /// [`Self::open`] with segments of `segment_bytes`.
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<FileEvents, KvError> {
        let open_err = |e: std::io::Error| KvError::Open {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(open_err)?;
        let mut segments = Segments::default();
        for entry in std::fs::read_dir(dir).map_err(open_err)? {
            let path = entry.map_err(open_err)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some(first) = name.strip_suffix(SUFFIX).and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            match Self::open_segment(&path, first)? {
                Some(seg) => {
                    segments.by_first.insert(first, seg);
                }
                None => {
                    std::fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
                    segments.dir_dirty = true;
                }
            }
        }
        Ok(FileEvents {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: Mutex::new(segments),
            syncing: Mutex::new(()),
        })
    }

    /// A segment's file and line offsets; `None` when it holds no whole event.
    fn open_segment(path: &Path, first: u64) -> Result<Option<Segment>, KvError> {
        let data = std::fs::read(path).map_err(|e| io_error("read", path, e))?;
        let mut offsets = vec![0u64];
        offsets.extend(
            data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i as u64 + 1),
        );
        // A crash may leave a partial line (no newline yet), or a last line that is not the
        // event its place says: drop from the end until the last line is whole.
        while offsets.len() > 1 {
            let n = offsets.len();
            let line = &data[offsets[n - 2] as usize..offsets[n - 1] as usize - 1];
            if index_of(line) == Some(first + n as u64 - 2) {
                break;
            }
            offsets.pop();
        }
        let keep = offsets.last().copied().unwrap_or(0);
        if keep < data.len() as u64 {
            tracing::warn!(path = %path.display(), kept = keep, dropped = data.len() as u64 - keep,
                "event segment had a torn tail (a crash mid-write); cut off, the Raft log derives those events again");
        }
        if offsets.len() == 1 {
            return Ok(None);
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| io_error("open", path, e))?;
        if keep < data.len() as u64 {
            file.set_len(keep).map_err(|e| io_error("truncate", path, e))?;
            file.sync_all().map_err(|e| io_error("sync", path, e))?;
        }
        Ok(Some(Segment { path: path.to_path_buf(), file, first, offsets }))
    }

    /// Appends `jsons` (events `start…`, none stored yet, none reaching a later segment) to the
    /// segment that ends at `start`, or to a new one.
    fn write_run(&self, segs: &mut Segments, start: u64, jsons: &[&str]) -> Result<(), KvError> {
        let tail = segs
            .by_first
            .range(..=start)
            .next_back()
            .map(|(k, s)| (*k, s.next(), s.bytes()))
            .filter(|(_, next, bytes)| *next == start && *bytes < self.segment_bytes)
            .map(|(k, _, _)| k);
        let key = match tail {
            Some(k) => k,
            None => {
                let path = segment_path(&self.dir, start);
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(|e| io_error("create", &path, e))?;
                // A leftover file of that name holds nothing this store knows of.
                file.set_len(0).map_err(|e| io_error("truncate", &path, e))?;
                segs.by_first.insert(start, Segment { path, file, first: start, offsets: vec![0] });
                segs.dir_dirty = true;
                start
            }
        };
        let Some(seg) = segs.by_first.get_mut(&key) else { return Ok(()) };
        let mut buf = Vec::with_capacity(jsons.iter().map(|j| j.len() + 1).sum());
        let mut offsets = Vec::with_capacity(jsons.len());
        let base = seg.bytes();
        for json in jsons {
            buf.extend_from_slice(json.as_bytes());
            buf.push(b'\n');
            offsets.push(base + buf.len() as u64);
        }
        if let Err(e) = seg.file.write_all(&buf) {
            // Leave no partial line behind: the next append starts on a line boundary.
            let _ = seg.file.set_len(base);
            return Err(io_error("write", &seg.path, e));
        }
        seg.offsets.extend(offsets);
        segs.dirty.insert(key);
        Ok(())
    }
}

impl EventStore for FileEvents {
    fn append(&self, start: u64, jsons: &[&str]) -> Result<(), KvError> {
        let mut segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = start;
        let mut rest = jsons;
        while !rest.is_empty() {
            if let Some(seg) = segs.holding(at) {
                // Stored already (a replay after a restart): skip to the end of that segment.
                let skip = (seg.next() - at).min(rest.len() as u64);
                at += skip;
                rest = &rest[skip as usize..];
                continue;
            }
            let room = segs.next_start_after(at).map_or(u64::MAX, |next| next - at);
            let n = (rest.len() as u64).min(room) as usize;
            self.write_run(&mut segs, at, &rest[..n])?;
            at += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    fn read(&self, from: u64, end: u64) -> Vec<(u64, String)> {
        let segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let mut want = from;
        while want < end {
            let Some(seg) = segs.holding(want) else { break };
            let hi = end.min(seg.next());
            let lo_at = seg.offsets[(want - seg.first) as usize];
            let hi_at = seg.offsets[(hi - seg.first) as usize];
            let mut buf = vec![0u8; (hi_at - lo_at) as usize];
            if let Err(e) = seg.file.read_exact_at(&mut buf, lo_at) {
                tracing::warn!(path = %seg.path.display(), error = %e, "reading events failed");
                break;
            }
            for line in buf.split(|b| *b == b'\n').take((hi - want) as usize) {
                match std::str::from_utf8(line) {
                    Ok(s) => out.push((want, s.to_string())),
                    Err(_) => return out,
                }
                want += 1;
            }
        }
        out
    }

    fn last_stored(&self) -> Option<u64> {
        let segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        segs.by_first.values().next_back().map(|s| s.next() - 1)
    }

    fn first_missing(&self, from: u64) -> u64 {
        let segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = from;
        while let Some(seg) = segs.holding(at) {
            at = seg.next();
        }
        at
    }

    fn delete_below(&self, first: u64) -> Result<(), KvError> {
        let mut segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<u64> =
            segs.by_first.values().filter(|s| s.next() <= first).map(|s| s.first).collect();
        for k in gone {
            if let Some(seg) = segs.by_first.remove(&k) {
                std::fs::remove_file(&seg.path).map_err(|e| io_error("remove", &seg.path, e))?;
                segs.dirty.remove(&k);
                segs.dir_dirty = true;
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), KvError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        // The handles are cloned so that appends go on while the disk flushes.
        let (files, dir_dirty) = {
            let mut segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            let dirty = std::mem::take(&mut segs.dirty);
            let mut files = Vec::new();
            for k in dirty {
                if let Some(seg) = segs.by_first.get(&k) {
                    let f = seg.file.try_clone().map_err(|e| io_error("sync", &seg.path, e))?;
                    files.push((k, f, seg.path.clone()));
                }
            }
            (files, std::mem::take(&mut segs.dir_dirty))
        };
        let mut failed = None;
        let mut unflushed = Vec::new();
        for (k, f, path) in files {
            if let Err(e) = f.sync_data() {
                failed.get_or_insert(io_error("sync", &path, e));
                unflushed.push(k);
            }
        }
        let dir_failed = dir_dirty
            && File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| {
                    failed.get_or_insert(io_error("sync", &self.dir, e));
                })
                .is_err();
        let Some(e) = failed else { return Ok(()) };
        // Still dirty: the next sync tries them again instead of reporting success.
        let mut segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        segs.dirty.extend(unflushed);
        segs.dir_dirty |= dir_failed;
        Err(e)
    }
}

/// The controller's event store: `DATA_DIR/events/`. Events an earlier version kept in the
/// store's `events` tree are moved into it first (once; the tree is emptied after).
pub fn open_in(
    data_dir: &Path,
    kv: std::sync::Arc<dyn crate::storage::KvBackend>,
) -> Result<FileEvents, crate::error::Error> {
    let err = |e: KvError| crate::error::Error::Storage(format!("event store: {e}"));
    let files = FileEvents::open(&data_dir.join("events")).map_err(err)?;
    let old = super::kv_store::KvEvents::new(kv);
    if old.last_stored().is_some() {
        let mut from = 0;
        let mut moved = 0usize;
        loop {
            // Runs of up to 4,096 events, each from the first index stored after the last run.
            let run = old.read(from, from.saturating_add(4096));
            let Some(&(start, _)) = run.first() else {
                match old.first_stored_after(from) {
                    // An unreadable event is left behind (it is refetched like any lost one).
                    Some(next) if next == from => from += 1,
                    Some(next) => from = next,
                    None => break,
                }
                continue;
            };
            let jsons: Vec<&str> = run.iter().map(|(_, j)| j.as_str()).collect();
            files.append(start, &jsons).map_err(err)?;
            moved += run.len();
            from = start + run.len() as u64;
        }
        files.sync().map_err(err)?;
        old.clear().map_err(err)?;
        tracing::info!(events = moved, "moved the stored events into the event files");
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::kv_store::EVENTS_TREE as EVENTS_TREE_OF_KV;
    use crate::events::store::conformance;

    #[test]
    fn conforms() {
        for case in [
            conformance::reads_across_runs_from_the_middle_of_one,
            conformance::a_gap_ends_the_read,
            conformance::stored_indexes_are_not_written_again,
            conformance::deleting_below_keeps_what_first_needs,
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            case(&FileEvents::open(dir.path()).expect("open"));
        }
    }

    #[test]
    fn reopening_finds_the_segments_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = FileEvents::open(dir.path()).expect("open");
            conformance::append(&s, 1, 3);
            conformance::append(&s, 10, 2);
            s.sync().expect("sync");
        }
        // A crash mid-write: half a line after event 3.
        let path = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open segment");
        f.write_all(b"{\"index\":4,\"det").expect("write");
        drop(f);
        let s = FileEvents::open(dir.path()).expect("reopen");
        let got: Vec<u64> = s.read(1, 20).iter().map(|(i, _)| *i).collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert_eq!(s.last_stored(), Some(11));
        // The replay appends 4 on a clean line boundary.
        conformance::append(&s, 4, 1);
        let s = FileEvents::open(dir.path()).expect("reopen");
        assert_eq!(s.read(3, 5), vec![(3, "{\"index\":3}".into()), (4, "{\"index\":4}".into())]);
    }

    #[test]
    fn events_of_the_kv_tree_move_into_files_once() {
        use crate::storage::{KvBackend, MemBackend, WriteBatch};
        let kv = std::sync::Arc::new(MemBackend::new());
        let mut batch = WriteBatch::new();
        for i in (1..=5u64).chain(9..=10) {
            batch.put(
                EVENTS_TREE_OF_KV,
                i.to_be_bytes(),
                format!("{{\"index\":{i}}}").into_bytes(),
            );
        }
        kv.write(batch).expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = open_in(dir.path(), kv.clone()).expect("open");
        let got: Vec<u64> = files.read(1, 20).iter().map(|(i, _)| *i).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert_eq!(files.read(9, 20).len(), 2);
        assert_eq!(super::super::kv_store::KvEvents::new(kv.clone()).last_stored(), None);
        drop(files);
        let again = open_in(dir.path(), kv).expect("reopen");
        assert_eq!(again.last_stored(), Some(10));
    }

    #[test]
    fn a_restart_before_backfill_filled_the_hole_finds_the_rest_of_it() {
        use crate::events::{EventLog, StoredEvent};
        use crate::store::events::EventCursor;
        use berth_proto::model::ClusterEvent;
        let cursor = |next| EventCursor { next_index: next, ..Default::default() };
        let event = |i: u64| ClusterEvent {
            version: "0".into(),
            id: format!("id-{i}"),
            detail_type: berth_proto::model::event::SERVICE_ACTION.into(),
            source: "aws.ecs".into(),
            account: "000000000000".into(),
            time: "2026-12-04T00:00:00Z".into(),
            region: "local".into(),
            resources: vec![],
            detail: serde_json::json!({}),
            index: i,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = FileEvents::open(dir.path()).expect("open");
            conformance::append(&s, 1, 5);
            let log = EventLog::new(Box::new(s));
            // It installs a snapshot at cursor 20: a hole 6..20.
            log.set_cursor(&cursor(20), true);
            assert_eq!(log.tip().hole, Some((6, 20)));
            // It applies 20..25 and backfill fills 6..=10; then it stops (or is killed).
            log.append((20..25).map(event).collect(), &cursor(25));
            let filled: Vec<_> =
                (6..=10).map(|i| std::sync::Arc::new(StoredEvent::of(&event(i)))).collect();
            log.fill(&filled).expect("fill");
            assert_eq!(log.tip().hole, Some((11, 20)));
            log.drain();
        }
        // Restarted: its latest snapshot's cursor is 25, and 11..20 are still missing here.
        let log = EventLog::new(Box::new(FileEvents::open(dir.path()).expect("reopen")));
        log.set_cursor(&cursor(25), true);
        assert_eq!(log.tip().hole, Some((11, 25)));
    }

    #[test]
    fn a_full_segment_is_followed_by_a_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = FileEvents::open_with(dir.path(), 64).expect("open");
        let big = format!("{{\"index\":1,\"pad\":\"{}\"}}", "x".repeat(64));
        s.append(1, &[big.as_str()]).expect("append");
        conformance::append(&s, 2, 2);
        let names: usize = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(names, 2);
        assert_eq!(s.read(1, 4).len(), 3);
        s.delete_below(2).expect("delete");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        assert_eq!(s.read(2, 4).iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![2, 3]);
    }
}
