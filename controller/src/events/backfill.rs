//! Backfill: fills this member's hole in the event log from another member.
//!
//! A member that installs a snapshot (a new member, or one that fell far behind) gets the state
//! but not the events before the snapshot's cursor: snapshots do not carry the log, which can be
//! a million events long. [`run`] watches for such a hole and copies the missing events from
//! the leader (or any other member) with `RaftPeer.ReadEvents`, in order; subscribers reading
//! there wait meanwhile. Events the other member no longer has (trimmed by retention) are given
//! up, moving this member's oldest index past them.

use super::{EventLog, StoredEvent};
use crate::peer::PeerAddresses;
use crate::raft::RaftHandle;
use berth_proto::v1::ReadEventsRequest;
use berth_proto::v1::raft_peer_client::RaftPeerClient;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;

const BATCH: u32 = 1024;
const RETRY: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs until shutdown.
pub async fn run(
    raft: RaftHandle,
    addresses: PeerAddresses,
    log: Arc<EventLog>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tip = log.watch();
    let mut attempt: usize = 0;
    // One lazily connected client per member address, reused for every batch.
    let mut clients: HashMap<String, RaftPeerClient<Channel>> = HashMap::new();
    loop {
        let hole = tip.borrow_and_update().hole;
        let Some((start, end)) = hole else {
            tokio::select! {
                _ = shutdown.changed() => return,
                r = tip.changed() => if r.is_err() { return },
            }
            continue;
        };
        if *shutdown.borrow() {
            return;
        }
        // The leader first, then the other members in turn.
        let mut sources: Vec<u64> = raft.leader_id().into_iter().collect();
        sources.extend(raft.members().iter().map(|m| m.node_id));
        sources.retain(|id| *id != raft.id());
        sources.dedup();
        let source = sources.get(attempt % sources.len().max(1)).copied();
        let fetched = match source.and_then(|id| addresses.get(id)) {
            Some(address) => match client(&mut clients, &addresses, &address) {
                Ok(c) => fetch(c, start, end, &log).await,
                Err(e) => Err(e),
            },
            None => Err("no other member's address is known yet".to_string()),
        };
        match fetched {
            Ok(()) => attempt = 0,
            Err(e) => {
                attempt += 1;
                tracing::debug!(start, end, ?source, error = %e, "event backfill failed; retrying");
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

/// The client for `address`, created (connecting lazily) on first use.
fn client<'a>(
    clients: &'a mut HashMap<String, RaftPeerClient<Channel>>,
    addresses: &PeerAddresses,
    address: &str,
) -> Result<&'a mut RaftPeerClient<Channel>, String> {
    if !clients.contains_key(address) {
        let channel = addresses
            .channel(address, CONNECT_TIMEOUT)
            .ok_or_else(|| format!("cannot dial {address}"))?;
        let c = RaftPeerClient::new(channel)
            .max_decoding_message_size(crate::peer::PEER_MAX_MESSAGE_BYTES);
        clients.insert(address.to_string(), c);
    }
    clients.get_mut(address).ok_or_else(|| format!("no client for {address}"))
}

/// One batch from a member into the hole `start..end`.
async fn fetch(
    client: &mut RaftPeerClient<Channel>,
    start: u64,
    end: u64,
    log: &EventLog,
) -> Result<(), String> {
    let want = BATCH.min((end - start).min(u64::from(u32::MAX)) as u32);
    let reply = client
        .read_events(ReadEventsRequest { from_index: start, max: want })
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    if reply.first_index > start {
        tracing::warn!(
            start,
            oldest = reply.first_index,
            "events below the other member's oldest index are gone; skipping them"
        );
        log.give_up_below(reply.first_index);
        return Ok(());
    }
    let events: Vec<Arc<StoredEvent>> = reply
        .events
        .into_iter()
        .filter(|e| e.index < end)
        .map_while(|e| StoredEvent::parse(e.json).map(Arc::new))
        .collect();
    if events.first().map(|e| e.index) != Some(start) {
        return Err(format!("the other member has no event {start} yet"));
    }
    if events.windows(2).any(|w| w[1].index != w[0].index + 1) {
        return Err("the other member's events are not contiguous".into());
    }
    log.fill(&events).map_err(|e| e.to_string())
}
