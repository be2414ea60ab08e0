//! The one way to change state: encode a command, propose it through Raft, wait until it is
//! committed, durable and applied, and decode the store's answer.

use crate::error::{Error, Result};
use crate::raft::{RaftError, RaftHandle};
use crate::store::{Applied, Command, decode_result};

#[derive(Clone)]
pub struct Proposer {
    raft: RaftHandle,
}

impl Proposer {
    pub fn new(raft: RaftHandle) -> Self {
        Proposer { raft }
    }
    pub fn raft(&self) -> &RaftHandle {
        &self.raft
    }
    pub async fn propose(&self, cmd: &Command) -> Result<Applied> {
        let bytes = self.raft.propose(cmd.encode()).await.map_err(|e| match e {
            RaftError::NotLeader { leader } => Error::NotLeader { leader },
            other => Error::Raft(other.to_string()),
        })?;
        Ok(decode_result(&bytes)?)
    }
}
