//! `GET /v1/tasks/{task_id}/logs` — one container's output, streamed.
//!
//! Query: `container=NAME` (the task definition's container name; required when the task has
//! more than one), `follow=true|false` (keep streaming until the container exits; default
//! false), `tail=N|all` (only the last N lines so far; default all), `timestamps=true|false`
//! (the engine's RFC 3339 time before each line). An unknown parameter is refused.
//!
//! The body is stdout and stderr merged in the engine's order, `text/plain`, chunked; the
//! `x-berth-container` header names the container served. A stream the agent cannot finish (the
//! engine failed, or the agent is stopping) is cut without its final chunk, so a client sees an
//! incomplete transfer and never mistakes it for the container's end.
//!
//! Data flow: [`LogsRequest::parse`] (pure) → the task's containers on this instance (the
//! runtime's list by `berth.task-id`, kept when `berth.instance-id` is this agent's) →
//! [`pick_container`] (pure) → [`crate::runtime::ContainerRuntime::logs`] → the body.

use super::{ApiError, ApiState};
use crate::runtime::{
    ContainerInfo, ContainerState, LABEL_CONTAINER_NAME, LABEL_INSTANCE_ID, LABEL_TASK_ID,
    LogsOptions, RuntimeError,
};
use crate::session::register;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use std::collections::BTreeMap;

/// Name of the response header that says which container's output the body is.
pub const CONTAINER_HEADER: &str = "x-berth-container";

/// Longest task id accepted (Berth's are UUIDs; ECS's are 32 hex digits).
const MAX_TASK_ID_LEN: usize = 128;

/// The parameters of a logs request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogsRequest {
    pub container: Option<String>,
    pub follow: bool,
    pub tail: Option<u64>,
    pub timestamps: bool,
}

impl LogsRequest {
    /// From the decoded query pairs; the error names the parameter and the rule.
    pub fn parse(pairs: &[(String, String)]) -> Result<LogsRequest, ApiError> {
        let mut r = LogsRequest::default();
        for (key, value) in pairs {
            match key.as_str() {
                "container" => {
                    if value.trim().is_empty() {
                        return Err(ApiError::invalid("container must not be empty"));
                    }
                    r.container = Some(value.trim().to_string());
                }
                "follow" => r.follow = parse_bool("follow", value)?,
                "timestamps" => r.timestamps = parse_bool("timestamps", value)?,
                "tail" => {
                    let v = value.trim();
                    r.tail = if v.eq_ignore_ascii_case("all") {
                        None
                    } else {
                        Some(v.parse::<u64>().map_err(|_| {
                            ApiError::invalid(format!(
                                "tail '{value}' is not a line count: expected a non-negative integer or all"
                            ))
                        })?)
                    };
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "unknown query parameter '{other}' (expected container, follow, tail, timestamps)"
                    )));
                }
            }
        }
        Ok(r)
    }

    pub fn options(&self) -> LogsOptions {
        LogsOptions { follow: self.follow, tail: self.tail, timestamps: self.timestamps }
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::invalid(format!("{name} '{value}' is not true or false"))),
    }
}

fn check_task_id(task_id: &str) -> Result<(), ApiError> {
    let ok = !task_id.is_empty()
        && task_id.len() <= MAX_TASK_ID_LEN
        && task_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "task id '{task_id}' is invalid: 1-{MAX_TASK_ID_LEN} of letters, digits, - and _ (the last part of the task ARN)"
        )))
    }
}

/// The container of `task_id` to read, among `containers` (that task's containers on this
/// instance): the one named `wanted`, or the only one. Two engine containers with one name
/// (never made by this agent) resolve to the running one.
pub fn pick_container<'a>(
    task_id: &str,
    containers: &'a [ContainerInfo],
    wanted: Option<&str>,
) -> Result<&'a ContainerInfo, ApiError> {
    let mut by_name: BTreeMap<&str, &ContainerInfo> = BTreeMap::new();
    for c in containers {
        let Some(name) = c.label(LABEL_CONTAINER_NAME) else { continue };
        match by_name.get(name) {
            Some(prev) if prev.state == ContainerState::Running => {}
            _ => {
                by_name.insert(name, c);
            }
        }
    }
    let list: Vec<String> = by_name.keys().map(|n| n.to_string()).collect();
    let names = || list.join(", ");
    if by_name.is_empty() {
        return Err(ApiError::not_found(format!(
            "task {task_id} has no containers on this container instance"
        )));
    }
    match wanted {
        Some(name) => by_name.get(name).copied().ok_or_else(|| {
            ApiError::not_found(format!(
                "task {task_id} has no container named '{name}' (its containers: {})",
                names()
            ))
            .with_containers(list.clone())
        }),
        None if by_name.len() > 1 => Err(ApiError::invalid(format!(
            "task {task_id} has {} containers ({}): name one with container=NAME",
            by_name.len(),
            names()
        ))
        .with_containers(list.clone())),
        None => by_name.into_values().next().ok_or_else(|| {
            ApiError::not_found(format!(
                "task {task_id} has no containers on this container instance"
            ))
        }),
    }
}

fn runtime_error(task_id: &str, e: RuntimeError) -> ApiError {
    match e {
        RuntimeError::NotFound(m) => {
            ApiError::not_found(format!("the container of task {task_id} is gone: {m}"))
        }
        RuntimeError::Unavailable(m) => ApiError::server(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("container engine unavailable: {m}"),
        ),
        other => ApiError::server(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

pub(super) async fn task_logs(
    State(state): State<ApiState>,
    Path(task_id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    match logs_response(state, &task_id, query).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn logs_response(
    state: ApiState,
    task_id: &str,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let request = LogsRequest::parse(&pairs)?;
    check_task_id(task_id)?;
    let instance_id = register::read_instance_id(&state.data_dir)
        .map_err(|e| ApiError::server(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut containers =
        state.runtime.list(LABEL_TASK_ID, task_id).await.map_err(|e| runtime_error(task_id, e))?;
    containers
        .retain(|c| !instance_id.is_empty() && c.label(LABEL_INSTANCE_ID) == Some(&instance_id));
    let chosen = pick_container(task_id, &containers, request.container.as_deref())?;
    let name = chosen.label(LABEL_CONTAINER_NAME).unwrap_or_default().to_string();
    let logs = state
        .runtime
        .logs(&chosen.id, request.options())
        .await
        .map_err(|e| runtime_error(task_id, e))?;
    let body = cut_on_shutdown(logs, state.shutdown.clone());
    let mut response = (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(body),
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&name) {
        response.headers_mut().insert(CONTAINER_HEADER, v);
    }
    Ok(response)
}

/// The log stream as body chunks; an engine error or the agent's shutdown ends it with an
/// error (the transfer is cut, not completed).
fn cut_on_shutdown(
    logs: crate::runtime::LogStream,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(Some((logs, shutdown)), |state| async move {
        let (mut logs, mut shutdown) = state?;
        let item = tokio::select! {
            item = logs.next() => item,
            _ = async {
                // A dropped sender is no shutdown signal: only `true` ends the stream.
                if shutdown.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => {
                return Some((Err(std::io::Error::other("the agent is shutting down")), None));
            }
        };
        match item {
            Some(Ok(chunk)) => Some((Ok(chunk.data), Some((logs, shutdown)))),
            Some(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), None)),
            None => None,
        }
    })
}
