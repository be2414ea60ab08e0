//! End to end with real containers: the task metadata endpoint v4 and container stats.
//!
//! Two bridge-mode tasks run under `berth dev` (stats every second). Task A's container reads
//! `$ECS_CONTAINER_METADATA_URI_V4`, `…/task` and `…/stats` with busybox `wget` and prints what
//! it got; it also asks for task B's URI (which the test hands it in its environment, as an
//! attacker that learnt it would have it) and for a made-up token: 403 and 404. The host asking
//! for B's URI from its own address is refused too. Then `berth task describe -o json` shows the
//! container's `stats` (CPU units, MiB), and a stopped task keeps its last sample. An awsvpc
//! container sees its task's interface and declared ports; a host-mode one reads `${URI}/`, sees
//! `{"NetworkMode": "host"}` and its ports, and its task reports host-mode `networkBindings`.
//! Needs a Docker
//! daemon (skips without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn register(dev: &Dev, dir: &Path, doc: &Value) {
    let family = doc["family"].as_str().unwrap_or_default();
    let path = dir.join(format!("{family}.json"));
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    let out = dev.berth(&["-o", "json", "taskdef", "register", path.to_str().unwrap_or_default()]);
    assert!(out.status.success(), "register failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn run(dev: &Dev, family: &str) -> Value {
    let run = dev.json(&["task", "run", "--taskdef", family]);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    run["tasks"][0].clone()
}

fn wait_task(dev: &Dev, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_until(&format!("task {id}: {what}"), WAIT, || {
        let t = dev.json(&["task", "describe", id]);
        f(&t).then_some(t)
    })
}

/// `docker inspect` of the one container of task `id`.
fn inspect_only_container(id: &str) -> Value {
    let ids = docker_containers_with_label("berth.task-id", id);
    assert_eq!(ids.len(), 1, "task {id} has one container: {ids:?}");
    let out = Command::new("docker").args(["inspect", &ids[0]]).output().expect("docker inspect");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v[0].clone()
}

fn env_var(container: &Value, name: &str) -> Option<String> {
    container["Config"]["Env"]
        .as_array()?
        .iter()
        .find_map(|e| e.as_str()?.strip_prefix(&format!("{name}=")).map(str::to_string))
}

fn docker_logs(container_id: &str) -> String {
    let out = Command::new("docker").args(["logs", container_id]).output().expect("docker logs");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn line<'a>(logs: &'a str, key: &str) -> &'a str {
    logs.lines().find_map(|l| l.strip_prefix(key)).unwrap_or("")
}

/// The status code of `GET path` on `addr`, from this (the host's) address.
fn host_get_status(host: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&host.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf).split_whitespace().nth(1)?.parse().ok()
}

const PROBE: &str = r#"U="$ECS_CONTAINER_METADATA_URI_V4"
wget -q -O /tmp/task "$U/task" || { echo PROBE-FAIL task; exit 11; }
echo "TASK_JSON=$(cat /tmp/task)"
wget -q -O /tmp/self "$U" || { echo PROBE-FAIL self; exit 12; }
echo "SELF_JSON=$(cat /tmp/self)"
wget -q -O /tmp/stats "$U/stats" || { echo PROBE-FAIL stats; exit 13; }
grep -q '"memory_stats"' /tmp/stats && echo STATS_HAS_MEMORY
echo "OTHER=$(wget -S -O /dev/null "$OTHER_URI/task" 2>&1 | grep -o 'HTTP/1.[01] [0-9]*' | head -n1)"
echo "UNKNOWN=$(wget -S -O /dev/null "${U%/v4/*}/v4/not-a-token/task" 2>&1 | grep -o 'HTTP/1.[01] [0-9]*' | head -n1)"
echo PROBE-DONE
trap 'exit 0' TERM
while true; do sleep 1; done"#;

const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

#[test]
fn containers_read_their_own_task_metadata_and_stats_reach_task_describe() {
    if !require_docker("containers_read_their_own_task_metadata_and_stats_reach_task_describe") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(&dir.path().join("dev"), &["--stats-interval-secs", "1"]);

    // Task B: only idles. Its URI is what task A must not be able to use.
    register(
        &dev,
        dir.path(),
        &json!({"family": "meta-b", "containerDefinitions": [
            {"name": "idle", "image": "busybox:latest", "memory": 32,
             "entryPoint": ["sh", "-c"], "command": [IDLE]}
        ]}),
    );
    let b = run(&dev, "meta-b");
    let b_id = task_id(&b);
    wait_task(&dev, &b_id, "RUNNING", |t| t["lastStatus"] == "RUNNING");
    let b_container = inspect_only_container(&b_id);
    let b_uri = env_var(&b_container, "ECS_CONTAINER_METADATA_URI_V4")
        .unwrap_or_else(|| panic!("task B's container has the URI: {}", b_container["Config"]));
    let (b_host, b_token) = {
        let rest = b_uri.strip_prefix("http://").unwrap_or_default();
        let (host, path) = rest.split_once('/').unwrap_or_default();
        (host.to_string(), path.strip_prefix("v4/").unwrap_or_default().to_string())
    };
    assert!(b_host.starts_with("172.") || b_host.contains('.'), "bridge gateway address: {b_uri}");
    assert_eq!(b_token.len(), 32, "a UUID's 32 hex characters: {b_uri}");
    assert_eq!(
        b_container["Config"]["Labels"]["berth.metadata-token"], b_token,
        "the token is on the container, for an agent restart"
    );

    // Task A: reads its own metadata and tries B's.
    register(
        &dev,
        dir.path(),
        &json!({"family": "meta-a", "containerDefinitions": [
            {"name": "probe", "image": "busybox:latest", "memory": 64,
             "environment": [{"name": "OTHER_URI", "value": b_uri}],
             "entryPoint": ["sh", "-c"], "command": [PROBE]}
        ]}),
    );
    let a = run(&dev, "meta-a");
    let a_id = task_id(&a);
    let a_arn = a["taskArn"].as_str().unwrap_or_default().to_string();
    wait_task(&dev, &a_id, "RUNNING", |t| {
        t["lastStatus"] == "RUNNING" || t["lastStatus"] == "STOPPED"
    });
    let a_container = inspect_only_container(&a_id);
    let a_docker_id = a_container["Id"].as_str().unwrap_or_default().to_string();
    let logs = wait_until("task A's probe finished", WAIT, || {
        let logs = docker_logs(&a_docker_id);
        assert!(!logs.contains("PROBE-FAIL"), "the probe failed: {logs}");
        logs.contains("PROBE-DONE").then_some(logs)
    });

    let task: Value = serde_json::from_str(line(&logs, "TASK_JSON=")).unwrap_or(Value::Null);
    assert_eq!(task["TaskARN"], a_arn.as_str(), "{logs}");
    assert_eq!(task["Cluster"], "default");
    assert_eq!(task["Family"], "meta-a");
    assert_eq!(task["Revision"], "1");
    assert_eq!(task["DesiredStatus"], "RUNNING");
    let c = &task["Containers"][0];
    assert_eq!(c["Name"], "probe", "{task}");
    assert_eq!(c["DockerId"], a_docker_id.as_str());
    assert_eq!(c["Image"], "busybox:latest");
    assert_eq!(c["Limits"]["Memory"], 64);
    assert_eq!(c["Labels"]["com.amazonaws.ecs.task-arn"], a_arn.as_str());
    assert!(c["Labels"].get("berth.metadata-token").is_none(), "the token is not shown: {c}");
    let ip = a_container["NetworkSettings"]["Networks"]["bridge"]["IPAddress"].clone();
    assert_eq!(c["Networks"][0]["NetworkMode"], "bridge");
    assert_eq!(c["Networks"][0]["IPv4Addresses"][0], ip, "{c}");
    let own: Value = serde_json::from_str(line(&logs, "SELF_JSON=")).unwrap_or(Value::Null);
    assert_eq!(own["Name"], "probe", "{logs}");
    assert!(logs.contains("STATS_HAS_MEMORY"), "{logs}");
    assert!(line(&logs, "OTHER=").ends_with(" 403"), "task A asking for B's URI: {logs}");
    assert!(line(&logs, "UNKNOWN=").ends_with(" 404"), "a made-up token: {logs}");
    // The host itself is not task B either.
    assert_eq!(host_get_status(&b_host, &format!("/v4/{b_token}/task")), Some(403));

    // Stats reach the task through the controller: memory from the first sample, CPU (units)
    // from the second.
    let t = wait_task(&dev, &a_id, "container stats with CPU", |t| {
        t["containers"][0]["stats"]["cpuUtilized"].is_number()
    });
    let stats = &t["containers"][0]["stats"];
    assert!(stats["memoryUtilized"].as_f64().is_some_and(|m| m > 0.0), "{stats}");
    assert_eq!(stats["memoryLimit"], 64.0, "{stats}");
    assert!(stats["cpuUtilized"].as_f64().is_some_and(|c| c >= 0.0), "{stats}");
    assert!(stats["sampledAt"].as_f64().is_some_and(|s| s > 1.0e9), "{stats}");
    let table =
        String::from_utf8_lossy(&dev.berth(&["task", "describe", &a_id]).stdout).to_string();
    assert!(table.contains("CPU (units)") && table.contains("MEM (MiB)"), "{table}");
    assert!(table.contains("/64"), "memory in use over the 64 MiB limit: {table}");

    // A stopped task keeps its last sample.
    let out = dev.berth(&["task", "stop", &a_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stopped = wait_task(&dev, &a_id, "STOPPED", |t| t["lastStatus"] == "STOPPED");
    assert!(stopped["containers"][0]["stats"]["memoryUtilized"].is_number(), "{stopped}");
}

/// `docker inspect` of task `id`'s container named `name` in its definition.
fn inspect_container(id: &str, name: &str) -> Value {
    docker_containers_with_label("berth.task-id", id)
        .into_iter()
        .find_map(|cid| {
            let out = Command::new("docker").args(["inspect", &cid]).output().ok()?;
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let c = v.get(0)?.clone();
            (c["Config"]["Labels"]["berth.container-name"] == name).then_some(c)
        })
        .unwrap_or_else(|| panic!("no container {name} of task {id}"))
}

const AWSVPC_PROBE: &str = r#"U="$ECS_CONTAINER_METADATA_URI_V4"
for i in $(seq 1 50); do wget -q -O /tmp/task "$U/task" && break; sleep 0.2; done
echo "TASK_JSON=$(cat /tmp/task)"
echo PROBE-DONE
trap 'exit 0' TERM
while true; do sleep 1; done"#;

#[test]
fn awsvpc_containers_reach_the_endpoint_and_are_checked_by_the_task_address() {
    if !require_docker("awsvpc_containers_reach_the_endpoint_and_are_checked_by_the_task_address") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(&dir.path().join("dev"), &["--stats-interval-secs", "0"]);
    register(
        &dev,
        dir.path(),
        &json!({"family": "meta-vpc", "networkMode": "awsvpc", "containerDefinitions": [
            {"name": "probe", "image": "busybox:latest", "memory": 32,
             "portMappings": [{"containerPort": 8080}],
             "entryPoint": ["sh", "-c"], "command": [AWSVPC_PROBE]}
        ]}),
    );
    let t = run(&dev, "meta-vpc");
    let id = task_id(&t);
    let arn = t["taskArn"].as_str().unwrap_or_default().to_string();
    let described = wait_task(&dev, &id, "RUNNING", |t| t["lastStatus"] == "RUNNING");
    let probe = inspect_container(&id, "probe");
    let docker_id = probe["Id"].as_str().unwrap_or_default().to_string();
    let uri = env_var(&probe, "ECS_CONTAINER_METADATA_URI_V4").expect("the probe has the URI");
    let logs = wait_until("the awsvpc probe read its task", WAIT, || {
        let logs = docker_logs(&docker_id);
        logs.contains("PROBE-DONE").then_some(logs)
    });
    let task: Value = serde_json::from_str(line(&logs, "TASK_JSON=")).unwrap_or(Value::Null);
    assert_eq!(task["TaskARN"], arn.as_str(), "{logs}");
    assert_eq!(task["Containers"].as_array().map(Vec::len), Some(1), "no pause container: {task}");
    // The container runs in the pause container's namespace: its network is the task's.
    let detail = |name: &str| {
        described["attachments"][0]["details"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["name"] == name))
            .map(|d| d["value"].clone())
            .unwrap_or(Value::Null)
    };
    let net = &task["Containers"][0]["Networks"][0];
    assert_eq!(net["NetworkMode"], "awsvpc", "{task}");
    assert_eq!(net["IPv4Addresses"], json!([detail("privateIPv4Address")]), "{task}");
    assert_eq!(net["MACAddress"], detail("macAddress"), "{task}");
    assert_eq!(net["PrivateDNSName"], detail("privateDnsName"), "{task}");
    assert_eq!(net["AttachmentIndex"], 0, "{task}");
    assert_eq!(net["IPv4SubnetCIDRBlock"], "10.213.0.0/16", "{task}");
    assert_eq!(net["SubnetGatewayIpv4Address"], "10.213.0.1/16", "{task}");
    assert_eq!(
        task["Containers"][0]["Ports"],
        json!([{"ContainerPort": 8080, "Protocol": "tcp", "HostPort": 8080}]),
        "{task}"
    );
    // The token is the task's: from the host's own address it is refused.
    let rest = uri.strip_prefix("http://").unwrap_or_default();
    let (host, path) = rest.split_once('/').unwrap_or_default();
    assert_eq!(host_get_status(host, &format!("/{path}/task")), Some(403), "{uri}");
    let out = dev.berth(&["task", "stop", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_task(&dev, &id, "STOPPED", |t| t["lastStatus"] == "STOPPED");
}

const HOST_PORT: u16 = 48_123;

/// Reads `${URI}/` (a trailing slash answers as `${URI}`).
const HOST_PROBE: &str = r#"U="$ECS_CONTAINER_METADATA_URI_V4"
for i in $(seq 1 50); do wget -q -O /tmp/me "$U/" && break; sleep 0.2; done
echo "TASK_JSON=$(cat /tmp/me)"
echo PROBE-DONE
trap 'exit 0' TERM
while true; do sleep 1; done"#;

#[test]
fn host_mode_containers_get_the_host_network_their_ports_and_network_bindings() {
    if !require_docker("host_mode_containers_get_the_host_network_their_ports_and_network_bindings")
    {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(&dir.path().join("dev"), &["--stats-interval-secs", "0"]);
    register(
        &dev,
        dir.path(),
        &json!({"family": "meta-host", "networkMode": "host", "containerDefinitions": [
            {"name": "probe", "image": "busybox:latest", "memory": 32,
             "portMappings": [{"containerPort": HOST_PORT, "protocol": "udp"}],
             "entryPoint": ["sh", "-c"], "command": [HOST_PROBE]}
        ]}),
    );
    let t = run(&dev, "meta-host");
    let id = task_id(&t);
    let described = wait_task(&dev, &id, "RUNNING with bindings", |t| {
        t["lastStatus"] == "RUNNING" && t["containers"][0]["networkBindings"][0].is_object()
    });
    assert_eq!(
        described["containers"][0]["networkBindings"],
        json!([{"bindIP": "0.0.0.0", "containerPort": HOST_PORT, "hostPort": HOST_PORT,
            "protocol": "udp"}]),
        "{described}"
    );
    let table = String::from_utf8_lossy(&dev.berth(&["task", "list"]).stdout).to_string();
    assert!(table.contains(&format!("{HOST_PORT}->{HOST_PORT}")), "{table}");
    let probe = inspect_container(&id, "probe");
    let docker_id = probe["Id"].as_str().unwrap_or_default().to_string();
    let logs = wait_until("the host-mode probe read its container", WAIT, || {
        let logs = docker_logs(&docker_id);
        logs.contains("PROBE-DONE").then_some(logs)
    });
    let me: Value = serde_json::from_str(line(&logs, "TASK_JSON=")).unwrap_or(Value::Null);
    assert_eq!(me["Name"], "probe", "{logs}");
    assert_eq!(me["Networks"], json!([{"NetworkMode": "host"}]), "{me}");
    assert_eq!(
        me["Ports"],
        json!([{"ContainerPort": HOST_PORT, "Protocol": "udp", "HostPort": HOST_PORT,
            "HostIp": "0.0.0.0"}]),
        "{me}"
    );
    let out = dev.berth(&["task", "stop", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_task(&dev, &id, "STOPPED", |t| t["lastStatus"] == "STOPPED");
}

/// `wget -O - $ECS_CONTAINER_METADATA_URI_V4/task` run inside the container (its own env and
/// address); `None` when wget fails.
fn exec_task_metadata(docker_id: &str) -> Option<Value> {
    let script = r#"wget -q -O - "$ECS_CONTAINER_METADATA_URI_V4/task""#;
    let out = Command::new("docker").args(["exec", docker_id, "sh", "-c", script]).output().ok()?;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

#[test]
fn a_restarted_agent_still_answers_the_tokens_of_adopted_containers() {
    if !require_docker("a_restarted_agent_still_answers_the_tokens_of_adopted_containers") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = Dev::start(&dir.path().join("dev"), &["--stats-interval-secs", "0"]);
    register(
        &dev,
        dir.path(),
        &json!({"family": "meta-restart", "containerDefinitions": [
            {"name": "idle", "image": "busybox:latest", "memory": 32,
             "entryPoint": ["sh", "-c"], "command": [IDLE]}
        ]}),
    );
    let t = run(&dev, "meta-restart");
    let id = task_id(&t);
    let arn = t["taskArn"].as_str().unwrap_or_default().to_string();
    wait_task(&dev, &id, "RUNNING", |t| t["lastStatus"] == "RUNNING");
    let c = inspect_only_container(&id);
    let docker_id = c["Id"].as_str().unwrap_or_default().to_string();
    let before =
        wait_until("the container reads its task", WAIT, || exec_task_metadata(&docker_id));
    assert_eq!(before["TaskARN"], arn.as_str());

    dev.restart();
    let after = wait_until("the adopted container reads its task again", WAIT, || {
        exec_task_metadata(&docker_id)
    });
    assert_eq!(after["TaskARN"], arn.as_str(), "{after}");
    assert_eq!(after["Containers"][0]["DockerId"], docker_id.as_str(), "not a new container");
    let out = dev.berth(&["task", "stop", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_task(&dev, &id, "STOPPED", |t| t["lastStatus"] == "STOPPED");
}
