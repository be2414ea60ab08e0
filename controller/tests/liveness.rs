//! Node liveness against a real one-node controller (Raft on sled, gRPC on loopback) with a quick
//! liveness config and fake agents speaking the agent protocol: a closed session makes the agent
//! disconnected at once and its tasks lost `lost_after` later, replaced on the other instance; the
//! agent's next full assignment set omits them; a silent agent with an open session is marked
//! disconnected after the grace and its session is closed.

use berth_controller::orchestrator::liveness::LivenessConfig;
use berth_controller::{Controller, ControllerConfig, RunningController};
use berth_proto::model::{RUNNING, STOPPED, TaskStatusReport};
use berth_proto::v1::{
    self, agent_dispatch_client::AgentDispatchClient, berth_client::BerthClient,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const HEARTBEAT: Duration = Duration::from_millis(100);
const GRACE: Duration = Duration::from_millis(1500);
const LOST_AFTER: Duration = Duration::from_millis(1000);
const WAIT: Duration = Duration::from_secs(20);

const WEB: &str = r#"{"family": "web", "containerDefinitions": [
  {"name": "web", "image": "berth/httpd:1", "cpu": 128, "memory": 64,
   "portMappings": [{"containerPort": 8080, "hostPort": 0}]}]}"#;

fn epoch_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// An agent that speaks the protocol by hand: registers, optionally heartbeats, reports.
struct FakeAgent {
    tx: mpsc::Sender<v1::AgentMessage>,
    inbound: tonic::Streaming<v1::ControllerMessage>,
    beats: Option<JoinHandle<()>>,
}

impl FakeAgent {
    async fn connect(c: &RunningController, id: &str, heartbeat: bool) -> FakeAgent {
        let mut client = AgentDispatchClient::connect(format!("http://{}", c.addr)).await.unwrap();
        let (tx, rx) = mpsc::channel(16);
        let register = v1::RegisterAgent {
            instance_id: id.into(),
            cpu: 1024,
            memory: 1024,
            agent_version: "fake".into(),
            ..Default::default()
        };
        tx.send(v1::AgentMessage { msg: Some(v1::agent_message::Msg::Register(register)) })
            .await
            .unwrap();
        let inbound = client.session(ReceiverStream::new(rx)).await.unwrap().into_inner();
        let beats = heartbeat.then(|| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for seq in 1.. {
                    tokio::time::sleep(HEARTBEAT).await;
                    let beat = v1::agent_message::Msg::Heartbeat(v1::Heartbeat { seq });
                    if tx.send(v1::AgentMessage { msg: Some(beat) }).await.is_err() {
                        return;
                    }
                }
            })
        });
        FakeAgent { tx, inbound, beats }
    }

    /// The next Assignments message (Registered and heartbeat acks are skipped).
    async fn assignments(&mut self) -> v1::Assignments {
        let next = async {
            loop {
                let m = self.inbound.message().await.unwrap().expect("session open");
                if let Some(v1::controller_message::Msg::Assignments(a)) = m.msg {
                    return a;
                }
            }
        };
        tokio::time::timeout(WAIT, next).await.expect("assignments in time")
    }

    async fn report_running(&self, task_id: &str) {
        let report = TaskStatusReport {
            task_id: task_id.into(),
            last_status: RUNNING.into(),
            ..Default::default()
        };
        let msg = v1::agent_message::Msg::TaskStatus(v1::TaskStatusReport {
            task_id: task_id.into(),
            json: serde_json::to_string(&report).unwrap(),
        });
        self.tx.send(v1::AgentMessage { msg: Some(msg) }).await.unwrap();
    }

    /// Waits until the controller closes the session.
    async fn closed_by_controller(&mut self) {
        let end = async {
            loop {
                match self.inbound.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                }
            }
        };
        tokio::time::timeout(WAIT, end).await.expect("the controller closes the session");
    }

    /// Like a SIGKILLed agent: heartbeats stop and the stream closes.
    fn kill(self) {
        if let Some(b) = &self.beats {
            b.abort();
        }
    }
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn service_tasks(c: &RunningController, live: bool) -> Vec<(String, String)> {
    let st = c.shared.read();
    st.tasks
        .values()
        .filter(|t| t.service_name() == Some("web") && t.is_stopped() != live)
        .map(|t| (t.id().to_string(), t.instance_id().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test]
async fn lost_agent_tasks_are_replaced_and_a_silent_agent_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let config = ControllerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        liveness: LivenessConfig {
            heartbeat_interval: HEARTBEAT,
            heartbeat_grace: GRACE,
            lost_after: LOST_AFTER,
        },
        ..Default::default()
    };
    let c = Controller::start(config).await.unwrap();
    c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let mut api = BerthClient::connect(format!("http://{}", c.addr)).await.unwrap();
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: WEB.into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // B alone: both tasks of the service go there and run.
    let mut b = FakeAgent::connect(&c, B, true).await;
    assert!(b.assignments().await.full);
    api.create_service(v1::CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web".into(),
        desired_count: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut on_b = vec![];
    while on_b.len() < 2 {
        for a in b.assignments().await.tasks {
            if !on_b.contains(&a.task_id) {
                b.report_running(&a.task_id).await;
                on_b.push(a.task_id);
            }
        }
    }
    on_b.sort();
    wait_for("both tasks RUNNING on B", || {
        let st = c.shared.read();
        on_b.iter().all(|id| st.tasks[id].last_status == RUNNING).then_some(())
    })
    .await;
    let a = FakeAgent::connect(&c, A, true).await;
    let _a = tokio::spawn(async move {
        let mut a = a; // reads (and drops) whatever the controller sends, heartbeating meanwhile
        while let Ok(Some(_)) = a.inbound.message().await {}
    });

    // Heartbeats reach the store while B lives.
    let registered = c.shared.read().instances[B].last_heartbeat;
    wait_for("a recorded heartbeat", || {
        (c.shared.read().instances[B].last_heartbeat > registered).then_some(())
    })
    .await;

    // B dies: disconnected at once (still ACTIVE), tasks lost after LOST_AFTER, replaced on A.
    let killed_at = epoch_millis();
    b.kill();
    wait_for("B disconnected", || {
        let st = c.shared.read();
        let rec = &st.instances[B];
        (!rec.instance.agent_connected).then(|| assert_eq!(rec.instance.status, "ACTIVE"))
    })
    .await;
    assert!(
        on_b.iter().all(|id| c.shared.read().tasks[id].last_status == RUNNING),
        "nothing is lost before lost_after"
    );
    wait_for("B's tasks STOPPED", || {
        let st = c.shared.read();
        on_b.iter().all(|id| st.tasks[id].last_status == STOPPED).then_some(())
    })
    .await;
    {
        let st = c.shared.read();
        let disconnected_at = st.instances[B].disconnected_at.expect("disconnection time").0;
        assert!(disconnected_at >= killed_at, "{disconnected_at} < {killed_at}");
        for id in &on_b {
            let t = &st.tasks[id];
            assert_eq!(t.desired_status, STOPPED);
            assert_eq!(t.stop_code.as_deref(), Some("ServiceSchedulerInitiated"));
            let reason = t.stopped_reason.clone().unwrap_or_default();
            assert!(
                reason.starts_with(&format!(
                    "Task stopped because its container instance {B} was lost (no heartbeat for "
                )),
                "{reason}"
            );
            let stopped = t.stopped_at.expect("stoppedAt").0;
            assert!(
                stopped - disconnected_at >= LOST_AFTER.as_millis() as i64,
                "lost {} ms after the disconnection",
                stopped - disconnected_at
            );
        }
    }
    let replacements = wait_for("two replacements on A", || {
        let live = service_tasks(&c, true);
        (live.len() == 2).then_some(live)
    })
    .await;
    assert!(
        replacements.iter().all(|(id, inst)| inst == A && !on_b.contains(id)),
        "{replacements:?}"
    );
    let stopped_event = format!(
        "(service web) has stopped 2 running tasks: (task {}) (task {}).",
        on_b[0], on_b[1]
    );
    wait_for("the service event", || {
        let st = c.shared.read();
        st.services["default/web"].events.iter().any(|e| e.message == stopped_event).then_some(())
    })
    .await;

    // B comes back: its full set no longer holds the lost tasks; the service stays at two.
    let back_at = Instant::now();
    let mut b = FakeAgent::connect(&c, B, false).await;
    let full = b.assignments().await;
    assert!(full.full);
    let ids: Vec<&str> = full.tasks.iter().map(|a| a.task_id.as_str()).collect();
    assert!(ids.iter().all(|id| !on_b.iter().any(|l| l == id)), "lost tasks re-sent: {ids:?}");
    assert!(c.shared.read().instances[B].instance.agent_connected);
    assert_eq!(service_tasks(&c, true), replacements, "no extra copy");

    // B stays silent on an open session: disconnected after the grace, session closed.
    b.closed_by_controller().await;
    assert!(back_at.elapsed() >= GRACE, "closed after {:?}", back_at.elapsed());
    assert!(!c.shared.read().instances[B].instance.agent_connected);
    assert!(c.shared.read().instances[A].instance.agent_connected, "A heartbeats and stays");
    assert_eq!(service_tasks(&c, true), replacements);
    c.stop().await.unwrap();
}

#[tokio::test]
async fn a_restarted_leader_waits_one_grace_before_judging_a_silent_agent() {
    use berth_controller::clock::ManualClock;
    use berth_proto::model::Timestamp;
    let t0 = Timestamp(1_700_000_000_000);
    let clock = ManualClock::new(t0);
    let dir = tempfile::tempdir().unwrap();
    let config = ControllerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        liveness: LivenessConfig {
            heartbeat_interval: HEARTBEAT,
            heartbeat_grace: GRACE,
            lost_after: LOST_AFTER,
        },
        ..Default::default()
    };
    let c = Controller::start_with_clock(config.clone(), clock.clone()).await.unwrap();
    c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let mut api = BerthClient::connect(format!("http://{}", c.addr)).await.unwrap();
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: WEB.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut b = FakeAgent::connect(&c, B, false).await;
    assert!(b.assignments().await.full);
    api.create_service(v1::CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web".into(),
        desired_count: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let task = b.assignments().await.tasks[0].task_id.clone();
    b.report_running(&task).await;
    wait_for("the task RUNNING", || {
        (c.shared.read().tasks[&task].last_status == RUNNING).then_some(())
    })
    .await;
    // The controller stops first (a stopping controller records no disconnection), then the
    // agent is gone for a minute of (manual) time: the store still says connected, heard at t0.
    c.stop().await.unwrap();
    drop(b);
    clock.advance_millis(60_000);
    let c = Controller::start_with_clock(config, clock.clone()).await.unwrap();
    c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let elected = t0.plus_millis(60_000);
    let since = wait_for("node liveness took office", || *c.leader_since.borrow()).await;
    assert_eq!(since, elected);
    {
        let st = c.shared.read();
        assert!(st.instances[B].instance.agent_connected);
        assert_eq!(st.instances[B].last_heartbeat, t0);
    }
    // A minute without a heartbeat, yet nothing is judged within the new leader's first grace.
    // (Time is manual, so this only gives the leader's checks — one per 100 ms — a chance to
    // run wrongly; it synchronises nothing.)
    clock.advance_millis(GRACE.as_millis() as i64 - 1);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(c.shared.read().instances[B].instance.agent_connected, "judged within the grace");
    }
    clock.advance_millis(1);
    wait_for("B disconnected one grace after the election", || {
        c.shared.read().instances[B].disconnected_at
    })
    .await;
    let grace_end = elected.plus_millis(GRACE.as_millis() as i64);
    assert_eq!(c.shared.read().instances[B].disconnected_at, Some(grace_end));
    assert_eq!(c.shared.read().tasks[&task].last_status, RUNNING);
    clock.advance_millis(LOST_AFTER.as_millis() as i64);
    let (stopped_at, reason) = wait_for("the task lost", || {
        let st = c.shared.read();
        let t = &st.tasks[&task];
        t.is_stopped().then(|| (t.stopped_at, t.stopped_reason.clone()))
    })
    .await;
    assert_eq!(stopped_at, Some(grace_end.plus_millis(LOST_AFTER.as_millis() as i64)));
    assert_eq!(
        reason.as_deref(),
        Some(
            format!(
                "Task stopped because its container instance {B} was lost (no heartbeat for 62 s)"
            )
            .as_str()
        )
    );
    c.stop().await.unwrap();
}
