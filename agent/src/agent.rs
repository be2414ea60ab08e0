//! [`Agent`]: wires config, runtime, session and supervisor, with the component lifecycle
//! `new(config)` → `run(shutdown)`. `run` keeps reconnecting (rotating endpoints, following a
//! leader hint, backing off) until `shutdown` resolves; it then disconnects and leaves the
//! containers running for the next agent process to adopt.

use crate::runtime::{ContainerRuntime, DockerRuntime};
use crate::session::{self, SessionState, register};
use crate::{AgentConfig, AgentError, Clock, SystemClock};
use std::future::Future;
use std::sync::Arc;

pub struct Agent {
    cfg: AgentConfig,
    runtime: Arc<dyn ContainerRuntime>,
    clock: Arc<dyn Clock>,
}

impl Agent {
    /// Validates `cfg` and connects to Docker (`cfg.docker_host`).
    pub async fn new(cfg: AgentConfig) -> Result<Agent, AgentError> {
        cfg.validate()?;
        let runtime = DockerRuntime::connect(cfg.docker_host.as_deref()).await?;
        Agent::with_runtime(cfg, Arc::new(runtime))
    }

    /// An agent over any runtime (e.g. [`crate::runtime::SimulatedRuntime`] in tests and scale
    /// simulations).
    pub fn with_runtime(
        cfg: AgentConfig,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Result<Agent, AgentError> {
        cfg.validate()?;
        Ok(Agent { cfg, runtime, clock: Arc::new(SystemClock) })
    }

    /// Replaces the clock used for report timestamps.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Agent {
        self.clock = clock;
        self
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
        let Agent { cfg, runtime, clock } = self;
        let instance_id = register::read_instance_id(&cfg.data_dir)?;
        let docker_version = match runtime.version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the container engine version");
                String::new()
            }
        };
        let mut state = SessionState::new(instance_id, docker_version);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut idx = 0usize;
        let mut backoff = cfg.reconnect_backoff_min;
        let mut hint: Option<String> = None;
        loop {
            let endpoint =
                hint.take().unwrap_or_else(|| cfg.endpoints[idx % cfg.endpoints.len()].clone());
            let result = tokio::select! {
                _ = &mut shutdown => break,
                r = session::run_session(&cfg, &endpoint, &runtime, &clock, &mut state) => r,
            };
            match result {
                Ok(end) => {
                    tracing::warn!(endpoint, "controller closed the session");
                    if end.registered {
                        backoff = cfg.reconnect_backoff_min;
                    }
                }
                Err(AgentError::Controller { endpoint, message, leader_hint }) => {
                    tracing::warn!(%endpoint, %message, leader = ?leader_hint, "session failed");
                    hint = leader_hint;
                }
                Err(e) => {
                    // Local failures (the data dir) are not cured by reconnecting.
                    if let Some((sup, _)) = state.supervisor.as_mut() {
                        sup.shutdown();
                    }
                    return Err(e);
                }
            }
            if hint.is_none() {
                idx = idx.wrapping_add(1);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(cfg.reconnect_backoff_max);
        }
        tracing::info!("agent shutting down; containers are left running");
        if let Some((sup, _)) = state.supervisor.as_mut() {
            sup.shutdown();
        }
        Ok(())
    }
}
