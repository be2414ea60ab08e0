//! [`PeerService`]: the `RaftPeer` server. Steps received raft messages into the local node,
//! reassembles chunked snapshots, and proposes commands forwarded by followers.

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
}

/// Events one `ReadEvents` answers at most.
pub const READ_EVENTS_MAX: usize = 1024;

impl PeerService {
    pub fn new(raft: RaftHandle, events: std::sync::Arc<crate::events::EventLog>) -> Self {
        Self { raft, events }
    }

    fn step_bytes(&self, bytes: &[u8]) -> Result<(), Status> {
        let msg = Message::parse_from_bytes(bytes)
            .map_err(|e| Status::invalid_argument(format!("raft message does not decode: {e}")))?;
        self.step(msg)
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
        for bytes in &request.get_ref().messages {
            self.step_bytes(bytes)?;
        }
        Ok(Response::new(PeerAck {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<tonic::Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
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
        msg.mut_snapshot().data = data.into();
        self.step(msg)?;
        Ok(Response::new(PeerAck {}))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
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
    let service = RaftPeerServer::new(PeerService::new(raft, events))
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
