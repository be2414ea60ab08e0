//! # berth-fuzz — fuzz targets, each a plain `fn(&[u8])`
//!
//! The same functions run under libFuzzer (`fuzz_targets/*.rs`, `cargo fuzz run NAME` on
//! nightly) and under the stable driver (`src/bin/drive.rs`: corpus replay plus byte mutation
//! for a time budget). A target must never panic on any input; a panic is a finding, and each
//! finding becomes a regression test (input inline) in the crate that owns the code.
//!
//! * [`taskdef`] — `berth_proto::taskdef::parse_registration` (the RegisterTaskDefinition parser
//!   and validator), with and without a family override;
//! * [`query`]   — the cluster query language (`berth_scheduler::query::Expr::parse`), then
//!   evaluation on an instance view and `Display` → parse round trip;
//! * [`pattern`] — EventBridge event patterns (`controller/src/events/pattern.rs`, included as
//!   is): `PATTERN\nEVENT` → parse, then match;
//! * [`agent`]   — the agent protocol decoder: prost-decoding `AgentMessage` (and the agent's
//!   side, `ControllerMessage`), then the controller's checks of each message
//!   (`controller/src/dispatcher/validate.rs`, included as is).
//!
//! The two controller files are pure by contract (std, serde_json, berth_proto), so the fuzz
//! build does not compile the controller (Raft, sled, tonic servers) — it stays well inside the
//! CI budget.

use prost::Message;

#[path = "../../controller/src/events/pattern.rs"]
#[allow(dead_code)]
pub mod pattern_lang;

#[path = "../../controller/src/dispatcher/validate.rs"]
#[allow(dead_code)]
pub mod agent_checks;

/// Target names, in the order CI runs them.
pub const TARGETS: [&str; 4] = ["taskdef", "query", "pattern", "agent"];

/// The target named `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    match name {
        "taskdef" => Some(taskdef),
        "query" => Some(query),
        "pattern" => Some(pattern),
        "agent" => Some(agent),
        _ => None,
    }
}

/// RegisterTaskDefinition documents (UTF-8 JSON; anything else is rejected before parsing, as
/// the gRPC string field would be).
pub fn taskdef(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = berth_proto::taskdef::parse_registration(text, None);
    if let Ok(reg) = berth_proto::taskdef::parse_registration(text, Some("fuzzfamily")) {
        // What the controller stores must serialize (it is answered as JSON).
        serde_json::to_string(&reg.definition).expect("a parsed task definition serializes");
    }
}

/// Cluster query expressions.
pub fn query(data: &[u8]) {
    use berth_scheduler::query::Expr;
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(expr) = Expr::parse(text) else { return };
    for view in sample_views() {
        let _ = expr.eval(&view);
    }
    let shown = expr.to_string();
    let again = Expr::parse(&shown)
        .unwrap_or_else(|e| panic!("Display output {shown:?} of {text:?} does not parse: {e:?}"));
    assert_eq!(again, expr, "Display round trip of {text:?} via {shown:?}");
}

/// `PATTERN` or `PATTERN\nEVENT`: an event pattern, matched against the event (or a sample
/// ECS task event when none is given or it is not JSON).
pub fn pattern(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern_text, event_text) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(p) = pattern_lang::Pattern::parse(pattern_text) else { return };
    let event = serde_json::from_str(event_text).unwrap_or_else(|_| sample_event());
    let _ = p.matches(&event);
}

/// Agent protocol messages as the controller receives them (and the controller's messages as
/// the agent decodes them).
pub fn agent(data: &[u8]) {
    use berth_proto::v1::{self, agent_message::Msg};
    if let Ok(m) = v1::AgentMessage::decode(data) {
        match &m.msg {
            Some(Msg::Register(reg)) => {
                if let Ok(checked) = agent_checks::check_registration(reg) {
                    assert!(checked.attributes.len() <= agent_checks::MAX_ATTRIBUTES);
                    assert!(checked.attributes.windows(2).all(|w| w[0].name <= w[1].name));
                }
            }
            Some(Msg::TaskStatus(ts)) => {
                let _ = agent_checks::decode_task_report(&ts.json);
            }
            Some(Msg::ContainerStats(cs)) => {
                let _ = agent_checks::decode_stats(&cs.json);
            }
            Some(Msg::Heartbeat(_)) | None => {}
        }
        // Re-encoding a decoded message decodes to the same message.
        let again = v1::AgentMessage::decode(m.encode_to_vec().as_slice()).expect("re-decode");
        assert_eq!(again, m);
    }
    if let Ok(m) = v1::ControllerMessage::decode(data)
        && let Some(v1::controller_message::Msg::Assignments(a)) = &m.msg
    {
        for assignment in &a.tasks {
            let _ = serde_json::from_str::<berth_proto::model::Task>(&assignment.task_json);
            let _ = serde_json::from_str::<berth_proto::model::TaskDefinition>(
                &assignment.task_definition_json,
            );
        }
    }
}

fn sample_views() -> Vec<berth_scheduler::InstanceView> {
    let mut a = berth_scheduler::InstanceView {
        id: "0123456789abcdef0123456789abcdef".into(),
        active: true,
        agent_connected: true,
        remaining_cpu: 1024,
        remaining_memory: 2048,
        registered_at_millis: 1_700_000_000_000,
        running_tasks_count: 3,
        agent_version: "1.14.5".into(),
        ..Default::default()
    };
    a.attributes.insert("ecs.availability-zone".into(), "us-east-1a".into());
    a.attributes.insert("ecs.instance-type".into(), "t2.micro".into());
    a.attributes.insert("ecs.os-type".into(), "linux".into());
    a.attributes.insert("flag".into(), String::new());
    a.tasks_by_group.insert("service:web".into(), 2);
    vec![a, berth_scheduler::InstanceView::default()]
}

fn sample_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "3317b2af-7005-47d2-8d3c-3ae9a1b1a2a1",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "111122223333",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ecs:us-east-1:111122223333:task/default/abc"],
        "detail": {
            "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/default",
            "lastStatus": "RUNNING",
            "desiredStatus": "RUNNING",
            "cpu": "256",
            "containers": [{"name": "web", "exitCode": 0, "networkInterfaces": [{"privateIpv4Address": "10.0.0.5"}]}],
            "version": 3
        }
    })
}

/// Seeds of the `agent` target: one encoded message of each kind, as a real agent sends them
/// (binary, so generated here rather than kept as files).
pub fn agent_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use berth_proto::v1::{self, agent_message::Msg};
    let register = v1::RegisterAgent {
        cluster: "default".into(),
        instance_id: "0123456789abcdef0123456789abcdef".into(),
        attributes: [
            ("ecs.os-type", "linux"),
            ("ecs.availability-zone", "us-east-1a"),
            ("flag", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        cpu: 2048,
        memory: 3900,
        reserved_ports: vec![22, 2375, 51678],
        agent_version: "0.1.0".into(),
        docker_version: "27.5.1".into(),
        hostname: "host-1".into(),
        agent_endpoint: "http://10.0.0.5:51678".into(),
    };
    let report = serde_json::json!({
        "taskId": "5e1b2c3d4e5f60718293a4b5c6d7e8f9",
        "lastStatus": "STOPPED",
        "containers": [{"name": "web", "lastStatus": "STOPPED", "exitCode": 1, "reason": "OOMKilled"}],
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "pullStartedAt": 1700000000000i64,
        "healthStatus": "UNHEALTHY"
    });
    let stats = serde_json::json!({"samples": [{"taskId": "5e1b2c3d4e5f60718293a4b5c6d7e8f9", "container": "web", "cpuPercent": 12.5, "memoryMib": 64.0}]});
    let msgs = [
        ("register", Msg::Register(register)),
        ("heartbeat", Msg::Heartbeat(v1::Heartbeat { seq: 42 })),
        (
            "task-status",
            Msg::TaskStatus(v1::TaskStatusReport {
                task_id: "5e1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
                json: report.to_string(),
            }),
        ),
        ("stats", Msg::ContainerStats(v1::ContainerStatsReport { json: stats.to_string() })),
    ];
    msgs.into_iter()
        .map(|(name, msg)| (name, v1::AgentMessage { msg: Some(msg) }.encode_to_vec()))
        .collect()
}
