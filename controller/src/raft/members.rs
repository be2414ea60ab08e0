//! Membership bookkeeping that raft-rs leaves to us: the replicated address book (node id → peer
//! and client address), how it travels in the log, and how it survives snapshots.
//!
//! * Conf-change entries (ConfChangeV2, one change at a time) carry a [`ConfChangeContext`] in
//!   their entry context: the proposal id (to answer the proposer) and the new member's
//!   addresses. Applying the entry updates the book on every replica alike.
//! * A member's own client address is announced with a normal entry whose context is
//!   [`ANNOUNCE_CONTEXT`] and whose data is a [`ClientAnnouncement`]; the state machine never
//!   sees it.
//! * Snapshot data is an envelope: [`SNAPSHOT_MAGIC`], the book as JSON, then the state
//!   machine's bytes ([`encode_envelope`] / [`decode_envelope`]). Data without the magic (a
//!   snapshot written before the envelope existed) is all state machine, with an empty book.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RaftError;

/// Where a member can be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddress {
    /// host:port of its peer (Raft) listener; empty for a group of one that has none.
    pub peer: String,
    /// http://host:port of its client API, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// Node id → addresses, as of the applied index.
pub type AddressBook = BTreeMap<u64, MemberAddress>;

/// The membership as of the applied index, published after every Ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipView {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub addresses: AddressBook,
}

impl MembershipView {
    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Whether any membership was applied yet (a fresh joiner has none).
    pub fn is_known(&self) -> bool {
        !self.voters.is_empty() || !self.learners.is_empty()
    }
}

/// One membership change, proposed by [`RaftHandle::add_member`](super::RaftHandle::add_member)
/// or [`RaftHandle::remove_member`](super::RaftHandle::remove_member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add { id: u64, address: MemberAddress },
    Remove { id: u64 },
}

/// The entry context of a conf change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConfChangeContext {
    pub proposal: [u8; 16],
    pub node_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<MemberAddress>,
}

/// Entry context that marks a client-address announcement (never a 16-byte proposal id).
pub(crate) const ANNOUNCE_CONTEXT: &[u8] = b"berth:announce-client-address";

/// Data of an announcement entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientAnnouncement {
    pub node_id: u64,
    pub client: String,
}

/// First bytes of an enveloped snapshot.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"BERTHSN1";

/// Snapshot data: magic, book length (u32 BE), book JSON, state-machine bytes.
pub(crate) fn encode_envelope(book: &AddressBook, state: &[u8]) -> Vec<u8> {
    // A BTreeMap of plain structs always serializes; an empty book is the safe fallback.
    let book = serde_json::to_vec(book).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(SNAPSHOT_MAGIC.len() + 4 + book.len() + state.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(book.len() as u32).to_be_bytes());
    out.extend_from_slice(&book);
    out.extend_from_slice(state);
    out
}

/// Splits snapshot data into the book and the state-machine bytes.
pub(crate) fn decode_envelope(data: &[u8]) -> Result<(AddressBook, &[u8]), RaftError> {
    let Some(rest) = data.strip_prefix(SNAPSHOT_MAGIC.as_slice()) else {
        return Ok((AddressBook::new(), data));
    };
    let corrupt = |m: String| RaftError::CorruptSnapshot(m);
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("envelope shorter than its header".into()))?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let book_bytes = rest
        .get(4..4 + len)
        .ok_or_else(|| corrupt(format!("address book of {len} bytes overruns the envelope")))?;
    let book = serde_json::from_slice(book_bytes)
        .map_err(|e| corrupt(format!("address book does not decode: {e}")))?;
    Ok((book, &rest[4 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_book_and_state() {
        let mut book = AddressBook::new();
        book.insert(2, MemberAddress { peer: "h:1".into(), client: Some("http://h:2".into()) });
        let data = encode_envelope(&book, b"state-bytes");
        let (back, state) = decode_envelope(&data).expect("decode");
        assert_eq!(back, book);
        assert_eq!(state, b"state-bytes");
    }

    #[test]
    fn data_without_magic_is_all_state_and_truncated_envelope_is_an_error() {
        let (book, state) = decode_envelope(b"{\"old\":1}").expect("legacy");
        assert!(book.is_empty());
        assert_eq!(state, b"{\"old\":1}");
        let mut bad = SNAPSHOT_MAGIC.to_vec();
        bad.extend_from_slice(&100u32.to_be_bytes());
        assert!(decode_envelope(&bad).is_err());
    }
}
