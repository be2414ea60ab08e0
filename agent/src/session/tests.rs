//! Session against an in-process fake `AgentDispatch` server (tonic on 127.0.0.1:0).

use crate::runtime::SimulatedRuntime;
use crate::testkit::{TEST_IMAGE, wait_for};
use crate::{Agent, AgentConfig};
use berth_proto::model::{ContainerDefinition, Task, TaskDefinition, TaskStatusReport};
use berth_proto::v1::agent_dispatch_server::{AgentDispatch, AgentDispatchServer};
use berth_proto::v1::{self as pb, agent_message, controller_message};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};

const WAIT: Duration = Duration::from_secs(20);

type SessionTx = mpsc::Sender<Result<pb::ControllerMessage, tonic::Status>>;

/// Records what agents send; answers Register with Registered + a full assignment set, and
/// can cut every open session.
#[derive(Clone, Default)]
struct FakeController {
    received: Arc<Mutex<Vec<agent_message::Msg>>>,
    assignments: Arc<Mutex<Vec<pb::Assignment>>>,
    sessions: Arc<Mutex<Vec<SessionTx>>>,
    /// The heartbeat interval announced in `Registered` (0: none).
    heartbeat_ms: u64,
    /// While set, every session is refused (a controller outage); `refused` counts attempts.
    down: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl FakeController {
    fn received(&self) -> Vec<agent_message::Msg> {
        self.received.lock().map(|g| g.clone()).unwrap_or_default()
    }
    fn registers(&self) -> Vec<pb::RegisterAgent> {
        self.received()
            .into_iter()
            .filter_map(|m| match m {
                agent_message::Msg::Register(r) => Some(r),
                _ => None,
            })
            .collect()
    }
    fn reports(&self) -> Vec<TaskStatusReport> {
        self.received()
            .into_iter()
            .filter_map(|m| match m {
                agent_message::Msg::TaskStatus(t) => serde_json::from_str(&t.json).ok(),
                _ => None,
            })
            .collect()
    }
    fn disconnect_all(&self) {
        if let Ok(mut s) = self.sessions.lock() {
            for tx in s.drain(..) {
                let _ = tx.try_send(Err(tonic::Status::unavailable("controller restarting")));
            }
        }
    }
}

type Out = Pin<Box<dyn Stream<Item = Result<pb::ControllerMessage, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AgentDispatch for FakeController {
    type SessionStream = Out;
    async fn session(
        &self,
        req: tonic::Request<tonic::Streaming<pb::AgentMessage>>,
    ) -> Result<tonic::Response<Out>, tonic::Status> {
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(tonic::Status::unavailable("controller down"));
        }
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        if let Ok(mut s) = self.sessions.lock() {
            s.push(tx.clone());
        }
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = inbound.next().await {
                let Some(msg) = m.msg else { continue };
                if let Ok(mut r) = me.received.lock() {
                    r.push(msg.clone());
                }
                if let agent_message::Msg::Register(reg) = msg {
                    let id = if reg.instance_id.is_empty() {
                        "inst-1".to_string()
                    } else {
                        reg.instance_id
                    };
                    let registered = pb::Registered {
                        instance_id: id,
                        instance_arn: "arn:i".into(),
                        cluster: reg.cluster,
                        heartbeat_interval_ms: me.heartbeat_ms,
                    };
                    let tasks = me.assignments.lock().map(|a| a.clone()).unwrap_or_default();
                    for m in [
                        controller_message::Msg::Registered(registered),
                        controller_message::Msg::Assignments(pb::Assignments { full: true, tasks }),
                    ] {
                        if tx.send(Ok(pb::ControllerMessage { msg: Some(m) })).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

async fn serve(fake: FakeController) -> String {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentDispatchServer::new(fake))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    format!("http://{addr}")
}

fn one_assignment() -> pb::Assignment {
    assignment(&[("app", true)])
}

/// One task `abc` with the given (container name, essential) list.
fn assignment(containers: &[(&str, bool)]) -> pb::Assignment {
    let def = TaskDefinition {
        family: "svc".into(),
        revision: Some(1),
        container_definitions: containers
            .iter()
            .map(|(name, essential)| ContainerDefinition {
                name: name.to_string(),
                image: TEST_IMAGE.into(),
                memory: Some(16),
                essential: Some(*essential),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let task = Task {
        task_arn: "arn:task/c/abc".into(),
        desired_status: "RUNNING".into(),
        version: 1,
        ..Default::default()
    };
    pb::Assignment {
        task_id: "abc".into(),
        version: 1,
        desired_status: "RUNNING".into(),
        task_json: serde_json::to_string(&task).unwrap_or_default(),
        task_definition_json: serde_json::to_string(&def).unwrap_or_default(),
        secrets: vec![],
    }
}

#[tokio::test]
async fn agent_registers_persists_id_runs_assignment_and_resends_reports_after_reconnect() {
    let fake = FakeController::default();
    if let Ok(mut a) = fake.assignments.lock() {
        a.push(one_assignment());
    }
    let endpoint = serve(fake.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = SimulatedRuntime::new();
    rt.add_cached_image(TEST_IMAGE);
    let cfg = AgentConfig {
        endpoints: vec![endpoint],
        cluster: "c1".into(),
        attributes: vec![("zone".into(), "z1".into())],
        data_dir: dir.path().to_path_buf(),
        image_pull_behavior: crate::PullBehavior::PreferCached,
        cpu_units: Some(2048),
        memory_mib: Some(4096),
        heartbeat_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        reconnect_backoff_min: Duration::from_millis(50),
        ..Default::default()
    };
    let agent = Agent::with_runtime(cfg, Arc::new(rt.clone())).expect("agent");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(agent.run(async {
        let _ = stop_rx.await;
    }));

    // Registers first, with resources and attributes.
    let reg = wait_for(WAIT, "register", || async { fake.registers().first().cloned() }).await;
    assert!(matches!(fake.received().first(), Some(agent_message::Msg::Register(_))));
    assert_eq!(reg.cluster, "c1");
    assert_eq!(reg.instance_id, "");
    assert_eq!((reg.cpu, reg.memory), (2048, 4096));
    assert_eq!(reg.attributes.get("zone").map(String::as_str), Some("z1"));
    assert_eq!(reg.attributes.get("ecs.os-type").map(String::as_str), Some("linux"));
    assert!(reg.reserved_ports.contains(&51678));

    // Persists the id, runs the assigned task, reports RUNNING; heartbeats flow.
    let path = dir.path().join("instance-id");
    wait_for(WAIT, "instance id file", || async {
        std::fs::read_to_string(&path).ok().filter(|s| s.trim() == "inst-1").map(|_| ())
    })
    .await;
    wait_for(WAIT, "RUNNING report", || async {
        fake.reports().into_iter().find(|r| r.task_id == "abc" && r.last_status == "RUNNING")
    })
    .await;
    wait_for(WAIT, "heartbeat", || async {
        fake.received().iter().any(|m| matches!(m, agent_message::Msg::Heartbeat(_))).then_some(())
    })
    .await;

    // Cut the session: the agent reconnects with its id and re-sends the latest report.
    let before = fake.reports().len();
    fake.disconnect_all();
    wait_for(WAIT, "re-registration with the stored id", || async {
        fake.registers().get(1).filter(|r| r.instance_id == "inst-1").map(|_| ())
    })
    .await;
    wait_for(WAIT, "report re-sent", || async {
        fake.reports()[before..]
            .iter()
            .any(|r| r.task_id == "abc" && r.last_status == "RUNNING")
            .then_some(())
    })
    .await;
    assert_eq!(rt.create_count(), 1, "reconnect created no duplicate");

    // Shutdown leaves the container running.
    let _ = stop_tx.send(());
    let r = tokio::time::timeout(WAIT, run).await;
    assert!(matches!(r, Ok(Ok(Ok(())))), "{r:?}");
    assert!(rt.containers().iter().all(|c| c.state == crate::runtime::ContainerState::Running));
}

#[tokio::test]
async fn agent_beats_at_the_interval_the_controller_announces() {
    let fake = FakeController { heartbeat_ms: 50, ..Default::default() };
    let endpoint = serve(fake.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = AgentConfig {
        endpoints: vec![endpoint],
        data_dir: dir.path().to_path_buf(),
        // Its own interval would give no heartbeat at all within the wait below.
        heartbeat_interval: Duration::from_secs(600),
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let agent = Agent::with_runtime(cfg, Arc::new(SimulatedRuntime::new())).expect("agent");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(agent.run(async {
        let _ = stop_rx.await;
    }));
    wait_for(WAIT, "three heartbeats at the announced 50 ms", || async {
        let beats = fake
            .received()
            .iter()
            .filter(|m| matches!(m, agent_message::Msg::Heartbeat(_)))
            .count();
        (beats >= 3).then_some(())
    })
    .await;
    let _ = stop_tx.send(());
    let _ = run.await;
}

/// Controller outage: containers keep running, the transitions the agent sees meanwhile are
/// queued, and on reconnect they arrive in the order they happened (not just the final state).
#[tokio::test]
async fn state_changes_made_while_the_controller_is_down_arrive_in_order_on_reconnect() {
    let fake = FakeController::default();
    if let Ok(mut a) = fake.assignments.lock() {
        a.push(assignment(&[("app", true), ("side", false)]));
    }
    let endpoint = serve(fake.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = SimulatedRuntime::new();
    rt.add_cached_image(TEST_IMAGE);
    let cfg = AgentConfig {
        endpoints: vec![endpoint],
        data_dir: dir.path().to_path_buf(),
        image_pull_behavior: crate::PullBehavior::PreferCached,
        heartbeat_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(20),
        reconnect_backoff_min: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(40),
        ..Default::default()
    };
    let agent = Agent::with_runtime(cfg, Arc::new(rt.clone())).expect("agent");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(agent.run(async {
        let _ = stop_rx.await;
    }));
    wait_for(WAIT, "RUNNING report", || async {
        fake.reports().into_iter().find(|r| r.task_id == "abc" && r.last_status == "RUNNING")
    })
    .await;

    // The controller goes away.
    fake.down.store(true, Ordering::SeqCst);
    fake.disconnect_all();
    let refused_after = |n: usize| {
        let fake = fake.clone();
        async move {
            let start = fake.refused.load(Ordering::SeqCst);
            wait_for(WAIT, "refused reconnect attempts", || async {
                (fake.refused.load(Ordering::SeqCst) >= start + n).then_some(())
            })
            .await;
        }
    };
    refused_after(1).await;
    let before = fake.reports().len();
    let id_of = |name: &str| {
        rt.containers()
            .into_iter()
            .find(|c| c.label(crate::runtime::LABEL_CONTAINER_NAME) == Some(name))
            .map(|c| c.id)
            .unwrap_or_default()
    };
    // Two transitions while it is down, each given several poll intervals to be observed.
    assert!(rt.exit_container(&id_of("side"), 5), "side container exits");
    refused_after(5).await;
    assert!(
        rt.containers().iter().any(|c| c.state == crate::runtime::ContainerState::Running),
        "the essential container keeps running while the controller is away"
    );
    assert!(rt.exit_container(&id_of("app"), 3), "app container exits");
    refused_after(5).await;
    assert_eq!(fake.reports().len(), before, "nothing was delivered while down");

    // Back: the queued transitions arrive in order.
    fake.down.store(false, Ordering::SeqCst);
    let after = wait_for(WAIT, "the STOPPED report after reconnecting", || async {
        let after: Vec<TaskStatusReport> = fake.reports()[before..].to_vec();
        after.iter().any(|r| r.last_status == "STOPPED").then_some(after)
    })
    .await;
    let exit = |r: &TaskStatusReport, name: &str| {
        r.containers.iter().find(|c| c.name == name).and_then(|c| c.exit_code)
    };
    let side_exited = after
        .iter()
        .position(|r| r.last_status == "RUNNING" && exit(r, "side") == Some(5))
        .unwrap_or_else(|| panic!("no RUNNING report with side exited: {after:?}"));
    let stopped = after
        .iter()
        .position(|r| r.last_status == "STOPPED")
        .unwrap_or_else(|| panic!("no STOPPED report: {after:?}"));
    assert!(side_exited < stopped, "in order: {after:?}");
    assert_eq!(exit(&after[stopped], "app"), Some(3));
    assert_eq!(exit(&after[stopped], "side"), Some(5));
    let _ = stop_tx.send(());
    let _ = run.await;
}
