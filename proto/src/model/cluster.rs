//! Cluster: the ECS Cluster shape. Counters are computed when the cluster is described.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub cluster_arn: String,
    pub cluster_name: String,
    pub status: String,
    #[serde(default)]
    pub registered_container_instances_count: i64,
    #[serde(default)]
    pub running_tasks_count: i64,
    #[serde(default)]
    pub pending_tasks_count: i64,
    #[serde(default)]
    pub active_services_count: i64,
}

/// The cluster every installation has from the start.
pub const DEFAULT_CLUSTER: &str = "default";

/// A controller in the Raft group (`berth operator members list`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub node_id: u64,
    /// host:port of its peer (Raft) listener.
    pub peer_address: String,
    /// http://host:port of its client API, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    /// `voter` or `learner`.
    pub role: String,
    pub is_leader: bool,
}

/// One controller's view of the group (`GetStatus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ControllerStatus {
    pub node_id: u64,
    /// `leader` or `follower`.
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
    pub term: u64,
    pub applied_index: u64,
    /// SHA-256-free digest (FNV-1a 64, hex) of the serialized state: equal on members that applied
    /// the same log prefix.
    pub state_digest: String,
}
