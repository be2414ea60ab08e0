//! # http — the agent's operator HTTP API
//!
//! A small axum server on `berth-agent --http-listen ADDR` (default [`DEFAULT_HTTP_LISTEN`], the
//! ECS agent's introspection port), for people and tools on the operator side, never for
//! containers. The agent tells the controller where it is (`RegisterAgent.agent_endpoint`, see
//! [`advertise_url`]), and `berth task logs` finds it there.
//!
//! * `GET /healthz` — `ok` while the agent process serves.
//! * `GET /readyz` — 200 `ready` while a controller session is registered and the container
//!   engine answers; else 503 with a JSON reason (`probes.rs`).
//! * `GET /metrics` — the Prometheus text exposition (`crate::metrics`).
//! * `GET /v1/tasks/{task_id}/logs?container=NAME&follow=true&tail=N&timestamps=true` — a
//!   container's stdout and stderr as a chunked `text/plain` stream (`logs.rs`).
//!
//! Errors are JSON in the ECS style the controller's HTTP port uses:
//! `{"__type": "ClientException" | "InvalidParameterException" | "ServerException",
//! "message": …}` with 404, 400 or 5xx ([`ApiError`]); an error about which container was
//! meant also lists the task's `containers` by name, so clients need not parse the message.
//!
//! Data flow: request → [`router`] → a handler reading [`ApiState`] (the runtime, the instance id
//! in the data dir) → a response; streams end when [`serve`]'s shutdown signal turns true.
//! Adding a route: a handler in its own file and one `.route(…)` line in [`router`]; shared
//! inputs go into [`ApiState`]. Must not touch: the supervisor or the session (this API only
//! reads the container runtime).

pub mod logs;
pub mod probes;

use crate::AgentError;
use crate::runtime::ContainerRuntime;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// Where `berth-agent` serves this API unless told otherwise: the ECS agent's introspection
/// port on loopback (51678 is among the ports every instance reserves).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:51678";

/// What the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Holds the instance id this agent registered as: only containers labelled with it are
    /// served (another agent may share the engine).
    pub data_dir: PathBuf,
    /// Turns true when the agent stops; open streams end then.
    pub shutdown: watch::Receiver<bool>,
    /// The agent's series (`/metrics`) and its connected flag (`/readyz`).
    pub metrics: crate::metrics::AgentMetrics,
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .route("/v1/tasks/{task_id}/logs", get(logs::task_logs))
        .fallback(not_found)
        .with_state(state)
}

/// Binds `addr` (port 0: any free port). Done before the agent registers, so the advertised
/// URL carries the real port.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, AgentError> {
    let err = |e: std::io::Error| AgentError::Http {
        addr: addr.to_string(),
        message: format!(
            "{e} (is another berth-agent using it? choose another with --http-listen)"
        ),
    };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// Serves [`router`] on `listener` until `state.shutdown` turns true, then waits for open
/// connections (their streams end on the same signal).
pub async fn serve(listener: std::net::TcpListener, state: ApiState) -> Result<(), AgentError> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let err = |e: std::io::Error| AgentError::Http { addr: addr.clone(), message: e.to_string() };
    let listener = tokio::net::TcpListener::from_std(listener).map_err(err)?;
    // Log lines are small writes; Nagle would hold each one for the client's ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut stop = state.shutdown.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .map_err(err)
}

/// The URL to advertise for a listener bound to `bound`: its own address when specific, else
/// `hostname` (a wildcard address is not reachable as such). `--advertise-http` overrides it.
pub fn advertise_url(bound: SocketAddr, hostname: &str) -> String {
    let port = bound.port();
    match bound.ip() {
        ip if ip.is_unspecified() && !hostname.is_empty() => format!("http://{hostname}:{port}"),
        IpAddr::V4(ip) if ip.is_unspecified() => format!("http://127.0.0.1:{port}"),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("http://[::1]:{port}"),
        IpAddr::V4(ip) => format!("http://{ip}:{port}"),
        IpAddr::V6(ip) => format!("http://[{ip}]:{port}"),
    }
}

/// An error reply: HTTP status, ECS error type, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// The task's container names, when the error is about choosing one (`containers`).
    pub containers: Vec<String>,
}

impl ApiError {
    /// 400 `InvalidParameterException`: a request parameter breaks a rule (the message names it).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "InvalidParameterException",
            message: message.into(),
            containers: Vec::new(),
        }
    }
    /// 404 `ClientException`: the thing asked about is not here.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "ClientException",
            message: message.into(),
            containers: Vec::new(),
        }
    }
    /// 5xx `ServerException`: the agent or its engine failed.
    pub fn server(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind: "ServerException",
            message: message.into(),
            containers: Vec::new(),
        }
    }
    pub fn with_containers(mut self, names: Vec<String>) -> ApiError {
        self.containers = names;
        self
    }
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"__type": self.kind, "message": self.message});
        if !self.containers.is_empty() {
            body["containers"] = json!(self.containers);
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "UnknownOperationException",
        message: format!(
            "no such resource: {} (routes: /healthz, /readyz, /metrics, \
             /v1/tasks/TASK_ID/logs)",
            uri.path()
        ),
        containers: Vec::new(),
    }
    .into_response()
}

#[cfg(test)]
mod tests;
