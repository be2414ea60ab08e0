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
