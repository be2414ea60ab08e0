//! # http — the controller's HTTP port, for tools that don't speak gRPC
//!
//! * `GET /v1/events?from_index=N&follow=true&pattern=<JSON>&type=TASK,SERVICE` — the cluster
//!   event stream (`crate::events::subscribe`, the same subscription `SubscribeEvents` serves):
//!   newline-delimited JSON (`application/x-ndjson`, one event per line) by default,
//!   Server-Sent Events when the request accepts `text/event-stream` (`id:` = the event's index,
//!   `event:` = its detail-type, `data:` = its JSON; `Last-Event-ID` resumes at the next index).
//!   With ACL on (`--acl`) it needs `Authorization: Bearer <secret>` of a token with at least
//!   `read-only` (401 `UnrecognizedClientException` without a valid one, 403
//!   `AccessDeniedException` for too low a role); a cluster-scoped token sees only its
//!   cluster's events. `/healthz`, `/readyz` and `/metrics` stay open: probes (kubelet, load
//!   balancers) and Prometheus scrapers carry no tokens, and they reveal no cluster objects
//!   (metrics are counts by method, code and status; put the port on a private network).
//! * `GET /healthz` — `ok` while the process serves.
//! * `GET /readyz` — 200 `ready` when this controller is a member of a group with a known leader
//!   and has applied up to the commit index it knows; else 503 with a JSON reason
//!   (`{"ready": false, "reason": …, "leader": …, "applied": …, "commit": …}`).
//! * `GET /metrics` — the Prometheus text exposition (`crate::metrics`, `charts/berth/METRICS.md`).
//!
//! Errors are JSON bodies in the ECS style (`{"__type": "InvalidParameterException", "message":
//! …}`): 400 for a bad parameter, pattern or type, 410 Gone (`OutOfRangeException`, with
//! `oldestIndex`) for an index retention no longer keeps, 503 (`ServerException`, with
//! `nextIndex`) while the controller stops. Such an error in the middle of a stream (it fell
//! behind retention, or the controller is stopping) ends it: SSE sends an `event: error` with that
//! body first; NDJSON is cut off without its final chunk, so a client sees an incomplete
//! transfer, never a clean end.
//!
//! Data flow: request → [`EventsRequest::parse`] → `subscribe` → a stream that also ends on
//! shutdown (so graceful shutdown never waits on a follower) → NDJSON or SSE framing.
//! Must not touch: the state or Raft (it only reads the [`EventLog`]).

use crate::error::{Error, Result};
use crate::events::EventLog;
use crate::events::subscribe::{self, Filter, SubscribeError};
use crate::metrics::Metrics;
use crate::raft::RaftHandle;
use crate::store::SharedState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use futures::StreamExt as _;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;

/// Interval of SSE keep-alive comments: well under the 30–60 s idle timeouts of common proxies
/// and load balancers, so an idle `follow` stream is not cut.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Media type of the newline-delimited JSON stream.
pub const NDJSON: &str = "application/x-ndjson";

#[derive(Clone)]
struct HttpState {
    events: Arc<EventLog>,
    shutdown: watch::Receiver<bool>,
    probes: Probes,
}

/// What `/readyz` and `/metrics` read.
#[derive(Clone)]
pub struct Probes {
    pub raft: RaftHandle,
    pub shared: SharedState,
    pub metrics: Metrics,
    /// API tokens: `/v1/events` needs a read-only token when ACL is on (`crate::auth`).
    pub auth: crate::auth::Auth,
}

/// The routes, on `events`; every stream ends once `shutdown` turns true.
pub fn router(events: Arc<EventLog>, shutdown: watch::Receiver<bool>, probes: Probes) -> Router {
    Router::new()
        .route("/v1/events", get(events_stream))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // Every route is a GET; a body, if sent, is bounded (`crate::limits`).
        .layer(axum::extract::DefaultBodyLimit::max(crate::limits::HTTP_MAX_BODY_BYTES))
        .with_state(HttpState { events, shutdown, probes })
}

/// Serves [`router`] on `listener` until `shutdown` turns true, then waits for open
/// connections to finish (streams end on the same signal).
pub async fn serve(
    listener: TcpListener,
    events: Arc<EventLog>,
    shutdown: watch::Receiver<bool>,
    probes: Probes,
) -> Result<()> {
    let app = router(events, shutdown.clone(), probes);
    let mut stop = shutdown;
    // TCP_NODELAY: each event is its own small write; Nagle would hold it for the client's ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .map_err(Error::from)
}

/// Why a controller is not ready, or `None` when it is: a member of the group, a leader known,
/// and everything it knows committed applied here.
pub fn not_ready_reason(
    member: bool,
    leader: Option<u64>,
    applied: u64,
    commit: u64,
) -> Option<String> {
    if !member {
        return Some("not a member of a Raft group (yet)".into());
    }
    if leader.is_none() {
        return Some("no Raft leader known (no quorum?)".into());
    }
    (applied < commit).then(|| format!("applied index {applied} is behind commit index {commit}"))
}

async fn ready(State(state): State<HttpState>) -> Response {
    let raft = &state.probes.raft;
    let (member, leader) = (raft.is_member(), raft.leader_id());
    let (applied, commit) = (raft.applied_index(), raft.commit_index());
    match not_ready_reason(member, leader, applied, commit) {
        None => (StatusCode::OK, "ready").into_response(),
        Some(reason) => {
            let body = json!({
                "ready": false, "reason": reason, "member": member, "leader": leader,
                "applied": applied, "commit": commit,
            });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let probes = &state.probes;
    let text = probes.metrics.render(&probes.shared, &state.events);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// The parameters of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventsRequest {
    pub from_index: Option<u64>,
    pub follow: bool,
    pub pattern: String,
    pub types: Vec<String>,
    pub sse: bool,
}

impl EventsRequest {
    /// From the decoded query pairs and the headers (`Accept`, `Last-Event-ID`). `type` may be
    /// repeated and comma separated; an unknown parameter is refused (a typo would otherwise
    /// silently widen the stream).
    pub fn parse(
        pairs: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<EventsRequest, SubscribeError> {
        let invalid = |m: String| SubscribeError::InvalidFilter(m);
        let mut r = EventsRequest::default();
        for (key, value) in pairs {
            match key.as_str() {
                "from_index" => {
                    let n = value.trim().parse::<u64>().map_err(|_| {
                        invalid(format!("from_index '{value}' is not an event index"))
                    })?;
                    r.from_index = Some(n);
                }
                "follow" => {
                    r.follow = match value.trim().to_ascii_lowercase().as_str() {
                        "" | "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(invalid(format!("follow '{value}' is not true or false"))),
                    }
                }
                "pattern" => r.pattern = value.clone(),
                "type" => r.types.extend(
                    value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from),
                ),
                other => {
                    return Err(invalid(format!(
                        "unknown query parameter '{other}' (expected from_index, follow, pattern, type)"
                    )));
                }
            }
        }
        if let Some(id) = headers.get("last-event-id") {
            let text = id.to_str().unwrap_or_default().trim();
            let last = text
                .parse::<u64>()
                .map_err(|_| invalid(format!("Last-Event-ID '{text}' is not an event index")))?;
            r.from_index = Some(last.saturating_add(1));
        }
        r.sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/event-stream"));
        Ok(r)
    }
}

async fn events_stream(
    State(state): State<HttpState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let pairs = match query {
        Ok(Query(pairs)) => pairs,
        Err(e) => return error_response(&SubscribeError::InvalidFilter(e.body_text())),
    };
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if state.probes.auth.may_be_stale(authorization) {
        state.probes.auth.catch_up().await;
    }
    let scope = match state.probes.auth.check(EVENTS_PERMISSION, authorization) {
        Ok(principal) => principal.and_then(|p| p.cluster),
        Err(denial) => return denial_response(&denial),
    };
    let request = match EventsRequest::parse(&pairs, &headers) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let started = Filter::new(&request.pattern, &request.types).and_then(|filter| {
        subscribe::subscribe(state.events.clone(), filter, request.from_index, request.follow)
    });
    let rx = match started {
        Ok(rx) => rx,
        Err(e) => return error_response(&e),
    };
    let mut stop = state.shutdown.clone();
    // The subscription itself ends with a `Closing` error when the controller stops; this only
    // cuts off a stream whose reader does not take that last message.
    let items = ReceiverStream::new(rx)
        .filter(move |item| {
            let keep = match (&scope, item) {
                (Some(own), Ok(e)) => {
                    crate::auth::scoped::event_cluster(&e.json).as_deref() == Some(own.as_str())
                }
                _ => true,
            };
            futures::future::ready(keep)
        })
        .take_until(Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(subscribe::CLOSING_GRACE * 2).await;
        }));
    if request.sse {
        let events = items.map(|item| {
            Ok::<_, Infallible>(match item {
                Ok(e) => Event::default()
                    .id(e.index.to_string())
                    .event(e.detail_type.as_str())
                    .data(e.json.as_str()),
                Err(e) => Event::default().event("error").data(error_json(&e).1.to_string()),
            })
        });
        Sse::new(events).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE)).into_response()
    } else {
        let lines = items.map(|item| match item {
            Ok(e) => {
                let mut line = String::with_capacity(e.json.len() + 1);
                line.push_str(&e.json);
                line.push('\n');
                Ok(Bytes::from(line))
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        });
        (
            [(header::CONTENT_TYPE, NDJSON), (header::CACHE_CONTROL, "no-cache")],
            Body::from_stream(lines),
        )
            .into_response()
    }
}

/// The HTTP status and ECS-style JSON body of a subscription error.
fn error_json(e: &SubscribeError) -> (StatusCode, serde_json::Value) {
    match e {
        SubscribeError::Trimmed { oldest, .. } => (
            StatusCode::GONE,
            json!({"__type": "OutOfRangeException", "message": e.to_string(), "oldestIndex": oldest}),
        ),
        SubscribeError::InvalidFilter(m) => {
            (StatusCode::BAD_REQUEST, json!({"__type": "InvalidParameterException", "message": m}))
        }
        SubscribeError::Closing { next } => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"__type": "ServerException", "message": e.to_string(), "nextIndex": next}),
        ),
    }
}

/// `/v1/events` is checked as the gRPC `SubscribeEvents` (read-only).
const EVENTS_PERMISSION: &str = "berth.v1.Berth/SubscribeEvents";

/// 401 (with `WWW-Authenticate: Bearer`) or 403, with an ECS-style JSON body.
fn denial_response(d: &crate::auth::Denial) -> Response {
    let (status, kind) = match d {
        crate::auth::Denial::Unauthenticated(_) => {
            (StatusCode::UNAUTHORIZED, "UnrecognizedClientException")
        }
        crate::auth::Denial::PermissionDenied(_) => {
            (StatusCode::FORBIDDEN, "AccessDeniedException")
        }
    };
    let message =
        d.message().strip_prefix(kind).map(|m| m.trim_start_matches(": ")).unwrap_or(d.message());
    let body = json!({"__type": kind, "message": message});
    (status, [(header::WWW_AUTHENTICATE, "Bearer")], axum::Json(body)).into_response()
}

fn error_response(e: &SubscribeError) -> Response {
    let (status, body) = error_json(e);
    (status, axum::Json(body)).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let body = json!({
        "__type": "UnknownOperationException",
        "message": format!("no such resource: {} (try /v1/events, /metrics, /healthz or /readyz)", uri.path()),
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn query_parameters_parse_and_types_split_on_commas() {
        let r = EventsRequest::parse(
            &pairs(&[
                ("from_index", "5"),
                ("follow", "true"),
                ("type", "TASK, SERVICE"),
                ("type", "INSTANCE"),
                ("pattern", r#"{"source":["aws.ecs"]}"#),
            ]),
            &HeaderMap::new(),
        )
        .expect("valid");
        assert_eq!(r.from_index, Some(5));
        assert!(r.follow && !r.sse);
        assert_eq!(r.types, ["TASK", "SERVICE", "INSTANCE"]);
        assert_eq!(r.pattern, r#"{"source":["aws.ecs"]}"#);
    }

    #[test]
    fn last_event_id_resumes_after_it_and_accept_selects_sse() {
        let mut h = HeaderMap::new();
        h.insert("last-event-id", "41".parse().unwrap());
        h.insert(header::ACCEPT, "text/event-stream".parse().unwrap());
        let r = EventsRequest::parse(&pairs(&[("from_index", "3")]), &h).expect("valid");
        assert_eq!(r.from_index, Some(42));
        assert!(r.sse);
    }

    #[test]
    fn bad_parameters_are_named() {
        let h = HeaderMap::new();
        for (q, needle) in [
            (("from_index", "x"), "from_index 'x'"),
            (("follow", "maybe"), "follow 'maybe'"),
            (("fromIndex", "1"), "unknown query parameter 'fromIndex'"),
        ] {
            let e = EventsRequest::parse(&pairs(&[q]), &h).expect_err("invalid");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn ready_needs_membership_a_leader_and_no_apply_backlog() {
        assert!(not_ready_reason(false, Some(1), 5, 5).is_some_and(|r| r.contains("member")));
        assert!(not_ready_reason(true, None, 5, 5).is_some_and(|r| r.contains("leader")));
        assert_eq!(
            not_ready_reason(true, Some(2), 4, 6).as_deref(),
            Some("applied index 4 is behind commit index 6")
        );
        assert_eq!(not_ready_reason(true, Some(2), 6, 6), None);
    }

    #[test]
    fn trimmed_is_gone_with_the_oldest_index() {
        let (status, body) = error_json(&SubscribeError::Trimmed { wanted: 1, oldest: 7 });
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(body["__type"], "OutOfRangeException");
        assert_eq!(body["oldestIndex"], 7);
        assert!(body["message"].as_str().unwrap_or_default().contains("7"));
    }
}
