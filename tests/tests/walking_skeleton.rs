//! End to end, with real containers: the nginx-ec2 fixture as a service of 3, a killed container
//! replaced, scale-in, restart of `berth dev` with adoption, and an essential container's exit
//! code. Needs a Docker daemon (skips without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn running_service_tasks(dev: &Dev, service: &str) -> Vec<Value> {
    dev.json(&["task", "list", "--service", service])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .collect()
}

fn wait_running(dev: &Dev, service: &str, n: usize, timeout: Duration) -> Vec<Value> {
    wait_until(&format!("{n} RUNNING tasks with host ports in service {service}"), timeout, || {
        let tasks = running_service_tasks(dev, service);
        let all_bound = tasks.iter().all(|t| !host_ports(t).is_empty());
        let pending = dev
            .json(&["task", "list", "--service", service])
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        (tasks.len() == n && pending == n && all_bound).then_some(tasks)
    })
}

#[test]
fn nginx_service_runs_heals_scales_in_and_survives_restart() {
    if !require_docker("nginx_service_runs_heals_scales_in_and_survives_restart") {
        return;
    }
    let Some(fixtures) = fixtures_dir() else {
        eprintln!("SKIP: ../shared/fixtures is absent");
        return;
    };
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &[]);
    let instance =
        dev.json(&["instance", "list"])[0]["ec2InstanceId"].as_str().unwrap().to_string();

    // Register the real ECS task definition; awslogs is accepted with a warning.
    let file =
        fixtures.join("taskdefs/aws-samples__aws-containers-task-definitions__nginx-ec2.json");
    let out = dev.berth(&["-o", "json", "taskdef", "register", file.to_str().unwrap()]);
    assert!(out.status.success(), "register failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("awslogs"),
        "expected an awslogs warning"
    );
    let td: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(td["family"], "nginx");
    assert_eq!(td["revision"], 1);
    assert_eq!(td["status"], "ACTIVE");

    // A service of 3: three RUNNING tasks on three distinct dynamic host ports, each answering.
    let svc =
        dev.json(&["service", "create", "nginx", "--taskdef", "nginx", "--desired-count", "3"]);
    assert_eq!(svc["desiredCount"], 3);
    let tasks = wait_running(&dev, "nginx", 3, Duration::from_secs(90));
    let ports: BTreeSet<u16> = tasks.iter().flat_map(host_ports).collect();
    assert_eq!(ports.len(), 3, "three distinct host ports: {ports:?}");
    for p in &ports {
        let status =
            wait_until(&format!("HTTP on port {p}"), Duration::from_secs(15), || http_status(*p));
        assert_eq!(status, 200, "port {p}");
    }
    let described = dev.json(&["service", "describe", "nginx"]);
    assert_eq!(described["runningCount"], 3);

    // docker kill one container: the task stops (essential container exited) and is replaced.
    let victim = task_id(&tasks[0]);
    let ids = docker_containers_with_label("berth.task-id", &victim);
    assert_eq!(ids.len(), 1, "one container for task {victim}");
    assert!(
        std::process::Command::new("docker").args(["kill", &ids[0]]).status().unwrap().success()
    );
    let replaced = wait_until("the killed task is replaced", Duration::from_secs(30), || {
        let now = running_service_tasks(&dev, "nginx");
        (now.len() == 3 && now.iter().all(|t| task_id(t) != victim && !host_ports(t).is_empty())
            || now.len() == 3 && !now.iter().any(|t| task_id(t) == victim))
        .then_some(now)
    });
    assert!(replaced.iter().all(|t| task_id(t) != victim));
    let stopped = dev.json(&["task", "describe", &victim]);
    assert_eq!(stopped["lastStatus"], "STOPPED");
    assert_eq!(stopped["stopCode"], "EssentialContainerExited");
    assert_eq!(stopped["containers"][0]["exitCode"], 137);

    // Scale in to 1: two tasks STOPPED and their containers gone.
    let before: Vec<String> =
        wait_running(&dev, "nginx", 3, Duration::from_secs(30)).iter().map(task_id).collect();
    dev.json(&["service", "update", "nginx", "--desired-count", "1"]);
    let survivors = wait_running(&dev, "nginx", 1, Duration::from_secs(60));
    let survivor = task_id(&survivors[0]);
    for id in before.iter().filter(|id| **id != survivor) {
        wait_until(
            &format!("task {id} STOPPED with its containers removed"),
            Duration::from_secs(60),
            || {
                let t = dev.json(&["task", "describe", id]);
                (t["lastStatus"] == "STOPPED"
                    && docker_containers_with_label("berth.task-id", id).is_empty())
                .then_some(())
            },
        );
        let t = dev.json(&["task", "describe", id]);
        assert_eq!(t["stopCode"], "ServiceSchedulerInitiated");
    }
    let survivor_containers = docker_containers_with_label("berth.task-id", &survivor);
    assert_eq!(survivor_containers.len(), 1);

    // Restart berth dev: definitions and the service are still there, the running container is
    // adopted (same container id), and there is no duplicate.
    dev.restart();
    let td = dev.json(&["taskdef", "describe", "nginx:1"]);
    assert_eq!(td["revision"], 1);
    let svc = dev.json(&["service", "describe", "nginx"]);
    assert_eq!(svc["desiredCount"], 1);
    let after = wait_running(&dev, "nginx", 1, Duration::from_secs(60));
    assert_eq!(task_id(&after[0]), survivor, "the same task keeps running");
    // Give the agent a few reconcile rounds to (wrongly) start anything new, then check.
    wait_until("agent reports the adopted task", Duration::from_secs(30), || {
        dev.json(&["instance", "describe", &instance])["agentConnected"].as_bool().filter(|c| *c)
    });
    assert_eq!(
        docker_containers_with_label("berth.task-id", &survivor),
        survivor_containers,
        "adopted, not recreated"
    );
    // No duplicate: the instance has the survivor's container and the killed task's exited one,
    // which stays for the task cleanup wait (3600 s), also across the restart.
    let mut expected: BTreeSet<String> = survivor_containers.iter().cloned().collect();
    expected.extend(ids.iter().cloned());
    let on_instance: BTreeSet<String> =
        docker_containers_with_label("berth.instance-id", &instance).into_iter().collect();
    assert_eq!(on_instance, expected, "no duplicate containers");
    let port = host_ports(&after[0])[0];
    assert_eq!(http_status(port), Some(200));

    // Clean up: delete the service; its last task stops and its container goes.
    dev.json(&["service", "delete", "nginx", "--force"]);
    wait_until("the service's containers are gone", Duration::from_secs(60), || {
        let left: BTreeSet<String> =
            docker_containers_with_label("berth.instance-id", &instance).into_iter().collect();
        (left == ids.iter().cloned().collect()).then_some(())
    });
    dev.stop();
}

#[test]
fn essential_container_exit_code_stops_the_task() {
    if !require_docker("essential_container_exit_code_stops_the_task") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &[]);
    let td = dir.path().join("exit3.json");
    std::fs::write(
        &td,
        r#"{"family": "exit3", "containerDefinitions": [
            {"name": "main", "image": "busybox:latest", "memory": 32, "essential": true,
             "command": ["sh", "-c", "exit 3"]}]}"#,
    )
    .unwrap();
    dev.json(&["taskdef", "register", td.to_str().unwrap()]);
    let run = dev.json(&["task", "run", "--taskdef", "exit3"]);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    let id = task_id(&run["tasks"][0]);
    let t = wait_until("the task STOPPED", Duration::from_secs(60), || {
        let t = dev.json(&["task", "describe", &id]);
        (t["lastStatus"] == "STOPPED").then_some(t)
    });
    assert_eq!(t["stopCode"], "EssentialContainerExited");
    assert_eq!(t["containers"][0]["exitCode"], 3);
    assert_eq!(t["desiredStatus"], "STOPPED");
    dev.stop();
}
