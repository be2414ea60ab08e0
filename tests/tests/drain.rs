//! Draining, end to end with real containers (issue 5's proof): a service of 3 on instance A,
//! a second real `berth-agent` B joins, `berth instance drain A --wait` moves the tasks to B and
//! returns only once every task on A is STOPPED **and** the replacements on B are healthy
//! (RUNNING for the settle time; `berth dev --task-settle-secs 3`). Needs a Docker daemon
//! (skips without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::agent::AgentProcess;
use berth_tests::*;
use serde_json::Value;
use std::time::Duration;

const SETTLE_SECS: f64 = 3.0;

const TASKDEF: &str = r#"{"family": "drainweb", "containerDefinitions": [
  {"name": "web", "image": "berth/httpd:1", "memory": 32, "essential": true,
   "portMappings": [{"containerPort": 8080, "hostPort": 0}]}]}"#;

fn all_tasks(dev: &Dev) -> Vec<Value> {
    let mut t = dev
        .json(&["task", "list", "--service", "drainweb"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    t.extend(
        dev.json(&["task", "list", "--service", "drainweb", "--desired-status", "STOPPED"])
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    t
}

#[test]
fn drain_wait_returns_only_after_tasks_stopped_and_replacements_healthy() {
    if !require_docker("drain_wait_returns_only_after_tasks_stopped_and_replacements_healthy") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(&dir.path().join("dev"), &["--task-settle-secs", "3"]);
    let a = wait_until("dev's agent wrote its instance id", Duration::from_secs(30), || {
        let id = std::fs::read_to_string(dir.path().join("dev/agent/instance-id")).ok()?;
        let id = id.trim().to_string();
        (!id.is_empty()).then_some(id)
    });
    let td = dir.path().join("drainweb.json");
    std::fs::write(&td, TASKDEF).unwrap();
    dev.json(&["taskdef", "register", td.to_str().unwrap()]);
    dev.json(&["service", "create", "drainweb", "--taskdef", "drainweb", "--desired-count", "3"]);
    let on_a = wait_until("3 RUNNING tasks on A", Duration::from_secs(90), || {
        let t = dev.json(&["task", "list", "--service", "drainweb"]);
        let t = t.as_array()?.clone();
        (t.len() == 3 && t.iter().all(|t| t["lastStatus"] == "RUNNING" && instance_of(t) == a))
            .then_some(t)
    });
    let moved: Vec<String> = on_a.iter().map(task_id).collect();

    let agent_b = AgentProcess::start(&dev.endpoint, &dir.path().join("agent-b"), &[]);
    let b = wait_until("agent B registered and connected", Duration::from_secs(60), || {
        let id = agent_b.instance_id();
        (!id.is_empty() && dev.json(&["instance", "describe", &id])["agentConnected"] == true)
            .then_some(id)
    });

    let out = dev.berth(&["instance", "drain", &a, "--wait", "--timeout", "180s"]);
    let returned_at = epoch_secs();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drain --wait failed: {stderr}");
    assert!(stderr.contains("service tasks left"), "progress lines on stderr: {stderr}");

    // When --wait returned: every task that was on A is STOPPED, and B runs 3 healthy tasks.
    for id in &moved {
        let t = dev.json(&["task", "describe", id]);
        assert_eq!(t["lastStatus"], "STOPPED", "task {id} on the drained instance: {t}");
    }
    let tasks = all_tasks(&dev);
    let live_on_a =
        tasks.iter().filter(|t| instance_of(t) == a && t["lastStatus"] != "STOPPED").count();
    assert_eq!(live_on_a, 0, "service tasks left on the drained instance");
    let healthy_on_b: Vec<&Value> = tasks
        .iter()
        .filter(|t| {
            instance_of(t) == b
                && t["lastStatus"] == "RUNNING"
                && t["desiredStatus"] == "RUNNING"
                && t["startedAt"].as_f64().is_some_and(|s| returned_at - s >= SETTLE_SECS)
        })
        .collect();
    assert_eq!(healthy_on_b.len(), 3, "3 replacements RUNNING ≥ {SETTLE_SECS} s on B: {tasks:#?}");
    let a_desc = dev.json(&["instance", "describe", &a]);
    assert_eq!(a_desc["status"], "DRAINING");
    assert_eq!(a_desc["runningTasksCount"], 0);
    let progress = &a_desc["drainProgress"];
    assert_eq!(progress["complete"], true, "{a_desc}");
    assert_eq!(progress["serviceTasksRemaining"], 0);
    assert_eq!(progress["services"][0]["serviceName"], "drainweb");
    assert_eq!(progress["services"][0]["healthyElsewhere"], 3);
    assert!(
        docker_containers_with_label("berth.instance-id", &a).is_empty(),
        "A's containers removed"
    );

    // Activate A again: drain progress is gone from describe.
    let active = dev.json(&["instance", "activate", &a]);
    assert_eq!(active["status"], "ACTIVE");
    assert!(active.get("drainProgress").is_none(), "{active}");

    dev.json(&["service", "delete", "drainweb", "--force"]);
    wait_until("the service's containers are gone", Duration::from_secs(60), || {
        docker_containers_with_label("berth.instance-id", &b).is_empty().then_some(())
    });
    drop(agent_b);
    dev.stop();
}
