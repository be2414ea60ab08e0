//! Commands: every change to cluster state, as proposed to Raft and applied in log order.
//!
//! The proposer fixes everything non-deterministic (timestamps, ids) inside the command, so every
//! replica applying the same log reaches the same state.

use berth_proto::model::{
    Attribute, DeploymentConfiguration, PlacementConstraint, PlacementStrategy, Task,
    TaskDefinition, TaskStatusReport, Timestamp, VersionInfo,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
#[allow(clippy::large_enum_variant)] // commands are encoded immediately; size does not matter
pub enum Command {
    CreateCluster {
        name: String,
        now: Timestamp,
    },
    DeleteCluster {
        name: String,
    },
    RegisterTaskDefinition {
        definition: TaskDefinition,
        now: Timestamp,
    },
    DeregisterTaskDefinition {
        family: String,
        revision: u32,
        now: Timestamp,
    },
    RegisterInstance(RegisterInstance),
    SetAgentConnected {
        instance_id: String,
        /// The session whose end this reports (see `InstanceRecord::session`).
        session: String,
        connected: bool,
        now: Timestamp,
    },
    CreateService(CreateService),
    UpdateService(UpdateService),
    DeleteService {
        cluster: String,
        name: String,
        force: bool,
        now: Timestamp,
    },
    /// Place new tasks (already fully formed by the proposer, including their instance). Apply
    /// re-checks each instance's remaining resources and rejects a task that no longer fits.
    StartTasks {
        tasks: Vec<Task>,
        now: Timestamp,
    },
    StopTasks(StopTasks),
    ReportTaskStatus {
        instance_id: String,
        report: TaskStatusReport,
        now: Timestamp,
    },
    /// Reports of many agents, batched by the controller that received them
    /// (`dispatcher/reports.rs`). Each applies as its `ReportTaskStatus` would, in order; one
    /// that is refused (its task is on another instance) is listed in `rejected` by task id and
    /// does not hold up the others.
    ReportTaskStatuses {
        reports: Vec<InstanceReport>,
        now: Timestamp,
    },
    /// Service events (scheduler messages) and deployment rollout changes.
    ServiceProgress(ServiceProgress),
    PutAttributes(PutAttributes),
    /// ECS UpdateContainerInstancesState: ACTIVE ↔ DRAINING.
    SetInstanceStatus {
        instance_id: String,
        status: String,
        /// When it was proposed (a drain's start; absent in logs written before it existed).
        #[serde(default)]
        now: Option<Timestamp>,
    },
    /// ECS DeleteAttributes: names of attributes put through the API.
    DeleteAttributes {
        instance_id: String,
        names: Vec<String>,
    },
    /// Forget STOPPED tasks that stopped before `stopped_before` (ECS keeps them ≥ 1 hour).
    PurgeStoppedTasks {
        stopped_before: Timestamp,
    },
    /// Node liveness: heartbeats one controller's agent sessions received since its last batch
    /// (`dispatcher/heartbeats.rs`). Never connects an agent; only registration does.
    RecordHeartbeats {
        beats: Vec<HeartbeatSeen>,
    },
    /// Node liveness (`orchestrator/liveness`): no heartbeat within the grace. Applies only while
    /// `session` is still the instance's session, the agent is still connected and no heartbeat
    /// newer than `last_heartbeat` has been recorded.
    MarkAgentDisconnected {
        instance_id: String,
        session: String,
        last_heartbeat: Timestamp,
        now: Timestamp,
    },
    /// Node liveness: the instance stayed disconnected past `lost_after`; its tasks are STOPPED.
    MarkTasksLost(MarkTasksLost),
    /// Event retention (`orchestrator/retention`): events below `first_index` are dropped.
    TrimEvents {
        first_index: u64,
    },
    /// ECS DeregisterContainerInstance: INACTIVE, identity revoked (`store/deregister.rs`).
    DeregisterInstance(super::deregister::DeregisterInstance),
    /// Cluster CA, node certificates, join tokens, revocations (`store/security.rs`).
    Security(super::security::SecurityCommand),
    /// API (ACL) tokens with roles (`store/acl.rs`).
    Acl(super::acl::AclCommand),
    /// Encrypted per-task secrets (`store/secrets.rs`).
    Secret(super::secrets::SecretCommand),
    /// One agent's stats period (`store/stats.rs`): the latest usage of its running containers.
    /// Changes no version and produces no event (it is telemetry, not a state change).
    RecordContainerStats {
        instance_id: String,
        samples: Vec<berth_proto::model::ContainerUsageSample>,
    },
    /// Many agents' stats periods at once (`dispatcher::heartbeats` batches them); a period of
    /// an instance that is gone or not valid is skipped, the others are recorded.
    RecordContainerStatsBatch {
        reports: Vec<InstanceStats>,
    },
}

/// One agent's stats period in a [`Command::RecordContainerStatsBatch`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStats {
    pub instance_id: String,
    pub samples: Vec<berth_proto::model::ContainerUsageSample>,
}

/// One task report and the instance whose agent sent it (`Command::ReportTaskStatuses`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceReport {
    pub instance_id: String,
    pub report: TaskStatusReport,
}

/// One agent session's latest heartbeat, as stamped by the controller that received it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatSeen {
    pub instance_id: String,
    pub session: String,
    pub at: Timestamp,
}

/// Tasks of a lost container instance, marked STOPPED without the agent's word. Applies only while
/// the instance is still disconnected under `session` (an agent that came back keeps its tasks).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MarkTasksLost {
    pub instance_id: String,
    pub session: String,
    pub task_ids: Vec<String>,
    pub stop_code: String,
    pub reason: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegisterInstance {
    pub cluster: String,
    pub instance_id: String,
    /// Id of the agent session registering (random, chosen by the controller).
    #[serde(default)]
    pub session: String,
    pub attributes: Vec<Attribute>,
    pub cpu: i64,
    pub memory: i64,
    pub reserved_ports: Vec<u16>,
    pub version_info: VersionInfo,
    pub hostname: Option<String>,
    /// URL of the agent's operator HTTP API (`RegisterAgent.agent_endpoint`), validated.
    #[serde(default)]
    pub agent_endpoint: Option<String>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateService {
    pub cluster: String,
    pub name: String,
    pub task_definition_arn: String,
    pub desired_count: i64,
    pub deployment_id: String,
    #[serde(default)]
    pub health_check_grace_period_seconds: Option<i64>,
    /// Validated by the proposer (the scheduler's parser); stored in ECS shape.
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    /// REPLICA (when absent) or DAEMON, validated by the proposer.
    #[serde(default)]
    pub scheduling_strategy: Option<String>,
    pub now: Timestamp,
}

/// A service's placement strategies and constraints, in ECS shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub strategy: Vec<PlacementStrategy>,
    pub constraints: Vec<PlacementConstraint>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateService {
    pub cluster: String,
    pub name: String,
    pub desired_count: Option<i64>,
    pub task_definition_arn: Option<String>,
    /// Replaces the service's placement (a new deployment, as in ECS).
    #[serde(default)]
    pub placement: Option<Placement>,
    /// Start a new deployment even if nothing else changed.
    #[serde(default)]
    pub force_new_deployment: bool,
    /// Replaces the deployment configuration (bounds, circuit breaker).
    #[serde(default)]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(default)]
    pub health_check_grace_period_seconds: Option<i64>,
    /// Used when the update starts a new deployment.
    pub deployment_id: String,
    pub now: Timestamp,
}

/// ECS PutAttributes on a container instance (`value: None` = a value-less attribute).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PutAttributes {
    pub instance_id: String,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StopTasks {
    pub task_ids: Vec<String>,
    pub stop_code: String,
    pub reason: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProgress {
    pub cluster: String,
    pub name: String,
    /// (event id, message) pairs to append.
    pub events: Vec<(String, String)>,
    /// Deployment id → new rollout state (`COMPLETED`, …) with reason.
    pub rollouts: Vec<(String, String, String)>,
    /// Deployment ids that are fully drained (→ INACTIVE).
    pub drained_deployments: Vec<String>,
    /// Mark a DRAINING service INACTIVE (all its tasks stopped).
    pub deactivate: bool,
    /// The circuit breaker tripped: roll back to this target.
    #[serde(default)]
    pub rollback: Option<Rollback>,
    pub now: Timestamp,
}

/// Where a circuit-breaker rollback goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum Rollback {
    /// Make this older deployment (still holding its healthy tasks) PRIMARY again: its tasks are
    /// kept, never replaced.
    Promote { deployment_id: String },
    /// No older deployment is left: start a new one on the last completed task definition.
    New { deployment_id: String, task_definition_arn: String },
}

impl Command {
    /// The proposer's time stamped in the command, if it carries one (events take their time
    /// from it).
    pub fn time(&self) -> Option<Timestamp> {
        match self {
            Command::CreateCluster { now, .. }
            | Command::RegisterTaskDefinition { now, .. }
            | Command::DeregisterTaskDefinition { now, .. }
            | Command::SetAgentConnected { now, .. }
            | Command::DeleteService { now, .. }
            | Command::StartTasks { now, .. }
            | Command::ReportTaskStatus { now, .. }
            | Command::ReportTaskStatuses { now, .. }
            | Command::MarkAgentDisconnected { now, .. } => Some(*now),
            Command::RegisterInstance(r) => Some(r.now),
            Command::CreateService(c) => Some(c.now),
            Command::UpdateService(u) => Some(u.now),
            Command::StopTasks(s) => Some(s.now),
            Command::ServiceProgress(p) => Some(p.now),
            Command::MarkTasksLost(m) => Some(m.now),
            Command::DeregisterInstance(d) => Some(d.now),
            Command::SetInstanceStatus { now, .. } => *now,
            Command::RecordHeartbeats { beats } => beats.iter().map(|b| b.at).max(),
            Command::DeleteCluster { .. }
            | Command::PutAttributes(_)
            | Command::DeleteAttributes { .. }
            | Command::PurgeStoppedTasks { .. }
            | Command::TrimEvents { .. }
            | Command::Security(_)
            | Command::Acl(_)
            | Command::Secret(_)
            | Command::RecordContainerStats { .. }
            | Command::RecordContainerStatsBatch { .. } => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data to JSON cannot fail (no non-string map keys, no custom errors).
        serde_json::to_vec(self).unwrap_or_default()
    }
}
