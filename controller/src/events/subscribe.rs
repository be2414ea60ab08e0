//! A subscription: the backlog from an index, then (with `follow`) live events, in index order,
//! filtered here on the server.
//!
//! Each subscriber reads the [`EventLog`] itself, from its own position: from the in-memory ring
//! while it keeps up, from storage when it falls behind. So a subscriber that stops reading holds
//! at most [`SUBSCRIBER_BUFFER`] + [`READ_BATCH`] events, however many are appended meanwhile
//! (backpressure reaches it through the bounded channel and HTTP/2 flow control). One that falls
//! behind retention gets [`SubscribeError::Trimmed`] naming the oldest index, never a silent jump.

use super::pattern::Pattern;
use super::{EventLog, StoredEvent, Trimmed};
use berth_proto::model::event::{DETAIL_TYPES, detail_type};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events queued between a subscriber's reader and its connection.
pub const SUBSCRIBER_BUFFER: usize = 64;
/// Events read from the log at a time.
pub const READ_BATCH: usize = 256;

/// How long a stopping controller waits to hand a subscriber its last message.
pub const CLOSING_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The most events of a log in memory with `subscribers` subscriptions, whatever they read: the
/// ring of recent events, each subscriber's queue and batch, and retention's look at ages.
pub const fn memory_bound(subscribers: usize) -> usize {
    super::log::RECENT_EVENTS
        + subscribers * (SUBSCRIBER_BUFFER + READ_BATCH)
        + super::retention::AGE_SCAN_BATCH
}

/// Why a subscription cannot start or go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubscribeError {
    #[error(
        "events from index {wanted} are no longer retained: the oldest available index is {oldest}; resume from {oldest} or later"
    )]
    Trimmed { wanted: u64, oldest: u64 },
    #[error("{0}")]
    InvalidFilter(String),
    #[error("the controller is stopping; resume from index {next} on another controller")]
    Closing { next: u64 },
}

/// What a subscriber wants: all of `patterns` and one of `detail_types` (empty: any).
#[derive(Debug, Clone)]
pub struct Filter {
    pattern: Pattern,
    detail_types: Vec<String>,
}

impl Filter {
    /// From a pattern's JSON text (empty: every event) and detail-types (full names or the short
    /// names TASK, INSTANCE, SERVICE, DEPLOYMENT, any case).
    pub fn new(pattern: &str, detail_types: &[String]) -> Result<Filter, SubscribeError> {
        let pattern = if pattern.trim().is_empty() {
            Pattern::any()
        } else {
            Pattern::parse(pattern).map_err(|e| SubscribeError::InvalidFilter(e.to_string()))?
        };
        let detail_types = detail_types
            .iter()
            .map(|t| {
                detail_type(t).map(|(_, full)| full.to_string()).ok_or_else(|| {
                    SubscribeError::InvalidFilter(format!(
                        "detail type '{t}' is not one of TASK, INSTANCE, SERVICE, DEPLOYMENT or their ECS names ({})",
                        DETAIL_TYPES.iter().map(|(_, f)| *f).collect::<Vec<_>>().join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter { pattern, detail_types })
    }

    pub fn matches(&self, e: &StoredEvent) -> bool {
        (self.detail_types.is_empty() || self.detail_types.contains(&e.detail_type))
            && self.pattern.matches(e.value())
    }
}

pub type Item = Result<Arc<StoredEvent>, SubscribeError>;

/// Starts a subscription from `from` (absent: the oldest retained event). The receiver yields
/// events in index order; the reader stops when it is dropped, at the end of the log as of now
/// unless `follow`, or after an error.
pub fn subscribe(
    log: Arc<EventLog>,
    filter: Filter,
    from: Option<u64>,
    follow: bool,
) -> Result<mpsc::Receiver<Item>, SubscribeError> {
    let tip = log.tip();
    // Indexes start at 1: asking for 0 (or 1) loses nothing until retention trimmed event 1.
    let start = from.unwrap_or(tip.first).max(1);
    if start < tip.first {
        return Err(SubscribeError::Trimmed { wanted: start, oldest: tip.first });
    }
    // Without follow: up to the log's end as of now. With it: no end.
    let end = if follow { None } else { Some(tip.next) };
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    let position = log.register_subscriber(start);
    tokio::spawn(async move {
        let mut changes = log.watch();
        let mut next = start;
        while end.is_none_or(|end| next < end) {
            if changes.borrow_and_update().closed {
                // A reader that stopped reading must not hold the controller's shutdown.
                let closing = tx.send(Err(SubscribeError::Closing { next }));
                let _ = tokio::time::timeout(CLOSING_GRACE, closing).await;
                return;
            }
            let batch = match log.read(next, READ_BATCH) {
                Ok(b) => b,
                Err(Trimmed { oldest }) => {
                    let _ = tx.send(Err(SubscribeError::Trimmed { wanted: next, oldest })).await;
                    return;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
                continue;
            }
            for e in batch {
                if end.is_some_and(|end| e.index >= end) {
                    return;
                }
                next = e.index + 1;
                if filter.matches(&e) && tx.send(Ok(e)).await.is_err() {
                    return;
                }
                position.store(next, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
#[path = "subscribe_tests.rs"]
mod tests;
