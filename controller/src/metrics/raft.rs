//! [`RaftMetrics`]: the Raft series. Created unregistered by `Default` (a node built without a
//! [`Metrics`](super::Metrics) still observes, into nothing), registered by `Metrics::new`, and
//! carried into the node through `RaftConfig::metrics`.

use prometheus::{Histogram, IntCounter, IntGauge, Registry};

use super::{counter, gauge, histogram, register};

/// The Raft series of one member; clones share the same series.
#[derive(Clone)]
pub struct RaftMetrics {
    pub term: IntGauge,
    pub leader_changes: IntCounter,
    pub commit_index: IntGauge,
    pub applied_index: IntGauge,
    pub proposal_duration: Histogram,
    pub log_entries: IntGauge,
    pub snapshots: IntCounter,
    pub snapshot_duration: Histogram,
}

impl Default for RaftMetrics {
    fn default() -> Self {
        RaftMetrics {
            term: gauge("berth_raft_term", "Current Raft term of this member."),
            leader_changes: counter(
                "berth_raft_leader_changes_total",
                "Times this member saw the leader change (a new leader, or none).",
            ),
            commit_index: gauge("berth_raft_commit_index", "Highest log index known committed."),
            applied_index: gauge(
                "berth_raft_applied_index",
                "Highest log index applied to this member's state.",
            ),
            proposal_duration: histogram(
                "berth_raft_proposal_duration_seconds",
                "From proposing a command to its being applied on this member.",
                prometheus::exponential_buckets(0.0005, 2.0, 16).expect("buckets"),
            ),
            log_entries: gauge(
                "berth_raft_log_entries",
                "Entries in the Raft log since the last compaction.",
            ),
            snapshots: counter(
                "berth_raft_snapshots_total",
                "Snapshots taken by this member (each compacts the log).",
            ),
            snapshot_duration: histogram(
                "berth_raft_snapshot_duration_seconds",
                "Time to take (serialize and persist) one snapshot.",
                prometheus::exponential_buckets(0.001, 2.0, 16).expect("buckets"),
            ),
        }
    }
}

impl RaftMetrics {
    pub(super) fn register(&self, r: &Registry) {
        register(r, &self.term);
        register(r, &self.leader_changes);
        register(r, &self.commit_index);
        register(r, &self.applied_index);
        register(r, &self.proposal_duration);
        register(r, &self.log_entries);
        register(r, &self.snapshots);
        register(r, &self.snapshot_duration);
    }

    /// One snapshot taken in `elapsed`.
    pub fn snapshot_taken(&self, elapsed: std::time::Duration) {
        self.snapshots.inc();
        self.snapshot_duration.observe(elapsed.as_secs_f64());
    }
}

// `RaftConfig` compares and prints its fields; the series are not configuration.
impl PartialEq for RaftMetrics {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RaftMetrics {}

impl std::fmt::Debug for RaftMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftMetrics")
    }
}
