//! Controller membership and status: ListMembers, AddMember, RemoveMember, GetStatus.

use super::{object, Api};
use crate::error::{Error, Result};
use berth_proto::model::ControllerStatus;
use berth_proto::v1;
use tonic::Response;

/// FNV-1a 64 over the serialized state: equal on members that applied the same log prefix.
pub fn state_digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

pub fn status(api: &Api) -> Result<Response<v1::ObjectReply>> {
    let raft = api.proposer.raft();
    let role = *raft.role().borrow();
    let (applied, digest) = {
        let st = api.shared.read();
        let bytes = serde_json::to_vec(&*st).map_err(|e| Error::Storage(format!("encoding state: {e}")))?;
        (st.applied_index, state_digest(&bytes))
    };
    let status = ControllerStatus {
        node_id: raft.id(),
        role: if role.is_leader() { "leader".into() } else { "follower".into() },
        leader_id: role.leader_id,
        term: role.term,
        applied_index: applied,
        state_digest: digest,
    };
    object(&status, vec![])
}
