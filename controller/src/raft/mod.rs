//! # raft — the controller's consensus layer, on tikv raft-rs 0.7
//!
//! Owns the Raft group of controllers: the Ready loop, the Raft log on a [`KvBackend`],
//! proposals and their answers, state-machine snapshots and log compaction, and the transport
//! seam.
//!
//! ```text
//!  RaftHandle::propose ─┐            ┌────────── RaftNode task (owns RawNode) ──────────┐
//!  transport inbound ───┼─ mpsc ──►  │ step/tick/propose → Ready → LogStore batch+flush │
//!  ticker (or a test) ──┘  Input     │ → send persisted msgs → StateMachine::apply      │
//!                                    │ → answer proposer → maybe snapshot + compact     │
//!                                    └───────┬───────────────────────┬──────────────────┘
//!                   RaftTransport::send ◄────┘      watch: RoleState, applied index
//! ```
//!
//! * `config.rs`    — [`RaftConfig`]: ids, ticks, snapshot threshold; `validate()`.
//! * `log_store.rs` — [`LogStore`]: `raft::Storage` over a [`KvBackend`] (entries, hard state,
//!   conf state, latest snapshot), staged writes committed as one batch.
//! * `node.rs`      — [`RaftNode`], the Ready loop; `node_membership.rs` — its membership,
//!   ReadIndex and leadership-transfer parts.
//! * `handle.rs`    — [`RaftHandle`], the cloneable client side (propose, read barrier,
//!   members, transfer, transport feedback).
//! * `members.rs`   — the replicated address book and the snapshot data envelope.
//! * `transport.rs` — [`RaftTransport`] and the in-memory [`MemNetwork`] used by tests.
//!
//! The state machine is the caller's ([`StateMachine`], implemented in `store/`); this module
//! never interprets command bytes. Must not touch: sled directly (only through `storage/`),
//! gRPC types (a gRPC transport implements [`RaftTransport`] elsewhere), clocks (ticks arrive
//! as messages).

mod config;
mod handle;
mod log_store;
mod members;
mod node;
mod node_membership;
mod node_snapshot;
mod transport;

#[cfg(test)]
mod node_tests;

pub use config::{DEFAULT_SNAPSHOT_THRESHOLD, DEFAULT_TICK_MS, RaftConfig};

pub use handle::RaftHandle;
pub use log_store::LogStore;
pub use members::{AddressBook, MemberAddress, MemberChange, MembershipView};
pub use node::{BOOTSTRAP_INDEX, RaftNode};
pub use transport::{MemNetwork, MemTransport, RaftTransport};

use crate::storage::KvError;

/// The replicated state machine, supplied by the caller (`store/` implements it).
pub trait StateMachine: Send + 'static {
    /// Apply one committed normal entry (the bytes a proposer gave) at `index`. Must be
    /// deterministic. Returns the response bytes handed back to the proposer.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;
    /// Serialize the whole state (as of the last applied index).
    fn snapshot(&self) -> Vec<u8>;
    /// The periodic snapshot: by default [`SnapshotData::Ready`] with [`Self::snapshot`]. A
    /// large state machine returns [`SnapshotData::Deferred`]: a cheap capture of the state now
    /// and a job that encodes it off the Ready loop, so heartbeats and appends keep flowing
    /// while it runs (a stalled leader would otherwise be voted out).
    fn snapshot_data(&self) -> SnapshotData {
        SnapshotData::Ready(self.snapshot())
    }
    /// Replace the whole state with a snapshot's data.
    fn restore(&mut self, data: &[u8]);
}

/// A periodic snapshot's data, encoded now or by a job on a blocking thread.
pub enum SnapshotData {
    Ready(Vec<u8>),
    Deferred(Box<dyn FnOnce() -> Vec<u8> + Send>),
}

/// Role of this node in the Raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Follower, candidate or pre-candidate: anything that must not act as leader.
    Follower,
}

/// What leader-only loops watch: role, term, and the leader this node knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleState {
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<u64>,
}

impl RoleState {
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

impl RaftError {
    /// True for errors a client should retry later or elsewhere (gRPC `Unavailable`): no
    /// leader, leadership lost, forwarding failed, timeouts, stopping. For `LeadershipLost`
    /// and `ForwardFailed` the command may or may not have been applied.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            RaftError::NotLeader { .. }
                | RaftError::LeadershipLost { .. }
                | RaftError::ForwardFailed { .. }
                | RaftError::Timeout { .. }
                | RaftError::Stopped
                | RaftError::MembershipChangePending
        )
    }
}

/// Every error of the Raft layer.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// Proposals go to the leader; `leader` is the one this node knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// Leadership changed (now at `term`) while the proposal was in flight. Its outcome is
    /// unknown: it may or may not be applied, so a retry must be idempotent.
    #[error("leadership lost at term {term}; proposal outcome unknown")]
    LeadershipLost { term: u64 },
    /// The node is shutting down or its loop has stopped.
    #[error("raft node stopped")]
    Stopped,
    #[error("invalid raft config: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Storage(#[from] KvError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("cannot decode {what}: {source}")]
    Decode { what: &'static str, source: protobuf::ProtobufError },
    #[error("cannot encode {what}: {source}")]
    Encode { what: &'static str, source: protobuf::ProtobufError },
    /// Appending at `append_from` would leave a hole or overwrite compacted entries.
    #[error("log append at {append_from} outside [{first_index}, {}]", last_index + 1)]
    LogAppendOutOfRange { append_from: u64, first_index: u64, last_index: u64 },
    /// The stored log is not what the metadata says (missing or misnumbered entry).
    #[error("raft log corrupt at index {index}: {message}")]
    CorruptLog { index: u64, message: String },
    /// A membership change that cannot be made (already a member, not a member, last voter).
    #[error("membership change refused: {0}")]
    InvalidMembership(String),
    /// Another membership change is still being applied; retry after it.
    #[error("another membership change is pending")]
    MembershipChangePending,
    /// No answer in time (no leader reachable for a read index, or an apply wait).
    #[error("timed out waiting for {what}")]
    Timeout { what: &'static str },
    /// A proposal forwarded to leader `leader` failed in transit; its outcome is unknown.
    #[error("forwarding to leader {leader} failed: {message}")]
    ForwardFailed { leader: u64, message: String },
    /// Snapshot data that does not decode.
    #[error("corrupt snapshot: {0}")]
    CorruptSnapshot(String),
    /// The loop's thread or runtime could not be made (`RaftNode::run_on_own_thread`).
    #[error("cannot start the raft loop: {0}")]
    Spawn(String),
    /// A snapshot older than the one already stored.
    #[error("snapshot at {index} is older than stored snapshot at {stored}")]
    SnapshotOutOfDate { index: u64, stored: u64 },
}
