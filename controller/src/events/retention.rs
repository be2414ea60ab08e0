//! Event retention: a leader-only loop that trims the event log by age and by count.
//!
//! The decision is pure ([`trim_target`]); the loop proposes it as `TrimEvents`, so every member
//! drops the same prefix (the oldest index is the same everywhere) and retention is independent
//! of Raft log compaction. Only the leader's settings count.

use super::EventLog;
use crate::clock::Clock;
use crate::propose::Proposer;
use crate::store::Command;
use berth_proto::model::Timestamp;
use berth_proto::model::event::parse_iso8601;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// ECS keeps no history; Berth keeps a day by default, and at most a million events.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_MAX_EVENTS: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Events older than this are dropped.
    pub max_age: Duration,
    /// At most this many events are kept.
    pub max_events: u64,
    /// How often the leader checks.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: DEFAULT_MAX_AGE,
            max_events: DEFAULT_MAX_EVENTS,
            interval: Duration::from_secs(5),
        }
    }
}

/// Events examined for their age in one pass (the next pass goes on from there).
const AGE_SCAN_LIMIT: usize = 100_000;
/// Events read at a time to look at their age (they are in memory while looked at).
pub const AGE_SCAN_BATCH: usize = 64;

/// The first index to keep, if above `first`: the count bound, then the first event (in index
/// order, from `first`) no older than the age bound. `times` gives events' times from an index
/// on, in index order.
pub fn trim_target(
    first: u64,
    next: u64,
    now: Timestamp,
    config: &RetentionConfig,
    times: impl Iterator<Item = (u64, Timestamp)>,
) -> Option<u64> {
    let by_count = next.saturating_sub(config.max_events).max(first);
    let cutoff = now.plus_millis(-(config.max_age.as_millis().min(i64::MAX as u128) as i64));
    let mut by_age = by_count;
    for (index, time) in times.skip_while(|(i, _)| *i < by_count) {
        if time >= cutoff {
            by_age = index;
            break;
        }
        by_age = index + 1;
    }
    let target = by_age.min(next);
    (target > first).then_some(target)
}

/// Runs until shutdown: while leader, every `interval`, proposes the trim [`trim_target`] asks.
pub async fn run(
    proposer: Proposer,
    log: Arc<EventLog>,
    clock: Arc<dyn Clock>,
    config: RetentionConfig,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let mut role = proposer.raft().role();
    loop {
        if !crate::orchestrator::until_leader(&mut role, &mut shutdown).await {
            return Ok(());
        }
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while role.borrow().is_leader() {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                r = role.changed() => if r.is_err() { return Ok(()) },
                _ = ticker.tick() => {}
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            let tip = log.tip();
            let log2 = log.clone();
            let times = EventTimes { log: log2, next: tip.first, buf: Vec::new(), seen: 0 };
            let Some(first_index) = trim_target(tip.first, tip.next, clock.now(), &config, times)
            else {
                continue;
            };
            match proposer.propose(&Command::TrimEvents { first_index }).await {
                Ok(_) => tracing::debug!(first_index, "event log trimmed"),
                Err(e) => tracing::warn!(error = %e, "trimming the event log failed; retrying"),
            }
        }
    }
}

/// Event times from the log, read in batches, at most [`AGE_SCAN_LIMIT`] per pass.
struct EventTimes {
    log: Arc<EventLog>,
    next: u64,
    buf: Vec<(u64, Timestamp)>,
    seen: usize,
}

impl Iterator for EventTimes {
    type Item = (u64, Timestamp);
    fn next(&mut self) -> Option<(u64, Timestamp)> {
        if self.buf.is_empty() {
            if self.seen >= AGE_SCAN_LIMIT {
                return None;
            }
            let batch = self.log.read(self.next, AGE_SCAN_BATCH).ok()?;
            self.next = batch.last()?.index + 1;
            self.seen += batch.len();
            self.buf = batch
                .iter()
                .rev()
                .map(|e| {
                    let t = e.value().get("time").and_then(|t| t.as_str()).and_then(parse_iso8601);
                    (e.index, t.unwrap_or_default())
                })
                .collect();
        }
        self.buf.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_events: u64, max_age_secs: u64) -> RetentionConfig {
        RetentionConfig {
            max_age: Duration::from_secs(max_age_secs),
            max_events,
            interval: Duration::from_secs(1),
        }
    }

    /// Events 1..=10, event i at i seconds.
    fn times() -> impl Iterator<Item = (u64, Timestamp)> {
        (1..=10).map(|i| (i, Timestamp(i as i64 * 1000)))
    }

    #[test]
    fn the_count_bound_keeps_the_newest_events() {
        assert_eq!(trim_target(1, 11, Timestamp(10_000), &config(4, 3600), times()), Some(7));
        assert_eq!(trim_target(1, 11, Timestamp(10_000), &config(10, 3600), times()), None);
        assert_eq!(trim_target(8, 11, Timestamp(10_000), &config(4, 3600), times()), None);
    }

    #[test]
    fn the_age_bound_drops_events_older_than_max_age() {
        // At 10 s with a 3 s age limit, events at 7 s and later stay.
        assert_eq!(trim_target(1, 11, Timestamp(10_000), &config(100, 3), times()), Some(7));
        // Everything is too old: the log empties (first = next).
        assert_eq!(trim_target(1, 11, Timestamp(100_000), &config(100, 3), times()), Some(11));
        // Nothing is too old.
        assert_eq!(trim_target(1, 11, Timestamp(5_000), &config(100, 3600), times()), None);
    }

    #[test]
    fn both_bounds_apply_and_the_stricter_wins() {
        assert_eq!(trim_target(1, 11, Timestamp(10_000), &config(2, 5), times()), Some(9));
        assert_eq!(trim_target(1, 11, Timestamp(10_000), &config(8, 2), times()), Some(8));
    }
}
