//! # berth-agent — the node agent
//!
//! Runs the tasks the controller assigns to this container instance as containers, and reports
//! what happens to them.
//!
//! ```text
//!  controller ◄──gRPC AgentDispatch.Session──► session/ ──Assignments──► supervisor/ ──► runtime/
//!                 (register, heartbeats,          ▲                        │  one worker   Docker (bollard)
//!                  task status reports)           └──── TaskStatusReport ──┘  per task     or Simulated
//! ```
//!
//! * [`config`]: [`AgentConfig`] and [`PullBehavior`].
//! * [`runtime`]: the [`runtime::ContainerRuntime`] seam with [`runtime::DockerRuntime`] and
//!   [`runtime::SimulatedRuntime`].
//! * [`supervisor`]: one state machine per task (pure decision core in `decide.rs`), an
//!   observer listing the runtime's containers on every step, engine event and safety-net tick,
//!   adoption of containers a previous agent process started.
//!   Health checks run in the engine (Docker's native healthcheck); the agent only reports
//!   them (container and task `healthStatus`) and never stops a task for being unhealthy.
//!   awsvpc tasks (`supervisor/awsvpc.rs`, `runtime/task_network.rs`, `runtime/pause_image.rs`)
//!   get a network namespace of their own behind a pause container, with an address on the
//!   agent's `berth-awsvpc` bridge network.
//! * [`session`]: connect/register/reconnect, heartbeats, assignment and report plumbing.
//! * [`http`]: the operator HTTP API (`--http-listen`): `/healthz`, `/readyz`, `/metrics` and
//!   `/v1/tasks/{id}/logs` (container output through [`runtime::ContainerRuntime::logs`]). Its
//!   URL goes to the controller in `RegisterAgent.agent_endpoint`.
//! * [`logging`]: `--log-format text|json`, to stderr, `RUST_LOG` filtering.
//! * [`metrics`]: the Prometheus series on `/metrics` of the HTTP API
//!   ([`metrics::AgentMetrics`], `charts/berth/METRICS.md`); [`metrics::InstrumentedRuntime`]
//!   wraps the runtime seam to time every engine call.
//! * [`simulate`]: `berth-agent --simulate N`: N simulated container instances in one process,
//!   each a full agent over a fake engine with seeded delays and failures (scale work only).
//! * [`metadata`]: the ECS task metadata endpoint v4 (`--metadata-port`): per-container
//!   tokens in `ECS_CONTAINER_METADATA_URI_V4`, served on loopback and the Docker bridge
//!   gateway, isolated per task (unknown token 404, another task's address 403).
//! * [`stats`]: container CPU / memory sampled every `--stats-interval-secs` and sent to the
//!   controller as one `ContainerStatsReport` per period; [`telemetry`] hooks both onto the
//!   supervisor once it exists.
//! * [`join`]: TLS with `https://` endpoints: `--join-token` once (CA fetched and checked
//!   against the token's digest, key + CSR, `JoinCluster`), then `{ca.pem,cert.pem,key.pem}` in
//!   the data dir; sessions run over mTLS as the instance id in the certificate. A certificate
//!   that lapsed while the agent was down is replaced by rejoining with `--join-token`.
//! * [`renew`]: that certificate renews itself at 2/3 of its lifetime (`RenewCertificate` over
//!   mTLS with the current one), rewrites the files and swaps into the sessions' `ClientTls`.
//! * [`agent`]: [`Agent`], wiring the three with the lifecycle `new` → `run(shutdown)`.
//!
//! The agent never edits controller state except through reports, never touches containers
//! labelled with another instance id, and on shutdown leaves its containers running for the next
//! agent process to adopt.

pub mod agent;
pub mod config;
pub mod http;
pub mod join;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod renew;
pub mod runtime;
pub mod session;
pub mod simulate;
pub mod stats;
pub mod supervisor;
pub mod telemetry;

pub use agent::Agent;
pub use config::{AgentConfig, PullBehavior};

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("container runtime: {0}")]
    Runtime(#[from] runtime::RuntimeError),
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("agent HTTP API on {addr}: {message}")]
    Http { addr: String, message: String },
    #[error("controller {endpoint}: {message}")]
    Controller { endpoint: String, message: String, leader_hint: Option<String> },
    #[error("certificate renewal: {0}")]
    Renewal(String),
}

pub use berth_proto::model::{Clock, SystemClock};

#[cfg(test)]
pub(crate) mod testkit;
