//! # runtime — the narrow seam between the agent and a container engine
//!
//! * [`ContainerRuntime`]: the only operations the supervisor needs (image present / pull,
//!   create, start, inspect, stop with a timeout, remove, list by label, engine version) and
//!   what the operator API needs ([`ContainerRuntime::logs`]: a container's output as a stream
//!   of [`LogChunk`]s, for `berth task logs`).
//! * Stats and addresses: [`ContainerRuntime::stats`] ([`ContainerStats`], one sample),
//!   [`ContainerRuntime::networks`] and [`ContainerRuntime::bridge_gateway`] (the task metadata
//!   endpoint's listen address and caller check).
//! * Health checks run in the engine ([`HealthCheckSpec`] on create, Docker's native
//!   healthcheck); [`ContainerInfo::health`] carries what the engine last concluded.
//! * [`DockerRuntime`] (`docker.rs`): the real thing, Docker Engine API through bollard 0.21.
//! * [`SimulatedRuntime`] (`simulated.rs`): an in-memory fake for unit tests and scale
//!   simulations. Containers "run" until test code makes them exit.
//! * awsvpc: `task_network.rs` (subnet, address allocation, names; pure) and `pause_image.rs`
//!   (the built-in pause image: a hand-assembled static executable in an in-memory tar), used
//!   by the runtime when a [`ContainerSpec`] has a `task_network`, and by
//!   [`ContainerRuntime::ensure_pause_image`].
//! * `conformance.rs` (tests only): one behaviour suite run against both implementations.
//!   `conformance_logs.rs` (tests only) does the same for [`ContainerRuntime::logs`].
//!
//! The types here are engine-neutral: the supervisor never sees a bollard type.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

pub mod docker;
pub mod pause_image;
pub mod simulated;
pub mod task_network;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod conformance_logs;

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

/// One environment variable from a secret; `Debug` redacts the value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretEnv {
    pub name: String,
    pub value: berth_proto::secrets::SecretString,
}

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Variables whose values come from Berth secrets (`Assignment.secrets`); kept apart from
    /// `env` so `Debug` of a spec never shows them. The engine gets them after `env`.
    pub secret_env: Vec<SecretEnv>,
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
    /// Set on the pause container of an awsvpc task only: the runtime attaches it to this
    /// network with an address of its own and sets its hostname and the `berth.awsvpc.*` labels
    /// from that address (`task_network.rs`). `network_mode` is then ignored.
    pub task_network: Option<task_network::TaskNetworkSpec>,
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
    /// Run an init process as PID 1 (`None`: the engine's default). Docker runs it as
    /// `/dev/init` when the agent finds the engine's init binary (`docker/init.rs`), else with
    /// the engine's `--init`.
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

/// Which output stream of a container a [`LogChunk`] came from. A container with a TTY has one
/// merged stream, reported as `Stdout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    Stdout,
    Stderr,
}

/// A piece of a container's output, as the engine delivered it (usually one line; not
/// guaranteed to end on a line boundary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub source: LogSource,
    pub data: bytes::Bytes,
}

/// What [`ContainerRuntime::logs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogsOptions {
    /// Keep the stream open and deliver new output until the container exits. On a container
    /// that is not running, the stream ends after the output so far.
    pub follow: bool,
    /// Only the last N lines of the output so far (stdout and stderr counted together).
    pub tail: Option<u64>,
    /// Prefix every line with the engine's RFC 3339 timestamp.
    pub timestamps: bool,
}

/// A container's output; an `Err` item ends it (the engine failed mid-stream).
pub type LogStream =
    Pin<Box<dyn futures::Stream<Item = Result<LogChunk, RuntimeError>> + Send + 'static>>;

/// One resource-usage sample of a container, from [`ContainerRuntime::stats`]. CPU counters are
/// cumulative, so a rate needs two samples (`crate::stats` keeps the previous one).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    /// CPU time the container has used since it started, nanoseconds.
    pub cpu_total_usage_ns: u64,
    /// CPU time of the whole host since boot, nanoseconds (`None` when the engine does not say).
    pub system_cpu_usage_ns: Option<u64>,
    pub online_cpus: Option<u32>,
    /// Memory in use without the reclaimable page cache (what `docker stats` shows), bytes.
    pub memory_usage_bytes: u64,
    /// The container's memory limit (the host's memory when it has none), bytes.
    pub memory_limit_bytes: Option<u64>,
    /// The engine's own stats document (Docker's `ContainerStats` JSON), which the task
    /// metadata endpoint serves as is.
    pub raw: serde_json::Value,
}

/// A network a container is attached to, from [`ContainerRuntime::networks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNetwork {
    /// The engine's network name (`bridge`, `host`, …).
    pub name: String,
    pub ipv4: Option<std::net::Ipv4Addr>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<std::net::Ipv4Addr>,
    pub mac: Option<String>,
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
    /// Makes Berth's built-in pause image ([`pause_image::BUILTIN_PAUSE_IMAGE`]) available,
    /// building it locally when absent (no registry involved). The default only checks that it
    /// is present (for runtimes that cannot build).
    async fn ensure_pause_image(&self, image: &str) -> Result<(), RuntimeError> {
        if self.image_present(image).await? {
            Ok(())
        } else {
            Err(RuntimeError::NotFound(format!("pause image {image}")))
        }
    }
    /// The container's stdout and stderr, interleaved as the engine recorded them. Fails with
    /// [`RuntimeError::NotFound`] before streaming when there is no such container.
    async fn logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, RuntimeError>;
    /// One resource-usage sample (Docker: a one-shot stats call, no stream). The default is for
    /// runtimes without stats (the sampler skips what fails).
    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        Err(RuntimeError::Engine(format!("stats of {id}: not supported by this runtime")))
    }
    /// The networks a container is attached to, with its addresses (empty: unknown).
    async fn networks(&self, id: &str) -> Result<Vec<ContainerNetwork>, RuntimeError> {
        let _ = id;
        Ok(Vec::new())
    }
    /// The host's address on the engine's default bridge network (Docker: the `bridge`
    /// network's IPAM gateway, typically 172.17.0.1), where bridge-mode containers reach the
    /// host; `None` when there is no such network (the simulated runtime).
    async fn bridge_gateway(&self) -> Result<Option<std::net::IpAddr>, RuntimeError> {
        Ok(None)
    }
    /// A stream of the ids of containers labelled `key=value` as they change state (Docker: the
    /// engine's event stream, filtered by that label); the observer polls at once on each.
    /// `None`: the runtime has no such stream (the observer relies on its poll interval and on
    /// the pokes after each step). The stream ends when the engine connection breaks.
    fn watch(&self, key: &str, value: &str) -> Option<futures::stream::BoxStream<'static, String>> {
        let _ = (key, value);
        None
    }
}
