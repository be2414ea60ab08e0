//! The one way to change state: encode a command, propose it through Raft, wait until it is
//! committed, durable and applied, and decode the store's answer.
//!
//! On a follower the command is forwarded to the leader ([`Forward`], the gRPC implementation
//! is `peer::PeerForwarder`); the follower then waits until it has applied the command's index
//! itself, so a read on this node right after the write sees it. With no leader known, it
//! waits up to [`RaftHandle::leader_wait`] for one, then answers `NotLeader`.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::raft::{RaftError, RaftHandle};
use crate::store::{Applied, Command, decode_result};

/// Sends a command to the leader and answers `(result, applied index)`.
pub trait Forward: Send + Sync + 'static {
    fn forward(
        &self,
        leader: u64,
        command: Vec<u8>,
    ) -> BoxFuture<'static, Result<(Vec<u8>, u64), RaftError>>;
}

/// How long a follower waits to apply an index the leader already applied. Generous: the
/// follower only lags by the replication of one heartbeat or append round.
const FOLLOWER_APPLY_WAIT: Duration = Duration::from_secs(10);

/// Pause before retrying when the leader is unknown or just changed (a few ticks).
const LEADER_RETRY_PAUSE: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Proposer {
    raft: RaftHandle,
    forwarder: Option<std::sync::Arc<dyn Forward>>,
}

impl Proposer {
    /// A proposer that never forwards (a group of one, or tests).
    pub fn new(raft: RaftHandle) -> Self {
        Proposer { raft, forwarder: None }
    }

    /// A proposer that forwards to the leader when this node follows.
    pub fn with_forwarder(raft: RaftHandle, forwarder: std::sync::Arc<dyn Forward>) -> Self {
        Proposer { raft, forwarder: Some(forwarder) }
    }

    pub fn raft(&self) -> &RaftHandle {
        &self.raft
    }

    pub async fn propose(&self, cmd: &Command) -> Result<Applied> {
        let bytes = self.propose_bytes(cmd.encode()).await.map_err(Error::from)?;
        Ok(decode_result(&bytes)?)
    }

    /// Proposes raw command bytes here or at the leader; answers the state machine's response
    /// once this node has applied the command.
    pub async fn propose_bytes(&self, command: Vec<u8>) -> Result<Vec<u8>, RaftError> {
        let deadline = tokio::time::Instant::now() + self.raft.leader_wait();
        loop {
            let leader = match self.raft.propose(command.clone()).await {
                Ok(response) => return Ok(response),
                Err(RaftError::NotLeader { leader }) => leader.filter(|l| *l != self.raft.id()),
                Err(e) => return Err(e),
            };
            match (leader, &self.forwarder) {
                (Some(leader), Some(forwarder)) => {
                    match forwarder.forward(leader, command.clone()).await {
                        Ok((response, index)) => {
                            self.raft.wait_applied(index, FOLLOWER_APPLY_WAIT).await?;
                            return Ok(response);
                        }
                        // Not proposed anywhere: safe to retry with the next leader.
                        Err(RaftError::NotLeader { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                (Some(leader), None) => return Err(RaftError::NotLeader { leader: Some(leader) }),
                (None, _) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(RaftError::NotLeader { leader: self.raft.leader_id() });
            }
            let mut role = self.raft.role();
            role.borrow_and_update();
            let pause = LEADER_RETRY_PAUSE.min(deadline - now);
            let _ = tokio::time::timeout(pause, role.changed()).await;
        }
    }
}
