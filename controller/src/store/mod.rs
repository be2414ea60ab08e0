//! The replicated state machine.
//!
//! * `command` — the commands (every change to cluster state).
//! * `apply`   — applying one command: deterministic, all-or-nothing (`apply_services`: the
//!   service commands and the reconciler's progress).
//! * `state`   — the data (ordered maps), serialized whole for snapshots.
//! * `query`   — read-side ECS views with derived fields.
//! * `index`   — task ids by instance and by service, per-instance change counters (derived,
//!   rebuilt on restore).
//! * `error`   — `Rejection`, the store's refusal of a command.
//! * `liveness` — applying heartbeats, disconnections and lost tasks (node liveness).
//! * `deregister` — ECS DeregisterContainerInstance: INACTIVE, tasks stopped (force), identity
//!   revoked.
//! * `stats`   — recording the agents' container usage samples (no version bump, no event).
//! * `security` — cluster CA, join tokens, revoked node identities; `acl` — API tokens with
//!   roles; `secrets` — encrypted per-task secrets (none of them make events).
//! * `signals` — wakes the agent sessions of the instances an applied command touched.
//! * `events`  — the ECS events each applied command produces (appended to `events::EventLog`).
//!
//! `Store` implements `raft::StateMachine`: raft calls `apply` for each committed entry in log
//! order; readers take the shared `RwLock` for a consistent view. Nothing here touches the network,
//! disk or a clock.

pub mod acl;
pub mod apply;
mod apply_services;
pub mod command;
pub mod deregister;
pub mod error;
pub mod events;
pub mod index;
mod liveness;
pub mod query;
pub mod secrets;
pub mod security;
pub mod signals;
pub mod state;
pub mod stats;

pub use apply::{Applied, ApplyResult};
pub use command::Command;
pub use error::{RejectKind, Rejection};
pub use state::State;

use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Shared handle on the state; the raft loop writes through [`Store`], everyone else reads.
/// Its [`signals`] wake the sessions of the instances each applied command touched.
#[derive(Clone, Default)]
pub struct SharedState {
    state: Arc<RwLock<State>>,
    signals: Arc<signals::InstanceSignals>,
}

impl SharedState {
    pub fn new(state: State) -> Self {
        SharedState { state: Arc::new(RwLock::new(state)), signals: Default::default() }
    }
    /// A read guard. A poisoned lock (a panic while applying) still yields the last state.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
    /// Wakes when something about `instance_id` (its record, or a task on it) changes.
    pub fn subscribe_instance(&self, instance_id: &str) -> signals::Signal {
        self.signals.subscribe(instance_id)
    }
}

/// The state machine raft drives.
pub struct Store {
    shared: SharedState,
    events: Arc<crate::events::EventLog>,
}

impl Store {
    /// A store whose events go to an in-memory log (tests).
    pub fn new(shared: SharedState) -> Self {
        Self::with_events(shared, crate::events::EventLog::in_memory())
    }

    /// A store appending its events to `events`.
    pub fn with_events(shared: SharedState, events: Arc<crate::events::EventLog>) -> Self {
        let cursor = shared.read().events.clone();
        events.set_cursor(&cursor, true);
        Store { shared, events }
    }
}

/// Decode a proposer's response bytes.
pub fn decode_result(bytes: &[u8]) -> ApplyResult {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        Err(Rejection::new(
            RejectKind::FailedPrecondition,
            "ServerException",
            format!("undecodable apply result: {e}"),
        ))
    })
}

impl crate::raft::StateMachine for Store {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let result: ApplyResult = match serde_json::from_slice::<Command>(command) {
            Ok(cmd) => {
                let trims = matches!(cmd, Command::TrimEvents { .. });
                let mut state = self.shared.write();
                events::identify_log(&mut state, command);
                let before = events::Before::of(&state, &cmd);
                // Apply to a copy-free path: `apply` itself is all-or-nothing by validating before it
                // mutates, so a rejection leaves the state as it was (and has no events).
                let r = apply::apply(&mut state, cmd);
                // The events' JSON is rendered by the event log (its writer thread), not here
                // under the lock: the batch holds copies of what changed.
                let new_events = if r.is_ok() {
                    events::derive_batch(&mut state, before)
                } else {
                    events::EventBatch::default()
                };
                state.applied_index = index;
                let cursor = state.events.clone();
                let touched = state.index.take_touched();
                drop(state);
                self.shared.signals.notify(&touched);
                self.events.append_batch(new_events, &cursor);
                if trims {
                    // Retention moves the cursor only past stored events.
                    self.events.drain();
                    self.events.set_cursor(&cursor, false);
                    self.events.prune();
                }
                r
            }
            Err(e) => {
                self.shared.write().applied_index = index;
                Err(Rejection::new(
                    RejectKind::InvalidParameter,
                    "ServerException",
                    format!("undecodable command at index {index}: {e}"),
                ))
            }
        };
        serde_json::to_vec(&result).unwrap_or_default()
    }

    /// Every event up to the state's cursor is stored first (`events::log`: a snapshot's cursor
    /// must not cover events that a crash could lose).
    fn snapshot(&self) -> Vec<u8> {
        self.events.drain_durable();
        serde_json::to_vec(&*self.shared.read()).unwrap_or_default()
    }

    /// A clone of the state (one pass over memory, far cheaper than encoding it), encoded to
    /// JSON off the Raft loop. Its events are stored first, as for [`Self::snapshot`] — waited
    /// for off the loop too: the job runs before the snapshot is written and stored.
    fn snapshot_data(&self) -> crate::raft::SnapshotData {
        let state = self.shared.read().clone();
        let events = self.events.clone();
        crate::raft::SnapshotData::Deferred(Box::new(move || {
            events.drain_durable();
            serde_json::to_vec(&state).unwrap_or_default()
        }))
    }

    fn restore(&mut self, data: &[u8]) {
        match serde_json::from_slice::<State>(data) {
            Ok(mut s) => {
                s.rebuild_index();
                // The old state's events go in first: the restored cursor's hole is measured
                // from what is stored.
                self.events.drain();
                let cursor = s.events.clone();
                s.index.take_touched();
                *self.shared.write() = s;
                self.shared.signals.notify_all();
                self.events.set_cursor(&cursor, true);
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot data does not decode; keeping the current state")
            }
        }
    }
}

#[cfg(test)]
mod tests;
