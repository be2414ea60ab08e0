//! The operator API over the [`SimulatedRuntime`]: routes, parameters, errors, follow and
//! shutdown, through the router as a tower service (no sockets).

use super::logs::{CONTAINER_HEADER, LogsRequest};
use super::*;
use crate::runtime::simulated::SIMULATED_NO_LOGS;
use crate::runtime::{
    ContainerSpec, LABEL_CONTAINER_NAME, LABEL_INSTANCE_ID, LABEL_TASK_ID, LogSource,
    SimulatedRuntime,
};
use axum::body::Body;
use axum::http::Request;
use futures::StreamExt as _;
use std::time::Duration;
use tower::ServiceExt as _;

const INSTANCE: &str = "inst-1";
const IMAGE: &str = "busybox:latest";

struct Fixture {
    rt: SimulatedRuntime,
    state: ApiState,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::session::register::write_instance_id(dir.path(), INSTANCE).expect("instance id");
    let rt = SimulatedRuntime::new();
    rt.add_cached_image(IMAGE);
    let (stop, shutdown) = watch::channel(false);
    let state = ApiState {
        runtime: Arc::new(rt.clone()),
        data_dir: dir.path().to_path_buf(),
        shutdown,
        metrics: Default::default(),
    };
    Fixture { rt, state, stop, _dir: dir }
}

impl Fixture {
    /// Creates and starts container `name` of `task` on `instance`; returns its engine id.
    async fn container(&self, instance: &str, task: &str, name: &str) -> String {
        let labels =
            [(LABEL_TASK_ID, task), (LABEL_CONTAINER_NAME, name), (LABEL_INSTANCE_ID, instance)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let spec = ContainerSpec {
            name: format!("{instance}-{task}-{name}"),
            image: IMAGE.into(),
            labels,
            ..Default::default()
        };
        let id = self.rt.create(&spec).await.expect("create");
        self.rt.start(&id).await.expect("start");
        id
    }

    async fn get(&self, uri: &str) -> axum::response::Response {
        let req = Request::get(uri).body(Body::empty()).expect("request");
        router(self.state.clone()).oneshot(req).await.expect("infallible")
    }
}

async fn text(r: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body");
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn error_of(r: axum::response::Response) -> (StatusCode, serde_json::Value) {
    let status = r.status();
    let body = text(r).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

#[tokio::test]
async fn healthz_answers_ok_and_unknown_paths_are_404_json() {
    let f = fixture();
    let r = f.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(text(r).await, "ok");
    let (status, body) = error_of(f.get("/v1/nothing").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["__type"], "UnknownOperationException");
    let message = body["message"].as_str().unwrap_or_default();
    for route in ["/healthz", "/readyz", "/metrics", "/v1/tasks/TASK_ID/logs"] {
        assert!(message.contains(route), "{route} missing from {message}");
    }
}

#[tokio::test]
async fn logs_of_a_single_container_task_stream_stdout_and_stderr_in_order() {
    let f = fixture();
    let id = f.container(INSTANCE, "t1", "app").await;
    f.rt.append_log(&id, LogSource::Stdout, "one\n");
    f.rt.append_log(&id, LogSource::Stderr, "two\nthree\n");
    let r = f.get("/v1/tasks/t1/logs").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get(CONTAINER_HEADER).and_then(|v| v.to_str().ok()), Some("app"));
    assert_eq!(text(r).await, "one\ntwo\nthree\n");

    let r = f.get("/v1/tasks/t1/logs?tail=1").await;
    assert_eq!(text(r).await, "three\n");
    let r = f.get("/v1/tasks/t1/logs?tail=0").await;
    assert_eq!(text(r).await, "");
    let r = f.get("/v1/tasks/t1/logs?tail=all&follow=false").await;
    assert_eq!(text(r).await, "one\ntwo\nthree\n");
}

#[tokio::test]
async fn a_container_nobody_wrote_to_says_it_is_simulated() {
    let f = fixture();
    f.container(INSTANCE, "quiet", "app").await;
    assert_eq!(text(f.get("/v1/tasks/quiet/logs").await).await, SIMULATED_NO_LOGS);
}

#[tokio::test]
async fn unknown_task_is_a_404_client_exception() {
    let f = fixture();
    let (status, body) = error_of(f.get("/v1/tasks/nope/logs").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["__type"], "ClientException");
    assert_eq!(body["message"], "task nope has no containers on this container instance");
}

#[tokio::test]
async fn another_instances_containers_are_not_served() {
    let f = fixture();
    f.container("inst-2", "t2", "app").await;
    let (status, _) = error_of(f.get("/v1/tasks/t2/logs").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn several_containers_need_a_name_and_the_name_selects() {
    let f = fixture();
    let web = f.container(INSTANCE, "t3", "web").await;
    let side = f.container(INSTANCE, "t3", "side").await;
    f.rt.append_log(&web, LogSource::Stdout, "from web\n");
    f.rt.append_log(&side, LogSource::Stdout, "from side\n");

    let (status, body) = error_of(f.get("/v1/tasks/t3/logs").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["__type"], "InvalidParameterException");
    assert_eq!(
        body["message"],
        "task t3 has 2 containers (side, web): name one with container=NAME"
    );
    assert_eq!(body["containers"], serde_json::json!(["side", "web"]));

    let r = f.get("/v1/tasks/t3/logs?container=side").await;
    assert_eq!(r.headers().get(CONTAINER_HEADER).and_then(|v| v.to_str().ok()), Some("side"));
    assert_eq!(text(r).await, "from side\n");

    let (status, body) = error_of(f.get("/v1/tasks/t3/logs?container=db").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "task t3 has no container named 'db' (its containers: side, web)");
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let f = fixture();
    f.container(INSTANCE, "t4", "app").await;
    for (query, needle) in [
        ("tail=-1", "tail '-1' is not a line count"),
        ("tail=ten", "tail 'ten' is not a line count"),
        ("follow=maybe", "follow 'maybe' is not true or false"),
        ("timestamps=2", "timestamps '2' is not true or false"),
        ("container=", "container must not be empty"),
        ("lines=3", "unknown query parameter 'lines'"),
    ] {
        let (status, body) = error_of(f.get(&format!("/v1/tasks/t4/logs?{query}")).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{query}: {message}");
    }
    let (status, body) = error_of(f.get("/v1/tasks/a.b/logs").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap_or_default().starts_with("task id 'a.b' is invalid"));
}

#[test]
fn parse_reads_every_parameter() {
    let pairs: Vec<(String, String)> =
        [("container", "web"), ("follow", "true"), ("tail", "25"), ("timestamps", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let r = LogsRequest::parse(&pairs).expect("valid");
    assert_eq!(
        r,
        LogsRequest {
            container: Some("web".into()),
            follow: true,
            tail: Some(25),
            timestamps: true
        }
    );
    assert_eq!(LogsRequest::parse(&[]).expect("empty is valid"), LogsRequest::default());
}

/// The next body chunk, within a deadline.
async fn next_chunk(
    body: &mut (impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin),
) -> Option<Result<bytes::Bytes, axum::Error>> {
    tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("a chunk within 5 s")
}

#[tokio::test]
async fn follow_delivers_later_output_and_ends_when_the_container_exits() {
    let f = fixture();
    let id = f.container(INSTANCE, "t5", "app").await;
    f.rt.append_log(&id, LogSource::Stdout, "early\n");
    let r = f.get("/v1/tasks/t5/logs?follow=true").await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.into_body().into_data_stream();
    assert_eq!(next_chunk(&mut body).await.expect("early").expect("ok"), "early\n");
    f.rt.append_log(&id, LogSource::Stderr, "late\n");
    assert_eq!(next_chunk(&mut body).await.expect("late").expect("ok"), "late\n");
    assert!(f.rt.exit_container(&id, 0));
    assert!(next_chunk(&mut body).await.is_none(), "the stream ends with the container");
}

#[tokio::test]
async fn agent_shutdown_cuts_a_follow_stream_with_an_error() {
    let f = fixture();
    let id = f.container(INSTANCE, "t6", "app").await;
    f.rt.append_log(&id, LogSource::Stdout, "hello\n");
    let mut body = f.get("/v1/tasks/t6/logs?follow=1").await.into_body().into_data_stream();
    assert_eq!(next_chunk(&mut body).await.expect("hello").expect("ok"), "hello\n");
    f.stop.send(true).expect("receivers alive");
    assert!(matches!(next_chunk(&mut body).await, Some(Err(_))), "cut, not completed");
}

#[test]
fn advertised_url_is_the_bound_address_or_the_hostname_for_a_wildcard() {
    let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
    assert_eq!(advertise_url(a("127.0.0.1:51678"), "h"), "http://127.0.0.1:51678");
    assert_eq!(advertise_url(a("10.1.2.3:80"), "h"), "http://10.1.2.3:80");
    assert_eq!(advertise_url(a("0.0.0.0:51678"), "node-7"), "http://node-7:51678");
    assert_eq!(advertise_url(a("0.0.0.0:51678"), ""), "http://127.0.0.1:51678");
    assert_eq!(advertise_url(a("[::1]:9"), "h"), "http://[::1]:9");
}

#[tokio::test]
async fn serve_answers_on_a_real_socket_and_stops_on_shutdown() {
    let f = fixture();
    let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(serve(listener, f.state.clone()));
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.expect("read");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");
    f.stop.send(true).expect("receivers alive");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops within 5 s")
        .expect("joined")
        .expect("served");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let first = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let taken = first.local_addr().expect("addr");
    let e = bind(taken).expect_err("port in use").to_string();
    assert!(e.contains(&taken.to_string()) && e.contains("--http-listen"), "{e}");
}
