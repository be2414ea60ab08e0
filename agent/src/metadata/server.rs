//! The endpoint's HTTP routes (axum), over the [`ViewSlot`]:
//!
//! | path | answer |
//! |---|---|
//! | `/v4/{token}` (or `/v4/{token}/`) | this container (`shapes::container_metadata`) |
//! | `/v4/{token}/task` | the task and all its containers |
//! | `/v4/{token}/taskWithTags` | `/task` plus `TaskTags`, `ContainerInstanceTags` |
//! | `/v4/{token}/stats` | this container's Docker stats |
//! | `/v4/{token}/task/stats` | `{DockerId: stats}` for the task's containers |
//!
//! Every request first resolves the token and checks the caller (`auth.rs`): 404 for an
//! unknown token, 403 for a valid token from an address that is not the task's. Errors are a
//! bare JSON string (e.g. `"task metadata v4: unknown token"`), as the ECS agent answers
//! (its handlers write `"V4 container metadata handler: <reason>"`).

use super::{Access, MetadataSource, TaskView, ViewSlot, decide, plausible_token, shapes};
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub fn router(slot: ViewSlot) -> Router {
    Router::new()
        .route("/v4/{token}", get(container))
        .route("/v4/{token}/", get(container))
        .route("/v4/{token}/task", get(task))
        .route("/v4/{token}/taskWithTags", get(task_with_tags))
        .route("/v4/{token}/stats", get(container_stats))
        .route("/v4/{token}/task/stats", get(task_stats))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such metadata path") })
        .with_state(slot)
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(Value::String(format!("task metadata v4: {message}")))).into_response()
}

/// The caller's task, with every container's networks filled in, and the caller's index.
async fn resolve(
    slot: &ViewSlot,
    token: &str,
    caller: IpAddr,
) -> Result<(Arc<dyn MetadataSource>, TaskView, usize), Response> {
    let found = slot.get().filter(|_| plausible_token(token)).and_then(|s| {
        let (view, idx) = s.find(token)?;
        Some((s.clone(), view, idx))
    });
    let Some((source, mut view, idx)) = found else {
        return Err(error(StatusCode::NOT_FOUND, "unknown token"));
    };
    for c in &mut view.containers {
        if let Some(id) = &c.docker_id {
            c.networks = source.networks(id).await;
        }
    }
    let mut addrs: Vec<IpAddr> = view
        .containers
        .iter()
        .flat_map(|c| c.networks.iter().filter_map(|n| n.ipv4.map(IpAddr::V4)))
        .collect();
    addrs.extend(view.task_addrs.iter().copied());
    match decide(true, caller, &addrs) {
        Access::Allowed => Ok((source, view, idx)),
        Access::WrongCaller => {
            tracing::warn!(%caller, task_arn = %view.task_arn, "task metadata request from another address refused");
            Err(error(StatusCode::FORBIDDEN, "the caller's address does not belong to this task"))
        }
        Access::UnknownToken => Err(error(StatusCode::NOT_FOUND, "unknown token")),
    }
}

type Caller = ConnectInfo<SocketAddr>;

async fn container(
    State(slot): State<ViewSlot>,
    Path(token): Path<String>,
    ConnectInfo(caller): Caller,
) -> Response {
    match resolve(&slot, &token, caller.ip()).await {
        Ok((_, view, idx)) => match view.containers.get(idx) {
            Some(c) => Json(shapes::container_metadata(&view, c)).into_response(),
            None => error(StatusCode::NOT_FOUND, "unknown token"),
        },
        Err(r) => r,
    }
}

async fn task(
    State(slot): State<ViewSlot>,
    Path(token): Path<String>,
    ConnectInfo(caller): Caller,
) -> Response {
    match resolve(&slot, &token, caller.ip()).await {
        Ok((_, view, _)) => Json(shapes::task_metadata(&view, false)).into_response(),
        Err(r) => r,
    }
}

async fn task_with_tags(
    State(slot): State<ViewSlot>,
    Path(token): Path<String>,
    ConnectInfo(caller): Caller,
) -> Response {
    match resolve(&slot, &token, caller.ip()).await {
        Ok((_, view, _)) => Json(shapes::task_metadata(&view, true)).into_response(),
        Err(r) => r,
    }
}

async fn container_stats(
    State(slot): State<ViewSlot>,
    Path(token): Path<String>,
    ConnectInfo(caller): Caller,
) -> Response {
    let (source, view, idx) = match resolve(&slot, &token, caller.ip()).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(id) = view.containers.get(idx).and_then(|c| c.docker_id.clone()) else {
        return error(StatusCode::NOT_FOUND, "the container has not been created yet");
    };
    match source.stats(&id).await {
        Some(s) => Json(s).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no stats for this container right now"),
    }
}

async fn task_stats(
    State(slot): State<ViewSlot>,
    Path(token): Path<String>,
    ConnectInfo(caller): Caller,
) -> Response {
    let (source, view, _) = match resolve(&slot, &token, caller.ip()).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut out = serde_json::Map::new();
    for id in view.containers.iter().filter_map(|c| c.docker_id.clone()) {
        if let Some(s) = source.stats(&id).await {
            out.insert(id, s);
        }
    }
    Json(Value::Object(out)).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::{ContainerView, TaskView};
    use super::*;
    use crate::runtime::ContainerNetwork;
    use async_trait::async_trait;
    use axum::body::Body;
    use axum::http::Request;
    use std::net::Ipv4Addr;
    use tower::ServiceExt;

    /// Two tasks: "tok-a" in task A (bridge, 172.17.0.2), "tok-b" in task B (172.17.0.3).
    struct Fake;

    fn task(name: &str) -> TaskView {
        TaskView {
            cluster: "default".into(),
            task_arn: format!("arn:aws:ecs:local:000000000000:task/default/{name}"),
            family: "f".into(),
            revision: 1,
            desired_status: "RUNNING".into(),
            known_status: "RUNNING".into(),
            network_mode: "bridge".into(),
            containers: vec![ContainerView {
                name: "app".into(),
                docker_id: Some(format!("id-{name}")),
                known_status: "RUNNING".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[async_trait]
    impl MetadataSource for Fake {
        fn find(&self, token: &str) -> Option<(TaskView, usize)> {
            match token {
                "tok-a" => Some((task("a"), 0)),
                "tok-b" => Some((task("b"), 0)),
                _ => None,
            }
        }
        async fn networks(&self, docker_id: &str) -> Vec<ContainerNetwork> {
            let last = if docker_id == "id-a" { 2 } else { 3 };
            vec![ContainerNetwork {
                name: "bridge".into(),
                ipv4: Some(Ipv4Addr::new(172, 17, 0, last)),
                prefix_len: Some(16),
                gateway: None,
                mac: None,
            }]
        }
        async fn stats(&self, docker_id: &str) -> Option<Value> {
            Some(serde_json::json!({"id": docker_id, "memory_stats": {"usage": 1}}))
        }
    }

    async fn get(path: &str, from: [u8; 4]) -> (StatusCode, Value) {
        let slot = ViewSlot::default();
        slot.set(Arc::new(Fake));
        let mut req = Request::get(path).body(Body::empty()).expect("request");
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from((from, 40000))));
        let resp = router(slot).oneshot(req).await.expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn a_container_reads_its_own_task_and_stats() {
        let (s, v) = get("/v4/tok-a/task", [172, 17, 0, 2]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["TaskARN"], "arn:aws:ecs:local:000000000000:task/default/a");
        assert_eq!(v["Containers"][0]["Networks"][0]["IPv4Addresses"][0], "172.17.0.2");
        let (s, v) = get("/v4/tok-a", [172, 17, 0, 2]).await;
        assert_eq!((s, v["DockerId"].clone()), (StatusCode::OK, Value::from("id-a")));
        let (s, v) = get("/v4/tok-a/", [172, 17, 0, 2]).await;
        assert_eq!((s, v["DockerId"].clone()), (StatusCode::OK, Value::from("id-a")));
        let (s, v) = get("/v4/tok-a/stats", [172, 17, 0, 2]).await;
        assert_eq!((s, v["memory_stats"]["usage"].clone()), (StatusCode::OK, Value::from(1)));
        let (s, v) = get("/v4/tok-a/task/stats", [172, 17, 0, 2]).await;
        assert_eq!((s, v["id-a"]["id"].clone()), (StatusCode::OK, Value::from("id-a")));
        let (s, v) = get("/v4/tok-a/taskWithTags", [172, 17, 0, 2]).await;
        assert_eq!((s, v["TaskTags"].clone()), (StatusCode::OK, serde_json::json!({})));
    }

    #[tokio::test]
    async fn another_tasks_token_is_forbidden_and_unknown_tokens_are_not_found() {
        let (s, v) = get("/v4/tok-b/task", [172, 17, 0, 2]).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(
            v,
            Value::from("task metadata v4: the caller's address does not belong to this task")
        );
        let (s, v) = get("/v4/nope", [172, 17, 0, 2]).await;
        assert_eq!((s, v), (StatusCode::NOT_FOUND, Value::from("task metadata v4: unknown token")));
        assert_eq!(get("/v4/tok-b/stats", [172, 17, 0, 2]).await.0, StatusCode::FORBIDDEN);
        assert_eq!(get("/v4/nope/task", [172, 17, 0, 2]).await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/v4/tok-a/other", [172, 17, 0, 2]).await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/v3/tok-a", [172, 17, 0, 2]).await.0, StatusCode::NOT_FOUND);
    }

    /// Status code of a raw `GET path` to 127.0.0.1:port.
    async fn tcp_status(port: u16, path: &str) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        String::from_utf8_lossy(&buf).split_whitespace().nth(1)?.parse().ok()
    }

    #[tokio::test]
    async fn the_bound_endpoint_sees_the_callers_address() {
        let ep = super::super::MetadataEndpoint::bind(0, super::super::HostAddrs::default())
            .await
            .expect("binds loopback");
        let port = ep.port;
        assert_ne!(port, 0);
        let slot = ViewSlot::default();
        slot.set(Arc::new(Fake));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(ep.serve(slot, stop_rx));
        // Task A's containers are at 172.17.0.2: from loopback its valid token is refused.
        assert_eq!(tcp_status(port, "/v4/tok-a/task").await, Some(403));
        assert_eq!(tcp_status(port, "/v4/unknown/task").await, Some(404));
        let _ = stop.send(true);
        assert!(server.await.is_ok());
    }

    #[tokio::test]
    async fn before_the_supervisor_exists_every_token_is_unknown() {
        let mut req = Request::get("/v4/tok-a").body(Body::empty()).expect("request");
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
        let resp = router(ViewSlot::default()).oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
}
