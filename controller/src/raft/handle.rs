//! [`RaftHandle`]: the cloneable client side of a [`RaftNode`](super::RaftNode). Every method
//! sends one [`Input`] to the node's loop (or reads one of its watch channels); none touches
//! the `RawNode`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_proto::model::Member;
use raft::prelude::Message;
use tokio::sync::{mpsc, oneshot, watch};

use super::members::{MemberAddress, MemberChange, MembershipView};
use super::{RaftError, RoleState};

pub(super) type ProposalReply = oneshot::Sender<Result<(Vec<u8>, u64), RaftError>>;
pub(super) type IndexReply = oneshot::Sender<Result<u64, RaftError>>;

pub(super) enum Input {
    Propose {
        command: Vec<u8>,
        reply: ProposalReply,
    },
    ChangeMembership {
        change: MemberChange,
        reply: IndexReply,
    },
    ReadIndex {
        reply: IndexReply,
    },
    TransferLeader {
        reply: oneshot::Sender<Option<u64>>,
    },
    ReportSnapshot {
        to: u64,
        ok: bool,
    },
    Unreachable(u64),
    Step(Box<Message>),
    Tick,
    Shutdown(oneshot::Sender<()>),
    /// A deferred snapshot finished encoding (see `node_snapshot.rs`).
    SnapshotEncoded(super::node_snapshot::EncodedSnapshot),
}

/// Client side of a [`RaftNode`](super::RaftNode); cheap to clone.
#[derive(Clone)]
pub struct RaftHandle {
    pub(super) id: u64,
    pub(super) inputs: mpsc::Sender<Input>,
    pub(super) role: watch::Receiver<RoleState>,
    pub(super) applied: watch::Receiver<u64>,
    pub(super) members: watch::Receiver<MembershipView>,
    pub(super) snapshots_installed: Arc<AtomicU64>,
    /// Highest log index known committed (updated after every Ready).
    pub(super) commit: Arc<AtomicU64>,
    pub(super) metrics: crate::metrics::RaftMetrics,
    /// Bound on waiting for a leader or a read index: two election timeouts.
    pub(super) leader_wait: Duration,
}

impl RaftHandle {
    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Proposes `command`; resolves after it is committed, durable and applied, with the state
    /// machine's response. `NotLeader` on a follower; `LeadershipLost` if the outcome is unknown.
    pub async fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, RaftError> {
        self.propose_indexed(command).await.map(|(response, _)| response)
    }

    /// [`RaftHandle::propose`], also answering the log index the command was applied at.
    pub async fn propose_indexed(&self, command: Vec<u8>) -> Result<(Vec<u8>, u64), RaftError> {
        let started = std::time::Instant::now();
        let (reply, response) = oneshot::channel();
        self.send(Input::Propose { command, reply }).await?;
        let answer = response.await.map_err(|_| RaftError::Stopped)?;
        if answer.is_ok() {
            self.metrics.proposal_duration.observe(started.elapsed().as_secs_f64());
        }
        answer
    }

    pub fn is_leader(&self) -> bool {
        self.role.borrow().is_leader()
    }

    pub fn leader_id(&self) -> Option<u64> {
        self.role.borrow().leader_id
    }

    /// Role and term, updated after every Ready; leader-only loops start and stop on it.
    pub fn role(&self) -> watch::Receiver<RoleState> {
        self.role.clone()
    }

    /// Index of the last applied entry; wakes waiters whenever the state changed.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Membership and address book as of the applied index.
    pub fn membership(&self) -> watch::Receiver<MembershipView> {
        self.members.clone()
    }

    /// How long callers wait for a leader to appear (two election timeouts).
    pub fn leader_wait(&self) -> Duration {
        self.leader_wait
    }

    /// Snapshots received from a leader and installed since this node started (for tests and
    /// metrics).
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::Relaxed)
    }

    /// Highest log index this node knows committed.
    pub fn commit_index(&self) -> u64 {
        self.commit.load(Ordering::Relaxed)
    }

    /// Index of the last entry applied here.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// True if this node is a voter or learner of the group (as it applied the membership).
    pub fn is_member(&self) -> bool {
        self.members.borrow().contains(self.id)
    }

    /// The group's members (voters, then learners) with their addresses, as this node applied
    /// them.
    pub fn members(&self) -> Vec<Member> {
        let view = self.members.borrow().clone();
        let leader = self.leader_id();
        let voters = view.voters.iter().map(|id| (*id, "voter"));
        let learners = view.learners.iter().map(|id| (*id, "learner"));
        voters
            .chain(learners)
            .map(|(id, role)| {
                let address = view.addresses.get(&id).cloned().unwrap_or_default();
                Member {
                    node_id: id,
                    peer_address: address.peer,
                    client_address: address.client,
                    role: role.to_string(),
                    is_leader: leader == Some(id),
                }
            })
            .collect()
    }

    /// Adds voter `id` (one change at a time) and returns once the change is applied here.
    /// Leader only (`NotLeader` elsewhere). Refused while another change is pending or if `id`
    /// is already a member.
    pub async fn add_member(
        &self,
        id: u64,
        peer_address: String,
        client_address: Option<String>,
    ) -> Result<u64, RaftError> {
        if id == 0 || peer_address.is_empty() {
            return Err(RaftError::InvalidMembership(
                "a member needs a non-zero id and a peer address".into(),
            ));
        }
        let address = MemberAddress { peer: peer_address, client: client_address };
        self.change_membership(MemberChange::Add { id, address }).await
    }

    /// Removes member `id` and returns once the change is applied here. Leader only. Refused
    /// for the last voter or while another change is pending. Removing the leader itself first
    /// hands leadership to the most caught-up follower, then answers `NotLeader` with the new
    /// leader, so the caller retries there.
    pub async fn remove_member(&self, id: u64) -> Result<u64, RaftError> {
        if id == self.id && self.is_leader() {
            let view = self.members.borrow().clone();
            if view.voters == [id] {
                return Err(RaftError::InvalidMembership(format!(
                    "node {id} is the last voter; it cannot be removed"
                )));
            }
            let leader = self.transfer_leadership(self.leader_wait).await?;
            return Err(RaftError::NotLeader { leader });
        }
        self.change_membership(MemberChange::Remove { id }).await
    }

    async fn change_membership(&self, change: MemberChange) -> Result<u64, RaftError> {
        let (reply, response) = oneshot::channel();
        self.send(Input::ChangeMembership { change, reply }).await?;
        let index = response.await.map_err(|_| RaftError::Stopped)??;
        Ok(index)
    }

    /// Linearizable read barrier (ReadIndex): returns once this node has applied everything
    /// committed when the call was made, so a read of the local state afterwards sees every
    /// acknowledged write. Works on followers (raft forwards the request to the leader).
    /// Concurrent calls share one ReadIndex round. `Timeout` if no leader answers within
    /// [`RaftHandle::leader_wait`].
    pub async fn read_barrier(&self) -> Result<(), RaftError> {
        let (reply, response) = oneshot::channel();
        self.send(Input::ReadIndex { reply }).await?;
        let index = tokio::time::timeout(self.leader_wait, response)
            .await
            .map_err(|_| RaftError::Timeout { what: "read index" })?
            .map_err(|_| RaftError::Stopped)??;
        self.wait_applied(index, self.leader_wait).await
    }

    /// Waits until this node has applied `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), RaftError> {
        let mut applied = self.applied.clone();
        match tokio::time::timeout(timeout, applied.wait_for(|a| *a >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(RaftError::Stopped),
            Err(_) => Err(RaftError::Timeout { what: "apply" }),
        }
    }

    /// Waits until some leader is known; `None` after `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let mut role = self.role.clone();
        match tokio::time::timeout(timeout, role.wait_for(|r| r.leader_id.is_some())).await {
            Ok(Ok(r)) => r.leader_id,
            _ => None,
        }
    }

    /// If this node leads and other voters exist, asks the most caught-up one to take over and
    /// waits (up to `timeout`) until another node leads. Returns the leader known at the end.
    pub async fn transfer_leadership(&self, timeout: Duration) -> Result<Option<u64>, RaftError> {
        let (reply, response) = oneshot::channel();
        self.send(Input::TransferLeader { reply }).await?;
        let Some(target) = response.await.map_err(|_| RaftError::Stopped)? else {
            return Ok(self.leader_id());
        };
        let mut role = self.role.clone();
        let moved = role.wait_for(|r| !r.is_leader() && r.leader_id.is_some_and(|l| l != self.id));
        match tokio::time::timeout(timeout, moved).await {
            Ok(Ok(r)) => Ok(r.leader_id),
            Ok(Err(_)) => Err(RaftError::Stopped),
            Err(_) => {
                tracing::warn!(id = self.id, target, "leadership transfer did not finish in time");
                Ok(self.leader_id())
            }
        }
    }

    /// Hands an inbound raft message (from a transport) to the node. Never waits: a full
    /// inbox drops the message, which raft tolerates.
    pub fn step(&self, msg: Message) -> Result<(), RaftError> {
        self.inputs.try_send(Input::Step(Box::new(msg))).map_err(|_| RaftError::Stopped)
    }

    /// Transport feedback: a message to `to` could not be delivered.
    pub fn report_unreachable(&self, to: u64) {
        let _ = self.inputs.try_send(Input::Unreachable(to));
    }

    /// Transport feedback: the snapshot sent to `to` was delivered (`ok`) or not.
    pub fn report_snapshot(&self, to: u64, ok: bool) {
        let _ = self.inputs.try_send(Input::ReportSnapshot { to, ok });
    }

    /// One logical clock tick. Sent by the ticker in production, by hand in tests.
    pub fn tick(&self) -> Result<(), RaftError> {
        self.inputs.try_send(Input::Tick).map_err(|_| RaftError::Stopped)
    }

    /// Stops the node after the inputs already queued: snapshots the state machine, flushes,
    /// and releases the storage. Returns once the node has stopped (at once if it already had).
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        let (done, stopped) = oneshot::channel();
        if self.inputs.send(Input::Shutdown(done)).await.is_err() {
            return Ok(());
        }
        // The loop drops `done` without sending if it fails; either way it has stopped.
        let _ = stopped.await;
        Ok(())
    }

    async fn send(&self, input: Input) -> Result<(), RaftError> {
        self.inputs.send(input).await.map_err(|_| RaftError::Stopped)
    }
}
