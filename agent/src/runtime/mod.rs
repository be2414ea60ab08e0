//! # runtime — the narrow seam between the agent and a container engine
//!
//! * [`ContainerRuntime`]: the only operations the supervisor needs (image present / pull,
//!   create, start, inspect, stop with a timeout, remove, list by label, engine version).
//! * Health checks run in the engine ([`HealthCheckSpec`] on create, Docker's native
//!   healthcheck); [`ContainerInfo::health`] carries what the engine last concluded.
//! * [`DockerRuntime`] (`docker.rs`): the real thing, Docker Engine API through bollard 0.21.
//! * [`SimulatedRuntime`] (`simulated.rs`): an in-memory fake for unit tests and scale
//!   simulations. Containers "run" until test code makes them exit.
//! * `conformance.rs` (tests only): one behaviour suite run against both implementations.
//!
//! The types here are engine-neutral: the supervisor never sees a bollard type.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

pub mod docker;
pub mod simulated;

#[cfg(test)]
pub(crate) mod conformance;

pub use docker::DockerRuntime;
pub use simulated::SimulatedRuntime;

/// Labels every Berth container carries (adoption and cleanup rely on them).
pub const LABEL_TASK_ID: &str = "berth.task-id";
pub const LABEL_CONTAINER_NAME: &str = "berth.container-name";
pub const LABEL_INSTANCE_ID: &str = "berth.instance-id";
pub const LABEL_CLUSTER: &str = "berth.cluster";
pub const LABEL_TASK_VERSION: &str = "berth.task-version";
/// Seconds between SIGTERM and SIGKILL for this container, so that a restarted agent (or an
/// orphan cleanup without the task definition) stops it with the right grace period.
pub const LABEL_STOP_TIMEOUT: &str = "berth.stop-timeout";
/// On engine volumes Berth creates: `task` (removed with the task's containers) or `shared`.
pub const LABEL_VOLUME_SCOPE: &str = "berth.volume-scope";

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub port_mappings: Vec<PortMappingSpec>,
    /// Hard memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// Soft memory limit in bytes.
    pub memory_reservation_bytes: Option<i64>,
    pub cpu_shares: Option<i64>,
    /// `bridge`, `host` or `none`.
    pub network_mode: String,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_timeout: Option<Duration>,
    /// The container's health check. `None`: no check, and any check baked into the image is
    /// disabled too (ECS ignores image HEALTHCHECKs that the definition does not declare).
    pub health_check: Option<HealthCheckSpec>,
    /// Everything else a task definition can ask of the engine (volumes, links, security,
    /// limits, …); see [`ContainerOptions`].
    pub options: ContainerOptions,
}

/// Engine options beyond the basics (ECS-NOTES §1.2, §1.5). Names are the engine's; the
/// translation from ECS field names happens in `supervisor::spec`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerOptions {
    /// Bind mounts and volumes, in `mountPoints` order.
    pub mounts: Vec<MountSpec>,
    /// Engine names of containers whose volumes this one mounts: `NAME` or `NAME:ro`.
    pub volumes_from: Vec<String>,
    /// Legacy links `ENGINE_NAME:ALIAS` (bridge mode).
    pub links: Vec<String>,
    pub dns_servers: Vec<String>,
    pub dns_search_domains: Vec<String>,
    /// `HOSTNAME:IP` entries for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    pub network_disabled: bool,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub ulimits: Vec<UlimitSpec>,
    pub sysctls: BTreeMap<String, String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub devices: Vec<DeviceSpec>,
    /// Run an init process as PID 1 (`None`: the engine's default).
    pub init: Option<bool>,
    pub shm_size_bytes: Option<i64>,
    /// Container path → tmpfs mount options (`size=…,mode=…`).
    pub tmpfs: BTreeMap<String, String>,
    pub open_stdin: bool,
    pub tty: bool,
    /// `json-file` log driver options (`max-size`, `max-file`, …).
    pub log_options: BTreeMap<String, String>,
}

/// One mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: MountSource,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host directory (created by the engine when missing).
    HostPath(String),
    /// A named engine volume, created on demand by the runtime.
    Volume(VolumeSpec),
}

/// A named engine volume. Task-scoped ones are removed by [`ContainerRuntime::remove`] once the
/// last container using them is gone; shared ones persist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSpec {
    pub name: String,
    pub shared: bool,
    /// Shared volumes only: create when missing (task volumes are always created).
    pub autoprovision: bool,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    /// Includes [`LABEL_VOLUME_SCOPE`] and, for task volumes, [`LABEL_TASK_ID`].
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UlimitSpec {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub host_path: String,
    pub container_path: String,
    /// cgroup permissions, a subset of `rwm`.
    pub permissions: String,
}

/// A health check the engine runs inside the container (ECS `healthCheck`, defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// `["CMD", arg…]` or `["CMD-SHELL", "command"]`, as ECS and Docker both spell it.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the container is unhealthy.
    pub retries: u32,
    /// Failures inside this period after start do not count. Zero: none.
    pub start_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortMappingSpec {
    pub container_port: u16,
    /// `None` → the engine picks a free host port (dynamic port).
    pub host_port: Option<u16>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A container's lifecycle state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    /// Exited (or dead). The exit code is in [`ContainerInfo::exit_code`] when known.
    Exited,
    /// Transitional states (`removing`, ...) the supervisor waits out.
    Other,
}

impl ContainerState {
    /// ECS container `lastStatus` for this state.
    pub fn ecs_status(self) -> &'static str {
        match self {
            ContainerState::Created | ContainerState::Other => "PENDING",
            ContainerState::Running => "RUNNING",
            ContainerState::Exited => "STOPPED",
        }
    }
}

/// What the engine's health check last concluded about a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerHealth {
    /// Not evaluated yet (inside the start period, or before the first probe).
    Starting,
    Healthy,
    Unhealthy,
}

impl ContainerHealth {
    /// ECS container `healthStatus` for this state.
    pub fn ecs_status(self) -> &'static str {
        match self {
            ContainerHealth::Starting => "UNKNOWN",
            ContainerHealth::Healthy => "HEALTHY",
            ContainerHealth::Unhealthy => "UNHEALTHY",
        }
    }
}

/// A host port bound to a container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BoundPort {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: String,
    pub host_ip: String,
}

/// What the engine shows about one container. From [`ContainerRuntime::list`], `exit_code` and
/// `ports` may be missing (Docker's list call does not carry them) and `health` is only a hint
/// (`None` = not shown); [`ContainerRuntime::inspect`] fills everything.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    pub exit_code: Option<i64>,
    pub ports: Vec<BoundPort>,
    /// Engine error message for a container that failed (e.g. OOM, start error), if any.
    pub error: Option<String>,
    /// Health check verdict while the container runs; `None` when it has no health check or is
    /// not running (Docker marks a stopped container "unhealthy" for compatibility only; that
    /// is not a verdict and is never reported).
    pub health: Option<ContainerHealth>,
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no such container or image: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("image pull failed for {image}: {message}")]
    Pull { image: String, message: String },
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
    #[error("container engine error: {0}")]
    Engine(String),
}

/// The operations the supervisor needs from a container engine. Implementations must be
/// idempotent where the engine is: stopping a stopped container and removing a missing one
/// succeed (`remove` of a missing container returns `Ok`).
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Engine version string (reported at registration).
    async fn version(&self) -> Result<String, RuntimeError>;
    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError>;
    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError>;
    /// Creates a container; fails with [`RuntimeError::Conflict`] when the name is taken.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;
    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError>;
    /// Sends SIGTERM, then SIGKILL after `timeout`; returns once the container is stopped.
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// All containers (running or not) carrying the label `key=value`.
    async fn list(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>, RuntimeError>;
}
