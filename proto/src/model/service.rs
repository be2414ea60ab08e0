//! Service, Deployment and ServiceEvent: the ECS Service shape. `runningCount` and
//! `pendingCount` are derived from the service's tasks when it is described.

use super::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_arn: String,
    pub service_name: String,
    pub cluster_arn: String,
    pub task_definition: String,
    pub desired_count: i64,
    #[serde(default)]
    pub running_count: i64,
    #[serde(default)]
    pub pending_count: i64,
    /// ACTIVE, DRAINING (deleted, tasks still stopping) or INACTIVE.
    pub status: String,
    #[serde(default = "ec2")]
    pub launch_type: String,
    #[serde(default = "replica")]
    pub scheduling_strategy: String,
    #[serde(default)]
    pub deployment_configuration: DeploymentConfiguration,
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    #[serde(default)]
    pub events: Vec<ServiceEvent>,
    #[serde(default)]
    pub placement_strategy: Vec<PlacementStrategy>,
    #[serde(default)]
    pub placement_constraints: Vec<super::PlacementConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<i64>,
    pub created_at: Timestamp,
    pub version: u64,
}

fn ec2() -> String {
    "EC2".into()
}
fn replica() -> String {
    SCHEDULING_REPLICA.into()
}

/// `schedulingStrategy` REPLICA (the default): keep `desiredCount` tasks running.
pub const SCHEDULING_REPLICA: &str = "REPLICA";
/// `schedulingStrategy` DAEMON: one task on every ACTIVE instance that satisfies the service's
/// constraints (ECS-NOTES §3.8).
pub const SCHEDULING_DAEMON: &str = "DAEMON";

impl Service {
    pub fn is_daemon(&self) -> bool {
        self.scheduling_strategy == SCHEDULING_DAEMON
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    pub maximum_percent: i64,
    pub minimum_healthy_percent: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
}

impl DeploymentConfiguration {
    /// ECS's defaults for a DAEMON service: minimumHealthyPercent 0, maximumPercent 100 (the
    /// only value ECS allows for a daemon: never two tasks of it on one instance).
    pub fn daemon_default() -> Self {
        DeploymentConfiguration {
            maximum_percent: 100,
            minimum_healthy_percent: 0,
            deployment_circuit_breaker: None,
        }
    }
}

impl Default for DeploymentConfiguration {
    fn default() -> Self {
        DeploymentConfiguration {
            maximum_percent: 200,
            minimum_healthy_percent: 100,
            deployment_circuit_breaker: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: String,
    pub task_definition: String,
    pub desired_count: i64,
    #[serde(default)]
    pub pending_count: i64,
    #[serde(default)]
    pub running_count: i64,
    #[serde(default)]
    pub failed_tasks: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default = "ec2")]
    pub launch_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: Timestamp,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStrategy {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// ECS keeps the latest 100 service events.
pub const MAX_SERVICE_EVENTS: usize = 100;
