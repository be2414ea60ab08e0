//! [`PeerService`]: the `RaftPeer` server. Steps received raft messages into the local node,
//! reassembles chunked snapshots, and proposes commands forwarded by followers.
//!
//! Over mutual TLS ([`serve_with_tls`]) every call is also checked against the group
//! ([`admit_peer`], pure): the caller's certificate must be a controller that is a member as
//! this node applied the membership (a removed controller's still-valid certificate no longer
//! speaks for anyone), and a raft message's `from` must be that controller. A node that has
//! not applied any membership yet (a joiner waiting for its first snapshot) accepts any
//! controller of the cluster CA.

use std::future::Future;

use berth_proto::v1::raft_peer_server::{RaftPeer, RaftPeerServer};
use berth_proto::v1::{
    EventMessage, ForwardReply, ForwardRequest, PeerAck, RaftBatch, ReadEventsReply,
    ReadEventsRequest, SnapshotChunk,
};
use protobuf::Message as _;
use raft::prelude::Message;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

use super::PEER_MAX_MESSAGE_BYTES;
use crate::raft::{RaftError, RaftHandle};

/// gRPC metadata naming the leader on a `Forward` refused with `Unavailable`.
pub const LEADER_METADATA: &str = "x-berth-leader";
/// gRPC metadata marking a `Forward` refused because this node is not the leader (the
/// command was not proposed: safe to retry elsewhere).
pub const NOT_LEADER_METADATA: &str = "x-berth-not-leader";

/// Server side of `berth.v1.RaftPeer` for one node.
#[derive(Clone)]
pub struct PeerService {
    raft: RaftHandle,
    events: std::sync::Arc<crate::events::EventLog>,
    /// Callers are authenticated by certificate ([`admit_peer`] applies).
    tls: bool,
}

/// Whether a caller may use `RaftPeer` (see the module doc). `identity`: the caller's
/// certificate identity (`None`: no certificate); `froms`: the `from` of every raft message
/// it sends. Returns the caller's node id.
pub fn admit_peer(
    identity: Option<berth_security::Result<berth_security::Identity>>,
    view: &crate::raft::MembershipView,
    froms: impl IntoIterator<Item = u64>,
) -> Result<u64, Status> {
    let identity = match identity {
        None => return Err(Status::unauthenticated("RaftPeer needs a controller certificate")),
        Some(Err(e)) => return Err(Status::unauthenticated(format!("client certificate: {e}"))),
        Some(Ok(identity)) => identity,
    };
    let id = match (identity.role(), identity.id().parse::<u64>()) {
        (berth_security::Role::Controller, Ok(id)) => id,
        _ => {
            return Err(Status::permission_denied(format!(
                "AccessDeniedException: {identity} is not a controller"
            )));
        }
    };
    if view.is_known() && !view.contains(id) {
        return Err(Status::permission_denied(format!(
            "AccessDeniedException: controller {id} is not a member of this group (removed, or not added yet)"
        )));
    }
    if let Some(other) = froms.into_iter().find(|f| *f != id) {
        return Err(Status::permission_denied(format!(
            "AccessDeniedException: controller {id} sent a raft message from node {other}"
        )));
    }
    Ok(id)
}

/// Events one `ReadEvents` answers at most.
pub const READ_EVENTS_MAX: usize = 1024;

impl PeerService {
    pub fn new(raft: RaftHandle, events: std::sync::Arc<crate::events::EventLog>) -> Self {
        Self { raft, events, tls: false }
    }

    /// Callers present certificates: check each call with [`admit_peer`].
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// [`admit_peer`] for `request` when over TLS (the caller's node id); messages' `from`
    /// in `froms`. `None` without TLS.
    fn admit<T>(
        &self,
        request: &Request<T>,
        froms: impl IntoIterator<Item = u64>,
    ) -> Result<Option<u64>, Status> {
        if !self.tls {
            return Ok(None);
        }
        let view = self.raft.membership().borrow().clone();
        admit_peer(berth_security::peer_identity(request), &view, froms)
            .map(Some)
            .inspect_err(|e| tracing::warn!(error = %e.message(), "refused a RaftPeer call"))
    }

    fn decode(bytes: &[u8]) -> Result<Message, Status> {
        Message::parse_from_bytes(bytes)
            .map_err(|e| Status::invalid_argument(format!("raft message does not decode: {e}")))
    }

    fn step(&self, msg: Message) -> Result<(), Status> {
        if msg.to != self.raft.id() {
            return Err(Status::invalid_argument(format!(
                "message for node {} reached node {}",
                msg.to,
                self.raft.id()
            )));
        }
        self.raft.step(msg).map_err(|e| Status::unavailable(e.to_string()))
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn read_events(
        &self,
        request: Request<ReadEventsRequest>,
    ) -> Result<Response<ReadEventsReply>, Status> {
        self.admit(&request, [])?;
        let r = request.into_inner();
        let max = (r.max as usize).clamp(1, READ_EVENTS_MAX);
        let first_index = self.events.tip().first;
        let events = match self.events.read(r.from_index.max(first_index), max) {
            Ok(events) => events,
            Err(crate::events::Trimmed { oldest }) => {
                return Ok(Response::new(ReadEventsReply { events: vec![], first_index: oldest }));
            }
        };
        let events = events
            .iter()
            .map(|e| EventMessage {
                index: e.index,
                detail_type: e.detail_type.clone(),
                json: e.json.clone(),
            })
            .collect();
        Ok(Response::new(ReadEventsReply { events, first_index }))
    }

    async fn step(&self, request: Request<RaftBatch>) -> Result<Response<PeerAck>, Status> {
        let messages: Vec<Message> =
            request.get_ref().messages.iter().map(|b| Self::decode(b)).collect::<Result<_, _>>()?;
        self.admit(&request, messages.iter().map(|m| m.from))?;
        for msg in messages {
            self.step(msg)?;
        }
        Ok(Response::new(PeerAck {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<tonic::Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
        let caller = self.admit(&request, [])?;
        let mut stream = request.into_inner();
        let mut header: Option<Message> = None;
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if header.is_none() {
                let msg = Message::parse_from_bytes(&chunk.message).map_err(|e| {
                    Status::invalid_argument(format!("snapshot header does not decode: {e}"))
                })?;
                header = Some(msg);
            }
            data.extend_from_slice(&chunk.data);
        }
        let mut msg = header.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        tracing::info!(to = msg.to, from = msg.from, bytes = data.len(), "snapshot received");
        if let Some(caller) = caller
            && msg.from != caller
        {
            return Err(Status::permission_denied(format!(
                "AccessDeniedException: controller {caller} sent a snapshot from node {}",
                msg.from
            )));
        }
        msg.mut_snapshot().data = data.into();
        self.step(msg)?;
        Ok(Response::new(PeerAck {}))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        self.admit(&request, [])?;
        let command = request.into_inner().command;
        match self.raft.propose_indexed(command).await {
            Ok((result, index)) => Ok(Response::new(ForwardReply { result, index })),
            Err(RaftError::NotLeader { leader }) => {
                let mut status = Status::unavailable(format!(
                    "node {} is not the leader (leader: {leader:?})",
                    self.raft.id()
                ));
                status.metadata_mut().insert(
                    NOT_LEADER_METADATA,
                    "1".parse().map_err(|_| Status::internal("metadata"))?,
                );
                if let Some(l) = leader
                    && let Ok(v) = l.to_string().parse()
                {
                    status.metadata_mut().insert(LEADER_METADATA, v);
                }
                Err(status)
            }
            Err(e @ RaftError::LeadershipLost { .. }) => Err(Status::aborted(e.to_string())),
            Err(e @ RaftError::Stopped) => Err(Status::unavailable(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

/// Serves `RaftPeer` for `raft` on `listener` until `shutdown` resolves (plaintext).
pub async fn serve(
    listener: tokio::net::TcpListener,
    raft: RaftHandle,
    events: std::sync::Arc<crate::events::EventLog>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_with_tls(listener, raft, events, None, shutdown).await
}

/// [`serve`], over mutual TLS when `tls` is given (`super::PeerTls::server`: only controller
/// certificates of the cluster CA complete the handshake, so no unauthenticated byte reaches
/// the raft decoder).
pub async fn serve_with_tls(
    listener: tokio::net::TcpListener,
    raft: RaftHandle,
    events: std::sync::Arc<crate::events::EventLog>,
    tls: Option<berth_security::ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = RaftPeerServer::new(PeerService::new(raft, events).with_tls(tls.is_some()))
        .max_decoding_message_size(PEER_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(PEER_MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder().add_service(service);
    match tls {
        // The TLS incoming sets TCP_NODELAY itself.
        Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(listener), shutdown).await,
        None => {
            // TCP_NODELAY (see server.rs): small raft messages must not wait for a delayed ACK.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::admit_peer;
    use crate::raft::MembershipView;
    use berth_security::Identity;

    fn view(voters: &[u64]) -> MembershipView {
        MembershipView { voters: voters.to_vec(), ..Default::default() }
    }

    #[test]
    fn only_member_controllers_speak_for_themselves() {
        let c = |id| Some(Ok(Identity::controller(id).expect("identity")));
        assert_eq!(admit_peer(c(2), &view(&[1, 2, 3]), [2, 2]).expect("member"), 2);
        // Removed (or never added): refused, naming it.
        let err = admit_peer(c(4), &view(&[1, 2, 3]), [4]).expect_err("removed");
        assert!(err.message().contains("controller 4 is not a member"), "{err:?}");
        // A member speaking for another node: refused.
        let err = admit_peer(c(2), &view(&[1, 2, 3]), [2, 3]).expect_err("spoofed from");
        assert!(err.message().contains("sent a raft message from node 3"), "{err:?}");
        // An agent certificate, or none.
        let agent = Some(Ok(Identity::agent("0123456789abcdef0123456789abcdef").expect("id")));
        assert!(admit_peer(agent, &view(&[1]), []).is_err());
        assert_eq!(
            admit_peer(None, &view(&[1]), []).expect_err("anonymous").code(),
            tonic::Code::Unauthenticated
        );
        // A joiner that has applied no membership yet accepts the cluster's controllers.
        assert_eq!(admit_peer(c(1), &MembershipView::default(), [1]).expect("joiner"), 1);
    }
}
