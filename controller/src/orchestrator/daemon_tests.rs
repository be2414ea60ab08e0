//! The DAEMON decision, with exact expected actions: one task per eligible instance, new
//! instances served, draining and constraint-violating instances emptied, deployments stop-first.

use super::*;
use crate::store::Command;
use crate::store::apply::apply;
use crate::store::command::*;
use berth_proto::model::*;

/// No settle time: a RUNNING task without health checks is healthy at once.
const POLICY: HealthPolicy = HealthPolicy { settle_millis: 0, monitor_millis: 60_000 };

fn def(memory: i64) -> TaskDefinition {
    TaskDefinition {
        family: "agent".into(),
        container_definitions: vec![ContainerDefinition {
            name: "c".into(),
            image: "i".into(),
            memory: Some(memory),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn register(st: &mut State, id: &str, role: &str) {
    apply(
        st,
        Command::RegisterInstance(RegisterInstance {
            session: format!("s-{id}"),
            cluster: "default".into(),
            instance_id: id.into(),
            attributes: vec![Attribute { name: "role".into(), value: Some(role.into()) }],
            cpu: 4096,
            memory: 1024,
            reserved_ports: vec![],
            version_info: VersionInfo::default(),
            hostname: None,
            agent_endpoint: None,
            now: Timestamp(1),
        }),
    )
    .unwrap();
}

/// Instances i1 (role edge) and i2 (role core), `agent:1` (and `agent:2`) registered, and a
/// DAEMON service `agent` with the given constraints and no task yet.
fn setup(constraints: Vec<PlacementConstraint>) -> State {
    let mut st = State::default();
    for _ in 0..2 {
        apply(&mut st, Command::RegisterTaskDefinition { definition: def(64), now: Timestamp(1) })
            .unwrap();
    }
    register(&mut st, "i1", "edge");
    register(&mut st, "i2", "core");
    let arn = st.resolve_taskdef("agent:1").unwrap().task_definition_arn.clone().unwrap();
    apply(
        &mut st,
        Command::CreateService(CreateService {
            scheduling_strategy: Some(SCHEDULING_DAEMON.into()),
            placement: Placement { strategy: vec![], constraints },
            deployment_configuration: None,
            health_check_grace_period_seconds: None,
            cluster: "default".into(),
            name: "agent".into(),
            task_definition_arn: arn,
            desired_count: 0,
            deployment_id: "d1".into(),
            now: Timestamp(2),
        }),
    )
    .unwrap();
    st
}

fn svc(st: &State) -> Service {
    st.services["default/agent"].clone()
}

fn decide_now(st: &State) -> ServiceDecision {
    decide(st, &svc(st), Timestamp(10_000), &POLICY)
}

/// Starts the decided tasks as the loop would, marking them RUNNING; returns their ids.
fn run_tasks_on(st: &mut State, instances: &[&str]) -> Vec<String> {
    let instances: Vec<String> = instances.iter().map(|s| s.to_string()).collect();
    let mut n = st.tasks.len();
    let mut ids = || {
        n += 1;
        format!("{n:032x}")
    };
    let mut tasks = new_tasks(st, &svc(st), &instances, Timestamp(3), &mut ids);
    for t in &mut tasks {
        t.last_status = RUNNING.into();
        t.started_at = Some(Timestamp(3));
    }
    let ids: Vec<String> = tasks.iter().map(|t| t.id().to_string()).collect();
    apply(st, Command::StartTasks { tasks, now: Timestamp(3) }).unwrap();
    ids
}

fn set_status(st: &mut State, id: &str, status: &str) {
    apply(
        st,
        Command::SetInstanceStatus { instance_id: id.into(), status: status.into(), now: None },
    )
    .unwrap();
}

fn member_of(expr: &str) -> PlacementConstraint {
    PlacementConstraint { kind: "memberOf".into(), expression: Some(expr.into()) }
}

#[test]
fn daemon_defaults_are_min_0_max_100() {
    let st = setup(vec![]);
    let c = svc(&st).deployment_configuration;
    assert_eq!((c.minimum_healthy_percent, c.maximum_percent), (0, 100));
    assert_eq!(svc(&st).scheduling_strategy, "DAEMON");
}

#[test]
fn one_task_per_eligible_instance_and_the_count_follows() {
    let st = setup(vec![]);
    let d = decide_now(&st);
    assert_eq!(d.start_on, vec!["i1".to_string(), "i2".to_string()]);
    assert_eq!(d.desired_count, Some(2));
    assert_eq!((d.start, d.stop.len(), d.stop_surplus), (0, 0, 0));
    assert!(!d.complete_primary);
}

#[test]
fn a_new_instance_gets_its_task_and_nothing_else_moves() {
    let mut st = setup(vec![]);
    run_tasks_on(&mut st, &["i1", "i2"]);
    st.services.get_mut("default/agent").unwrap().desired_count = 2;
    let d = decide_now(&st);
    assert!(d.start_on.is_empty() && d.stop.is_empty() && d.desired_count.is_none(), "{d:?}");
    assert!(d.complete_primary, "two instances, two healthy tasks: steady");
    register(&mut st, "i3", "core");
    let d = decide_now(&st);
    assert_eq!(d.start_on, vec!["i3".to_string()]);
    assert_eq!(d.desired_count, Some(3));
    assert!(d.stop.is_empty() && d.stop_unhealthy.is_empty());
}

#[test]
fn a_draining_instance_has_its_daemon_task_stopped_and_gets_none() {
    let mut st = setup(vec![]);
    let ids = run_tasks_on(&mut st, &["i1", "i2"]);
    set_status(&mut st, "i2", "DRAINING");
    let d = decide_now(&st);
    assert_eq!(d.stop, vec![ids[1].clone()]);
    assert!(d.start_on.is_empty(), "{d:?}");
    assert_eq!(d.desired_count, Some(1));
    // Back to ACTIVE once the old task is STOPPED: it gets a new one.
    let t = st.tasks.get_mut(&ids[1]).unwrap();
    t.desired_status = STOPPED.into();
    t.last_status = STOPPED.into();
    set_status(&mut st, "i2", "ACTIVE");
    assert_eq!(decide_now(&st).start_on, vec!["i2".to_string()]);
}

#[test]
fn constraints_choose_the_instances_and_a_violation_stops_the_task() {
    let mut st = setup(vec![member_of("attribute:role == edge")]);
    let d = decide_now(&st);
    assert_eq!(d.start_on, vec!["i1".to_string()]);
    assert_eq!(d.desired_count, Some(1));
    let ids = run_tasks_on(&mut st, &["i1"]);
    st.services.get_mut("default/agent").unwrap().desired_count = 1;
    // i1 stops matching: its task is stopped with an event naming it, and none is placed.
    st.instances.get_mut("i1").unwrap().instance.attributes =
        vec![Attribute { name: "role".into(), value: Some("core".into()) }];
    let d = decide_now(&st);
    assert_eq!(d.stop, ids);
    assert!(d.start_on.is_empty());
    assert_eq!(d.desired_count, Some(0));
    assert_eq!(
        d.events,
        vec![format!(
            "(service agent) (task {}) no longer satisfies the placement constraints on (instance i1) and was stopped.",
            ids[0]
        )]
    );
}

#[test]
fn a_disconnected_instance_keeps_its_task_and_gets_none() {
    let mut st = setup(vec![]);
    let ids = run_tasks_on(&mut st, &["i1"]);
    st.instances.get_mut("i1").unwrap().instance.agent_connected = false;
    let d = decide_now(&st);
    assert!(d.stop.is_empty(), "{d:?}");
    assert!(!d.stop.contains(&ids[0]));
    assert_eq!(d.start_on, vec!["i2".to_string()]);
    assert_eq!(d.desired_count, Some(1));
}

#[test]
fn duplicates_on_one_instance_are_stopped_keeping_the_healthy_one() {
    let mut st = setup(vec![]);
    let first = run_tasks_on(&mut st, &["i1"]);
    let second = run_tasks_on(&mut st, &["i1"]);
    st.tasks.get_mut(&first[0]).unwrap().last_status = PENDING.into();
    let d = decide_now(&st);
    assert_eq!(d.stop, first, "the PENDING duplicate goes, the RUNNING one stays");
    assert!(!d.stop.contains(&second[0]));
    assert_eq!(d.start_on, vec!["i2".to_string()]);
}

#[test]
fn a_new_revision_replaces_stop_first_within_minimum_healthy_percent() {
    let mut st = setup(vec![]);
    let old = run_tasks_on(&mut st, &["i1", "i2"]);
    let arn2 = st.resolve_taskdef("agent:2").unwrap().task_definition_arn.clone().unwrap();
    let mut config = DeploymentConfiguration::daemon_default();
    config.minimum_healthy_percent = 50;
    apply(
        &mut st,
        Command::UpdateService(UpdateService {
            cluster: "default".into(),
            name: "agent".into(),
            desired_count: Some(2),
            task_definition_arn: Some(arn2),
            placement: None,
            force_new_deployment: false,
            deployment_configuration: Some(config),
            health_check_grace_period_seconds: None,
            deployment_id: "d2".into(),
            now: Timestamp(4),
        }),
    )
    .unwrap();
    // min 50 of 2 instances → ceil(1) healthy must stay: one old task stops, none starts beside it.
    let d = decide_now(&st);
    assert_eq!(d.stop, vec![old[0].clone()]);
    assert!(d.start_on.is_empty(), "max 100: no new task while the old one holds the instance");
    // While it is stopping, nothing more moves (the other old task is the healthy minimum).
    let t = st.tasks.get_mut(&old[0]).unwrap();
    t.desired_status = STOPPED.into();
    let d = decide_now(&st);
    assert!(d.stop.is_empty() && d.start_on.is_empty(), "{d:?}");
    // STOPPED: its instance gets the new revision.
    st.tasks.get_mut(&old[0]).unwrap().last_status = STOPPED.into();
    let d = decide_now(&st);
    assert_eq!(d.start_on, vec!["i1".to_string()]);
    let new = run_tasks_on(&mut st, &["i1"]);
    assert!(st.tasks[&new[0]].started_by.as_deref() == Some("d2"));
    // The new task is healthy: the second old task may go now.
    let d = decide_now(&st);
    assert_eq!(d.stop, vec![old[1].clone()]);
}

#[test]
fn an_unhealthy_daemon_task_is_replaced() {
    let mut st = setup(vec![]);
    let ids = run_tasks_on(&mut st, &["i1", "i2"]);
    st.tasks.get_mut(&ids[0]).unwrap().health_status = "UNHEALTHY".into();
    let d = decide_now(&st);
    assert_eq!(d.stop_unhealthy, vec![ids[0].clone()]);
    assert!(d.stop.is_empty() && d.start_on.is_empty());
}

#[test]
fn an_instance_without_room_records_the_placement_event() {
    let mut st = setup(vec![]);
    // agent:3 needs 2048 MiB; the instances have 1024.
    apply(&mut st, Command::RegisterTaskDefinition { definition: def(2048), now: Timestamp(1) })
        .unwrap();
    let arn = st.resolve_taskdef("agent:3").unwrap().task_definition_arn.clone().unwrap();
    let s = st.services.get_mut("default/agent").unwrap();
    s.deployments[0].task_definition = arn;
    let d = decide_now(&st);
    assert!(d.start_on.is_empty());
    assert_eq!(
        d.events,
        vec![
            "service agent was unable to place a task because no container instance met all of its requirements. The closest matching container-instance i1 has insufficient memory available."
                .to_string()
        ]
    );
}

#[test]
fn a_failing_revision_trips_the_breaker_and_rolls_back() {
    let mut st = setup(vec![]);
    let old = run_tasks_on(&mut st, &["i1"]);
    apply(
        &mut st,
        Command::ServiceProgress(ServiceProgress {
            cluster: "default".into(),
            name: "agent".into(),
            events: vec![],
            rollouts: vec![("d1".into(), "COMPLETED".into(), "done".into())],
            drained_deployments: vec![],
            deactivate: false,
            rollback: None,
            now: Timestamp(4),
        }),
    )
    .unwrap();
    let arn2 = st.resolve_taskdef("agent:2").unwrap().task_definition_arn.clone().unwrap();
    let mut config = DeploymentConfiguration::daemon_default();
    config.deployment_circuit_breaker =
        Some(DeploymentCircuitBreaker { enable: true, rollback: true });
    apply(
        &mut st,
        Command::UpdateService(UpdateService {
            cluster: "default".into(),
            name: "agent".into(),
            desired_count: Some(2),
            task_definition_arn: Some(arn2),
            placement: None,
            force_new_deployment: false,
            deployment_configuration: Some(config),
            health_check_grace_period_seconds: None,
            deployment_id: "d2".into(),
            now: Timestamp(5),
        }),
    )
    .unwrap();
    // Three d2 tasks on i2 that exited right after starting (the threshold for 2 is 3).
    for _ in 0..3 {
        let ids = run_tasks_on(&mut st, &["i2"]);
        let t = st.tasks.get_mut(&ids[0]).unwrap();
        (t.last_status, t.desired_status) = (STOPPED.into(), STOPPED.into());
        t.stop_code = Some("EssentialContainerExited".into());
        t.stopped_at = Some(Timestamp(4_000));
    }
    let d = decide_now(&st);
    assert_eq!(
        d.fail_primary.as_deref(),
        Some("ECS deployment circuit breaker: 3 tasks failed to start or stay healthy.")
    );
    assert_eq!(d.rollback, Some(Rollback::Promote { deployment_id: "d1".into() }));
    assert!(d.stop.is_empty() && d.start_on.is_empty(), "a tripping decision changes no task");
    assert!(!d.stop.contains(&old[0]));
}
