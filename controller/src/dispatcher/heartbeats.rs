//! Heartbeats and container stats seen by this controller's agent sessions, written to the store
//! in batches: per `record_interval`, one `RecordHeartbeats` command for all agents that beat
//! since the last one and one `RecordContainerStatsBatch` for all stats periods that arrived,
//! instead of one Raft write per heartbeat or stats period (SwarmKit keeps heartbeats out of its
//! store entirely; here they must reach it, because the leader that judges liveness may not be
//! the controller an agent talks to; 5,000 agents reporting stats every 20 s were 250 proposals
//! a second). Each beat carries the time this controller received it; for stats, an agent's
//! newer period replaces an unwritten older one (the store keeps only the latest anyway).

use crate::error::Result;
use crate::propose::Proposer;
use crate::store::Command;
use crate::store::command::{HeartbeatSeen, InstanceStats};
use berth_proto::model::{ContainerUsageSample, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The newest value per instance not yet written to the store.
pub struct Book<T>(Mutex<HashMap<String, T>>);

impl<T> Default for Book<T> {
    fn default() -> Self {
        Book(Mutex::new(HashMap::new()))
    }
}

/// The newest heartbeat per instance.
pub type HeartbeatBook = Book<HeartbeatSeen>;
/// The newest stats period per instance (its samples).
pub type StatsBook = Book<Vec<ContainerUsageSample>>;

impl HeartbeatBook {
    pub fn record(&self, instance_id: &str, session: &str, at: Timestamp) {
        let beat = HeartbeatSeen {
            instance_id: instance_id.to_string(),
            session: session.to_string(),
            at,
        };
        self.put(instance_id, beat);
    }
}

impl<T> Book<T> {
    /// Keeps `value` as the instance's newest.
    pub fn put(&self, instance_id: &str, value: T) {
        self.lock().insert(instance_id.to_string(), value);
    }

    /// Everything pending, in instance-id order; the book is left empty.
    pub fn take(&self) -> Vec<(String, T)> {
        let mut all: Vec<(String, T)> = self.lock().drain().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Puts back values whose write failed, unless a newer one arrived meanwhile.
    fn restore(&self, values: Vec<(String, T)>) {
        let mut book = self.lock();
        for (id, v) in values {
            book.entry(id).or_insert(v);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes the book to the store every `interval` (through the forwarding proposer: any
/// controller may host sessions).
pub struct HeartbeatRecorder {
    proposer: Proposer,
    book: Arc<HeartbeatBook>,
    stats: Arc<StatsBook>,
    interval: Duration,
}

impl HeartbeatRecorder {
    pub fn new(
        proposer: Proposer,
        book: Arc<HeartbeatBook>,
        stats: Arc<StatsBook>,
        interval: Duration,
    ) -> Self {
        HeartbeatRecorder { proposer, book, stats, interval }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Writes in flight: a tick does not wait for the previous write to commit (behind large
        // commands that may take seconds, and the beats it would take meanwhile would age past
        // the leader's grace). Beats apply in any order: the store keeps the newest.
        let mut writes = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = ticker.tick() => {}
                Some(_) = writes.join_next(), if !writes.is_empty() => continue,
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            if writes.len() >= WRITES_IN_FLIGHT {
                continue; // the beats wait in the book for the next tick
            }
            let beats = self.book.take();
            let stats = self.stats.take();
            if beats.is_empty() && stats.is_empty() {
                continue;
            }
            let (proposer, book) = (self.proposer.clone(), self.book.clone());
            writes.spawn(async move { write(&proposer, &book, beats, stats).await });
        }
    }
}

/// Writes taken at once in flight at most.
const WRITES_IN_FLIGHT: usize = 3;

/// One tick's heartbeats, then its stats periods.
async fn write(
    proposer: &Proposer,
    book: &HeartbeatBook,
    beats: Vec<(String, HeartbeatSeen)>,
    stats: Vec<(String, Vec<ContainerUsageSample>)>,
) {
    if !beats.is_empty() {
        let cmd =
            Command::RecordHeartbeats { beats: beats.iter().map(|(_, b)| b.clone()).collect() };
        if let Err(e) = proposer.propose(&cmd).await {
            tracing::warn!(error = %e, count = beats.len(), "heartbeats not recorded; retrying");
            book.restore(beats);
        }
    }
    // Stats are best effort: a failed write is dropped (the next period brings fresh ones),
    // unlike heartbeats, whose loss could declare an agent disconnected.
    if !stats.is_empty() {
        let count = stats.len();
        let reports = stats
            .into_iter()
            .map(|(instance_id, samples)| InstanceStats { instance_id, samples })
            .collect();
        let cmd = Command::RecordContainerStatsBatch { reports };
        if let Err(e) = proposer.propose(&cmd).await {
            tracing::debug!(error = %e, count, "stats periods not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_keeps_the_newest_beat_per_instance_and_restores_only_older_gaps() {
        let book = HeartbeatBook::default();
        book.record("b", "s1", Timestamp(10));
        book.record("a", "s2", Timestamp(11));
        book.record("b", "s1", Timestamp(12));
        let beats = book.take();
        let got: Vec<(&str, i64)> =
            beats.iter().map(|(_, b)| (b.instance_id.as_str(), b.at.0)).collect();
        assert_eq!(got, vec![("a", 11), ("b", 12)]);
        assert!(book.take().is_empty());
        book.record("b", "s1", Timestamp(20));
        book.restore(beats);
        let got: Vec<(String, i64)> =
            book.take().into_iter().map(|(_, b)| (b.instance_id, b.at.0)).collect();
        assert_eq!(got, vec![("a".to_string(), 11), ("b".to_string(), 20)]);
    }
}
