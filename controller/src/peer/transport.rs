//! [`GrpcTransport`]: `RaftTransport` over tonic. `send` never waits: each message goes to its
//! peer's bounded queue; one sender task per peer drains the queue into `Step(RaftBatch)` calls
//! (and `InstallSnapshot` streams for `MsgSnapshot`), in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use berth_proto::v1::raft_peer_client::RaftPeerClient;
use berth_proto::v1::{RaftBatch, SnapshotChunk};
use protobuf::Message as _;
use raft::eraftpb::MessageType;
use raft::prelude::Message;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::{PEER_MAX_MESSAGE_BYTES, PeerAddresses, SNAPSHOT_CHUNK_BYTES};
use crate::raft::{RaftHandle, RaftTransport};

/// Messages queued per peer. A healthy peer drains a Ready's messages at once; a dead one
/// must not hold more than a few heartbeat rounds (raft resends what is dropped).
pub const PEER_QUEUE_CAPACITY: usize = 1024;

/// Payload bytes per `RaftBatch` (at least one message is always sent): a few append
/// messages of raft's 1 MiB `max_size_per_msg`.
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A `Step` that takes longer than this counts as lost (raft retransmits).
const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on connecting to a peer: a dead peer must not stall its queue for long.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Bound on one whole snapshot transfer.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Raft messages to peers over gRPC.
pub struct GrpcTransport {
    from: u64,
    addresses: PeerAddresses,
    senders: Mutex<HashMap<u64, mpsc::Sender<Message>>>,
    /// The local node, for unreachable/snapshot reports; set once it exists.
    node: Arc<OnceLock<RaftHandle>>,
    /// The runtime the peer senders run on: the one the transport was made on, not the Raft
    /// loop's own (`RaftNode::run_on_own_thread`), which `send` is called from.
    runtime: tokio::runtime::Handle,
}

impl GrpcTransport {
    /// A transport for node `from`; call from within the tokio runtime its peer senders are to
    /// run on.
    pub fn new(from: u64, addresses: PeerAddresses) -> Self {
        Self {
            from,
            addresses,
            senders: Mutex::new(HashMap::new()),
            node: Arc::new(OnceLock::new()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Gives the transport the node it reports delivery failures to.
    pub fn attach(&self, node: RaftHandle) {
        let _ = self.node.set(node);
    }

    fn sender(&self, to: u64) -> Option<mpsc::Sender<Message>> {
        let mut senders = self.senders.lock().ok()?;
        if let Some(tx) = senders.get(&to).filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
        let peer = PeerSender {
            from: self.from,
            to,
            addresses: self.addresses.clone(),
            node: self.node.clone(),
            client: None,
        };
        self.runtime.spawn(peer.run(rx));
        senders.insert(to, tx.clone());
        Some(tx)
    }
}

impl RaftTransport for GrpcTransport {
    fn send(&self, msgs: Vec<Message>) {
        for msg in msgs {
            let to = msg.to;
            let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
            let queued = self.sender(to).is_some_and(|tx| tx.try_send(msg).is_ok());
            if !queued && let Some(node) = self.node.get() {
                node.report_unreachable(to);
                if is_snapshot {
                    node.report_snapshot(to, false);
                }
            }
        }
    }
}

/// The sending side towards one peer.
struct PeerSender {
    from: u64,
    to: u64,
    addresses: PeerAddresses,
    node: Arc<OnceLock<RaftHandle>>,
    /// The client and the address it was made for (rebuilt when the address changes).
    client: Option<(String, RaftPeerClient<Channel>)>,
}

impl PeerSender {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let mut size = 0;
            while size < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(m) => {
                        size += m.compute_size() as usize;
                        batch.push(m);
                    }
                    Err(_) => break,
                }
            }
            self.deliver(batch).await;
        }
    }

    /// Sends `batch` in order: runs of ordinary messages as one `Step`, snapshots as streams.
    async fn deliver(&mut self, batch: Vec<Message>) {
        let mut run: Vec<Vec<u8>> = Vec::new();
        for msg in batch {
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                self.step(std::mem::take(&mut run)).await;
                let ok = self.send_snapshot(msg).await;
                if let Some(node) = self.node.get() {
                    node.report_snapshot(self.to, ok);
                }
                continue;
            }
            match msg.write_to_bytes() {
                Ok(bytes) => run.push(bytes),
                Err(e) => tracing::warn!(to = self.to, error = %e, "cannot encode raft message"),
            }
        }
        self.step(run).await;
    }

    fn client(&mut self) -> Option<RaftPeerClient<Channel>> {
        let address = self.addresses.get(self.to)?;
        if let Some((known, client)) = &self.client
            && *known == address
        {
            return Some(client.clone());
        }
        let channel = self.addresses.channel(&address, CONNECT_TIMEOUT)?;
        let client = RaftPeerClient::new(channel)
            .max_decoding_message_size(PEER_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(PEER_MAX_MESSAGE_BYTES);
        self.client = Some((address, client.clone()));
        Some(client)
    }

    fn unreachable(&self) {
        if let Some(node) = self.node.get() {
            node.report_unreachable(self.to);
        }
    }

    async fn step(&mut self, messages: Vec<Vec<u8>>) {
        if messages.is_empty() {
            return;
        }
        let Some(mut client) = self.client() else {
            self.unreachable();
            return;
        };
        let mut request = tonic::Request::new(RaftBatch { from: self.from, to: self.to, messages });
        request.set_timeout(STEP_TIMEOUT);
        if let Err(status) = client.step(request).await {
            tracing::debug!(to = self.to, error = %status, "raft batch not delivered");
            self.unreachable();
        }
    }

    /// Streams a snapshot: the message with its data emptied, then the data in chunks.
    async fn send_snapshot(&mut self, mut msg: Message) -> bool {
        let Some(mut client) = self.client() else {
            self.unreachable();
            return false;
        };
        let data = std::mem::take(&mut msg.mut_snapshot().data);
        let header = match msg.write_to_bytes() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(to = self.to, error = %e, "cannot encode snapshot message");
                return false;
            }
        };
        let (from, to) = (self.from, self.to);
        let mut chunks = vec![SnapshotChunk { from, to, message: header, data: Vec::new() }];
        for (i, piece) in data.chunks(SNAPSHOT_CHUNK_BYTES).enumerate() {
            if i == 0 {
                chunks[0].data = piece.to_vec();
            } else {
                chunks.push(SnapshotChunk { from, to, message: Vec::new(), data: piece.to_vec() });
            }
        }
        let mut request = tonic::Request::new(tokio_stream::iter(chunks));
        request.set_timeout(SNAPSHOT_TIMEOUT);
        match client.install_snapshot(request).await {
            Ok(_) => {
                tracing::info!(from, to, bytes = data.len(), "snapshot sent");
                true
            }
            Err(status) => {
                tracing::warn!(to, error = %status, "snapshot not delivered");
                false
            }
        }
    }
}
