//! [`RaftConfig`]: the knobs of one controller's Raft node, with `Default` and `validate()`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::RaftError;

/// Configuration of one Raft node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node's id; non-zero and unique in the group.
    pub id: u64,
    /// Initial voters, used only when the storage is fresh. Every initial voter must be started
    /// with the same list. Empty means "joining an existing group": the node waits for the
    /// leader to send it a snapshot.
    pub peers: Vec<u64>,
    /// Interval of the production ticker. `None` disables it: ticks are then only what the
    /// owner sends with [`RaftHandle::tick`](super::RaftHandle::tick) (tests).
    pub tick_interval: Option<Duration>,
    /// Ticks without a leader before a follower campaigns (randomized up to twice this).
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// Applied entries between two state-machine snapshots (each followed by log compaction).
    pub snapshot_threshold: u64,
    /// Upper bound on the bytes of entries in one append message.
    pub max_size_per_msg: u64,
    /// Append messages in flight to one follower before waiting for acks.
    pub max_inflight_msgs: usize,
    /// Peer (Raft) addresses known from configuration (`--initial-cluster`): the bootstrap
    /// address book of a fresh group, and hints for ids the replicated book does not know.
    pub addresses: BTreeMap<u64, String>,
    /// This node's client API address (`http://host:port`), announced to the group so that
    /// `members list` and leader hints can name it.
    pub client_address: Option<String>,
    /// The Raft series this node observes into (unregistered by default; `Controller::start`
    /// passes its registry's).
    pub metrics: crate::metrics::RaftMetrics,
}

/// Default tick: 75 ms, so the election timeout (10–20 ticks, randomized) is 0.75–1.5 s and a
/// killed leader is replaced in about 0.9 s (median, `bench -- raft` on loopback); heartbeats
/// every 3 ticks (225 ms). At 50 ms, a leader busy with 256 clients on a 2-core machine missed
/// heartbeats often enough to lose elections; etcd's defaults are 100 ms / 1 s.
pub const DEFAULT_TICK_MS: u64 = 75;

/// Default entries between snapshots. A snapshot serializes the whole state machine, so its
/// cost per write is state size / threshold: at 1,000 a write-heavy run stalled the Ready loop
/// every few hundred milliseconds (p99 80 ms at 16 clients); at 10,000 p99 was 19 ms. etcd
/// snapshots every 100,000 entries.
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 10_000;

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            id: 1,
            peers: vec![1],
            tick_interval: Some(Duration::from_millis(DEFAULT_TICK_MS)),
            election_tick: 10,
            heartbeat_tick: 3,
            snapshot_threshold: DEFAULT_SNAPSHOT_THRESHOLD,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            addresses: BTreeMap::new(),
            client_address: None,
            metrics: Default::default(),
        }
    }
}

impl RaftConfig {
    /// Checks the config, naming the field and the rule that failed.
    pub fn validate(&self) -> Result<(), RaftError> {
        let bad = |msg: String| Err(RaftError::InvalidConfig(msg));
        if self.id == 0 {
            return bad("id must be non-zero".into());
        }
        if self.peers.contains(&0) {
            return bad("peers must not contain id 0".into());
        }
        let mut sorted = self.peers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.peers.len() {
            return bad(format!("peers must not repeat an id: {:?}", self.peers));
        }
        if !self.peers.is_empty() && !self.peers.contains(&self.id) {
            return bad(format!(
                "peers {:?} must include this node's id {} (or be empty to join)",
                self.peers, self.id
            ));
        }
        if self.tick_interval == Some(Duration::ZERO) {
            return bad("tick_interval must be greater than zero".into());
        }
        if self.snapshot_threshold == 0 {
            return bad("snapshot_threshold must be at least 1".into());
        }
        self.to_raft_config(0).validate().map_err(|e| RaftError::InvalidConfig(e.to_string()))
    }

    /// How long to wait for a leader to show up: two election timeouts (with ticks driven by
    /// hand, as if a tick were 100 ms).
    pub fn leader_wait(&self) -> Duration {
        let tick = self.tick_interval.unwrap_or(Duration::from_millis(100));
        tick * (2 * self.election_tick as u32)
    }

    /// The raft-rs config, starting from `applied` (the index of the restored snapshot).
    pub(crate) fn to_raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied,
            max_size_per_msg: self.max_size_per_msg,
            max_inflight_msgs: self.max_inflight_msgs,
            pre_vote: true,
            check_quorum: true,
            max_committed_size_per_ready: super::node::MAX_APPLY_BYTES_PER_READY,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        RaftConfig::default().validate().expect("default valid");
    }

    #[test]
    fn validate_rejects_zero_id_duplicate_peers_and_bad_ticks() {
        let zero = RaftConfig { id: 0, ..Default::default() };
        assert!(zero.validate().is_err());
        let dup = RaftConfig { peers: vec![1, 2, 2], ..Default::default() };
        assert!(dup.validate().is_err());
        let missing_self = RaftConfig { peers: vec![2, 3], ..Default::default() };
        assert!(missing_self.validate().is_err());
        let ticks = RaftConfig { heartbeat_tick: 10, election_tick: 10, ..Default::default() };
        assert!(ticks.validate().is_err());
        let snap = RaftConfig { snapshot_threshold: 0, ..Default::default() };
        assert!(snap.validate().is_err());
    }
}
