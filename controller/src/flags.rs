//! Command-line flags for the orchestrator's timings, shared by `berth-controller` and
//! `berth dev` (both flatten [`OrchestratorFlags`] into their own clap structs), so the two
//! binaries name and default them the same way. [`ClusterKeyFlags`]: `--cluster-key-file`.

use crate::orchestrator::OrchestratorConfig;
use clap::Args;
use std::time::Duration;

/// Service-health timings (ECS defaults).
#[derive(Debug, Clone, Args)]
pub struct OrchestratorFlags {
    /// Seconds a task without health checks must be RUNNING before it counts as healthy (ECS: 40).
    #[arg(long, default_value_t = 40, value_name = "SECONDS", env = "BERTH_TASK_SETTLE_SECS")]
    pub task_settle_secs: u64,
    /// Seconds after reaching RUNNING within which a task that exits or turns unhealthy still
    /// counts toward the deployment circuit breaker (ECS counts only failures to start).
    #[arg(long, default_value_t = 60, value_name = "SECONDS", env = "BERTH_BREAKER_MONITOR_SECS")]
    pub breaker_monitor_secs: u64,
    /// Largest desiredCount a service may have (ECS's default quota: 5000 tasks per service).
    #[arg(long, default_value_t = crate::orchestrator::DEFAULT_MAX_SERVICE_TASKS, value_name = "N", env = "BERTH_MAX_SERVICE_TASKS")]
    pub max_service_tasks: i64,
}

impl OrchestratorFlags {
    /// Writes the flags into `config`.
    pub fn apply(&self, config: &mut OrchestratorConfig) {
        config.task_settle = Duration::from_secs(self.task_settle_secs);
        config.breaker_monitor = Duration::from_secs(self.breaker_monitor_secs);
        config.max_service_tasks = self.max_service_tasks;
    }
}

/// Node liveness timings (SwarmKit's 5 s × 3 heartbeat grace; see `orchestrator/liveness`).
#[derive(Debug, Clone, Args)]
pub struct LivenessFlags {
    /// Seconds between an agent's heartbeats (announced to every agent when it registers).
    #[arg(
        long,
        default_value_t = 5,
        value_name = "SECONDS",
        env = "BERTH_HEARTBEAT_INTERVAL_SECS"
    )]
    pub heartbeat_interval_secs: u64,
    /// Seconds without a heartbeat before an agent is marked disconnected (at least twice the
    /// interval; a closed session disconnects at once).
    #[arg(long, default_value_t = 15, value_name = "SECONDS", env = "BERTH_HEARTBEAT_GRACE_SECS")]
    pub heartbeat_grace_secs: u64,
    /// Seconds an agent stays disconnected before its tasks are lost: marked STOPPED and
    /// replaced elsewhere.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", env = "BERTH_LOST_AFTER_SECS")]
    pub lost_after_secs: u64,
}

impl LivenessFlags {
    /// Writes the flags into `config` (checked later by `ControllerConfig::validate`).
    pub fn apply(&self, config: &mut crate::orchestrator::liveness::LivenessConfig) {
        config.heartbeat_interval = Duration::from_secs(self.heartbeat_interval_secs);
        config.heartbeat_grace = Duration::from_secs(self.heartbeat_grace_secs);
        config.lost_after = Duration::from_secs(self.lost_after_secs);
    }
}

/// Event log retention (`events/retention`): by age and by count, whichever keeps fewer.
#[derive(Debug, Clone, Args)]
pub struct EventFlags {
    /// Hours of events the log keeps.
    #[arg(long, default_value_t = 24, value_name = "HOURS", env = "BERTH_EVENT_RETENTION_HOURS")]
    pub event_retention_hours: u64,
    /// Most events the log keeps.
    #[arg(
        long,
        default_value_t = crate::events::retention::DEFAULT_MAX_EVENTS,
        value_name = "COUNT",
        env = "BERTH_EVENT_RETENTION_COUNT"
    )]
    pub event_retention_count: u64,
}

impl EventFlags {
    /// Writes the flags into `config`.
    pub fn apply(&self, config: &mut crate::events::retention::RetentionConfig) {
        config.max_age = Duration::from_secs(self.event_retention_hours.saturating_mul(3600));
        config.max_events = self.event_retention_count.max(1);
    }
}

/// The cluster key (`crate::crypto::ClusterKey`): it encrypts secrets (and the CA key) in the
/// replicated store. Every member of a replicated group needs the same key.
#[derive(Debug, Clone, Args)]
pub struct ClusterKeyFlags {
    /// File holding the cluster key (64 hex digits, mode 0600); created with a new random key
    /// if missing. Default: `<data-dir>/cluster.key`. Give every member of a replicated group
    /// the same file.
    #[arg(long, value_name = "FILE", env = "BERTH_CLUSTER_KEY_FILE")]
    pub cluster_key_file: Option<std::path::PathBuf>,
}

impl ClusterKeyFlags {
    /// Writes the flag into `config`.
    pub fn apply(&self, config: &mut crate::server::ControllerConfig) {
        if let Some(path) = &self.cluster_key_file {
            config.cluster_key_file = Some(path.clone());
        }
    }
}

/// API tokens (`crate::auth`): `--acl` makes every client API call and `/v1/events` need a
/// token (`authorization: Bearer <secret>`); the first controller to lead writes an admin
/// token to `<data-dir>/bootstrap/admin.token`.
#[derive(Debug, Clone, Args)]
pub struct AclFlags {
    /// Enforce API tokens with roles (admin, operator, read-only) on the client API and
    /// `/v1/events`.
    #[arg(long, env = "BERTH_ACL")]
    pub acl: bool,
}

impl AclFlags {
    /// Writes the flag into `config` (never turns ACL off once another option turned it on).
    pub fn apply(&self, config: &mut crate::server::ControllerConfig) {
        config.acl |= self.acl;
    }
}
