//! # events — the cluster event log, its filters and its subscriptions
//!
//! Events are made by the state machine (`store::events`, deterministic, in the same apply as
//! their change) and kept here:
//! * `log`       — [`EventLog`]: this controller's durable copy, indexed, with a hole while a
//!   member catches up after a snapshot.
//! * `store`     — [`store::EventStore`], where a log keeps its events: `files` (append-only
//!   segment files, the real one) and `kv_store` (batches in a key-value tree: in-memory logs
//!   for tests, and the sled tree of earlier versions, moved into files at start).
//! * `pattern`   — EventBridge event patterns: parse (with the path of a bad element), match.
//! * `subscribe` — a subscription: backlog then live events, filtered, with bounded memory.
//! * `retention` — the leader's loop trimming the log by age and count (`TrimEvents`).
//! * `backfill`  — fills a member's hole after a snapshot from another member (`ReadEvents`).
//!
//! Must not touch: Raft or the state (only `Store` appends; everything else reads).

pub mod backfill;
pub mod files;
pub mod kv_store;
pub mod log;
pub mod pattern;
pub mod retention;
pub mod store;
pub mod subscribe;

pub use log::{EventLog, StoredEvent, Tip, Trimmed};
