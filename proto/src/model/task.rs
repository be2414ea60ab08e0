//! Task and Container: the ECS Task shape. Spec (what to run, where, desired status) and status
//! (lastStatus, containers, bindings) live in one object whose `version` grows on every change.

use super::Timestamp;
use serde::{Deserialize, Serialize};

/// Task `lastStatus` values, in lifecycle order. A task's last status only moves forward.
pub const TASK_STATUSES: [&str; 8] = [
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
];

/// Position of a status in the lifecycle (unknown statuses sort first).
pub fn status_rank(status: &str) -> usize {
    TASK_STATUSES.iter().position(|s| *s == status).map(|p| p + 1).unwrap_or(0)
}

pub const RUNNING: &str = "RUNNING";
pub const STOPPED: &str = "STOPPED";
pub const PENDING: &str = "PENDING";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_arn: String,
    pub cluster_arn: String,
    pub task_definition_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    pub last_status: String,
    pub desired_status: String,
    #[serde(default = "unknown")]
    pub health_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default = "ec2")]
    pub launch_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    pub version: u64,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(default)]
    pub overrides: TaskOverride,
    /// awsvpc tasks: one `ElasticNetworkInterface` attachment (`id`, `type`, `status`,
    /// `details` with `subnetId`, `networkInterfaceId`, `macAddress`, `privateDnsName`,
    /// `privateIPv4Address`), as the agent reports it.
    #[serde(default)]
    pub attachments: Vec<serde_json::Value>,
}

fn unknown() -> String {
    "UNKNOWN".into()
}
fn ec2() -> String {
    "EC2".into()
}

impl Task {
    /// The 32-hex task id (last segment of the ARN).
    pub fn id(&self) -> &str {
        super::arn_tail(&self.task_arn)
    }
    /// The container instance id, if placed.
    pub fn instance_id(&self) -> Option<&str> {
        self.container_instance_arn.as_deref().map(super::arn_tail)
    }
    /// The service name when the task belongs to a service (`group` = `service:NAME`).
    pub fn service_name(&self) -> Option<&str> {
        self.group.as_deref().and_then(|g| g.strip_prefix("service:"))
    }
    pub fn is_stopped(&self) -> bool {
        self.last_status == STOPPED
    }
    /// True while the task holds resources on its instance (not yet STOPPED).
    pub fn holds_resources(&self) -> bool {
        !self.is_stopped()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskOverride {
    #[serde(default)]
    pub container_overrides: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub container_arn: String,
    pub task_arn: String,
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    pub last_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    #[serde(default = "unknown")]
    pub health_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<String>,
    /// Berth extension: the latest resource usage the agent sampled (`stats.rs`); kept after
    /// the container stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<super::ContainerUsage>,
    /// awsvpc tasks: the task's interface as this container sees it (ECS shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
}

/// A container's `networkInterfaces` entry (ECS): the task attachment it belongs to and the
/// address it has there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    pub attachment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ipv4_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    /// ECS spells it `bindIP`; `bindIp` (what Berth wrote before) is still read.
    #[serde(rename = "bindIP", alias = "bindIp", default, skip_serializing_if = "Option::is_none")]
    pub bind_ip: Option<String>,
    pub container_port: u16,
    pub host_port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
}

fn tcp() -> String {
    "tcp".into()
}

/// A RunTask failure entry (`{"arn", "reason", "detail"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The RunTask response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunTaskResponse {
    pub tasks: Vec<Task>,
    pub failures: Vec<Failure>,
}

#[cfg(test)]
mod tests {
    use super::NetworkBinding;

    #[test]
    fn network_binding_uses_the_ecs_field_names_and_reads_the_old_spelling() {
        let b = NetworkBinding {
            bind_ip: Some("0.0.0.0".into()),
            container_port: 80,
            host_port: 49153,
            protocol: "tcp".into(),
        };
        let json = serde_json::to_value(&b).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"bindIP": "0.0.0.0", "containerPort": 80, "hostPort": 49153,
                               "protocol": "tcp"})
        );
        let old: NetworkBinding = serde_json::from_str(
            r#"{"bindIp": "0.0.0.0", "containerPort": 80, "hostPort": 49153}"#,
        )
        .expect("old spelling");
        assert_eq!(old, b);
    }
}
