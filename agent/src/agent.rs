//! [`Agent`]: wires config, runtime, session and supervisor, with the component lifecycle
//! `new(config)` → `run(shutdown)`. `run` keeps reconnecting (rotating endpoints, following a
//! leader hint, backing off) until `shutdown` resolves; it then disconnects and leaves the
//! containers running for the next agent process to adopt.
//!
//! With `cfg.metadata_port` set, the task metadata endpoint (`crate::telemetry::start`) is
//! bound when `run` starts (a port in use fails `run`) and stops with it.
//!
//! With `cfg.http_listen` set, the operator HTTP API (`crate::http`) is bound at construction
//! (so the URL the agent registers carries the real port, even for port 0) and served for the
//! whole of `run`; it stops with the agent.
//!
//! With `https://` endpoints, `run` first loads or obtains the certificate (`crate::join`, on
//! the injected `RenewClock`) and then keeps it renewed (`crate::renew`) until it stops.

use crate::http::{self, ApiState};
use crate::metrics::{AgentMetrics, InstrumentedRuntime};
use crate::runtime::{ContainerRuntime, DockerRuntime};
use crate::session::{self, SessionState, register};
use crate::{AgentConfig, AgentError, Clock, SystemClock};
use berth_security::renew::RenewClock;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long `run` waits for the HTTP API's open connections once the agent stops (its streams
/// end on the same signal, so this only bounds a client that does not read).
const HTTP_STOP_GRACE: Duration = Duration::from_secs(5);

pub struct Agent {
    cfg: AgentConfig,
    runtime: Arc<dyn ContainerRuntime>,
    clock: Arc<dyn Clock>,
    /// Certificate expiry and renewal times (TLS mode).
    renew_clock: Arc<dyn RenewClock>,
    http_listener: Option<std::net::TcpListener>,
    metrics: AgentMetrics,
}

impl Agent {
    /// Validates `cfg` and connects to Docker (`cfg.docker_host`).
    pub async fn new(cfg: AgentConfig) -> Result<Agent, AgentError> {
        cfg.validate()?;
        let runtime = DockerRuntime::connect(cfg.docker_host.as_deref())
            .await?
            .with_init_binary(cfg.init_binary.clone());
        Agent::with_runtime(cfg, Arc::new(runtime))
    }

    /// An agent over any runtime (e.g. [`crate::runtime::SimulatedRuntime`] in tests and scale
    /// simulations).
    pub fn with_runtime(
        cfg: AgentConfig,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Result<Agent, AgentError> {
        let mut cfg = cfg;
        cfg.validate()?;
        let http_listener = match cfg.http_listen {
            Some(addr) => {
                let listener = http::bind(addr)?;
                let bound = listener.local_addr().map_err(|e| AgentError::Http {
                    addr: addr.to_string(),
                    message: e.to_string(),
                })?;
                if cfg.advertise_http.is_none() {
                    let host = crate::session::register::hostname(&cfg);
                    cfg.advertise_http = Some(http::advertise_url(bound, &host));
                }
                tracing::info!(%bound, url = cfg.advertise_http.as_deref(), "operator HTTP API bound");
                Some(listener)
            }
            None => None,
        };
        let metrics = AgentMetrics::new();
        let runtime: Arc<dyn ContainerRuntime> =
            Arc::new(InstrumentedRuntime::new(runtime, metrics.clone()));
        Ok(Agent {
            cfg,
            runtime,
            clock: Arc::new(SystemClock),
            renew_clock: Arc::new(berth_security::renew::SystemClock),
            http_listener,
            metrics,
        })
    }

    /// This agent's Prometheus series (served on `/metrics` of the HTTP API).
    pub fn metrics(&self) -> &AgentMetrics {
        &self.metrics
    }

    /// Where the operator HTTP API listens, when enabled.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The URL the agent registers for its HTTP API (`RegisterAgent.agent_endpoint`).
    pub fn advertised_http(&self) -> Option<&str> {
        self.cfg.advertise_http.as_deref()
    }

    /// Replaces the clock used for report timestamps.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Agent {
        self.clock = clock;
        self
    }

    /// Replaces the clock that decides when the certificate has lapsed or is due for renewal.
    pub fn with_renew_clock(mut self, clock: Arc<dyn RenewClock>) -> Agent {
        self.renew_clock = clock;
        self
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
        let Agent { cfg, runtime, clock, renew_clock, http_listener, metrics } = self;
        // The data dir holds the agent's key and instance id: private from the start.
        berth_security::pem::create_private_dir(&cfg.data_dir)
            .map_err(|e| AgentError::Config(format!("--data-dir: {e}")))?;
        let (http_stop, stop_rx) = tokio::sync::watch::channel(false);
        let http_server = http_listener.map(|listener| {
            let state = ApiState {
                runtime: runtime.clone(),
                data_dir: cfg.data_dir.clone(),
                shutdown: stop_rx,
                metrics: metrics.clone(),
            };
            tokio::spawn(http::serve(listener, state))
        });
        let (telemetry, metadata_server) =
            crate::telemetry::start(&cfg, &runtime, http_stop.subscribe()).await?;
        let result =
            run_sessions(cfg, runtime, clock, renew_clock, telemetry, metrics, shutdown).await;
        let _ = http_stop.send(true);
        if let Some(server) = metadata_server
            && tokio::time::timeout(HTTP_STOP_GRACE, server).await.is_err()
        {
            tracing::warn!("task metadata endpoint did not stop in time; left behind");
        }
        if let Some(server) = http_server {
            match tokio::time::timeout(HTTP_STOP_GRACE, server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "operator HTTP API failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "operator HTTP API task failed"),
                Err(_) => tracing::warn!("operator HTTP API did not stop in time; left behind"),
            }
        }
        result
    }
}

/// The session loop of [`Agent::run`].
async fn run_sessions(
    cfg: crate::AgentConfig,
    runtime: Arc<dyn ContainerRuntime>,
    clock: Arc<dyn Clock>,
    renew_clock: Arc<dyn RenewClock>,
    telemetry: crate::telemetry::Telemetry,
    metrics: AgentMetrics,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let mut shutdown = std::pin::pin!(shutdown);
    // TLS (`crate::join`): the certificate (joining once with --join-token) decides the id.
    let tls = tokio::select! {
        _ = &mut shutdown => return Ok(()),
        t = crate::join::prepare(&cfg, renew_clock.as_ref()) => t?,
    };
    let instance_id = match &tls {
        Some(t) => t.instance_id.clone(),
        None => register::read_instance_id(&cfg.data_dir)?,
    };
    let docker_version = match runtime.version().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the container engine version");
            String::new()
        }
    };
    let mut state = SessionState::new(instance_id, docker_version);
    state.telemetry = telemetry;
    state.metrics = metrics;
    state.tls = tls.as_ref().map(|t| t.client.clone());
    // From here the certificate renews itself until the agent stops (`crate::renew`).
    let (renew_stop, renew_stopped) = tokio::sync::oneshot::channel::<()>();
    let renewal = tls.map(|t| {
        let renewal = crate::renew::AgentRenewal {
            endpoints: cfg.endpoints.clone(),
            data_dir: cfg.data_dir.clone(),
            tls: t.client,
            identity: t.identity,
        };
        crate::renew::spawn(renewal, t.validity, renew_clock, async move {
            let _ = renew_stopped.await;
        })
    });
    let result = session_loop(&cfg, &runtime, &clock, state, shutdown).await;
    let _ = renew_stop.send(());
    if let Some(handle) = renewal
        && let Err(e) = handle.await
    {
        tracing::warn!(error = %e, "certificate renewal task failed");
    }
    result
}

/// The reconnect loop of [`run_sessions`], until `shutdown` or a local failure.
async fn session_loop(
    cfg: &AgentConfig,
    runtime: &Arc<dyn ContainerRuntime>,
    clock: &Arc<dyn Clock>,
    mut state: SessionState,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<(), AgentError> {
    let mut idx = 0usize;
    let mut backoff = cfg.reconnect_backoff_min;
    let mut hint: Option<String> = None;
    loop {
        let endpoint =
            hint.take().unwrap_or_else(|| cfg.endpoints[idx % cfg.endpoints.len()].clone());
        let result = tokio::select! {
            _ = &mut shutdown => break,
            r = session::run_session(cfg, &endpoint, runtime, clock, &mut state) => r,
        };
        state.metrics.set_connected(false);
        match result {
            Ok(end) => {
                tracing::warn!(endpoint, "controller closed the session");
                if end.registered {
                    backoff = cfg.reconnect_backoff_min;
                }
            }
            Err(AgentError::Controller { endpoint, message, .. })
                if cfg.exit_when_revoked && revoked(&message) =>
            {
                // Deregistered with --force: no controller will take this instance again.
                tracing::error!(%endpoint, %message, "this instance was deregistered; exiting");
                if let Some((sup, _)) = state.supervisor.as_mut() {
                    sup.shutdown();
                }
                return Err(AgentError::Controller { endpoint, message, leader_hint: None });
            }
            Err(AgentError::Controller { endpoint, message, leader_hint }) => {
                tracing::warn!(%endpoint, %message, leader = leader_hint.as_deref(), "session failed");
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

/// A controller's refusal that reconnecting cannot cure: the instance was deregistered and
/// its identity revoked (`store/deregister.rs` of the controller words it).
fn revoked(message: &str) -> bool {
    message.contains("was deregistered and its identity revoked")
}
