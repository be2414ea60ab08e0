//! Hardened input end to end (issue 9), against real `berth-controller` processes over gRPC:
//! * pagination: 250 task definitions and 250 tasks (on simulated instances) walked in pages of
//!   100 — each exactly once, three pages; `maxResults` 0 / 101 and a garbage or foreign
//!   `nextToken` rejected naming the field; the CLI's `taskdef list` and `task list` still show
//!   everything (they follow `nextToken`);
//! * rate limiting: a burst over `--api-rate-limit` gets `ResourceExhausted` /
//!   `ThrottlingException: Rate exceeded` while another token is unaffected, then recovers;
//! * request size: a RegisterTaskDefinition over `--max-request-bytes` is refused with a clear
//!   error;
//! * timeouts: a `SubscribeEvents --follow` stream outlives `--rpc-timeout-secs`.

use berth_proto::v1;
use berth_tests::cluster::{ControllerCluster, client_for};
use berth_tests::paging::list_all;
use berth_tests::*;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const PHASE: Duration = Duration::from_secs(60);
const TASKDEF: &str = r#"{"family": "page", "containerDefinitions": [
  {"name": "app", "image": "simulated/app:1", "cpu": 8, "memory": 16, "essential": true}]}"#;

/// A `berth-agent --simulate N` process; killed on drop.
struct SimAgents(Child);

impl SimAgents {
    fn start(endpoint: &str, nodes: usize, dir: &std::path::Path) -> SimAgents {
        let log = std::fs::File::create(dir.join("agents.log")).expect("agents.log");
        let child = Command::new(berth_tests::agent::agent_bin())
            .args(["--simulate", &nodes.to_string(), "--endpoint", endpoint, "--data-dir"])
            .arg(dir.join("agents"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawning berth-agent --simulate");
        SimAgents(child)
    }
}

impl Drop for SimAgents {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` (every 50 ms) until it is true; panics with `what` after `timeout`.
async fn wait_for(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn one_controller(args: &[&str]) -> (ControllerCluster, String) {
    let cluster = ControllerCluster::start_with_args(1, args);
    let endpoint = cluster.member(1).endpoint.clone();
    (cluster, endpoint)
}

/// Every page of ListTaskDefinitions at `max` per page: (pages, items).
async fn taskdef_pages(
    api: &v1::berth_client::BerthClient<tonic::transport::Channel>,
    max: i32,
) -> (usize, Vec<String>) {
    let mut req = v1::ListTaskDefinitionsRequest { max_results: Some(max), ..Default::default() };
    let (mut pages, mut items) = (0, Vec::new());
    loop {
        let page = api.clone().list_task_definitions(req.clone()).await.expect("page").into_inner();
        pages += 1;
        assert!(page.items.len() <= max as usize, "a page holds at most maxResults");
        items.extend(page.items);
        if page.next_token.is_empty() {
            return (pages, items);
        }
        req.next_token = page.next_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_item_once_and_rejects_bad_parameters() {
    let (cluster, endpoint) = one_controller(&[]);
    cluster.wait_leader(PHASE).await;
    let api = client_for(&endpoint, CALL_TIMEOUT);

    // 250 revisions of one family.
    for _ in 0..250 {
        let req =
            v1::RegisterTaskDefinitionRequest { document: TASKDEF.into(), ..Default::default() };
        api.clone().register_task_definition(req).await.expect("register");
    }
    let (pages, items) = taskdef_pages(&api, 100).await;
    assert_eq!(pages, 3);
    let revisions: Vec<u64> = items
        .iter()
        .map(|i| {
            serde_json::from_str::<serde_json::Value>(i).expect("json")["revision"]
                .as_u64()
                .expect("revision")
        })
        .collect();
    assert_eq!(revisions, (1..=250).collect::<Vec<_>>(), "each revision once, in order");
    // No maxResults: ECS's default page of 100.
    let first = api
        .clone()
        .list_task_definitions(v1::ListTaskDefinitionsRequest::default())
        .await
        .expect("default page")
        .into_inner();
    assert_eq!(first.items.len(), 100);
    assert!(!first.next_token.is_empty());

    // Bad parameters, named.
    for bad in [0, 101, -5] {
        let req = v1::ListTaskDefinitionsRequest { max_results: Some(bad), ..Default::default() };
        let e = api.clone().list_task_definitions(req).await.expect_err("out of range");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().contains("maxResults") && e.message().contains("between 1 and 100"),
            "{}",
            e.message()
        );
    }
    let garbage = v1::ListTasksRequest { next_token: "not-a-token".into(), ..Default::default() };
    let e = api.clone().list_tasks(garbage).await.expect_err("garbage token");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("nextToken is invalid"), "{}", e.message());
    // A task definition token is no ListServices token.
    let foreign =
        v1::ListServicesRequest { next_token: first.next_token.clone(), ..Default::default() };
    let e = api.clone().list_services(foreign).await.expect_err("foreign token");
    assert!(e.message().contains("nextToken is invalid"), "{}", e.message());

    // 250 tasks on simulated instances.
    let dir = tempfile::tempdir().expect("tmp");
    let _agents = SimAgents::start(&endpoint, 3, dir.path());
    wait_for("3 simulated instances to connect", PHASE, async || {
        let all = list_all(v1::ListInstancesRequest::default(), |r| {
            let mut c = api.clone();
            async move { c.list_container_instances(r).await }
        })
        .await
        .unwrap_or_default();
        all.iter().filter(|i| i.contains("\"agentConnected\":true")).count() == 3
    })
    .await;
    for _ in 0..25 {
        let req =
            v1::RunTaskRequest { task_definition: "page".into(), count: 10, ..Default::default() };
        let reply = api.clone().run_task(req).await.expect("run task").into_inner();
        let v: serde_json::Value = serde_json::from_str(&reply.json).expect("json");
        assert_eq!(v["tasks"].as_array().map(Vec::len), Some(10), "{}", reply.json);
    }
    let mut req = v1::ListTasksRequest { max_results: Some(100), ..Default::default() };
    let (mut pages, mut arns) = (0, Vec::new());
    loop {
        let page = api.clone().list_tasks(req.clone()).await.expect("page").into_inner();
        pages += 1;
        for item in &page.items {
            let t: serde_json::Value = serde_json::from_str(item).expect("json");
            arns.push(t["taskArn"].as_str().expect("arn").to_string());
        }
        if page.next_token.is_empty() {
            break;
        }
        req.next_token = page.next_token;
    }
    assert_eq!(pages, 3);
    let unique: BTreeSet<_> = arns.iter().collect();
    assert_eq!((arns.len(), unique.len()), (250, 250), "every task exactly once");

    // The CLI lists everything, as before pagination.
    let listed = berth_json(&endpoint, &["taskdef", "list"]).expect("berth taskdef list");
    assert_eq!(listed.as_array().map(Vec::len), Some(250));
    let listed = berth_json(&endpoint, &["task", "list"]).expect("berth task list");
    assert_eq!(listed.as_array().map(Vec::len), Some(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_is_throttled_per_token_then_recovers() {
    let (cluster, endpoint) = one_controller(&["--api-rate-limit", "5", "--api-rate-burst", "10"]);
    cluster.wait_leader(PHASE).await;
    let api = client_for(&endpoint, CALL_TIMEOUT);
    let call = |token: &'static str| {
        let mut c = api.clone();
        async move {
            let mut req = tonic::Request::new(v1::ListClustersRequest::default());
            let value = format!("Bearer {token}").parse().expect("metadata");
            req.metadata_mut().insert("authorization", value);
            c.list_clusters(req).await
        }
    };
    let mut throttled = None;
    for _ in 0..40 {
        if let Err(e) = call("alpha").await {
            throttled = Some(e);
            break;
        }
    }
    let e = throttled.expect("40 calls at once exceed a burst of 10");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(e.message(), "ThrottlingException: Rate exceeded");
    assert_eq!(
        e.metadata().get("x-berth-error-type").and_then(|v| v.to_str().ok()),
        Some("ThrottlingException")
    );
    // Another token has its own allowance.
    call("beta").await.expect("another token is not throttled");
    // The throttled one recovers at the steady rate.
    wait_for("the throttled token to be served again", Duration::from_secs(10), async || {
        call("alpha").await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_and_a_stream_outlives_the_unary_timeout() {
    let (cluster, endpoint) =
        one_controller(&["--rpc-timeout-secs", "1", "--max-request-bytes", "1048576"]);
    cluster.wait_leader(PHASE).await;
    let api = client_for(&endpoint, CALL_TIMEOUT);

    // 2 MiB document against a 1 MiB limit.
    let big = format!(
        r#"{{"family": "big", "containerDefinitions": [{{"name": "a", "image": "x", "memory": 16, "command": ["{}"]}}]}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let req = v1::RegisterTaskDefinitionRequest { document: big, ..Default::default() };
    let e = api.clone().register_task_definition(req).await.expect_err("too large");
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(
        e.message().contains("too large") && e.message().contains("1048576"),
        "{}",
        e.message()
    );
    // A normal request still goes through.
    let req = v1::RegisterTaskDefinitionRequest { document: TASKDEF.into(), ..Default::default() };
    api.clone().register_task_definition(req).await.expect("a small request");

    // A followed event stream, opened now, still delivers after 2 × the unary deadline.
    let dir = tempfile::tempdir().expect("tmp");
    let _agents = SimAgents::start(&endpoint, 1, dir.path());
    wait_for("the simulated instance to connect", PHASE, async || {
        let listed =
            api.clone().list_container_instances(v1::ListInstancesRequest::default()).await;
        listed.is_ok_and(|r| {
            r.into_inner().items.iter().any(|i| i.contains("\"agentConnected\":true"))
        })
    })
    .await;
    let opened = Instant::now();
    let sub = v1::SubscribeEventsRequest { follow: true, ..Default::default() };
    let mut stream = api.clone().subscribe_events(sub).await.expect("subscribe").into_inner();
    let mut seen = 0usize;
    let mut last_event_at = opened;
    // Read events (instance registration, then tasks run below) until one arrives well past
    // the deadline.
    let deadline = opened + PHASE;
    let mut ran = false;
    while last_event_at < opened + Duration::from_millis(2500) {
        assert!(Instant::now() < deadline, "no event after the unary deadline ({seen} seen)");
        if opened.elapsed() > Duration::from_millis(2500) && !ran {
            let req = v1::RunTaskRequest { task_definition: "page".into(), ..Default::default() };
            // Events of this task arrive on the stream opened before the deadline.
            let reply = api.clone().run_task(req).await.expect("run task").into_inner();
            assert!(reply.json.contains("taskArn"), "{}", reply.json);
            ran = true;
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
            Ok(Ok(Some(_))) => {
                seen += 1;
                last_event_at = Instant::now();
            }
            Ok(Ok(None)) => panic!("the stream ended after {:?}", opened.elapsed()),
            Ok(Err(e)) => panic!("the stream failed after {:?}: {e}", opened.elapsed()),
            // Nothing yet: keep waiting (the loop's deadline bounds it).
            Err(_) => {}
        }
    }
    assert!(seen > 0);
}
