//! Heartbeats seen by this controller's agent sessions, written to the store in batches: one
//! `RecordHeartbeats` command per `record_interval` for all agents that beat since the last one,
//! instead of one Raft write per heartbeat (SwarmKit keeps heartbeats out of its store entirely;
//! here they must reach it, because the leader that judges liveness may not be the controller an
//! agent talks to). Each beat carries the time this controller received it.

use crate::error::Result;
use crate::propose::Proposer;
use crate::store::Command;
use crate::store::command::HeartbeatSeen;
use berth_proto::model::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The newest heartbeat per instance not yet written to the store.
#[derive(Default)]
pub struct HeartbeatBook(Mutex<HashMap<String, HeartbeatSeen>>);

impl HeartbeatBook {
    pub fn record(&self, instance_id: &str, session: &str, at: Timestamp) {
        let beat = HeartbeatSeen {
            instance_id: instance_id.to_string(),
            session: session.to_string(),
            at,
        };
        self.lock().insert(instance_id.to_string(), beat);
    }

    /// Everything pending, in instance-id order; the book is left empty.
    pub fn take(&self) -> Vec<HeartbeatSeen> {
        let mut beats: Vec<HeartbeatSeen> = self.lock().drain().map(|(_, b)| b).collect();
        beats.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        beats
    }

    /// Puts back beats whose write failed, unless a newer one arrived meanwhile.
    fn restore(&self, beats: Vec<HeartbeatSeen>) {
        let mut book = self.lock();
        for b in beats {
            book.entry(b.instance_id.clone()).or_insert(b);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HeartbeatSeen>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes the book to the store every `interval` (through the forwarding proposer: any
/// controller may host sessions).
pub struct HeartbeatRecorder {
    proposer: Proposer,
    book: Arc<HeartbeatBook>,
    interval: Duration,
}

impl HeartbeatRecorder {
    pub fn new(proposer: Proposer, book: Arc<HeartbeatBook>, interval: Duration) -> Self {
        HeartbeatRecorder { proposer, book, interval }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = ticker.tick() => {}
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            let beats = self.book.take();
            if beats.is_empty() {
                continue;
            }
            let cmd = Command::RecordHeartbeats { beats: beats.clone() };
            if let Err(e) = self.proposer.propose(&cmd).await {
                tracing::warn!(error = %e, count = beats.len(), "heartbeats not recorded; retrying");
                self.book.restore(beats);
            }
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
            beats.iter().map(|b| (b.instance_id.as_str(), b.at.0)).collect();
        assert_eq!(got, vec![("a", 11), ("b", 12)]);
        assert!(book.take().is_empty());
        book.record("b", "s1", Timestamp(20));
        book.restore(beats);
        let got: Vec<(String, i64)> =
            book.take().into_iter().map(|b| (b.instance_id, b.at.0)).collect();
        assert_eq!(got, vec![("a".to_string(), 11), ("b".to_string(), 20)]);
    }
}
