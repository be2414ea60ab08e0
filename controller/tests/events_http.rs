//! `GET /v1/events` on the controller's HTTP port (`controller/src/http.rs`), against a real
//! one-node controller: NDJSON and SSE framing, resuming, live follow, and the ECS-style errors.
//! The client is a raw HTTP/1.0 request on a `TcpStream` (the response is then close-delimited:
//! no chunked decoding needed).

use berth_controller::propose::Proposer;
use berth_controller::store::Command;
use berth_controller::{Controller, ControllerConfig, RunningController};
use berth_proto::v1::{self, berth_client::BerthClient};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WEB: &str = r#"{"family": "web", "containerDefinitions": [
  {"name": "web", "image": "berth/httpd:1", "cpu": 128, "memory": 64}]}"#;

async fn start(dir: &std::path::Path) -> RunningController {
    let config = ControllerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let c = Controller::start(config).await.unwrap();
    c.wait_leader(Duration::from_secs(10)).await.unwrap();
    c
}

fn http_addr(c: &RunningController) -> SocketAddr {
    c.http_addr.expect("http_listen was set")
}

/// A service that cannot be placed (no instances): its deployment starts (`ECS Deployment State
/// Change`) and the reconciler reports the placement failure (`ECS Service Action`).
async fn make_events(c: &RunningController) {
    let mut api = BerthClient::connect(format!("http://{}", c.addr)).await.unwrap();
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: WEB.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    api.create_service(v1::CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web".into(),
        desired_count: 1,
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Sends a GET and returns the connection, positioned after the response headers, with the
/// status code and the headers (lower-cased names).
async fn request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, BufReader<TcpStream>) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut r = BufReader::new(tcp);
    let mut status_line = String::new();
    r.read_line(&mut status_line).await.unwrap();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            head.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (status, head, r)
}

/// A whole (finite) response: status, headers, body.
async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let (status, head, mut r) = request(addr, path, headers).await;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_string(&mut body))
        .await
        .expect("response ends")
        .unwrap();
    (status, head, body)
}

fn header<'a>(head: &'a [(String, String)], name: &str) -> &'a str {
    head.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

fn ndjson(body: &str) -> Vec<Value> {
    body.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

/// Waits until the log holds at least `n` events (read over HTTP).
async fn wait_events(addr: SocketAddr, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = get(addr, "/v1/events", &[]).await;
        assert_eq!(status, 200, "{body}");
        let events = ndjson(&body);
        if events.len() >= n {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} events: {body}", events.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ndjson_streams_envelopes_in_index_order_from_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let addr = http_addr(&c);
    let (status, _, body) = get(addr, "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    make_events(&c).await;

    let all = wait_events(addr, 2).await;
    let indexes: Vec<u64> = all.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    for e in &all {
        for field in ["version", "id", "detail-type", "source", "account", "time", "region"] {
            assert!(e.get(field).is_some(), "no {field} in {e}");
        }
        assert_eq!(e["source"], "aws.ecs");
        assert!(e["resources"].is_array() && e["detail"].is_object(), "{e}");
    }

    let from = indexes[1];
    let (status, head, body) = get(addr, &format!("/v1/events?from_index={from}"), &[]).await;
    assert_eq!(status, 200);
    assert!(header(&head, "content-type").starts_with("application/x-ndjson"), "{head:?}");
    let tail = ndjson(&body);
    assert_eq!(tail.first().and_then(|e| e["index"].as_u64()), Some(from), "{body}");

    let (status, _, body) = get(
        addr,
        "/v1/events?type=DEPLOYMENT&pattern=%7B%22source%22%3A%5B%22aws.ecs%22%5D%7D",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let deployments = ndjson(&body);
    assert!(!deployments.is_empty(), "a created service starts a deployment");
    assert!(deployments.iter().all(|e| e["detail-type"] == "ECS Deployment State Change"));
    c.stop().await.unwrap();
}

#[tokio::test]
async fn sse_carries_ids_and_last_event_id_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let addr = http_addr(&c);
    make_events(&c).await;
    let all = wait_events(addr, 2).await;
    let first = all[0]["index"].as_u64().unwrap();

    let sse = [("Accept", "text/event-stream")];
    let (status, head, body) = get(addr, "/v1/events", &sse).await;
    assert_eq!(status, 200);
    assert!(header(&head, "content-type").starts_with("text/event-stream"), "{head:?}");
    let ids: Vec<u64> =
        body.lines().filter_map(|l| l.strip_prefix("id: ")).map(|i| i.parse().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "{body}");
    assert_eq!(ids[0], first);
    assert!(body.lines().any(|l| l.starts_with("event: ECS ")), "{body}");
    assert!(body.lines().any(|l| l.starts_with("data: {")), "{body}");

    let resume = [("Accept", "text/event-stream"), ("Last-Event-ID", &first.to_string())];
    let (_, _, body) = get(addr, "/v1/events", &resume).await;
    let first_id = body.lines().find_map(|l| l.strip_prefix("id: ")).map(|i| i.parse::<u64>());
    assert_eq!(first_id.map(Result::unwrap), Some(ids[1]), "{body}");
    c.stop().await.unwrap();
}

#[tokio::test]
async fn follow_delivers_live_events_and_stop_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let addr = http_addr(&c);
    let (status, _, mut stream) = request(addr, "/v1/events?follow=true&from_index=1", &[]).await;
    assert_eq!(status, 200);
    make_events(&c).await;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_line(&mut line))
        .await
        .expect("a live event arrives")
        .unwrap();
    let e: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["index"], 1, "{line}");
    // The stream is still open; stopping the controller must not wait on it.
    tokio::time::timeout(Duration::from_secs(20), c.stop())
        .await
        .expect("stop returns with a follower connected")
        .unwrap();
}

#[tokio::test]
async fn a_stopping_controller_tells_an_sse_follower_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let addr = http_addr(&c);
    make_events(&c).await;
    let _ = wait_events(addr, 2).await;
    let accept = [("Accept", "text/event-stream")];
    let (status, _, mut stream) = request(addr, "/v1/events?follow=true", &accept).await;
    assert_eq!(status, 200);
    let reader = tokio::spawn(async move {
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body).await;
        body
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(20), c.stop()).await.expect("stop").unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("ends").unwrap();
    assert!(body.contains("id: 1\n"), "{body}");
    let error = body.split("event: error\ndata: ").nth(1).expect("an error event last");
    let error: Value = serde_json::from_str(error.lines().next().unwrap()).unwrap();
    assert_eq!(error["__type"], "ServerException", "{error}");
    assert!(error["nextIndex"].as_u64().unwrap() >= 3, "{error}");
}

#[tokio::test]
async fn bad_filters_are_400_and_trimmed_indexes_410() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let addr = http_addr(&c);

    // `{"detail": {"lastStatus": "RUNNING"}}`: a value must be in an array.
    let bad = "%7B%22detail%22%3A%7B%22lastStatus%22%3A%22RUNNING%22%7D%7D";
    let (status, head, body) = get(addr, &format!("/v1/events?pattern={bad}"), &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(header(&head, "content-type").starts_with("application/json"), "{head:?}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["__type"], "InvalidParameterException");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("$.detail.lastStatus"), "the path of the bad element: {message}");

    let (status, _, body) = get(addr, "/v1/events?type=TASK,NODE", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("'NODE'"), "{body}");
    let (status, _, body) = get(addr, "/v1/events?from_index=-1", &[]).await;
    assert_eq!(status, 400, "{body}");

    make_events(&c).await;
    let all = wait_events(addr, 2).await;
    let keep = all[1]["index"].as_u64().unwrap();
    Proposer::new(c.raft.clone())
        .propose(&Command::TrimEvents { first_index: keep })
        .await
        .unwrap();
    let (status, _, body) = get(addr, "/v1/events?from_index=1", &[]).await;
    assert_eq!(status, 410, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["__type"], "OutOfRangeException");
    assert_eq!(err["oldestIndex"], keep);
    assert!(
        err["message"].as_str().unwrap().contains(&format!("oldest available index is {keep}"))
    );
    // From the oldest on, it streams.
    let (status, _, body) = get(addr, &format!("/v1/events?from_index={keep}"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ndjson(&body)[0]["index"], keep);
    c.stop().await.unwrap();
}
