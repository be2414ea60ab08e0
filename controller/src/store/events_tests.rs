//! Events derived from applied commands: shapes, order, versions, indexes, determinism.

use crate::events::EventLog;
use crate::raft::StateMachine as _;
use crate::store::command::*;
use crate::store::{SharedState, State, Store};
use berth_proto::model::*;
use serde_json::Value;
use std::sync::Arc;

struct Fixture {
    store: Store,
    shared: SharedState,
    log: Arc<EventLog>,
    index: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let shared = SharedState::new(State::default());
        let log = EventLog::in_memory();
        Fixture { store: Store::with_events(shared.clone(), log.clone()), shared, log, index: 0 }
    }

    /// Applies `cmd` as the next log entry; true if it was accepted.
    fn apply(&mut self, cmd: Command) -> bool {
        self.index += 1;
        let out = self.store.apply(self.index, &cmd.encode());
        crate::store::decode_result(&out).is_ok()
    }

    fn events(&self) -> Vec<Value> {
        let tip = self.log.tip();
        self.log.read(tip.first, 100_000).unwrap().iter().map(|e| e.value().clone()).collect()
    }
}

fn def() -> TaskDefinition {
    TaskDefinition {
        family: "web".into(),
        container_definitions: vec![ContainerDefinition {
            name: "web".into(),
            image: "busybox".into(),
            cpu: Some(256),
            memory: Some(128),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn register_instance(id: &str, memory: i64) -> Command {
    Command::RegisterInstance(RegisterInstance {
        cluster: "default".into(),
        instance_id: id.into(),
        session: "s".into(),
        attributes: vec![],
        cpu: 1024,
        memory,
        reserved_ports: vec![],
        version_info: VersionInfo::default(),
        hostname: None,
        agent_endpoint: None,
        now: Timestamp(1_492_119_449_000),
    })
}

fn new_task(f: &Fixture, id: &str) -> Task {
    let st = f.shared.read();
    let def = st.resolve_taskdef("web").unwrap().clone();
    let launch = crate::orchestrator::placement::Launch {
        cluster: "default",
        def: &def,
        count: 1,
        group: "service:web".into(),
        started_by: None,
    };
    crate::orchestrator::placement::new_task(&st, &launch, "i1", id, Timestamp(1_492_119_450_000))
}

fn report(id: &str, status: &str, now: i64) -> Command {
    Command::ReportTaskStatus {
        instance_id: "i1".into(),
        report: TaskStatusReport {
            task_id: id.into(),
            last_status: status.into(),
            containers: vec![ContainerReport {
                name: "web".into(),
                last_status: status.into(),
                exit_code: (status == STOPPED).then_some(0),
                ..Default::default()
            }],
            ..Default::default()
        },
        now: Timestamp(now),
    }
}

/// Registers the task definition and instance i1, and runs one task through RUNNING to STOPPED.
fn task_lifecycle(f: &mut Fixture, id: &str) {
    assert!(f.apply(Command::RegisterTaskDefinition { definition: def(), now: Timestamp(1) }));
    assert!(f.apply(register_instance("i1", 1024)));
    let task = new_task(f, id);
    assert!(f.apply(Command::StartTasks { tasks: vec![task], now: Timestamp(1_492_119_450_000) }));
    assert!(f.apply(report(id, RUNNING, 1_492_119_451_000)));
    assert!(f.apply(report(id, RUNNING, 1_492_119_452_000))); // repeated: no change
    assert!(f.apply(report(id, STOPPED, 1_492_119_453_500)));
}

/// Service `web` of one task of `arn`, deployment `ecs-svc/1`, created at 10 s.
fn create_web_service(arn: String) -> Command {
    Command::CreateService(CreateService {
        cluster: "default".into(),
        name: "web".into(),
        task_definition_arn: arn,
        desired_count: 1,
        deployment_id: "ecs-svc/1".into(),
        health_check_grace_period_seconds: None,
        placement: Default::default(),
        deployment_configuration: None,
        scheduling_strategy: None,
        now: Timestamp(10_000),
    })
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let short = match e["detail-type"].as_str().unwrap() {
                event::TASK_STATE_CHANGE => "task",
                event::INSTANCE_STATE_CHANGE => "instance",
                event::SERVICE_ACTION => "service",
                _ => "deployment",
            };
            format!(
                "{short}:{}",
                e["detail"]["version"].as_u64().map_or(String::new(), |v| v.to_string())
            )
        })
        .collect()
}

#[test]
fn a_task_lifecycle_gives_task_and_instance_events_in_order() {
    let mut f = Fixture::new();
    let id = "a".repeat(32);
    task_lifecycle(&mut f, &id);
    let events = f.events();
    // Registration; placement (task + the instance's resources); RUNNING; STOPPED (task + the
    // resources it gave back). The repeated RUNNING report changes nothing and makes no event.
    assert_eq!(
        kinds(&events),
        ["instance:1", "task:1", "instance:2", "task:2", "task:3", "instance:3"]
    );
    let indexes: Vec<u64> = events.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5, 6]);
    let stopped = &events[4];
    assert_eq!(stopped["version"], "0");
    assert_eq!(stopped["source"], "aws.ecs");
    assert_eq!(stopped["account"], "000000000000");
    assert_eq!(stopped["region"], "local");
    assert_eq!(stopped["time"], "2017-04-13T21:37:33Z");
    let arn = format!("arn:aws:ecs:local:000000000000:task/default/{id}");
    assert_eq!(stopped["resources"], serde_json::json!([arn]));
    let d = &stopped["detail"];
    assert_eq!(d["lastStatus"], "STOPPED");
    assert_eq!(d["desiredStatus"], "STOPPED");
    assert_eq!(d["group"], "service:web");
    assert_eq!(d["containers"][0]["exitCode"], 0);
    assert_eq!(d["startedAt"], "2017-04-13T21:37:31.000Z");
    assert_eq!(d["stoppedAt"], "2017-04-13T21:37:33.500Z");
    assert_eq!(d["updatedAt"], "2017-04-13T21:37:33.500Z");
    // The instance events carry its remaining resources: the task's 128 MiB taken, then back.
    let memory = |e: &Value| {
        e["detail"]["remainingResources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "MEMORY")
            .unwrap()["integerValue"]
            .as_i64()
            .unwrap()
    };
    assert_eq!([memory(&events[0]), memory(&events[2]), memory(&events[5])], [1024, 896, 1024]);
    assert_eq!(events[2]["detail"]["clusterArn"], "arn:aws:ecs:local:000000000000:cluster/default");
    // The task's version in the state is the one its last event carried.
    assert_eq!(f.shared.read().tasks[&id].version, 3);
}

#[test]
fn replaying_the_same_log_gives_the_same_events() {
    let (mut a, mut b) = (Fixture::new(), Fixture::new());
    task_lifecycle(&mut a, &"b".repeat(32));
    task_lifecycle(&mut b, &"b".repeat(32));
    let (ea, eb) = (a.events(), b.events());
    assert_eq!(ea, eb);
    let ids: std::collections::BTreeSet<&str> =
        ea.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), ea.len(), "event ids are unique");
    assert!(ea.iter().all(|e| uuid::Uuid::parse_str(e["id"].as_str().unwrap()).is_ok()));
}

#[test]
fn another_cluster_gives_its_events_other_ids() {
    let (mut a, mut b) = (Fixture::new(), Fixture::new());
    task_lifecycle(&mut a, &"e".repeat(32));
    // Another cluster: its first command differs (here, its time), so its log has another identity.
    assert!(b.apply(Command::RegisterTaskDefinition { definition: def(), now: Timestamp(2) }));
    assert!(b.apply(register_instance("i1", 1024)));
    let (ea, eb) = (a.events(), b.events());
    assert_eq!(ea[0]["index"], eb[0]["index"]);
    assert_ne!(ea[0]["id"], eb[0]["id"]);
}

#[test]
fn a_rejected_command_makes_no_event_and_takes_no_index() {
    let mut f = Fixture::new();
    assert!(f.apply(register_instance("i1", 1024)));
    // Stopping a task that does not exist is refused.
    assert!(!f.apply(Command::StopTasks(StopTasks {
        task_ids: vec!["nope".into()],
        stop_code: "UserInitiated".into(),
        reason: "x".into(),
        now: Timestamp(5),
    })));
    assert!(f.apply(Command::SetInstanceStatus {
        instance_id: "i1".into(),
        status: "DRAINING".into(),
        now: Some(Timestamp(6)),
    }));
    let events = f.events();
    assert_eq!(kinds(&events), ["instance:1", "instance:2"]);
    assert_eq!(events[1]["index"], 2);
    assert_eq!(events[1]["detail"]["status"], "DRAINING");
}

#[test]
fn deployments_and_service_actions_follow_the_rollout() {
    let mut f = Fixture::new();
    assert!(f.apply(Command::RegisterTaskDefinition { definition: def(), now: Timestamp(1) }));
    let arn = f.shared.read().resolve_taskdef("web").unwrap().task_definition_arn.clone().unwrap();
    assert!(f.apply(create_web_service(arn)));
    let progress = |events: Vec<&str>, rollouts: Vec<(&str, &str, &str)>| {
        Command::ServiceProgress(ServiceProgress {
            cluster: "default".into(),
            name: "web".into(),
            events: events.into_iter().map(|m| ("e".to_string(), m.to_string())).collect(),
            rollouts: rollouts
                .into_iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect(),
            drained_deployments: vec![],
            deactivate: false,
            rollback: None,
            now: Timestamp(20_000),
        })
    };
    assert!(f.apply(progress(
        vec!["service web was unable to place a task because no container instance met all of its requirements. The closest matching container-instance i9 has insufficient memory available."],
        vec![],
    )));
    assert!(f.apply(progress(
        vec![
            "(service web) has started 1 tasks: (task abc).",
            "(service web) (deployment ecs-svc/1) deployment completed.",
            "(service web) has reached a steady state.",
        ],
        vec![("ecs-svc/1", "COMPLETED", "ECS deployment ecs-svc/1 completed.")],
    )));
    let events = f.events();
    let names: Vec<&str> =
        events.iter().map(|e| e["detail"]["eventName"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "SERVICE_TASK_PLACEMENT_FAILURE",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "SERVICE_STEADY_STATE"
        ]
    );
    let service_arn = "arn:aws:ecs:local:000000000000:service/default/web";
    assert!(events.iter().all(|e| e["resources"] == serde_json::json!([service_arn])));
    assert_eq!(events[0]["detail-type"], event::DEPLOYMENT_STATE_CHANGE);
    assert_eq!(events[0]["detail"]["deploymentId"], "ecs-svc/1");
    assert_eq!(events[0]["detail"]["reason"], "ECS deployment ecs-svc/1 in progress.");
    assert_eq!(events[0]["detail"]["eventType"], "INFO");
    let failure = &events[1]["detail"];
    assert_eq!(events[1]["detail-type"], event::SERVICE_ACTION);
    assert_eq!(failure["eventType"], "ERROR");
    assert_eq!(failure["reason"], "RESOURCE:MEMORY");
    assert_eq!(
        failure["containerInstanceArns"],
        serde_json::json!(["arn:aws:ecs:local:000000000000:container-instance/default/i9"])
    );
    assert_eq!(events[2]["detail"]["reason"], "ECS deployment ecs-svc/1 completed.");
    // Service actions carry no version (ECS-NOTES §5.6).
    assert!(events[3]["detail"].get("version").is_none());
    assert_eq!(events[3]["detail"]["createdAt"], "1970-01-01T00:00:20.000Z");
}

/// The JSON text the log stores (`render_json`, straight from the drafts) is exactly the text of
/// the events as values (`render`), for task, instance, deployment and service-action events.
#[test]
fn events_rendered_as_text_equal_the_events_as_values() {
    let mut state = State::default();
    let mut kinds_seen = std::collections::BTreeSet::new();
    let mut step = |state: &mut State, cmd: Command| {
        let before = crate::store::events::Before::of(state, &cmd);
        crate::store::apply::apply(state, cmd).expect("applies");
        let batch = crate::store::events::derive_batch(state, before);
        let values = batch.clone().render();
        let texts = batch.render_json();
        assert_eq!(values.len(), texts.len());
        for (v, t) in values.iter().zip(&texts) {
            assert_eq!(serde_json::to_string(v).unwrap(), t.json);
            assert_eq!((v.index, &v.detail_type), (t.index, &t.detail_type));
            kinds_seen.insert(t.detail_type.clone());
            if let Some(task) = &t.task {
                assert_eq!(v.detail["taskArn"], task.task_arn.as_str());
                assert_eq!(v.detail["version"], task.version);
                assert_eq!(v.detail["lastStatus"], task.last_status.as_str());
            }
        }
    };
    step(&mut state, Command::RegisterTaskDefinition { definition: def(), now: Timestamp(1) });
    step(&mut state, register_instance("i1", 1024));
    let f = Fixture::new();
    *f.shared.write() = state.clone();
    let task = new_task(&f, "t1");
    step(&mut state, Command::StartTasks { tasks: vec![task], now: Timestamp(1_492_119_450_000) });
    step(&mut state, report("t1", RUNNING, 1_492_119_451_000));
    step(&mut state, report("t1", STOPPED, 1_492_119_453_500));
    let arn = state.resolve_taskdef("web").unwrap().task_definition_arn.clone().unwrap();
    step(&mut state, create_web_service(arn));
    step(
        &mut state,
        Command::ServiceProgress(ServiceProgress {
            cluster: "default".into(),
            name: "web".into(),
            events: vec![("e".into(), "(service web) has reached a steady state.".into())],
            rollouts: vec![],
            drained_deployments: vec![],
            deactivate: false,
            rollback: None,
            now: Timestamp(20_000),
        }),
    );
    let want = [
        event::TASK_STATE_CHANGE,
        event::INSTANCE_STATE_CHANGE,
        event::DEPLOYMENT_STATE_CHANGE,
        event::SERVICE_ACTION,
    ];
    assert!(want.iter().all(|k| kinds_seen.contains(*k)), "kinds covered: {kinds_seen:?}");
}

#[test]
fn trimming_moves_the_oldest_index_and_older_reads_are_refused() {
    let mut f = Fixture::new();
    task_lifecycle(&mut f, &"c".repeat(32));
    assert!(f.apply(Command::TrimEvents { first_index: 4 }));
    assert_eq!(f.shared.read().events.first_index, 4);
    assert_eq!(f.log.read(3, 10).unwrap_err(), crate::events::Trimmed { oldest: 4 });
    let kept: Vec<u64> = f.log.read(4, 10).unwrap().iter().map(|e| e.index).collect();
    assert_eq!(kept, [4, 5, 6]);
    // A trim past the end stops at the end; trims never move back.
    assert!(f.apply(Command::TrimEvents { first_index: 99 }));
    assert!(f.apply(Command::TrimEvents { first_index: 2 }));
    assert_eq!(f.shared.read().events.first_index, 7);
    assert_eq!(f.shared.read().events.next_index, 7);
}

#[test]
fn a_restored_snapshot_leaves_a_hole_until_filled() {
    let mut leader = Fixture::new();
    task_lifecycle(&mut leader, &"d".repeat(32));
    let snapshot = leader.store.snapshot();
    // A new member restores the snapshot: it knows events 1..=6 exist but holds none of them.
    let mut member = Fixture::new();
    member.store.restore(&snapshot);
    let tip = member.log.tip();
    assert_eq!((tip.first, tip.next, tip.hole), (1, 7, Some((1, 7))));
    assert!(member.log.read(1, 10).unwrap().is_empty(), "reads wait at the hole");
    // It applies a new entry meanwhile (index 7), then the hole is filled from the leader.
    member.index = leader.index;
    assert!(member.apply(Command::SetInstanceStatus {
        instance_id: "i1".into(),
        status: "DRAINING".into(),
        now: Some(Timestamp(2_000_000_000_000)),
    }));
    member.log.fill(&leader.log.read(1, 4).unwrap()).unwrap();
    assert_eq!(member.log.tip().hole, Some((5, 7)));
    member.log.fill(&leader.log.read(5, 10).unwrap()).unwrap();
    assert_eq!(member.log.tip().hole, None);
    let all: Vec<u64> = member.log.read(1, 100).unwrap().iter().map(|e| e.index).collect();
    assert_eq!(all, [1, 2, 3, 4, 5, 6, 7]);
    let mine = member.events();
    assert_eq!(&mine[..6], &leader.events()[..]);
}
