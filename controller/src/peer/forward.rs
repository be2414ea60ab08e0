//! [`PeerForwarder`]: sends a follower's command to the leader's `RaftPeer.Forward` and maps
//! the answer back to [`RaftError`]s the [`Proposer`](crate::propose::Proposer) understands:
//! `NotLeader` (not proposed: safe to retry), `LeadershipLost` / `ForwardFailed` (outcome
//! unknown).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use berth_proto::v1::ForwardRequest;
use berth_proto::v1::raft_peer_client::RaftPeerClient;
use futures::future::BoxFuture;
use tonic::transport::Channel;

use super::service::{LEADER_METADATA, NOT_LEADER_METADATA};
use super::{PEER_MAX_MESSAGE_BYTES, PeerAddresses};
use crate::propose::Forward;
use crate::raft::RaftError;

/// A forwarded command must be committed and applied by the leader within this time.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Forwards proposals to the leader over the peer listener.
pub struct PeerForwarder {
    from: u64,
    addresses: PeerAddresses,
    clients: Mutex<HashMap<String, RaftPeerClient<Channel>>>,
}

impl PeerForwarder {
    pub fn new(from: u64, addresses: PeerAddresses) -> Self {
        Self { from, addresses, clients: Mutex::new(HashMap::new()) }
    }

    fn client(&self, leader: u64) -> Option<RaftPeerClient<Channel>> {
        let address = self.addresses.get(leader)?;
        let mut clients = self.clients.lock().ok()?;
        if let Some(c) = clients.get(&address) {
            return Some(c.clone());
        }
        let channel = self.addresses.channel(&address, CONNECT_TIMEOUT)?;
        let client = RaftPeerClient::new(channel)
            .max_decoding_message_size(PEER_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(PEER_MAX_MESSAGE_BYTES);
        clients.insert(address, client.clone());
        Some(client)
    }
}

impl Forward for PeerForwarder {
    fn forward(
        &self,
        leader: u64,
        command: Vec<u8>,
    ) -> BoxFuture<'static, Result<(Vec<u8>, u64), RaftError>> {
        let client = self.client(leader);
        let from = self.from;
        Box::pin(async move {
            // Unknown address: nothing was sent, so this is a plain "no usable leader".
            let Some(mut client) = client else {
                return Err(RaftError::NotLeader { leader: None });
            };
            let mut request = tonic::Request::new(ForwardRequest { from, command });
            request.set_timeout(FORWARD_TIMEOUT);
            match client.forward(request).await {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    Ok((reply.result, reply.index))
                }
                Err(status) => Err(map_status(leader, &status)),
            }
        })
    }
}

fn map_status(leader: u64, status: &tonic::Status) -> RaftError {
    let meta = status.metadata();
    if meta.get(NOT_LEADER_METADATA).is_some() {
        let hint = meta
            .get(LEADER_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .filter(|l| *l != leader);
        return RaftError::NotLeader { leader: hint };
    }
    match status.code() {
        tonic::Code::Aborted => RaftError::LeadershipLost { term: 0 },
        _ => RaftError::ForwardFailed { leader, message: status.to_string() },
    }
}
