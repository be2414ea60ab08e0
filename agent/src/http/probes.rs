//! `GET /readyz` and `GET /metrics` of the operator HTTP API.
//!
//! Ready means: a session with a controller is registered (`berth_agent_connected`) and the
//! container engine answers a version call within [`ENGINE_PROBE_TIMEOUT`].

use super::ApiState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// How long `/readyz` waits for the engine: under Kubernetes' default probe timeout (1 s), so a
/// hung engine gives a clear 503 rather than a probe timeout.
pub const ENGINE_PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// Why the agent is not ready, or `None` when it is.
pub fn not_ready_reason(connected: bool, engine: Result<(), String>) -> Option<String> {
    match (connected, engine) {
        (_, Err(e)) => Some(format!("container engine not reachable: {e}")),
        (false, Ok(())) => Some("not connected to a controller".into()),
        (true, Ok(())) => None,
    }
}

pub async fn ready(State(state): State<ApiState>) -> Response {
    let connected = state.metrics.is_connected();
    let engine = match tokio::time::timeout(ENGINE_PROBE_TIMEOUT, state.runtime.version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", ENGINE_PROBE_TIMEOUT.as_millis())),
    };
    match not_ready_reason(connected, engine) {
        None => (StatusCode::OK, "ready").into_response(),
        Some(reason) => {
            let body = json!({"ready": false, "reason": reason, "connected": connected});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

pub async fn metrics(State(state): State<ApiState>) -> Response {
    let instance_id =
        crate::session::register::read_instance_id(&state.data_dir).unwrap_or_default();
    crate::metrics::refresh_running_tasks(
        &state.metrics,
        state.runtime.as_ref(),
        &instance_id,
        crate::metrics::RUNNING_TASKS_TIMEOUT,
    )
    .await;
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.encode()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_a_session_and_the_engine() {
        assert_eq!(not_ready_reason(true, Ok(())), None);
        assert_eq!(
            not_ready_reason(false, Ok(())).as_deref(),
            Some("not connected to a controller")
        );
        let e = not_ready_reason(true, Err("socket missing".into())).expect("not ready");
        assert!(e.contains("socket missing"), "{e}");
    }
}
