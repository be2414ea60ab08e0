//! Restart and reconnection (issue 7), with a real `berth-controller` process, a real
//! `berth-agent` process and real Docker containers:
//! * the agent is SIGKILLed while tasks run and one task's container exits meanwhile: the
//!   restarted agent adopts the running task (same container, no duplicate) and reports the
//!   exited one STOPPED with its true exit code;
//! * the controller is SIGKILLed while a task runs and two of its containers exit one after
//!   the other: the containers are not touched meanwhile, and when the controller is back the
//!   agent delivers both transitions in order (the event log shows the intermediate state, a
//!   RUNNING task with one container exited, before the STOPPED one).
//!
//! Containers wait for trigger files in a bind-mounted host directory, so the test decides when
//! each one exits; every wait has a deadline.

use berth_tests::cluster::ControllerCluster;
use berth_tests::{
    agent::AgentProcess, berth, berth_json, docker_containers_with_label, ensure_images,
    require_docker, task_id, wait_until,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A container that runs until `/trig/<file>` exists, then exits with `code`.
fn waiter(name: &str, file: &str, code: i32, essential: bool) -> Value {
    serde_json::json!({
        "name": name, "image": "busybox:latest", "memory": 16, "essential": essential,
        "stopTimeout": 1,
        "command": ["sh", "-c", format!("until [ -f /trig/{file} ]; do sleep 0.1; done; exit {code}")],
        "mountPoints": [{"sourceVolume": "trig", "containerPath": "/trig"}]
    })
}

fn register(endpoint: &str, dir: &Path, family: &str, containers: Vec<Value>) {
    let td = serde_json::json!({
        "family": family,
        "volumes": [{"name": "trig", "host": {"sourcePath": dir.join("trig").to_string_lossy()}}],
        "containerDefinitions": containers,
    });
    let path = dir.join(format!("{family}.json"));
    std::fs::write(&path, td.to_string()).expect("writing the task definition");
    berth_json(endpoint, &["taskdef", "register", &path.to_string_lossy()])
        .unwrap_or_else(|e| panic!("register {family}: {e}"));
}

fn run_task(endpoint: &str, family: &str) -> String {
    let run = berth_json(endpoint, &["task", "run", "--taskdef", family])
        .unwrap_or_else(|e| panic!("run {family}: {e}"));
    assert_eq!(run["failures"].as_array().map(Vec::len), Some(0), "{run}");
    task_id(&run["tasks"][0])
}

fn describe(endpoint: &str, id: &str) -> Option<Value> {
    berth_json(endpoint, &["task", "describe", id]).ok()
}

fn wait_status(endpoint: &str, id: &str, status: &str) -> Value {
    wait_until(&format!("task {id} {status}"), WAIT, || {
        describe(endpoint, id).filter(|t| t["lastStatus"] == status)
    })
}

fn trigger(dir: &Path, file: &str) {
    std::fs::write(dir.join("trig").join(file), b"go").expect("writing a trigger file");
}

/// `docker inspect` state of the task's container `name`: (status, exit code).
fn engine_state(task: &str, name: &str) -> Option<(String, i64)> {
    let ids = docker_containers_with_label("berth.task-id", task);
    for id in ids {
        let out = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{index .Config.Labels \"berth.container-name\"}} {{.State.Status}} {{.State.ExitCode}}",
                &id,
            ])
            .output()
            .ok()?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let parts: Vec<&str> = line.split(' ').collect();
        if let [n, status, code] = parts.as_slice()
            && *n == name
        {
            return Some((status.to_string(), code.parse().ok()?));
        }
    }
    None
}

fn exit_code(task: &Value, container: &str) -> Option<i64> {
    task["containers"].as_array()?.iter().find(|c| c["name"] == container)?["exitCode"].as_i64()
}

#[test]
fn restarted_agent_adopts_running_tasks_and_reports_exits_that_happened_while_it_was_down() {
    if !require_docker("restarted_agent_adopts_running_tasks_and_reports_exits") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("trig")).expect("trigger dir");
    let cluster = ControllerCluster::start(1);
    let endpoint = cluster.endpoints()[0].clone();
    let mut agent = AgentProcess::start(&endpoint, &dir.path().join("agent"), &[]);
    wait_until("the agent registered", WAIT, || (!agent.instance_id().is_empty()).then_some(()));

    register(&endpoint, dir.path(), "keeps", vec![waiter("main", "never", 0, true)]);
    register(&endpoint, dir.path(), "exits", vec![waiter("main", "exit-now", 7, true)]);
    let keeps = run_task(&endpoint, "keeps");
    let exits = run_task(&endpoint, "exits");
    let keeps_before = wait_status(&endpoint, &keeps, "RUNNING");
    wait_status(&endpoint, &exits, "RUNNING");
    let container_before = keeps_before["containers"][0]["runtimeId"].clone();
    assert!(container_before.is_string(), "{keeps_before}");

    // Kill the agent (no shutdown path runs); one task's container exits while it is away.
    agent.kill();
    trigger(dir.path(), "exit-now");
    wait_until("the engine shows the container exited 7", WAIT, || {
        engine_state(&exits, "main").filter(|(s, c)| s == "exited" && *c == 7)
    });
    assert_eq!(
        describe(&endpoint, &exits).map(|t| t["lastStatus"].clone()),
        Some(Value::from("RUNNING")),
        "nobody told the controller yet"
    );

    agent.restart();
    let stopped = wait_status(&endpoint, &exits, "STOPPED");
    assert_eq!(exit_code(&stopped, "main"), Some(7), "{stopped}");
    assert_eq!(stopped["stopCode"], "EssentialContainerExited", "{stopped}");
    // The running task was adopted: same container, still running, no second one.
    let keeps_after = describe(&endpoint, &keeps).expect("describe keeps");
    assert_eq!(keeps_after["lastStatus"], "RUNNING", "{keeps_after}");
    assert_eq!(keeps_after["containers"][0]["runtimeId"], container_before);
    assert_eq!(docker_containers_with_label("berth.task-id", &keeps).len(), 1);
    assert_eq!(engine_state(&keeps, "main").map(|(s, _)| s), Some("running".to_string()));
    let log = agent.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn state_changes_during_a_controller_outage_are_delivered_in_order_when_it_returns() {
    if !require_docker("state_changes_during_a_controller_outage_are_delivered_in_order") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("trig")).expect("trigger dir");
    let mut cluster = ControllerCluster::start(1);
    let endpoint = cluster.endpoints()[0].clone();
    let agent = AgentProcess::start(&endpoint, &dir.path().join("agent"), &[]);
    wait_until("the agent registered", WAIT, || (!agent.instance_id().is_empty()).then_some(()));
    register(
        &endpoint,
        dir.path(),
        "outage",
        vec![waiter("app", "app-exit", 3, true), waiter("side", "side-exit", 5, false)],
    );
    let id = run_task(&endpoint, "outage");
    wait_status(&endpoint, &id, "RUNNING");

    // The controller dies; two transitions happen while it is away.
    cluster.crash(1);
    trigger(dir.path(), "side-exit");
    wait_until("side exited in the engine", WAIT, || {
        engine_state(&id, "side").filter(|(s, c)| s == "exited" && *c == 5)
    });
    // The agent has seen it (and queued the report) before the next exit happens.
    let noticed = |container: &str| {
        // The agent's line for it: "container stopped task_id=… container=NAME exit_code=…"
        // (field names may be wrapped in ANSI colour codes).
        wait_until(&format!("the agent noticed {container}'s exit"), WAIT, || {
            let log = agent.log();
            log.lines()
                .any(|l| {
                    l.contains("container stopped") && l.contains(&id) && l.contains(container)
                })
                .then_some(())
        });
    };
    noticed("side");
    assert_eq!(
        engine_state(&id, "app").map(|(s, _)| s),
        Some("running".to_string()),
        "containers keep running while the controller is away"
    );
    trigger(dir.path(), "app-exit");
    wait_until("app exited in the engine", WAIT, || {
        engine_state(&id, "app").filter(|(s, c)| s == "exited" && *c == 3)
    });
    noticed("app");

    cluster.restart(1);
    let stopped = wait_status(&endpoint, &id, "STOPPED");
    assert_eq!(exit_code(&stopped, "app"), Some(3), "{stopped}");
    assert_eq!(exit_code(&stopped, "side"), Some(5), "{stopped}");

    // The event log has the intermediate state before the final one.
    let out = berth(&endpoint, &["events", "--from-index", "0", "--type", "task"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let details: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| e["detail"].clone())
        .filter(|d| d["taskArn"].as_str().is_some_and(|a| a.ends_with(&id)))
        .collect();
    let side_only = details
        .iter()
        .position(|d| {
            d["lastStatus"] == "RUNNING"
                && exit_code(d, "side") == Some(5)
                && exit_code(d, "app").is_none()
        })
        .unwrap_or_else(|| panic!("no event with only side exited: {details:#?}"));
    let final_ = details
        .iter()
        .position(|d| d["lastStatus"] == "STOPPED")
        .unwrap_or_else(|| panic!("no STOPPED event: {details:#?}"));
    assert!(side_only < final_, "{details:#?}");
    let versions: Vec<u64> = details.iter().filter_map(|d| d["version"].as_u64()).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions increase: {versions:?}");
}
