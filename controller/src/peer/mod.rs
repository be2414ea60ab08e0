//! # peer — controller ↔ controller over gRPC (`berth.v1.RaftPeer`, on the peer listener)
//!
//! ```text
//!  RaftNode ─send─► GrpcTransport ─► one sender task per peer (bounded queue, batches)
//!                                     ├─ Step(RaftBatch)            ─► PeerService ─► RaftHandle::step
//!                                     └─ InstallSnapshot(chunks)    ─► PeerService ─► RaftHandle::step
//!  Proposer (follower) ─► PeerForwarder ─ Forward(command) ─► PeerService (leader) ─► propose_indexed
//! ```
//!
//! * `transport.rs` — [`GrpcTransport`]: `RaftTransport` over tonic. Drops (and reports the
//!   peer unreachable) when a queue is full or a send fails: raft retransmits. Snapshots go in
//!   [`SNAPSHOT_CHUNK_BYTES`] chunks, then `report_snapshot`.
//! * `service.rs`   — [`PeerService`]: the server side; [`serve`] binds it with a message-size
//!   cap (raft's rust-protobuf 2.28 parses these bytes: RUSTSEC-2024-0437).
//! * `forward.rs`   — [`PeerForwarder`]: a follower's proposals sent to the leader.
//! * `tls.rs`       — [`PeerTls`]: peer mTLS (only controller certificates of the cluster CA
//!   are admitted; clients present this controller's). [`PeerAddresses::set_tls`] makes every
//!   peer client (transport, forwarder, event backfill) dial through it; [`serve_with_tls`].
//!
//! Addresses come from the replicated address book (`RaftHandle::membership`), refreshed by
//! [`follow_address_book`]. Must not touch: the store, the client API.

mod forward;
mod service;
mod tls;
mod transport;

pub use forward::PeerForwarder;
pub use service::{PeerService, serve, serve_with_tls};
pub use tls::PeerTls;
pub use transport::GrpcTransport;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::raft::RaftHandle;

/// Snapshot data per `SnapshotChunk`: small enough to stay far below the message cap, large
/// enough that a big state moves in few round trips.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest message the peer server decodes (and the client encodes). A single raft entry can
/// carry a client command of up to `MAX_MESSAGE_BYTES`; 4 MiB covers the envelope and the
/// other entries batched with it.
pub const PEER_MAX_MESSAGE_BYTES: usize = berth_proto::MAX_MESSAGE_BYTES + 4 * 1024 * 1024;

/// Node id → `host:port` of its peer listener, shared by the transport, the forwarder and the
/// event backfill; with the TLS they dial peers through (none: plaintext).
#[derive(Clone, Default)]
pub struct PeerAddresses(
    Arc<RwLock<HashMap<u64, String>>>,
    Arc<RwLock<Option<berth_security::ClientTls>>>,
);

impl PeerAddresses {
    pub fn get(&self, id: u64) -> Option<String> {
        self.0.read().ok().and_then(|m| m.get(&id).cloned()).filter(|a| !a.is_empty())
    }

    pub fn set_all(&self, addresses: HashMap<u64, String>) {
        if let Ok(mut m) = self.0.write() {
            *m = addresses;
        }
    }

    /// Peer clients dial through `tls` from now on (set before the first peer call).
    pub fn set_tls(&self, tls: berth_security::ClientTls) {
        *self.1.write().unwrap_or_else(|e| e.into_inner()) = Some(tls);
    }

    /// The TLS peer clients dial through, if peer TLS is on.
    pub fn tls(&self) -> Option<berth_security::ClientTls> {
        self.1.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A lazily connected channel to the peer at `address`, through [`PeerAddresses::tls`].
    pub(crate) fn channel(
        &self,
        address: &str,
        connect_timeout: std::time::Duration,
    ) -> Option<tonic::transport::Channel> {
        match tls::lazy_channel(address, self.tls().as_ref(), connect_timeout) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(address, error = %e, "cannot dial peer");
                None
            }
        }
    }
}

/// Keeps `addresses` equal to the node's replicated address book until the node stops.
pub async fn follow_address_book(raft: RaftHandle, addresses: PeerAddresses) {
    let mut view = raft.membership();
    loop {
        let book: HashMap<u64, String> = view
            .borrow_and_update()
            .addresses
            .iter()
            .map(|(id, a)| (*id, a.peer.clone()))
            .collect();
        addresses.set_all(book);
        if view.changed().await.is_err() {
            return;
        }
    }
}

/// `http://host:port` for a peer address given as `host:port` (or already with a scheme).
pub(crate) fn peer_uri(address: &str) -> String {
    if address.contains("://") { address.to_string() } else { format!("http://{address}") }
}
