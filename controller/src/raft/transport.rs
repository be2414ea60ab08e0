//! The transport seam: [`RaftTransport`] sends a Ready's messages; inbound messages are handed
//! to [`RaftHandle::step`]. [`MemNetwork`] is the in-process fake used by tests, with filters
//! to drop messages or partition nodes (after TiKV's test transport). A gRPC transport
//! implements the same trait: `send` must not block the Ready loop, so it queues per peer and
//! carries each message as `write_to_bytes()` in a bytes field.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use raft::prelude::Message;

use super::RaftHandle;

/// Outbound side of Raft messaging. Delivery is best-effort: raft retries what is lost.
pub trait RaftTransport: Send + Sync + 'static {
    /// Queues `msgs` for delivery to `msg.to`. Must return without waiting on the network.
    fn send(&self, msgs: Vec<Message>);
}

/// A predicate over a message; `true` means "drop it".
type DropFilter = Box<dyn Fn(&Message) -> bool + Send + Sync>;

#[derive(Default)]
struct NetworkState {
    nodes: HashMap<u64, RaftHandle>,
    filters: Vec<DropFilter>,
}

/// A fake network routing Raft messages between nodes of one process. Test-only in spirit:
/// no serialization, no latency.
#[derive(Clone, Default)]
pub struct MemNetwork {
    state: Arc<Mutex<NetworkState>>,
}

impl MemNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// The transport node `from` sends with. Messages to unregistered nodes are dropped.
    pub fn transport(&self, from: u64) -> MemTransport {
        MemTransport { from, network: self.clone() }
    }

    /// Routes messages addressed to `id` to `handle`.
    pub fn register(&self, id: u64, handle: RaftHandle) {
        if let Ok(mut s) = self.state.lock() {
            s.nodes.insert(id, handle);
        }
    }

    /// Stops routing to `id` (a stopped node).
    pub fn unregister(&self, id: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.nodes.remove(&id);
        }
    }

    /// Drops every message for which `filter` returns true, until [`MemNetwork::heal`].
    pub fn add_drop_filter(&self, filter: impl Fn(&Message) -> bool + Send + Sync + 'static) {
        if let Ok(mut s) = self.state.lock() {
            s.filters.push(Box::new(filter));
        }
    }

    /// Cuts `id` off from every other node, both directions.
    pub fn isolate(&self, id: u64) {
        self.add_drop_filter(move |m| m.from == id || m.to == id);
    }

    /// Drops every message between group `a` and group `b`.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let (a, b) = (a.to_vec(), b.to_vec());
        self.add_drop_filter(move |m| {
            (a.contains(&m.from) && b.contains(&m.to)) || (b.contains(&m.from) && a.contains(&m.to))
        });
    }

    /// Removes every filter.
    pub fn heal(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.filters.clear();
        }
    }

    fn deliver(&self, from: u64, msgs: Vec<Message>) {
        let Ok(s) = self.state.lock() else { return };
        for msg in msgs {
            if msg.from != from || s.filters.iter().any(|f| f(&msg)) {
                continue;
            }
            if let Some(node) = s.nodes.get(&msg.to) {
                // A full inbox drops the message, as a congested network would.
                let _ = node.step(msg);
            }
        }
    }
}

/// One node's sending side of a [`MemNetwork`].
#[derive(Clone)]
pub struct MemTransport {
    from: u64,
    network: MemNetwork,
}

impl RaftTransport for MemTransport {
    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            self.network.deliver(self.from, msgs);
        }
    }
}
