//! State machine tests: determinism, all-or-nothing rejections, forward-only task status.

use super::State;
use super::apply::apply;
use super::command::*;
use berth_proto::model::*;

fn def(family: &str, cpu: i64, mem: i64, host_port: Option<i64>) -> TaskDefinition {
    TaskDefinition {
        family: family.into(),
        container_definitions: vec![ContainerDefinition {
            name: "web".into(),
            image: "berth/httpd:1".into(),
            cpu: Some(cpu),
            memory: Some(mem),
            port_mappings: Some(vec![PortMapping {
                container_port: Some(8080),
                host_port,
                ..Default::default()
            }]),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn instance(id: &str, cpu: i64, mem: i64) -> Command {
    Command::RegisterInstance(RegisterInstance {
        session: "s1".into(),
        cluster: "default".into(),
        instance_id: id.into(),
        attributes: vec![Attribute {
            name: "ecs.availability-zone".into(),
            value: Some("a".into()),
        }],
        cpu,
        memory: mem,
        reserved_ports: vec![],
        version_info: VersionInfo::default(),
        hostname: None,
        agent_endpoint: None,
        now: Timestamp(1),
    })
}

fn task(st: &State, id: &str, instance: &str, arn: &str) -> Task {
    let def = st.taskdef_by_arn(arn).cloned().unwrap();
    let launch = crate::orchestrator::placement::Launch {
        cluster: "default",
        def: &def,
        count: 1,
        group: "family:web".into(),
        started_by: None,
    };
    crate::orchestrator::placement::new_task(st, &launch, instance, id, Timestamp(5))
}

fn setup() -> (State, String) {
    let mut st = State::default();
    apply(
        &mut st,
        Command::RegisterTaskDefinition {
            definition: def("web", 512, 256, Some(8080)),
            now: Timestamp(2),
        },
    )
    .unwrap();
    apply(&mut st, instance("i1", 1024, 1024)).unwrap();
    let arn = st.resolve_taskdef("web").unwrap().task_definition_arn.clone().unwrap();
    (st, arn)
}

#[test]
fn revisions_increase_and_are_never_reused() {
    let (mut st, _) = setup();
    apply(
        &mut st,
        Command::RegisterTaskDefinition { definition: def("web", 1, 1, None), now: Timestamp(3) },
    )
    .unwrap();
    apply(
        &mut st,
        Command::DeregisterTaskDefinition { family: "web".into(), revision: 2, now: Timestamp(4) },
    )
    .unwrap();
    apply(
        &mut st,
        Command::RegisterTaskDefinition { definition: def("web", 1, 1, None), now: Timestamp(5) },
    )
    .unwrap();
    let revs: Vec<u32> = st.families["web"].revisions.keys().copied().collect();
    assert_eq!(revs, vec![1, 2, 3]);
    assert_eq!(st.resolve_taskdef("web").unwrap().revision, Some(3));
    assert_eq!(st.resolve_taskdef("web:2").unwrap().status.as_deref(), Some("INACTIVE"));
}

#[test]
fn start_tasks_rejects_a_task_that_no_longer_fits() {
    let (mut st, arn) = setup();
    let a = task(&st, "a".repeat(32).as_str(), "i1", &arn);
    let b = task(&st, "b".repeat(32).as_str(), "i1", &arn);
    // Both want static host port 8080 on i1: the second is rejected at apply.
    let out = apply(&mut st, Command::StartTasks { tasks: vec![a, b], now: Timestamp(6) }).unwrap();
    assert_eq!(out.ids, vec!["a".repeat(32)]);
    assert_eq!(out.rejected, vec!["b".repeat(32)]);
    let view = st.instance_view("i1").unwrap();
    let cpu = view.remaining_resources.iter().find(|r| r.name == "CPU").unwrap().integer_value;
    assert_eq!(cpu, Some(512));
}

#[test]
fn rejected_stop_changes_nothing() {
    let (mut st, arn) = setup();
    let a = task(&st, &"a".repeat(32), "i1", &arn);
    apply(&mut st, Command::StartTasks { tasks: vec![a], now: Timestamp(6) }).unwrap();
    let before = st.clone();
    let err = apply(
        &mut st,
        Command::StopTasks(StopTasks {
            task_ids: vec!["a".repeat(32), "missing".into()],
            stop_code: "UserInitiated".into(),
            reason: "x".into(),
            now: Timestamp(7),
        }),
    )
    .unwrap_err();
    assert!(err.message.contains("missing"), "{}", err.message);
    assert_eq!(st, before);
}

#[test]
fn task_status_only_moves_forward_and_stale_reports_change_nothing() {
    let (mut st, arn) = setup();
    let id = "c".repeat(32);
    let t = task(&st, &id, "i1", &arn);
    apply(&mut st, Command::StartTasks { tasks: vec![t], now: Timestamp(6) }).unwrap();
    let report = |status: &str, exit: Option<i64>| TaskStatusReport {
        task_id: id.clone(),
        last_status: status.into(),
        containers: vec![ContainerReport {
            name: "web".into(),
            last_status: status.into(),
            exit_code: exit,
            ..Default::default()
        }],
        stop_code: exit.map(|_| "EssentialContainerExited".into()),
        stopped_reason: exit.map(|_| "Essential container in task exited".into()),
        ..Default::default()
    };
    let rep = |st: &mut State, r, now| {
        apply(
            st,
            Command::ReportTaskStatus { instance_id: "i1".into(), report: r, now: Timestamp(now) },
        )
        .unwrap()
    };
    rep(&mut st, report("RUNNING", None), 10);
    let v = st.tasks[&id].version;
    rep(&mut st, report("RUNNING", None), 11); // repeated: no change, no version bump
    assert_eq!(st.tasks[&id].version, v);
    rep(&mut st, report("STOPPED", Some(3)), 12);
    rep(&mut st, report("RUNNING", None), 13); // stale: ignored
    let t = &st.tasks[&id];
    assert_eq!(t.last_status, "STOPPED");
    assert_eq!(t.desired_status, "STOPPED");
    assert_eq!(t.containers[0].exit_code, Some(3));
    assert_eq!(t.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(t.started_at, Some(Timestamp(10)));
    assert_eq!(t.stopped_at, Some(Timestamp(12)));
}

#[test]
fn awsvpc_attachment_and_interfaces_come_from_the_agents_report() {
    let (mut st, arn) = setup();
    let id = "e".repeat(32);
    let t = task(&st, &id, "i1", &arn);
    apply(&mut st, Command::StartTasks { tasks: vec![t], now: Timestamp(6) }).unwrap();
    let att = |status: &str| {
        serde_json::json!({"id": "a1", "type": "ElasticNetworkInterface", "status": status,
            "details": [{"name": "privateIPv4Address", "value": "10.213.0.9"}]})
    };
    let report = |status: &str, attachments: Vec<serde_json::Value>| TaskStatusReport {
        task_id: id.clone(),
        last_status: status.into(),
        containers: vec![ContainerReport {
            name: "web".into(),
            last_status: status.into(),
            network_interfaces: vec![NetworkInterface {
                attachment_id: "a1".into(),
                private_ipv4_address: Some("10.213.0.9".into()),
            }],
            ..Default::default()
        }],
        attachments,
        ..Default::default()
    };
    let rep = |st: &mut State, r| {
        let c =
            Command::ReportTaskStatus { instance_id: "i1".into(), report: r, now: Timestamp(9) };
        apply(st, c).unwrap()
    };
    rep(&mut st, report("RUNNING", vec![att("ATTACHED")]));
    let t = &st.tasks[&id];
    assert_eq!(t.attachments, vec![att("ATTACHED")]);
    assert_eq!(
        t.containers[0].network_interfaces[0].private_ipv4_address.as_deref(),
        Some("10.213.0.9")
    );
    rep(&mut st, report("RUNNING", Vec::new())); // a report without one keeps it
    assert_eq!(st.tasks[&id].attachments, vec![att("ATTACHED")]);
    rep(&mut st, report("STOPPED", vec![att("DELETED")]));
    assert_eq!(st.tasks[&id].attachments, vec![att("DELETED")]);
}

#[test]
fn report_from_another_instance_is_refused() {
    let (mut st, arn) = setup();
    apply(&mut st, instance("i2", 1024, 1024)).unwrap();
    let id = "d".repeat(32);
    let t = task(&st, &id, "i1", &arn);
    apply(&mut st, Command::StartTasks { tasks: vec![t], now: Timestamp(6) }).unwrap();
    let r = TaskStatusReport {
        task_id: id.clone(),
        last_status: "STOPPED".into(),
        ..Default::default()
    };
    assert!(
        apply(
            &mut st,
            Command::ReportTaskStatus { instance_id: "i2".into(), report: r, now: Timestamp(7) }
        )
        .is_err()
    );
    assert_eq!(st.tasks[&id].last_status, "PENDING");
}

#[test]
fn applying_the_same_log_gives_the_same_state() {
    let (a, _) = setup();
    let (b, _) = setup();
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}

#[test]
fn service_names_are_unique_while_active_and_delete_needs_zero_or_force() {
    let (mut st, arn) = setup();
    let create = |name: &str| {
        Command::CreateService(CreateService {
            scheduling_strategy: None,
            placement: Default::default(),
            deployment_configuration: None,
            health_check_grace_period_seconds: None,
            cluster: "default".into(),
            name: name.into(),
            task_definition_arn: arn.clone(),
            desired_count: 2,
            deployment_id: "ecs-svc/1".into(),
            now: Timestamp(3),
        })
    };
    apply(&mut st, create("web")).unwrap();
    let dup = apply(&mut st, create("web")).unwrap_err();
    assert!(dup.message.contains("already exists"), "{}", dup.message);
    let no_force = apply(
        &mut st,
        Command::DeleteService {
            cluster: "default".into(),
            name: "web".into(),
            force: false,
            now: Timestamp(4),
        },
    )
    .unwrap_err();
    assert!(no_force.message.contains("desiredCount"), "{}", no_force.message);
    apply(
        &mut st,
        Command::DeleteService {
            cluster: "default".into(),
            name: "web".into(),
            force: true,
            now: Timestamp(4),
        },
    )
    .unwrap();
    assert_eq!(st.services["default/web"].status, "DRAINING");
}

#[test]
fn agent_endpoint_is_stored_and_replaced_on_reregistration() {
    let (mut st, _) = setup();
    let mut with = instance("i1", 1024, 1024);
    if let Command::RegisterInstance(r) = &mut with {
        r.agent_endpoint = Some("http://10.0.0.5:51678".into());
    }
    apply(&mut st, with).unwrap();
    let ci = &st.instances["i1"].instance;
    assert_eq!(ci.agent_endpoint.as_deref(), Some("http://10.0.0.5:51678"));
    let json = serde_json::to_value(ci).unwrap();
    assert_eq!(json["agentEndpoint"], "http://10.0.0.5:51678");
    // An agent that serves no API (or an older one) clears it.
    apply(&mut st, instance("i1", 1024, 1024)).unwrap();
    assert_eq!(st.instances["i1"].instance.agent_endpoint, None);
    assert!(
        serde_json::to_value(&st.instances["i1"].instance).unwrap().get("agentEndpoint").is_none()
    );
}

#[test]
fn only_the_latest_agent_session_can_mark_it_disconnected() {
    let (mut st, _) = setup();
    let mut again = instance("i1", 1024, 1024);
    if let Command::RegisterInstance(r) = &mut again {
        r.session = "s2".into();
    }
    apply(&mut st, again).unwrap(); // the agent reconnected elsewhere
    let old_end = Command::SetAgentConnected {
        instance_id: "i1".into(),
        session: "s1".into(),
        connected: false,
        now: Timestamp(9),
    };
    apply(&mut st, old_end).unwrap();
    assert!(st.instances["i1"].instance.agent_connected, "a stale session's end changes nothing");
    let end = Command::SetAgentConnected {
        instance_id: "i1".into(),
        session: "s2".into(),
        connected: false,
        now: Timestamp(10),
    };
    apply(&mut st, end).unwrap();
    assert!(!st.instances["i1"].instance.agent_connected);
}

#[test]
fn put_attributes_survive_reregistration_and_are_limited_to_ten_custom() {
    let (mut st, _) = setup();
    let put = |names: &[&str]| {
        Command::PutAttributes(PutAttributes {
            instance_id: "i1".into(),
            attributes: names
                .iter()
                .map(|n| Attribute { name: n.to_string(), value: Some("v".into()) })
                .collect(),
        })
    };
    apply(&mut st, put(&["stack"])).unwrap();
    apply(&mut st, instance("i1", 1024, 1024)).unwrap(); // the agent re-registers
    let attrs = &st.instances["i1"].instance.attributes;
    assert!(attrs.iter().any(|a| a.name == "stack"), "{attrs:?}");
    assert!(attrs.iter().any(|a| a.name == "ecs.availability-zone"));
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let err = apply(&mut st, put(&refs)).unwrap_err();
    assert_eq!(err.ecs_type, "AttributeLimitExceededException");
    assert!(
        !st.instances["i1"].instance.attributes.iter().any(|a| a.name == "c0"),
        "nothing half-applied"
    );
    apply(
        &mut st,
        Command::DeleteAttributes { instance_id: "i1".into(), names: vec!["stack".into()] },
    )
    .unwrap();
    assert!(!st.instances["i1"].instance.attributes.iter().any(|a| a.name == "stack"));
    let err = apply(
        &mut st,
        Command::DeleteAttributes {
            instance_id: "i1".into(),
            names: vec!["ecs.availability-zone".into()],
        },
    )
    .unwrap_err();
    assert!(err.message.contains("agent"), "{}", err.message);
}

#[test]
fn a_task_definition_arn_of_another_region_or_account_names_nothing() {
    let mut st = State::default();
    apply(
        &mut st,
        Command::RegisterTaskDefinition {
            definition: crate::orchestrator::testkit::def("web"),
            now: Timestamp(1),
        },
    )
    .unwrap();
    let ours = st.resolve_taskdef("web:1").unwrap().task_definition_arn.clone().unwrap();
    assert_eq!(st.resolve_taskdef(&ours).unwrap().revision, Some(1));
    for other in [
        ours.replace(":local:", ":us-east-1:"),
        ours.replace(":000000000000:", ":123456789012:"),
        ours.replace(":task-definition/", ":service/"),
    ] {
        let err = st.resolve_taskdef(&other).expect_err(&other);
        assert!(err.message.contains("does not exist"), "{other}: {err:?}");
    }
}

#[test]
fn batched_reports_apply_in_order_and_list_the_refused_ones() {
    let (mut st, arn) = setup();
    apply(&mut st, instance("i2", 1024, 1024)).unwrap();
    let (a, b) = ("a".repeat(32), "b".repeat(32));
    let tasks = vec![task(&st, &a, "i1", &arn), task(&st, &b, "i2", &arn)];
    apply(&mut st, Command::StartTasks { tasks, now: Timestamp(6) }).unwrap();
    let report = |id: &str, status: &str, instance: &str| InstanceReport {
        instance_id: instance.into(),
        report: TaskStatusReport {
            task_id: id.into(),
            last_status: status.into(),
            ..Default::default()
        },
    };
    let reports = vec![
        report(&a, "RUNNING", "i1"),
        report(&b, "RUNNING", "i1"), // b is on i2: refused, the others still apply
        report(&a, "STOPPED", "i1"),
    ];
    let out = apply(&mut st, Command::ReportTaskStatuses { reports, now: Timestamp(7) }).unwrap();
    assert_eq!(out.rejected, vec![b.clone()]);
    assert_eq!(out.ids, vec![a.clone(), a.clone()]);
    assert_eq!(st.tasks[&a].last_status, "STOPPED");
    assert_eq!(st.tasks[&a].started_at, Some(Timestamp(7)));
    assert_eq!(st.tasks[&b].last_status, "PENDING");
}

#[test]
fn the_task_index_follows_apply_and_is_rebuilt_on_restore() {
    let (mut st, arn) = setup();
    apply(&mut st, instance("i2", 4096, 4096)).unwrap();
    let ids: Vec<String> = (0..4).map(|i| format!("{i}").repeat(32)).collect();
    let tasks = vec![task(&st, &ids[0], "i1", &arn), task(&st, &ids[1], "i2", &arn)];
    apply(&mut st, Command::StartTasks { tasks, now: Timestamp(6) }).unwrap();
    let on =
        |st: &State, i: &str| st.tasks_placed_on(i).map(|t| t.id().to_string()).collect::<Vec<_>>();
    let scan = |st: &State, i: &str| {
        st.tasks
            .values()
            .filter(|t| t.instance_id() == Some(i))
            .map(|t| t.id().to_string())
            .collect::<Vec<_>>()
    };
    assert!(st.index.covers(st.tasks.len()));
    assert_eq!(on(&st, "i2"), vec![ids[1].clone()]);
    let before = st.index.instance_changes("i2");
    let r = TaskStatusReport {
        task_id: ids[1].clone(),
        last_status: "STOPPED".into(),
        ..Default::default()
    };
    apply(
        &mut st,
        Command::ReportTaskStatus { instance_id: "i2".into(), report: r, now: Timestamp(7) },
    )
    .unwrap();
    assert!(st.index.instance_changes("i2") > before, "a change on i2 moves its counter");
    apply(&mut st, Command::PurgeStoppedTasks { stopped_before: Timestamp(8) }).unwrap();
    assert!(on(&st, "i2").is_empty());
    assert_eq!(on(&st, "i1"), scan(&st, "i1"));
    assert_eq!(st.remaining(&st.instances["i2"].instance).cpu, 4096);
    assert_eq!(st.remaining(&st.instances["i1"].instance).cpu, 1024 - 512);
    // A restored state has an empty index until it is rebuilt (the store does it on restore).
    let mut restored: State = serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
    assert!(!restored.index.covers(restored.tasks.len()));
    assert_eq!(on(&restored, "i1"), scan(&st, "i1"), "queries fall back to a scan meanwhile");
    restored.rebuild_index();
    assert!(restored.index.covers(restored.tasks.len()));
    assert_eq!(on(&restored, "i1"), vec![ids[0].clone()]);
}

#[test]
fn remaining_resources_from_the_index_equal_a_walk_of_the_tasks() {
    let (mut st, arn) = setup();
    apply(&mut st, instance("i2", 4096, 4096)).unwrap();
    let ids: Vec<String> = (0..4).map(|i| format!("{i}").repeat(32)).collect();
    let on = [("i1", &ids[0]), ("i2", &ids[1]), ("i2", &ids[2]), ("i2", &ids[3])];
    let tasks = on.iter().map(|(i, id)| task(&st, id, i, &arn)).collect();
    // The second and third task on i2 want the same static port: the third is refused.
    let out = apply(&mut st, Command::StartTasks { tasks, now: Timestamp(6) }).unwrap();
    assert_eq!(out.rejected, vec![ids[2].clone(), ids[3].clone()]);
    // What the index sums, and what a walk of the tasks gives (a state without an index).
    let check = |st: &State, what: &str| {
        let mut walked = st.clone();
        walked.index = Default::default();
        for i in ["i1", "i2"] {
            let ci = &st.instances[i].instance;
            assert_eq!(st.remaining(ci), walked.remaining(ci), "{what}: {i}");
        }
    };
    check(&st, "after start");
    assert_eq!(st.remaining(&st.instances["i2"].instance).cpu, 4096 - 512);
    let stop = TaskStatusReport {
        task_id: ids[1].clone(),
        last_status: "STOPPED".into(),
        ..Default::default()
    };
    apply(
        &mut st,
        Command::ReportTaskStatus { instance_id: "i2".into(), report: stop, now: Timestamp(7) },
    )
    .unwrap();
    check(&st, "after a stop");
    assert_eq!(st.remaining(&st.instances["i2"].instance).cpu, 4096);
    assert!(!st.remaining(&st.instances["i2"].instance).used_ports.contains(&8080));
    // The port is free again: a task that wants it fits now.
    let again = task(&st, &ids[2], "i2", &arn);
    let out =
        apply(&mut st, Command::StartTasks { tasks: vec![again], now: Timestamp(8) }).unwrap();
    assert_eq!(out.ids, vec![ids[2].clone()]);
    check(&st, "after a restart on the freed port");
    apply(&mut st, Command::PurgeStoppedTasks { stopped_before: Timestamp(9) }).unwrap();
    check(&st, "after a purge");
    let mut restored: State = serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
    restored.rebuild_index();
    check(&restored, "after a restore");
    assert_eq!(
        restored.remaining(&st.instances["i2"].instance),
        st.remaining(&st.instances["i2"].instance)
    );
}
