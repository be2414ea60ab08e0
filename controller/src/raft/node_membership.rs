//! The [`RaftNode`] parts beyond the Ready loop: membership changes (one at a time,
//! ConfChangeV2), the address book they carry, client-address announcements, ReadIndex rounds
//! and leadership transfer. Everything here runs on the node's task.

use raft::eraftpb::{ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType};
use raft::{ReadState, StateRole};

use super::handle::IndexReply;
use super::members::{
    ANNOUNCE_CONTEXT, ClientAnnouncement, ConfChangeContext, MemberAddress, MemberChange,
};
use super::node::{ProposalId, RaftNode, known_leader};
use super::{RaftError, StateMachine};

impl<S: StateMachine> RaftNode<S> {
    /// Proposes one membership change, or answers why not.
    pub(super) fn change_membership(&mut self, change: MemberChange, reply: IndexReply) {
        if let Err(e) = self.check_membership_change(&change) {
            let _ = reply.send(Err(e));
            return;
        }
        let (node_id, change_type, address) = match change {
            MemberChange::Add { id, address } => (id, ConfChangeType::AddNode, Some(address)),
            MemberChange::Remove { id } => (id, ConfChangeType::RemoveNode, None),
        };
        let proposal: ProposalId = *uuid::Uuid::new_v4().as_bytes();
        let context = ConfChangeContext { proposal, node_id, address };
        let context = match serde_json::to_vec(&context) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(RaftError::InvalidMembership(e.to_string())));
                return;
            }
        };
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = node_id;
        let mut cc = ConfChangeV2::default();
        cc.mut_changes().push(single);
        match self.raw.propose_conf_change(context, cc) {
            Ok(()) => self.pending_conf = Some((proposal, reply)),
            Err(raft::Error::ProposalDropped) => {
                let _ = reply.send(Err(RaftError::NotLeader { leader: None }));
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn check_membership_change(&self, change: &MemberChange) -> Result<(), RaftError> {
        if self.raw.raft.state != StateRole::Leader {
            return Err(RaftError::NotLeader { leader: known_leader(&self.raw) });
        }
        if self.pending_conf.is_some() || self.raw.raft.has_pending_conf() {
            return Err(RaftError::MembershipChangePending);
        }
        let cs = &self.conf_state;
        let is_member = |id: u64| cs.voters.contains(&id) || cs.learners.contains(&id);
        match change {
            MemberChange::Add { id, .. } if is_member(*id) => {
                Err(RaftError::InvalidMembership(format!("node {id} is already a member")))
            }
            MemberChange::Remove { id } if !is_member(*id) => {
                Err(RaftError::InvalidMembership(format!("node {id} is not a member")))
            }
            MemberChange::Remove { id } if cs.voters == [*id] => Err(RaftError::InvalidMembership(
                format!("node {id} is the last voter; it cannot be removed"),
            )),
            MemberChange::Remove { id } if *id == self.config.id => {
                Err(RaftError::InvalidMembership(
                    "the leader cannot remove itself; transfer leadership first".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Applies a committed conf-change entry: membership, address book, proposer's answer.
    pub(super) fn apply_conf_change_entry(&mut self, entry: &Entry) -> Result<(), RaftError> {
        let result = if entry.get_entry_type() == EntryType::EntryConfChange {
            let cc: ConfChange = decode_entry("conf change", entry)?;
            self.raw.apply_conf_change(&cc)
        } else {
            let cc: ConfChangeV2 = decode_entry("conf change v2", entry)?;
            self.raw.apply_conf_change(&cc)
        };
        let context: Option<ConfChangeContext> = serde_json::from_slice(&entry.context).ok();
        let index = entry.index;
        match result {
            Ok(cs) => {
                self.conf_state = cs;
                if let Some(ctx) = &context {
                    let is_member = self.conf_state.voters.contains(&ctx.node_id)
                        || self.conf_state.learners.contains(&ctx.node_id);
                    match (&ctx.address, is_member) {
                        (Some(address), true) => {
                            self.book.insert(ctx.node_id, address.clone());
                        }
                        (_, false) => {
                            self.book.remove(&ctx.node_id);
                        }
                        (None, true) => {}
                    }
                }
                tracing::info!(id = self.config.id, index, voters = ?self.conf_state.voters,
                    "membership changed");
                if let Some(reply) = self.take_conf_waiter(context.as_ref()) {
                    let _ = reply.send(Ok(index));
                }
            }
            // Deterministic on every replica: the change is rejected everywhere alike.
            Err(e) => {
                tracing::warn!(id = self.config.id, index, error = %e, "conf change rejected");
                if let Some(reply) = self.take_conf_waiter(context.as_ref()) {
                    let _ = reply.send(Err(RaftError::InvalidMembership(e.to_string())));
                }
            }
        }
        Ok(())
    }

    fn take_conf_waiter(&mut self, context: Option<&ConfChangeContext>) -> Option<IndexReply> {
        let ctx = context?;
        match &self.pending_conf {
            Some((id, _)) if *id == ctx.proposal => self.pending_conf.take().map(|(_, r)| r),
            _ => None,
        }
    }

    /// Applies a member's announcement of its own client address.
    pub(super) fn apply_announcement(&mut self, entry: &Entry) {
        match serde_json::from_slice::<ClientAnnouncement>(&entry.data) {
            Ok(a) => {
                if let Some(address) = self.book.get_mut(&a.node_id) {
                    address.client = Some(a.client);
                }
            }
            Err(e) => tracing::warn!(index = entry.index, error = %e, "bad client announcement"),
        }
    }

    /// If the book does not yet hold this node's configured client address, proposes it
    /// (fire and forget; a follower's raft forwards the proposal to the leader). Called every
    /// election timeout until it is applied.
    pub(super) fn announce_client_address(&mut self) {
        let Some(client) = self.config.client_address.clone() else { return };
        let id = self.config.id;
        let known = self.book.get(&id).map(|a: &MemberAddress| a.client.as_deref());
        if known.is_none() || known == Some(Some(client.as_str())) {
            return;
        }
        if known_leader(&self.raw).is_none() || !self.conf_state.voters.contains(&id) {
            return;
        }
        let Ok(data) = serde_json::to_vec(&ClientAnnouncement { node_id: id, client }) else {
            return;
        };
        if let Err(e) = self.raw.propose(ANNOUNCE_CONTEXT.to_vec(), data) {
            tracing::debug!(id, error = %e, "client address announcement not proposed");
        }
    }

    /// Starts one ReadIndex round for every read request received since the last Ready.
    pub(super) fn start_read_round(&mut self) {
        if self.read_batch.is_empty() {
            return;
        }
        self.read_seq += 1;
        let seq = self.read_seq;
        self.raw.read_index(seq.to_be_bytes().to_vec());
        let batch = std::mem::take(&mut self.read_batch);
        self.read_waiters.insert(seq, batch);
    }

    /// Answers the read requests whose ReadIndex round completed with the index to wait for.
    pub(super) fn answer_reads(&mut self, states: Vec<ReadState>) {
        for rs in states {
            let Ok(seq) = <[u8; 8]>::try_from(&rs.request_ctx[..]) else { continue };
            if let Some(waiters) = self.read_waiters.remove(&u64::from_be_bytes(seq)) {
                for w in waiters {
                    let _ = w.send(Ok(rs.index));
                }
            }
        }
    }

    /// Starts handing leadership to the most caught-up other voter; returns it, or `None` if
    /// this node is not the leader or leads alone.
    pub(super) fn transfer_leader(&mut self) -> Option<u64> {
        if self.raw.raft.state != StateRole::Leader {
            return None;
        }
        let me = self.config.id;
        let prs = self.raw.raft.prs();
        let target = self
            .conf_state
            .voters
            .iter()
            .filter(|id| **id != me)
            .filter_map(|id| prs.get(*id).map(|p| (p.matched, *id)))
            .max()
            .map(|(_, id)| id)?;
        tracing::info!(id = me, target, "transferring leadership");
        self.raw.transfer_leader(target);
        Some(target)
    }
}

fn decode_entry<M: protobuf::Message>(what: &'static str, entry: &Entry) -> Result<M, RaftError> {
    M::parse_from_bytes(&entry.data).map_err(|source| RaftError::Decode { what, source })
}
