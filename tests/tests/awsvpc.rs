//! End to end with real containers: an `awsvpc` task on a Berth host. A two-container task
//! whose containers share one network namespace (held by the agent's pause container, built
//! locally): B reaches A's httpd on 127.0.0.1 and exits 0; the task's `attachments` carry an
//! address in the awsvpc subnet (and the containers' `networkInterfaces` the same one), which
//! answers HTTP from the host through the bridge; the hostname is the task's private DNS name;
//! nothing is published on a host port; and once the task stops no pause container is left.
//! A second task loses its pause container to `docker kill`: the task stops, its reason naming
//! the task network.
//! Needs a Docker daemon (skips without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// Port of A's httpd inside the task (the image's default).
const PORT: u16 = 8080;

/// The default subnet of `berth dev` (`--awsvpc-subnet`).
const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 213, 0, 0), 16);

fn in_subnet(ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - u32::from(SUBNET.1));
    u32::from(ip) & mask == u32::from(SUBNET.0)
}

/// HTTP status of `GET /` at `ip:port`, if it answers.
fn http_status_at(ip: Ipv4Addr, port: u16) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: task\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf).split_whitespace().nth(1)?.parse().ok()
}

fn detail<'a>(attachment: &'a Value, name: &str) -> &'a str {
    attachment["details"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == name))
        .and_then(|d| d["value"].as_str())
        .unwrap_or("")
}

fn container<'t>(task: &'t Value, name: &str) -> &'t Value {
    task["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn docker_inspect(id: &str) -> Value {
    let out = Command::new("docker").args(["inspect", id]).output().expect("docker inspect");
    serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)[0].clone()
}

#[test]
fn awsvpc_task_shares_a_namespace_has_its_own_address_and_leaves_no_pause_container() {
    if !require_docker(
        "awsvpc_task_shares_a_namespace_has_its_own_address_and_leaves_no_pause_container",
    ) {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(
        dir.path(),
        &["--attribute", "ecs.availability-zone=eu-west-3b", "--task-cleanup-wait-secs", "2"],
    );
    // B waits for A's server on localhost, fetches a page, and stays up (essential) so the test
    // can look at the running task; its exit code is checked after the stop.
    let doc = json!({
        "family": "vpc", "networkMode": "awsvpc",
        "containerDefinitions": [
            {"name": "a", "image": "berth/httpd:1", "memory": 32,
             "portMappings": [{"containerPort": PORT, "hostPort": PORT}]},
            {"name": "b", "image": "berth/httpd:1", "memory": 32, "essential": false,
             "entryPoint": ["sh", "-c"],
             "command": [format!(
                 "for i in $(seq 1 100); do wget -q -O- http://127.0.0.1:{PORT}/ >/tmp/page && exit 0; sleep 0.1; done; exit 1"
             )]}
        ]
    });
    let path = dir.path().join("vpc.json");
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    let out = dev.berth(&["taskdef", "register", path.to_str().unwrap_or_default()]);
    assert!(out.status.success(), "register: {}", String::from_utf8_lossy(&out.stderr));
    let run = dev.json(&["task", "run", "--taskdef", "vpc"]);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    let id = task_id(&run["tasks"][0]);

    // B reached A on localhost: it exited 0 while A kept running.
    let task = wait_until(&format!("task {id}: a RUNNING, b exited"), WAIT, || {
        let t = dev.json(&["task", "describe", &id]);
        assert_ne!(t["lastStatus"], "STOPPED", "the task stopped: {t}");
        (container(&t, "a")["lastStatus"] == "RUNNING"
            && container(&t, "b")["exitCode"].is_i64()
            && !t["attachments"][0]["details"].is_null())
        .then_some(t)
    });
    assert_eq!(container(&task, "b")["exitCode"], 0, "b could not reach a on localhost: {task}");
    assert_eq!(task["containers"].as_array().map(Vec::len), Some(2), "the pause is not shown");

    // The attachment: ECS's shape, an address of the subnet, the container's interfaces.
    let att = &task["attachments"][0];
    assert_eq!(att["type"], "ElasticNetworkInterface", "{att}");
    assert_eq!(att["status"], "ATTACHED", "{att}");
    let ip: Ipv4Addr = detail(att, "privateIPv4Address").parse().expect("an IPv4 address");
    assert!(in_subnet(ip), "{ip} is not in the awsvpc subnet");
    let [o1, o2, o3, o4] = ip.octets();
    let dns = format!("ip-{o1}-{o2}-{o3}-{o4}.eu-west-3.compute.internal");
    assert_eq!(detail(att, "privateDnsName"), dns);
    assert_eq!(detail(att, "subnetId"), "berth-awsvpc");
    for name in ["a", "b"] {
        let ni = &container(&task, name)["networkInterfaces"][0];
        assert_eq!(ni["attachmentId"], att["id"], "{name}: {ni}");
        assert_eq!(ni["privateIpv4Address"], ip.to_string(), "{name}: {ni}");
        assert_eq!(container(&task, name)["networkBindings"], json!([]), "no host ports");
    }

    // The address answers from the host, through the bridge.
    let status = wait_until(&format!("HTTP from {ip}:{PORT}"), WAIT, || http_status_at(ip, PORT));
    assert_eq!(status, 200);

    // Docker agrees: the pause container holds the address, its MAC and hostname; a joins it.
    let pause = docker_containers_with_label("berth.container-name", "~internal~ecs~pause")
        .into_iter()
        .map(|c| docker_inspect(&c))
        .find(|c| c["Config"]["Labels"]["berth.task-id"] == id.as_str())
        .expect("the task's pause container");
    let net = &pause["NetworkSettings"]["Networks"]["berth-awsvpc"];
    assert_eq!(net["IPAddress"], ip.to_string(), "{net}");
    assert_eq!(net["MacAddress"], detail(att, "macAddress"), "{net}");
    assert_eq!(pause["Config"]["Hostname"], dns);
    let a_id = container(&task, "a")["runtimeId"].as_str().unwrap_or_default().to_string();
    let a = docker_inspect(&a_id);
    let pause_id = pause["Id"].as_str().unwrap_or_default();
    assert_eq!(a["HostConfig"]["NetworkMode"], format!("container:{pause_id}"));
    let out = Command::new("docker").args(["exec", &a_id, "hostname"]).output().expect("exec");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), dns, "a's hostname");

    // Stop: every container (the pause too) goes; the attachment is DELETED.
    let out = dev.berth(&["task", "stop", &id]);
    assert!(out.status.success(), "stop: {}", String::from_utf8_lossy(&out.stderr));
    let stopped = wait_until(&format!("task {id} STOPPED"), WAIT, || {
        let t = dev.json(&["task", "describe", &id]);
        (t["lastStatus"] == "STOPPED").then_some(t)
    });
    assert_eq!(stopped["attachments"][0]["status"], "DELETED", "{stopped}");
    assert_eq!(container(&stopped, "b")["exitCode"], 0);
    wait_until(&format!("no container of task {id} left, the pause included"), WAIT, || {
        docker_containers_with_label("berth.task-id", &id).is_empty().then_some(())
    });
}

#[test]
fn a_killed_pause_container_stops_the_task_naming_the_task_network() {
    if !require_docker("a_killed_pause_container_stops_the_task_naming_the_task_network") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(dir.path(), &[]);
    let doc = json!({
        "family": "vpc-kill", "networkMode": "awsvpc",
        "containerDefinitions": [
            {"name": "app", "image": "busybox:latest", "memory": 32, "stopTimeout": 2,
             "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}
        ]
    });
    let path = dir.path().join("vpc-kill.json");
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    let out = dev.berth(&["taskdef", "register", path.to_str().unwrap_or_default()]);
    assert!(out.status.success(), "register: {}", String::from_utf8_lossy(&out.stderr));
    let run = dev.json(&["task", "run", "--taskdef", "vpc-kill"]);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    let id = task_id(&run["tasks"][0]);
    wait_until(&format!("task {id} RUNNING"), WAIT, || {
        (dev.json(&["task", "describe", &id])["lastStatus"] == "RUNNING").then_some(())
    });
    let pause = docker_containers_with_label("berth.container-name", "~internal~ecs~pause")
        .into_iter()
        .find(|c| docker_inspect(c)["Config"]["Labels"]["berth.task-id"] == id.as_str())
        .expect("the task's pause container");
    let out = Command::new("docker").args(["kill", &pause]).output().expect("docker kill");
    assert!(out.status.success(), "kill: {}", String::from_utf8_lossy(&out.stderr));
    let stopped = wait_until(&format!("task {id} STOPPED"), WAIT, || {
        let t = dev.json(&["task", "describe", &id]);
        (t["lastStatus"] == "STOPPED").then_some(t)
    });
    assert_eq!(stopped["stopCode"], "EssentialContainerExited", "{stopped}");
    assert_eq!(
        stopped["stoppedReason"], "Task network namespace (pause container) exited",
        "{stopped}"
    );
    assert_eq!(container(&stopped, "app")["exitCode"], 0, "app was stopped by the agent");
}
