//! End to end, with real containers: a DAEMON service on `berth dev`'s agent runs one task; a
//! second `berth-agent` process (its own data dir, same controller) gets its task within seconds;
//! draining that instance stops its daemon task. Needs a Docker daemon (skips without one unless
//! BERTH_REQUIRE_DOCKER=1).

use berth_tests::agent::AgentProcess;
use berth_tests::*;
use std::time::{Duration, Instant};

/// The service's RUNNING tasks, by instance id.
fn running_on(dev: &Dev, service: &str) -> Vec<(String, String)> {
    let tasks = dev.json(&["task", "list", "--service", service]);
    let mut out: Vec<(String, String)> = tasks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["lastStatus"] == "RUNNING" && t["desiredStatus"] == "RUNNING")
        .map(|t| (instance_of(t), task_id(t)))
        .collect();
    out.sort();
    out
}

#[test]
fn daemon_runs_one_task_per_instance_follows_new_ones_and_leaves_drained_ones() {
    if !require_docker("daemon_runs_one_task_per_instance_follows_new_ones_and_leaves_drained_ones")
    {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(&dir.path().join("dev"), &[]);
    let first = dev.json(&["instance", "list"])[0]["ec2InstanceId"].as_str().unwrap().to_string();
    let td = dir.path().join("logs.json");
    std::fs::write(
        &td,
        r#"{"family": "logs", "containerDefinitions": [
            {"name": "logs", "image": "berth/httpd:1", "memory": 32, "essential": true}]}"#,
    )
    .unwrap();
    dev.json(&["taskdef", "register", td.to_str().unwrap()]);

    // One instance: one daemon task, and the count says so.
    let svc = dev.json(&[
        "service",
        "create",
        "logs",
        "--taskdef",
        "logs",
        "--scheduling-strategy",
        "DAEMON",
    ]);
    assert_eq!(svc["schedulingStrategy"], "DAEMON");
    assert_eq!(svc["deploymentConfiguration"]["maximumPercent"], 100);
    assert_eq!(svc["deploymentConfiguration"]["minimumHealthyPercent"], 0);
    let on_first = wait_until(
        "the daemon task RUNNING on the first instance",
        Duration::from_secs(60),
        || {
            let r = running_on(&dev, "logs");
            (r.len() == 1 && r[0].0 == first).then_some(r)
        },
    );
    let first_task = on_first[0].1.clone();
    wait_until("desiredCount 1", Duration::from_secs(10), || {
        (dev.json(&["service", "describe", "logs"])["desiredCount"] == 1).then_some(())
    });

    // A second agent joins: it gets its own task within seconds; the first task is untouched.
    let agent = AgentProcess::start(&dev.endpoint, &dir.path().join("agent2"), &[]);
    let second =
        wait_until("the second agent registered and connected", Duration::from_secs(30), || {
            let id = Some(agent.instance_id()).filter(|i| !i.is_empty())?;
            let list = dev.json(&["instance", "list"]);
            list.as_array()?
                .iter()
                .any(|i| i["ec2InstanceId"] == id.as_str() && i["agentConnected"] == true)
                .then_some(id)
        });
    assert_ne!(second, first);
    let joined = Instant::now();
    let both =
        wait_until("a daemon task RUNNING on the second instance", Duration::from_secs(30), || {
            let r = running_on(&dev, "logs");
            (r.len() == 2 && r.iter().any(|(i, _)| *i == second)).then_some(r)
        });
    eprintln!("the new instance ran its daemon task {:?} after it connected", joined.elapsed());
    assert!(both.iter().any(|(i, t)| *i == first && *t == first_task), "{both:?}");
    let second_task = both.iter().find(|(i, _)| *i == second).map(|(_, t)| t.clone()).unwrap();
    assert_eq!(docker_containers_with_label("berth.task-id", &second_task).len(), 1);
    wait_until("desiredCount 2", Duration::from_secs(10), || {
        (dev.json(&["service", "describe", "logs"])["desiredCount"] == 2).then_some(())
    });

    // Drain the second instance: its daemon task stops and none replaces it anywhere.
    let out = dev.berth(&["instance", "drain", &second]);
    assert!(out.status.success(), "drain: {}", String::from_utf8_lossy(&out.stderr));
    wait_until(
        "the drained instance's daemon task STOPPED, its container gone",
        Duration::from_secs(60),
        || {
            let t = dev.json(&["task", "describe", &second_task]);
            (t["lastStatus"] == "STOPPED"
                && docker_containers_with_label("berth.task-id", &second_task).is_empty())
            .then_some(())
        },
    );
    let t = dev.json(&["task", "describe", &second_task]);
    assert_eq!(t["stopCode"], "ServiceSchedulerInitiated");
    wait_until("desiredCount 1 after the drain", Duration::from_secs(10), || {
        (dev.json(&["service", "describe", "logs"])["desiredCount"] == 1).then_some(())
    });
    assert_eq!(running_on(&dev, "logs"), vec![(first.clone(), first_task.clone())]);

    // Clean up: a daemon is deleted without --force; its last task stops, its container goes.
    dev.json(&["service", "delete", "logs"]);
    wait_until("the daemon's containers are gone", Duration::from_secs(60), || {
        docker_containers_with_label("berth.task-id", &first_task).is_empty().then_some(())
    });
    drop(agent);
    dev.stop();
}
