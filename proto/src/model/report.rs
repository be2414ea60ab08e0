//! What an agent reports about one task: its observed state. The controller folds a report into
//! the Task (statuses only move forward; a stale report changes nothing).

use super::{NetworkBinding, NetworkInterface, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusReport {
    pub task_id: String,
    /// PENDING, RUNNING or STOPPED as observed by the agent.
    pub last_status: String,
    #[serde(default)]
    pub containers: Vec<ContainerReport>,
    /// e.g. `EssentialContainerExited`, `TaskFailedToStart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<Timestamp>,
    /// Task `healthStatus` (HEALTHY / UNHEALTHY / UNKNOWN), derived by the agent from the
    /// essential containers that have a health check (ECS-NOTES §1.4.2). `None` from agents that
    /// do not derive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
    /// awsvpc tasks: the task's `attachments` (ECS shape, see `Task::attachments`); empty for
    /// other network modes and before the agent knows the address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// PENDING, RUNNING or STOPPED.
    pub last_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    /// HEALTHY / UNHEALTHY / UNKNOWN for a container with a health check; `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
    /// awsvpc tasks: `[{attachmentId, privateIpv4Address}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
}
