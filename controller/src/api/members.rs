//! Controller membership and status: ListMembers, AddMember, RemoveMember, GetStatus.

use super::{Api, list_reply, object};
use crate::error::{Error, Result};
use berth_proto::model::{ControllerStatus, Member};
use berth_proto::v1;
use tonic::Response;

pub fn list(api: &Api) -> Result<Response<v1::ListReply>> {
    list_reply(api.proposer.raft().members())
}

fn member(api: &Api, id: u64) -> Option<Member> {
    api.proposer.raft().members().into_iter().find(|m| m.node_id == id)
}

pub async fn add(api: &Api, r: v1::AddMemberRequest) -> Result<Response<v1::ObjectReply>> {
    if r.node_id == 0 {
        return Err(Error::invalid("nodeId 0 is invalid: node ids start at 1."));
    }
    if r.peer_address.parse::<std::net::SocketAddr>().is_err() && !r.peer_address.contains(':') {
        return Err(Error::invalid(format!(
            "peerAddress '{}' is invalid: expected HOST:PORT of the new controller's --peer-listen.",
            r.peer_address
        )));
    }
    let client = (!r.client_address.is_empty()).then(|| r.client_address.clone());
    api.proposer.raft().add_member(r.node_id, r.peer_address.clone(), client).await?;
    let m = member(api, r.node_id).unwrap_or(Member {
        node_id: r.node_id,
        peer_address: r.peer_address,
        client_address: (!r.client_address.is_empty()).then_some(r.client_address),
        role: "voter".into(),
        is_leader: false,
    });
    object(&m, vec![])
}

pub async fn remove(api: &Api, r: v1::RemoveMemberRequest) -> Result<Response<v1::ObjectReply>> {
    let Some(m) = member(api, r.node_id) else {
        return Err(Error::Membership(format!("node {} is not a member of the group.", r.node_id)));
    };
    api.proposer.raft().remove_member(r.node_id).await?;
    object(&m, vec![])
}

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
        let bytes =
            serde_json::to_vec(&*st).map_err(|e| Error::Storage(format!("encoding state: {e}")))?;
        (st.applied_index, state_digest(&bytes))
    };
    let status = ControllerStatus {
        node_id: raft.id(),
        role: if role.is_leader() { "leader".into() } else { "follower".into() },
        leader_id: role.leader_id,
        term: role.term,
        applied_index: (*raft.applied().borrow()).max(applied),
        state_digest: digest,
    };
    object(&status, vec![])
}
