//! ECS DeregisterContainerInstance end to end, with a real `berth-controller` process, a real
//! `berth-agent` process (one simulated node: no Docker needed) and the real `berth` CLI:
//! * without `--force`, an instance running a task is refused with ECS's message;
//! * with `--force`, it becomes INACTIVE, its task STOPPED (stop code `UserInitiated`), its
//!   agent's session ends, and the agent's next registration is refused (its identity is
//!   revoked): it stays INACTIVE and disconnected while the agent keeps retrying.

use berth_tests::agent::AgentProcess;
use berth_tests::cluster::ControllerCluster;
use berth_tests::{berth, berth_json, task_id, wait_until};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn deregister_refuses_running_tasks_and_force_revokes_the_agent() {
    let cluster = ControllerCluster::start(1);
    let endpoint = cluster.member(1).endpoint.clone();
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(&endpoint, &dir.path().join("agent"), &["--simulate", "1"]);
    let node_dir = dir.path().join("agent/sim-node-0");
    let id = wait_until("the simulated agent registered and connected", WAIT, || {
        let id = std::fs::read_to_string(node_dir.join("instance-id")).ok()?.trim().to_string();
        let ci = berth_json(&endpoint, &["instance", "describe", &id]).ok()?;
        (ci["agentConnected"] == true).then_some(id)
    });

    let td = dir.path().join("td.json");
    std::fs::write(
        &td,
        r#"{"family": "dereg", "containerDefinitions": [
            {"name": "app", "image": "busybox:latest", "memory": 16, "essential": true}]}"#,
    )
    .unwrap();
    berth_json(&endpoint, &["taskdef", "register", &td.to_string_lossy()]).unwrap();
    let run = berth_json(&endpoint, &["task", "run", "--taskdef", "dereg"]).unwrap();
    let task = task_id(&run["tasks"][0]);
    wait_until("the task RUNNING", WAIT, || {
        let t = berth_json(&endpoint, &["task", "describe", &task]).ok()?;
        (t["lastStatus"] == "RUNNING").then_some(())
    });

    // Without --force: ECS's refusal, and nothing changes.
    let out = berth(&endpoint, &["instance", "deregister", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "deregister without --force succeeded");
    assert!(stderr.contains("Found running tasks on the instance."), "{stderr}");
    let ci = berth_json(&endpoint, &["instance", "describe", &id]).unwrap();
    assert_eq!(ci["status"], "ACTIVE");

    // With --force: INACTIVE, the task STOPPED, the identity revoked.
    let ci = berth_json(&endpoint, &["instance", "deregister", &id, "--force"]).unwrap();
    assert_eq!(ci["status"], "INACTIVE", "{ci}");
    assert_eq!(ci["agentConnected"], false, "{ci}");
    let t = berth_json(&endpoint, &["task", "describe", &task]).unwrap();
    assert_eq!(t["lastStatus"], "STOPPED", "{t}");
    assert_eq!(t["desiredStatus"], "STOPPED", "{t}");
    assert_eq!(t["stopCode"], "UserInitiated", "{t}");
    assert_eq!(t["stoppedReason"], format!("Container instance {id} was deregistered (force)."));

    // The agent's session ended and its next registration is refused with the reason.
    let log = wait_until("the controller refused the agent's registration", WAIT, || {
        let log = cluster.log(1);
        log.contains("registration refused: the instance was deregistered").then_some(log)
    });
    assert!(log.contains("instance deregistered; closing its session"), "{log}");
    wait_until("the agent was told why", WAIT, || {
        agent.log().contains("was deregistered and its identity revoked").then_some(())
    });
    let ci = berth_json(&endpoint, &["instance", "describe", &id]).unwrap();
    assert_eq!(
        (ci["status"].as_str(), ci["agentConnected"].as_bool()),
        (Some("INACTIVE"), Some(false))
    );
    // ListContainerInstances hides it by default, as ECS does; --status INACTIVE shows it.
    let listed = berth_json(&endpoint, &["instance", "list"]).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    let inactive = berth_json(&endpoint, &["instance", "list", "--status", "INACTIVE"]).unwrap();
    assert_eq!(inactive[0]["ec2InstanceId"], id.as_str(), "{inactive}");
    drop(agent);
}

/// A real agent (Docker runtime) whose instance is deregistered stops retrying: reconnecting
/// cannot cure a revoked identity, so it exits with the reason.
#[test]
fn a_deregistered_real_agent_exits_with_the_reason() {
    if !berth_tests::require_docker("a_deregistered_real_agent_exits_with_the_reason") {
        return;
    }
    let cluster = ControllerCluster::start(1);
    let endpoint = cluster.member(1).endpoint.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut agent = AgentProcess::start(&endpoint, &dir.path().join("agent"), &[]);
    let id = wait_until("the agent registered and connected", WAIT, || {
        let id = agent.instance_id();
        let ci = berth_json(&endpoint, &["instance", "describe", &id]).ok()?;
        (ci["agentConnected"] == true).then_some(id)
    });
    let out = berth(&endpoint, &["instance", "deregister", &id, "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("the agent exited", WAIT, || agent.has_exited().then_some(()));
    let log = agent.log();
    assert!(log.contains("this instance was deregistered; exiting"), "{log}");
    assert!(log.contains("was deregistered and its identity revoked"), "{log}");
}
