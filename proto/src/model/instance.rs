//! ContainerInstance: a node running an agent, with attributes and resources (ECS shape).
//! `remainingResources`, `runningTasksCount` and `pendingTasksCount` are derived from the tasks
//! placed on it when the instance is described.

use super::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstance {
    pub container_instance_arn: String,
    /// Berth's instance id (ECS puts the EC2 instance id here; the query language calls it
    /// `ec2InstanceId`).
    pub ec2_instance_id: String,
    pub version: u64,
    pub version_info: VersionInfo,
    pub status: String,
    pub agent_connected: bool,
    #[serde(default)]
    pub running_tasks_count: i64,
    #[serde(default)]
    pub pending_tasks_count: i64,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    #[serde(default)]
    pub registered_resources: Vec<Resource>,
    #[serde(default)]
    pub remaining_resources: Vec<Resource>,
    pub registered_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Berth extension: URL of the agent's operator HTTP API (`berth-agent --http-listen` /
    /// `--advertise-http`), where `berth task logs` reads container output. Absent when the
    /// agent serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_endpoint: Option<String>,
    /// Berth extension: set by DescribeContainerInstances while the instance is DRAINING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_progress: Option<DrainProgress>,
}

impl ContainerInstance {
    pub fn id(&self) -> &str {
        &self.ec2_instance_id
    }
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|a| a.name == name).map(|a| a.value.as_deref().unwrap_or(""))
    }
    pub fn registered_integer(&self, name: &str) -> i64 {
        self.registered_resources
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.integer_value)
            .unwrap_or(0)
    }
    pub fn registered_ports(&self) -> Vec<u16> {
        self.registered_resources
            .iter()
            .find(|r| r.name == "PORTS")
            .and_then(|r| r.string_set_value.as_ref())
            .map(|v| v.iter().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_set_value: Option<Vec<String>>,
}

impl Resource {
    pub fn integer(name: &str, v: i64) -> Resource {
        Resource {
            name: name.into(),
            kind: "INTEGER".into(),
            integer_value: Some(v),
            string_set_value: None,
        }
    }
    pub fn string_set(name: &str, v: Vec<String>) -> Resource {
        Resource {
            name: name.into(),
            kind: "STRINGSET".into(),
            integer_value: None,
            string_set_value: Some(v),
        }
    }
}

/// Host ports ECS always reserves on an instance (ECS-NOTES §1.4.1).
pub const ALWAYS_RESERVED_PORTS: [u16; 6] = [22, 2375, 2376, 51678, 51679, 51680];

/// Berth's drain progress (an extension; ECS has none): DescribeContainerInstances fills it in
/// for a DRAINING instance so that `instance drain --wait` and a user see the same, honest
/// picture — the service tasks still on the instance, and whether each affected service has
/// its desired count of healthy tasks elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrainProgress {
    /// Service tasks placed on this instance that have not reached STOPPED yet.
    pub service_tasks_remaining: i64,
    /// Every REPLICA service with a task on this instance (any status), by name.
    pub services: Vec<DrainService>,
    /// No service task is left here and every affected service has `desiredCount` healthy
    /// tasks elsewhere.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrainService {
    pub service_name: String,
    pub desired_count: i64,
    /// RUNNING tasks on other instances that the scheduler counts as healthy.
    pub healthy_elsewhere: i64,
}
