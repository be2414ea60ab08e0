//! The event stream against real controllers (Raft on sled, gRPC on loopback), with a fake agent
//! speaking the agent protocol so RunTask has somewhere to place tasks:
//! * a subscriber that reads nothing while 10,000 events are produced does not grow the
//!   server's memory past a fixed bound, and then receives every event in order;
//! * a member that installs a snapshot (the log is not in it) fills its copy of the log from
//!   another member: every member serves the same events under the same indexes;
//! * every controller stopped and started again still serves the events from before.

use berth_controller::raft::RaftConfig;
use berth_controller::{Controller, ControllerConfig, RunningController};
use berth_proto::v1::{
    self, agent_dispatch_client::AgentDispatchClient, berth_client::BerthClient,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const DEADLINE: Duration = Duration::from_secs(60);
const INSTANCE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const TINY: &str = r#"{"family": "tiny", "containerDefinitions": [
  {"name": "app", "image": "berth/httpd:1", "cpu": 1, "memory": 8}]}"#;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn start(
    id: u64,
    dir: &Path,
    peers: &BTreeMap<u64, String>,
    peer_port: Option<u16>,
    snapshot_threshold: u64,
) -> RunningController {
    let config = ControllerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        raft: RaftConfig {
            id,
            tick_interval: Some(Duration::from_millis(20)),
            snapshot_threshold,
            ..RaftConfig::default()
        },
        peer_listen: peer_port.map(|p| format!("127.0.0.1:{p}").parse().expect("addr")),
        initial_cluster: peers.clone(),
        // The stalled-subscriber test floods 10,000 writes from one address, far over the
        // default per-client rate (`crate::limits`, tested in tests/tests/hardening.rs).
        limits: berth_controller::limits::LimitsConfig { rate_limit: 0, ..Default::default() },
        ..ControllerConfig::default()
    };
    Controller::start(config).await.expect("start controller")
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn client(c: &RunningController) -> BerthClient<tonic::transport::Channel> {
    BerthClient::connect(format!("http://{}", c.addr)).await.expect("connect")
}

/// Registers instance `id` with room for thousands of tiny tasks; keeps the session open.
async fn fake_agent(c: &RunningController, id: &str) -> mpsc::Sender<v1::AgentMessage> {
    let mut dispatch =
        AgentDispatchClient::connect(format!("http://{}", c.addr)).await.expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let register = v1::RegisterAgent {
        instance_id: id.into(),
        cpu: 1_000_000,
        memory: 1_000_000,
        agent_version: "fake".into(),
        ..Default::default()
    };
    tx.send(v1::AgentMessage { msg: Some(v1::agent_message::Msg::Register(register)) })
        .await
        .expect("send");
    let mut inbound =
        dispatch.session(ReceiverStream::new(rx)).await.expect("session").into_inner();
    tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
    let beats = tx.clone();
    tokio::spawn(async move {
        for seq in 1.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let beat = v1::agent_message::Msg::Heartbeat(v1::Heartbeat { seq });
            if beats.send(v1::AgentMessage { msg: Some(beat) }).await.is_err() {
                return;
            }
        }
    });
    tx
}

/// RunTask of `count` tiny tasks: `count` task events plus one for the instance's resources.
async fn run_tasks(api: &mut BerthClient<tonic::transport::Channel>, count: i64) {
    api.run_task(v1::RunTaskRequest {
        task_definition: "tiny".into(),
        count,
        ..Default::default()
    })
    .await
    .expect("run task");
}

async fn register_tiny(api: &mut BerthClient<tonic::transport::Channel>) {
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: TINY.into(),
        ..Default::default()
    })
    .await
    .expect("register");
}

/// Every event a controller holds, read with a non-following subscription.
async fn read_all(c: &RunningController) -> Vec<(u64, String)> {
    let mut api = client(c).await;
    let mut stream = api
        .subscribe_events(v1::SubscribeEventsRequest { from_index: Some(1), ..Default::default() })
        .await
        .expect("subscribe")
        .into_inner();
    let mut out = vec![];
    while let Some(m) = stream.message().await.expect("stream") {
        out.push((m.index, m.json));
    }
    out
}

fn assert_contiguous(events: &[(u64, String)], what: &str) {
    for (i, (index, json)) in events.iter().enumerate() {
        assert_eq!(*index, i as u64 + 1, "{what}: index {} at position {i}", index);
        let v: Value = serde_json::from_str(json).expect("event JSON");
        assert_eq!(v["index"].as_u64(), Some(*index), "{what}: the JSON carries its index");
        assert_eq!(v["source"], "aws.ecs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_holds_bounded_memory_then_gets_every_event_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = start(1, dir.path(), &BTreeMap::new(), None, 100_000).await;
    c.wait_leader(Duration::from_secs(10)).await.expect("leader");
    let _agent = fake_agent(&c, INSTANCE).await;
    let mut api = client(&c).await;
    register_tiny(&mut api).await;
    until("the instance registered", || c.shared.read().instances.contains_key(INSTANCE)).await;

    // Opened, then never read until the end.
    let mut stalled = client(&c)
        .await
        .subscribe_events(v1::SubscribeEventsRequest {
            from_index: Some(1),
            follow: true,
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    // 10,000 instance events from 8 writers, each putting its own attribute.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let addr = c.addr;
            tokio::spawn(async move {
                let mut api =
                    BerthClient::connect(format!("http://{addr}")).await.expect("connect");
                for n in 0..1250 {
                    let attributes = [(format!("writer{w}"), n.to_string())].into();
                    api.put_attributes(v1::AttributesRequest {
                        container_instance: INSTANCE.into(),
                        attributes,
                        ..Default::default()
                    })
                    .await
                    .expect("put attributes");
                }
            })
        })
        .collect();
    let mut peak = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while writers.iter().any(|w| !w.is_finished()) {
        assert!(tokio::time::Instant::now() < deadline, "10,000 events within {DEADLINE:?}");
        peak = peak.max(c.events.events_in_memory());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(c.events.tip().next > 10_000, "{:?}", c.events.tip());
    let bound = berth_controller::events::subscribe::memory_bound(1);
    assert!(peak <= bound, "{peak} events held in memory at the peak; the bound is {bound}");

    let last = c.events.tip().next - 1;
    let mut want = 1;
    while want <= last {
        let m = tokio::time::timeout(DEADLINE, stalled.message())
            .await
            .expect("events keep coming")
            .expect("stream")
            .expect("open");
        assert_eq!(m.index, want, "in order, no gap, no duplicate");
        want += 1;
    }
    assert!(c.events.events_in_memory() <= bound);
    c.stop().await.expect("stop");
}

/// Three members, one fake agent registered through the leader, the tiny task definition.
struct Three {
    ports: Vec<(u64, u16)>,
    peers: BTreeMap<u64, String>,
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<RunningController>,
    leader: usize,
    _agent: mpsc::Sender<v1::AgentMessage>,
}

async fn three(snapshot_threshold: u64) -> Three {
    let ports: Vec<(u64, u16)> = (1..=3).map(|id| (id, free_port())).collect();
    let peers: BTreeMap<u64, String> =
        ports.iter().map(|(id, p)| (*id, format!("127.0.0.1:{p}"))).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let mut nodes = Vec::new();
    for (i, (id, port)) in ports.iter().enumerate() {
        nodes.push(start(*id, dirs[i].path(), &peers, Some(*port), snapshot_threshold).await);
    }
    until("a leader", || nodes.iter().any(|n| n.raft.is_leader())).await;
    let leader = nodes.iter().position(|n| n.raft.is_leader()).expect("leader");
    let _agent = fake_agent(&nodes[leader], INSTANCE).await;
    register_tiny(&mut client(&nodes[leader]).await).await;
    until("the instance registered", || {
        nodes[leader].shared.read().instances.contains_key(INSTANCE)
    })
    .await;
    Three { ports, peers, dirs, nodes, leader, _agent }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restored_from_a_snapshot_fills_its_log_and_all_serve_the_same_events() {
    let Three { ports, peers, dirs, mut nodes, leader, _agent } = three(20).await;

    // A follower stops; the others write far past the snapshot threshold and compact.
    let lagging = (leader + 1) % 3;
    let (id, port) = ports[lagging];
    nodes.remove(lagging).stop().await.expect("stop follower");
    let leader = nodes.iter().position(|n| n.raft.is_leader()).expect("still leads");
    let mut api = client(&nodes[leader]).await;
    for _ in 0..30 {
        run_tasks(&mut api, 3).await;
    }
    // Events held by the stopped member: fewer than those now in the log.
    let back = start(id, dirs[lagging].path(), &peers, Some(port), 20).await;
    let expected = nodes[leader].events.tip().next;
    until("the restarted member installed a snapshot", || back.raft.snapshots_installed() >= 1)
        .await;
    until("its log has no hole and reaches the others'", || {
        let t = back.events.tip();
        t.hole.is_none() && t.next >= expected
    })
    .await;
    let reference = read_all(&nodes[leader]).await;
    assert!(reference.len() as u64 >= expected - 1);
    assert_contiguous(&reference, "leader");
    for n in nodes.iter().chain([&back]) {
        let mine = read_all(n).await;
        assert_eq!(
            mine[..reference.len()],
            reference[..],
            "member {} serves the same events",
            n.raft.id()
        );
    }
    back.stop().await.expect("stop");
    for n in nodes {
        n.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_before_a_restart_of_every_controller_are_still_served() {
    let Three { ports, peers, dirs, mut nodes, leader, _agent } = three(50).await;
    let mut api = client(&nodes[leader]).await;
    for _ in 0..40 {
        run_tasks(&mut api, 2).await;
    }
    // The writer thread stores events after their apply: a read right after may end before them.
    until("the leader stored the events it applied", || {
        nodes[leader].events.tip().next >= nodes[leader].shared.read().events.next_index
    })
    .await;
    let before = read_all(&nodes[leader]).await;
    assert!(before.len() >= 120, "{} events", before.len());
    assert_contiguous(&before, "before the restart");
    for n in nodes.drain(..) {
        n.stop().await.expect("stop");
    }
    for (i, (id, port)) in ports.iter().enumerate() {
        nodes.push(start(*id, dirs[i].path(), &peers, Some(*port), 50).await);
    }
    until("a leader after the restart", || nodes.iter().any(|n| n.raft.is_leader())).await;
    for n in &nodes {
        until("the member applied the old log", || n.events.tip().next > before.len() as u64).await;
        let after = read_all(n).await;
        assert_eq!(
            after[..before.len()],
            before[..],
            "member {} serves the events from before",
            n.raft.id()
        );
    }
    for n in nodes {
        n.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_by_count_and_an_older_index_is_refused_naming_the_oldest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ControllerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        retention: berth_controller::events::retention::RetentionConfig {
            max_events: 50,
            interval: Duration::from_millis(100),
            ..Default::default()
        },
        ..ControllerConfig::default()
    };
    let c = Controller::start(config).await.expect("start");
    c.wait_leader(Duration::from_secs(10)).await.expect("leader");
    let _agent = fake_agent(&c, INSTANCE).await;
    let mut api = client(&c).await;
    register_tiny(&mut api).await;
    for _ in 0..20 {
        run_tasks(&mut api, 10).await;
    }
    until("retention kept at most 50 events", || {
        let t = c.events.tip();
        t.next > 200 && t.next - t.first <= 50
    })
    .await;
    let oldest = c.events.tip().first;
    let err = client(&c)
        .await
        .subscribe_events(v1::SubscribeEventsRequest { from_index: Some(1), ..Default::default() })
        .await
        .expect_err("index 1 is gone");
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    let named: u64 = err
        .metadata()
        .get("x-berth-oldest-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("the oldest index in metadata");
    assert!(named >= oldest, "named {named}, oldest was {oldest}");
    assert!(err.message().contains(&format!("the oldest available index is {named}")), "{err}");
    // From the oldest on, the log is served without a gap.
    let mut stream = client(&c)
        .await
        .subscribe_events(v1::SubscribeEventsRequest {
            from_index: Some(named),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut want = named;
    while let Some(m) = stream.message().await.expect("stream") {
        assert_eq!(m.index, want);
        want += 1;
    }
    assert!(want > 200);
    c.stop().await.expect("stop");
}
