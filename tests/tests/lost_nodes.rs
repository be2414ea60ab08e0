//! Lost nodes, end to end with real containers: `berth dev` (controller + agent A) and a second
//! real `berth-agent` (B) on the same Docker engine. A service of 3 spreads over both; B is
//! SIGKILLed and kept away: after the (short, configured) lost timeout its tasks are STOPPED in
//! the store and replaced on A. B restarts: its full assignment set lacks the lost tasks, so it
//! stops and removes their containers; `docker ps` and the store agree, with no duplicate.
//! Needs a Docker daemon (skips without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::agent::AgentProcess;
use berth_tests::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// The lost timeout given to the controller (`--lost-after-secs`).
const LOST_AFTER_SECS: i64 = 3;

const TASKDEF: &str = r#"{"family": "lostweb", "containerDefinitions": [
  {"name": "web", "image": "berth/httpd:1", "memory": 32, "essential": true,
   "portMappings": [{"containerPort": 8080, "hostPort": 0}]}]}"#;

/// The service's tasks with desired status RUNNING (ECS ListTasks' default).
fn live_tasks(dev: &Dev) -> Vec<Value> {
    dev.json(&["task", "list", "--service", "lostweb"]).as_array().cloned().unwrap_or_default()
}

/// Ids of the *running* Docker containers carrying a label `key=value`.
fn running_containers(key: &str, value: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter", &format!("label={key}={value}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn instance(dev: &Dev, id: &str) -> Value {
    dev.json(&["instance", "describe", id])
}

#[test]
fn lost_agent_tasks_move_and_its_replaced_containers_stop_when_it_returns() {
    if !require_docker("lost_agent_tasks_move_and_its_replaced_containers_stop_when_it_returns") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let lost_after = LOST_AFTER_SECS.to_string();
    let mut dev = Dev::start(&dir.path().join("dev"), &["--lost-after-secs", &lost_after]);
    // The controller lists the agent as soon as it registers, a moment before the agent has
    // written the id it was given.
    let a = wait_until("dev's agent wrote its instance id", Duration::from_secs(30), || {
        let id = std::fs::read_to_string(dir.path().join("dev/agent/instance-id")).ok()?;
        let id = id.trim().to_string();
        (!id.is_empty()).then_some(id)
    });
    let mut agent_b = AgentProcess::start(&dev.endpoint, &dir.path().join("agent-b"), &[]);
    let b = wait_until("agent B registered and connected", Duration::from_secs(60), || {
        let id = agent_b.instance_id();
        (!id.is_empty() && instance(&dev, &id)["agentConnected"] == true).then_some(id)
    });
    assert_ne!(a, b);

    let td = dir.path().join("lostweb.json");
    std::fs::write(&td, TASKDEF).unwrap();
    dev.json(&["taskdef", "register", td.to_str().unwrap()]);
    dev.json(&["service", "create", "lostweb", "--taskdef", "lostweb", "--desired-count", "3"]);
    let tasks = wait_until("3 RUNNING tasks over both instances", Duration::from_secs(90), || {
        let t = live_tasks(&dev);
        let running = t.iter().filter(|t| t["lastStatus"] == "RUNNING").count();
        let instances: BTreeSet<String> = t.iter().map(instance_of).collect();
        (t.len() == 3 && running == 3 && instances.len() == 2).then_some(t)
    });
    let on_b: Vec<String> = tasks.iter().filter(|t| instance_of(t) == b).map(task_id).collect();
    assert!(!on_b.is_empty() && on_b.len() < 3, "spread puts tasks on both: {on_b:?}");
    let b_containers: Vec<String> = running_containers("berth.instance-id", &b);
    assert_eq!(b_containers.len(), on_b.len(), "one container per task on B");

    // SIGKILL B and keep it away: disconnected at once (the instance stays ACTIVE) …
    let killed_at = epoch_secs();
    agent_b.kill();
    wait_until("B disconnected", Duration::from_secs(30), || {
        let i = instance(&dev, &b);
        (i["agentConnected"] == false).then(|| assert_eq!(i["status"], "ACTIVE"))
    });
    // … its tasks lost after the timeout and replaced on A.
    for id in &on_b {
        let t = wait_until(&format!("lost task {id} STOPPED"), Duration::from_secs(60), || {
            let t = dev.json(&["task", "describe", id]);
            (t["lastStatus"] == "STOPPED").then_some(t)
        });
        assert_eq!(t["desiredStatus"], "STOPPED");
        assert_eq!(t["stopCode"], "ServiceSchedulerInitiated");
        let reason = t["stoppedReason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!(
                "Task stopped because its container instance {b} was lost (no heartbeat for "
            )),
            "{reason}"
        );
        let stopped_at = t["stoppedAt"].as_f64().unwrap_or_default();
        assert!(
            stopped_at - killed_at >= LOST_AFTER_SECS as f64 - 0.5,
            "lost {:.1} s after the kill, before the {LOST_AFTER_SECS} s timeout",
            stopped_at - killed_at
        );
    }
    let moved = wait_until("3 RUNNING tasks, all on A", Duration::from_secs(90), || {
        let t = live_tasks(&dev);
        let ok =
            t.len() == 3 && t.iter().all(|t| t["lastStatus"] == "RUNNING" && instance_of(t) == a);
        ok.then_some(t)
    });
    assert!(moved.iter().all(|t| !on_b.contains(&task_id(t))));
    let mut lost_ids = on_b.clone();
    lost_ids.sort();
    let list: Vec<String> = lost_ids.iter().map(|id| format!("(task {id})")).collect();
    let event = format!(
        "(service lostweb) has stopped {} running tasks: {}.",
        lost_ids.len(),
        list.join(" ")
    );
    let events = dev.json(&["service", "events", "lostweb"]);
    assert!(
        events.as_array().into_iter().flatten().any(|e| e["message"] == event.as_str()),
        "no {event:?} in {events}"
    );
    // B is gone, not its containers: they still run until B is back to stop them.
    assert_eq!(running_containers("berth.instance-id", &b), b_containers);

    // B returns: it stops and removes the containers of the tasks that were replaced.
    agent_b.restart();
    wait_until("B reconnected", Duration::from_secs(60), || {
        (instance(&dev, &b)["agentConnected"] == true).then_some(())
    });
    wait_until("B's replaced containers removed", Duration::from_secs(60), || {
        docker_containers_with_label("berth.instance-id", &b).is_empty().then_some(())
    });

    // The store and Docker agree: 3 RUNNING tasks, each with exactly one running container, on A.
    let svc = dev.json(&["service", "describe", "lostweb"]);
    assert_eq!(svc["runningCount"], 3);
    let live = live_tasks(&dev);
    assert_eq!(live.len(), 3, "no extra copy in the store");
    let live_ids: BTreeSet<String> = live.iter().map(task_id).collect();
    let moved_ids: BTreeSet<String> = moved.iter().map(task_id).collect();
    assert_eq!(live_ids, moved_ids, "the replacements are the service's tasks");
    for id in &live_ids {
        assert_eq!(running_containers("berth.task-id", id).len(), 1, "task {id}");
    }
    for id in &on_b {
        assert!(docker_containers_with_label("berth.task-id", id).is_empty(), "lost task {id}");
    }
    assert_eq!(running_containers("berth.instance-id", &a).len(), 3, "no duplicate on A");
    assert!(running_containers("berth.instance-id", &b).is_empty());

    // Clean up: delete the service; its containers go.
    dev.json(&["service", "delete", "lostweb", "--force"]);
    wait_until("the service's containers are gone", Duration::from_secs(60), || {
        docker_containers_with_label("berth.instance-id", &a).is_empty().then_some(())
    });
    drop(agent_b);
    dev.stop();
}
