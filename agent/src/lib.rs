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
//!   observer polling the runtime, adoption of containers a previous agent process started.
//!   Health checks run in the engine (Docker's native healthcheck); the agent only reports
//!   them (container and task `healthStatus`) and never stops a task for being unhealthy.
//! * [`session`]: connect/register/reconnect, heartbeats, assignment and report plumbing.
//! * [`agent`]: [`Agent`], wiring the three with the lifecycle `new` → `run(shutdown)`.
//!
//! The agent never edits controller state except through reports, never touches containers
//! labelled with another instance id, and on shutdown leaves its containers running for the next
//! agent process to adopt.

pub mod agent;
pub mod config;
pub mod runtime;
pub mod session;
pub mod supervisor;

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
    #[error("controller {endpoint}: {message}")]
    Controller { endpoint: String, message: String, leader_hint: Option<String> },
}

pub use berth_proto::model::{Clock, SystemClock};

#[cfg(test)]
pub(crate) mod testkit;
