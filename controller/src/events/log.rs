//! [`EventLog`]: this controller's copy of the cluster event log.
//!
//! Events are appended by the state machine as it applies each command (`store::Store`), into an
//! [`EventStore`] (the controller's: segment files beside the Raft store, `files`). A ring of
//! the latest events, with their parsed JSON, serves live subscribers without reading storage or
//! parsing again.
//!
//! The replicated [`EventCursor`] says which indexes exist (`first_index..next_index`); this
//! copy can lack some for a while: a member that installs a snapshot (which does not carry the
//! log) has a hole up to the snapshot's cursor, filled from another member by `backfill`. Reads
//! stop at a hole and wait, so a subscriber never skips an index.
//!
//! Retention (`TrimEvents`) moves `first_index`; the events below are deleted off the Raft loop.
//!
//! Writer: a log opened with [`EventLog::new`] renders and stores the batches the state machine
//! hands it ([`EventLog::append_batch`]) on its own thread, in order, so the Raft loop does not
//! spend its time on JSON and storage writes (`bench -- sim`: 100,000 events of a scale-up took
//! 8.6 s of the leader's loop). The tip moves only once a batch is stored, so readers never see
//! an index before it exists. [`EventLog::drain`] waits until every queued batch is stored; the
//! state machine calls it before restoring a snapshot and before retention moves the cursor, and
//! [`EventLog::drain_durable`] (which also flushes them) before a snapshot captures the state
//! (the snapshot's cursor then covers only durable events; a crash before that replays the log
//! after the previous snapshot, which derives the same events again — the store skips those it
//! still has). A log from
//! [`EventLog::in_memory`] appends inline (tests).

use super::store::EventStore;
use crate::store::events::{EventCursor, RenderedEvent, TaskFacts};
use berth_proto::model::ClusterEvent;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub use super::kv_store::EVENTS_TREE;

/// Latest events kept in memory, parsed, for live subscribers.
pub const RECENT_EVENTS: usize = 4096;

/// One event as stored and served: its JSON text and, parsed the first time a filter asks for it
/// ([`StoredEvent::value`]: with no subscriber, an event is never parsed), its value.
#[derive(Debug)]
pub struct StoredEvent {
    pub index: u64,
    pub detail_type: String,
    pub json: String,
    value: std::sync::OnceLock<Value>,
    /// A task event's task ARN, version and status (for metrics, without parsing).
    pub task: Option<TaskFacts>,
    /// Counts this event in its log's [`EventLog::events_in_memory`] while it lives.
    live: Option<Live>,
}

/// One unit of a log's count of events in memory, given back on drop.
#[derive(Debug)]
struct Live(Arc<std::sync::atomic::AtomicUsize>);

impl Live {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Live {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl StoredEvent {
    pub fn of(event: &ClusterEvent) -> StoredEvent {
        Self::from_event(event.clone())
    }

    /// [`StoredEvent::of`] an owned event (events built as values: tests, inline appends).
    pub fn from_event(event: ClusterEvent) -> StoredEvent {
        let json = serde_json::to_string(&event).unwrap_or_default();
        let value = serde_json::to_value(&event).unwrap_or_default();
        Self::with_value(json, value).unwrap_or_else(|| StoredEvent {
            index: event.index,
            detail_type: event.detail_type,
            json: String::new(),
            value: Default::default(),
            task: None,
            live: None,
        })
    }

    /// An event as the state machine's batch rendered it (`EventBatch::render_json`).
    pub fn rendered(e: RenderedEvent) -> StoredEvent {
        StoredEvent {
            index: e.index,
            detail_type: e.detail_type,
            json: e.json,
            value: Default::default(),
            task: e.task,
            live: None,
        }
    }

    /// Parses stored JSON (`None` if it does not decode, which only a corrupt store gives).
    pub fn parse(json: String) -> Option<StoredEvent> {
        let value: Value = serde_json::from_str(&json).ok()?;
        Self::with_value(json, value)
    }

    fn with_value(json: String, value: Value) -> Option<StoredEvent> {
        let index = value.get("index")?.as_u64()?;
        let detail_type = value.get("detail-type")?.as_str()?.to_string();
        let task = (detail_type == berth_proto::model::event::TASK_STATE_CHANGE).then(|| {
            let d = &value["detail"];
            TaskFacts {
                task_arn: d["taskArn"].as_str().unwrap_or_default().to_string(),
                version: d["version"].as_u64().unwrap_or_default(),
                last_status: d["lastStatus"].as_str().unwrap_or_default().to_string(),
            }
        });
        let parsed = std::sync::OnceLock::new();
        let _ = parsed.set(value);
        Some(StoredEvent { index, detail_type, json, value: parsed, task, live: None })
    }

    /// The event's parsed JSON (parsed once, on first use).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| serde_json::from_str(&self.json).unwrap_or_default())
    }
}

/// What this copy of the log can serve: indexes `first..next`, except `hole` (`start..end`)
/// while it is being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub first: u64,
    pub next: u64,
    pub hole: Option<(u64, u64)>,
    /// The controller is stopping: subscriptions end (their clients resume elsewhere).
    pub closed: bool,
}

/// A read below what retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    pub oldest: u64,
}

pub struct EventLog {
    store: Box<dyn EventStore>,
    /// The writer thread's queue (`None`: batches are appended inline).
    writer: Option<Writer>,
    recent: Mutex<VecDeque<Arc<StoredEvent>>>,
    tip: watch::Sender<Tip>,
    /// Below this every key has been deleted (pruning is done up to here).
    pruned_below: Mutex<u64>,
    /// Events of this log alive in memory (the ring, subscribers' queues and batches).
    live: Arc<std::sync::atomic::AtomicUsize>,
    /// The next index of every open subscription (`berth_events_subscribers` and `_lag`).
    subscribers: Mutex<Vec<std::sync::Weak<std::sync::atomic::AtomicU64>>>,
    /// Observes appended events (`crate::metrics`), once set.
    metrics: std::sync::OnceLock<crate::metrics::Metrics>,
}

/// Open subscriptions of a log and the next index of the furthest behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriberPositions {
    pub count: usize,
    pub slowest: Option<u64>,
}

/// Events queued for the writer thread at most: then the state machine waits (bounded memory,
/// and a [`EventLog::drain`] never waits for more than this many).
pub const WRITER_QUEUE_EVENTS: u64 = 8192;

/// A batch of events for the writer, and the cursor after it.
type Job = (crate::store::events::EventBatch, EventCursor);

/// The writer thread's end of a log: its queue and how many queued events are not stored yet.
struct Writer {
    queue: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    unstored: Arc<(Mutex<u64>, std::sync::Condvar)>,
}

/// Gives back a batch's events to [`Writer::unstored`] on drop, even if storing it panicked.
struct Stored(Arc<(Mutex<u64>, std::sync::Condvar)>, u64);

impl Drop for Stored {
    fn drop(&mut self) {
        let (count, cv) = &*self.0;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(self.1);
        cv.notify_all();
    }
}

impl EventLog {
    /// A log on `store` with a writer thread (see the module docs); the thread ends when the
    /// log is dropped.
    pub fn new(store: Box<dyn EventStore>) -> Arc<EventLog> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let unstored: Arc<(Mutex<u64>, std::sync::Condvar)> = Arc::default();
        let writer = Writer { queue: Mutex::new(Some(tx)), unstored: unstored.clone() };
        let log = Self::build(store, Some(writer));
        let weak = Arc::downgrade(&log);
        let spawned =
            std::thread::Builder::new().name("event-log-writer".into()).spawn(move || {
                while let Ok((batch, cursor)) = rx.recv() {
                    let _stored = Stored(unstored.clone(), batch.len() as u64);
                    let Some(log) = weak.upgrade() else { return };
                    log.store(batch.render_json().into_iter().map(StoredEvent::rendered), &cursor);
                }
            });
        if let Err(e) = spawned
            && let Some(w) = &log.writer
        {
            tracing::warn!(error = %e, "no event log writer thread; appending inline");
            *w.queue.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        log
    }

    fn build(store: Box<dyn EventStore>, writer: Option<Writer>) -> Arc<EventLog> {
        let cursor = EventCursor::default();
        let (tip, _) = watch::channel(Tip {
            first: cursor.first_index,
            next: cursor.next_index,
            hole: None,
            closed: false,
        });
        Arc::new(EventLog {
            store,
            writer,
            recent: Mutex::new(VecDeque::new()),
            tip,
            pruned_below: Mutex::new(0),
            live: Default::default(),
            subscribers: Mutex::new(Vec::new()),
            metrics: std::sync::OnceLock::new(),
        })
    }

    /// Appended events are observed into `metrics` from now on (the first call wins).
    pub fn set_metrics(&self, metrics: crate::metrics::Metrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Registers a subscription that will read from `next`; it updates the returned position as
    /// it goes and unregisters by dropping it.
    pub fn register_subscriber(&self, next: u64) -> Arc<std::sync::atomic::AtomicU64> {
        let position = Arc::new(std::sync::atomic::AtomicU64::new(next));
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Arc::downgrade(&position));
        position
    }

    /// How many subscriptions are open, and the next index of the furthest behind.
    pub fn subscriber_positions(&self) -> SubscriberPositions {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|w| w.strong_count() > 0);
        let positions = subs.iter().filter_map(|w| w.upgrade());
        let loads: Vec<u64> =
            positions.map(|p| p.load(std::sync::atomic::Ordering::Relaxed)).collect();
        SubscriberPositions { count: loads.len(), slowest: loads.iter().copied().min() }
    }

    /// An event log on an in-memory backend (unit tests, and stores built without one).
    /// Its batches are appended inline, so a read right after an apply sees them.
    pub fn in_memory() -> Arc<EventLog> {
        let backend = Arc::new(crate::storage::MemBackend::new());
        EventLog::build(Box::new(super::kv_store::KvEvents::new(backend)), None)
    }

    /// Appends the events one command produced (called while applying it, in log order): queued
    /// for the writer thread, or rendered and stored now when there is none.
    pub fn append_batch(&self, batch: crate::store::events::EventBatch, cursor: &EventCursor) {
        if batch.is_empty() {
            return;
        }
        let mut job = (batch, cursor.clone());
        if let Some(w) = &self.writer {
            let tx = w.queue.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(tx) = tx {
                let n = job.0.len() as u64;
                {
                    let (count, cv) = &*w.unstored;
                    let mut queued = count.lock().unwrap_or_else(|e| e.into_inner());
                    while *queued > 0 && *queued + n > WRITER_QUEUE_EVENTS {
                        queued = cv.wait(queued).unwrap_or_else(|e| e.into_inner());
                    }
                    *queued += n;
                }
                match tx.send(job) {
                    Ok(()) => return,
                    Err(std::sync::mpsc::SendError(back)) => {
                        // The thread is gone: inline from now on (after what it stored).
                        drop(Stored(w.unstored.clone(), n));
                        *w.queue.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        job = back;
                    }
                }
            }
        }
        let (batch, cursor) = job;
        self.store(batch.render_json().into_iter().map(StoredEvent::rendered), &cursor);
    }

    /// Waits until every batch queued by [`Self::append_batch`] is stored (and visible in the
    /// tip). At once for a log without a writer.
    pub fn drain(&self) {
        let Some(w) = &self.writer else { return };
        let (count, cv) = &*w.unstored;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// [`Self::drain`], then makes the stored events durable (fsync): before a snapshot, whose
    /// cursor must cover only events a crash cannot lose. Other callers only need the order.
    pub fn drain_durable(&self) {
        self.drain();
        if let Err(e) = self.store.sync() {
            // Not durable: a crash would leave a hole, which backfill fills from another member.
            tracing::error!(error = %e, "flushing stored events failed");
        }
    }

    pub fn tip(&self) -> Tip {
        *self.tip.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<Tip> {
        self.tip.subscribe()
    }

    /// How many events of this log are in memory now: the ring of recent ones plus those that
    /// subscribers hold. Bounded whatever subscribers do (`subscribe`'s map says how).
    pub fn events_in_memory(&self) -> usize {
        self.live.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn counted(&self, mut e: StoredEvent) -> Arc<StoredEvent> {
        e.live = Some(Live::new(&self.live));
        Arc::new(e)
    }

    /// Appends the events one command produced, now (in log order, after any queued batch:
    /// it drains the writer first).
    pub fn append(&self, events: Vec<berth_proto::model::ClusterEvent>, cursor: &EventCursor) {
        self.drain();
        self.store(events.into_iter().map(StoredEvent::from_event), cursor);
    }

    /// Stores events and moves the tip past them.
    fn store(&self, events: impl Iterator<Item = StoredEvent>, cursor: &EventCursor) {
        let stored: Vec<Arc<StoredEvent>> = events.map(|e| self.counted(e)).collect();
        let first_new = stored.first().map(|e| e.index);
        if let Some(metrics) = self.metrics.get() {
            metrics.observe_events(&stored);
        }
        let jsons: Vec<&str> = stored.iter().map(|e| e.json.as_str()).collect();
        let written = match first_new {
            Some(start) => self.store.append(start, &jsons),
            None => Ok(()),
        };
        drop(jsons);
        let failed = match written {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(error = %e, "storing events failed; they will be fetched from another member");
                true
            }
        };
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            for e in stored {
                if recent.back().is_some_and(|last| last.index + 1 != e.index) {
                    recent.clear();
                }
                recent.push_back(e);
                if recent.len() > RECENT_EVENTS {
                    recent.pop_front();
                }
            }
        }
        self.tip.send_modify(|t| {
            t.next = cursor.next_index;
            if failed && let Some(start) = first_new {
                t.hole = Some(merge_hole(t.hole, (start, cursor.next_index)));
            }
        });
    }

    /// Takes a new cursor: after restoring a snapshot (`restored`: the events up to the
    /// cursor may be missing here) or after retention moved `first_index`.
    pub fn set_cursor(&self, cursor: &EventCursor, restored: bool) {
        let hole = if restored {
            // From the first index missing here, not after the last one stored: a controller
            // restarted before backfill filled a hole has events stored after it.
            let start = self.store.first_missing(cursor.first_index.max(1));
            (start < cursor.next_index).then_some((start, cursor.next_index))
        } else {
            None
        };
        if restored {
            self.recent.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.tip.send_modify(|t| {
            // A member that gave up on a hole's start keeps its higher `first`.
            t.first = t.first.max(cursor.first_index);
            t.next = cursor.next_index;
            if let Some(h) = hole {
                t.hole = Some(merge_hole(t.hole, h));
            }
            if let Some((s, e)) = t.hole {
                let s = s.max(t.first);
                t.hole = (s < e).then_some((s, e));
            }
        });
    }

    /// The highest index stored here.
    pub fn last_stored(&self) -> Option<u64> {
        self.store.last_stored()
    }

    /// Up to `max` contiguous events from `from`, ending before the log's end or a hole (empty
    /// when `from` is there: wait for [`Self::watch`]).
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<Arc<StoredEvent>>, Trimmed> {
        let tip = self.tip();
        if from < tip.first {
            return Err(Trimmed { oldest: tip.first });
        }
        let mut end = tip.next;
        if let Some((s, e)) = tip.hole {
            if from >= s && from < e {
                return Ok(vec![]);
            }
            if from < s {
                end = end.min(s);
            }
        }
        let end = end.min(from.saturating_add(max as u64));
        if from >= end {
            return Ok(vec![]);
        }
        {
            let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(front) = recent.front()
                && front.index <= from
            {
                let skip = (from - front.index) as usize;
                return Ok(recent
                    .iter()
                    .skip(skip)
                    .take_while(|e| e.index < end)
                    .cloned()
                    .collect());
            }
        }
        let mut out = Vec::new();
        for (want, json) in self.store.read(from, end) {
            let Some(e) = StoredEvent::parse(json) else { break };
            if e.index != want {
                break; // not the event its place says (a corrupt store): stop there
            }
            out.push(self.counted(e));
        }
        if out.is_empty() && from < self.tip().first {
            return Err(Trimmed { oldest: self.tip().first });
        }
        Ok(out)
    }

    /// Stores events fetched from another member into the hole; returns the next index still
    /// missing (the hole's end once it is filled).
    pub fn fill(&self, events: &[Arc<StoredEvent>]) -> Result<(), crate::storage::KvError> {
        // One append per run of consecutive indexes.
        let mut rest = events;
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .enumerate()
                .take_while(|(i, e)| e.index == first.index + *i as u64)
                .count();
            let (now, later) = rest.split_at(run);
            let jsons: Vec<&str> = now.iter().map(|e| e.json.as_str()).collect();
            self.store.append(first.index, &jsons)?;
            rest = later;
        }
        let Some(last) = events.last().map(|e| e.index) else { return Ok(()) };
        self.tip.send_modify(|t| {
            if let Some((s, e)) = t.hole
                && events.first().is_some_and(|f| f.index <= s)
            {
                t.hole = (last + 1 < e).then_some((last + 1, e));
            }
        });
        Ok(())
    }

    /// The hole's start moves up to `oldest` (the member filling it no longer has the events
    /// below): those indexes are lost here, and reads below them say so.
    pub fn give_up_below(&self, oldest: u64) {
        self.tip.send_modify(|t| {
            if let Some((s, e)) = t.hole
                && oldest > s
            {
                t.first = t.first.max(oldest.min(e));
                t.hole = (oldest < e).then_some((oldest, e));
            }
        });
    }

    /// Ends every subscription (the controller is stopping).
    pub fn close(&self) {
        self.tip.send_modify(|t| t.closed = true);
    }

    /// Deletes stored events below the tip's `first` (on a blocking thread: can be many).
    pub fn prune(self: &Arc<Self>) {
        let first = self.tip().first;
        {
            let mut below = self.pruned_below.lock().unwrap_or_else(|e| e.into_inner());
            if *below >= first {
                return;
            }
            *below = first;
        }
        let log = self.clone();
        let job = move || {
            if let Err(e) = log.store.delete_below(first) {
                tracing::warn!(error = %e, "deleting trimmed events failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(job);
            }
            Err(_) => job(),
        }
    }
}

fn merge_hole(old: Option<(u64, u64)>, new: (u64, u64)) -> (u64, u64) {
    match old {
        Some((s, e)) => (s.min(new.0), e.max(new.1)),
        None => new,
    }
}

// Tested with the store (`store/events_tests.rs`) and subscriptions (`subscribe_tests.rs`).
