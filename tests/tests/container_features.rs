//! End to end with real containers: the container configuration features of a task definition
//! reach Docker exactly (checked with `docker inspect`), and behave inside the containers: a
//! writer puts a file on a task volume that a reader sees through `volumesFrom` (read-only), a
//! host bind mount carries a file both ways, the task volume is removed with the task while a
//! `shared` volume persists and is reused, a missing shared volume without `autoprovision`
//! fails the task, and in bridge mode a linked container is reached by its alias (with the
//! task's DNS settings and a networkless container alongside). Needs a Docker daemon (skips
//! without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// The container stays for inspection only this long after its task stopped by itself.
const CLEANUP_WAIT_SECS: &str = "2";

fn register(dev: &Dev, dir: &Path, doc: &Value) {
    let family = doc["family"].as_str().unwrap_or_default();
    let path = dir.join(format!("{family}.json"));
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    let out = dev.berth(&["-o", "json", "taskdef", "register", path.to_str().unwrap_or_default()]);
    assert!(out.status.success(), "register failed: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("not applied"), "every feature used here is applied: {stderr}");
}

fn run(dev: &Dev, family: &str) -> String {
    let run = dev.json(&["task", "run", "--taskdef", family]);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    task_id(&run["tasks"][0])
}

fn wait_task(dev: &Dev, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_until(&format!("task {id}: {what}"), WAIT, || {
        let t = dev.json(&["task", "describe", id]);
        f(&t).then_some(t)
    })
}

fn container<'t>(task: &'t Value, name: &str) -> &'t Value {
    task["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

/// `docker inspect` of the task's container `name` (ECS name).
fn inspect(task: &str, name: &str) -> Value {
    docker_containers_with_label("berth.task-id", task)
        .into_iter()
        .find_map(|id| {
            let out = Command::new("docker").args(["inspect", &id]).output().ok()?;
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let c = v.get(0)?.clone();
            (c["Config"]["Labels"]["berth.container-name"] == name).then_some(c)
        })
        .unwrap_or_else(|| panic!("no container {name} of task {task}"))
}

fn volume_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn volume_labels(name: &str) -> Value {
    let out = Command::new("docker").args(["volume", "inspect", name]).output().expect("docker");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v[0]["Labels"].clone()
}

#[test]
fn task_definition_container_features_reach_docker_and_work() {
    if !require_docker("task_definition_container_features_reach_docker_and_work") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(&dir.path().join("dev"), &["--task-cleanup-wait-secs", CLEANUP_WAIT_SECS]);
    // Not created beforehand: ECS creates a missing sourcePath.
    let host_dir = dir.path().join("hostdata");
    let host_path = host_dir.to_str().expect("utf-8 path").to_string();

    let writer = "set -e; \
        if touch /rootfs-probe 2>/dev/null; then exit 4; fi; \
        echo scratch > /scratch/x; \
        echo hello-from-writer > msg; \
        echo host-ok > /host/from-writer; \
        [ \"$(cat /proc/1/comm)\" != sh ] || exit 5";
    let reader = "for i in $(seq 1 100); do [ -f /shared/msg ] && break; sleep 0.1; done; \
        [ \"$(cat /shared/msg)\" = hello-from-writer ] || exit 3; \
        [ \"$(hostname)\" = reader-host ] || exit 6; \
        grep -q '10.9.8.7.*db.internal' /etc/hosts || exit 7; \
        [ \"$(ulimit -n)\" = 1024 ] || exit 8; \
        [ \"$(id -u)\" = 65534 ] || exit 9; \
        if touch /shared/ro-probe 2>/dev/null; then exit 10; fi; \
        while [ ! -f /host/go ]; do sleep 0.2; done";
    let doc = json!({
        "family": "features",
        "volumes": [
            {"name": "host", "host": {"sourcePath": host_path}},
            {"name": "shared", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}}
        ],
        "containerDefinitions": [
            {"name": "writer", "image": "berth/httpd:1", "memory": 32, "essential": false,
             "entryPoint": ["sh", "-c"], "command": [writer],
             "mountPoints": [
                {"sourceVolume": "shared", "containerPath": "/shared"},
                {"sourceVolume": "host", "containerPath": "/host"}
             ],
             "readonlyRootFilesystem": true,
             "workingDirectory": "/shared",
             "dockerLabels": {"team": "berth-tests", "berth.task-id": "forged"},
             "linuxParameters": {
                "initProcessEnabled": true,
                "tmpfs": [{"containerPath": "/scratch", "size": 16, "mountOptions": ["rw"]}]
             }},
            {"name": "reader", "image": "berth/httpd:1", "memory": 32,
             "entryPoint": ["sh", "-c"], "command": [reader],
             "volumesFrom": [{"sourceContainer": "writer", "readOnly": true}],
             "user": "65534:65534",
             "hostname": "reader-host",
             "extraHosts": [{"hostname": "db.internal", "ipAddress": "10.9.8.7"}],
             "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
             "linuxParameters": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}},
             "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}}}
        ]
    });
    // The berth.* label is warned about (and ignored): register by hand to allow that warning.
    let path = dir.path().join("features.json");
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    let out = dev.berth(&["-o", "json", "taskdef", "register", path.to_str().unwrap_or_default()]);
    assert!(out.status.success(), "register failed: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dockerLabels berth.task-id are ignored"), "{stderr}");
    assert!(!stderr.contains("not applied"), "every feature used here is applied: {stderr}");

    let id = run(&dev, "features");
    let t = wait_task(&dev, &id, "writer exited 0 and reader runs", |t| {
        container(t, "writer")["exitCode"] == 0 && container(t, "reader")["lastStatus"] == "RUNNING"
    });
    assert_eq!(t["lastStatus"], "RUNNING", "{t}");

    let short: String = id.chars().take(12).collect();
    let volume = format!("berth-features-1-vol-shared-{short}");
    let w = inspect(&id, "writer");
    assert_eq!(w["HostConfig"]["ReadonlyRootfs"], true);
    // initProcessEnabled: the engine's init binary mounted as /dev/init ahead of the command
    // (README), or Docker's own init where the agent finds no binary to mount.
    let binds: Vec<String> = w["HostConfig"]["Binds"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let is_dev_init = |b: &String| b.ends_with(":/dev/init:ro");
    if w["Config"]["Entrypoint"][0] == "/dev/init" {
        assert_eq!(w["Config"]["Entrypoint"][1], "--", "{w}");
        assert!(binds.iter().any(is_dev_init), "{binds:?}");
        assert_ne!(w["HostConfig"]["Init"], true, "one init, not two");
    } else {
        assert_eq!(w["HostConfig"]["Init"], true, "{w}");
    }
    assert_eq!(w["HostConfig"]["Tmpfs"], json!({"/scratch": "rw,size=16m"}));
    let task_binds: Vec<&String> = binds.iter().filter(|b| !is_dev_init(b)).collect();
    assert_eq!(task_binds, [&format!("{volume}:/shared"), &format!("{host_path}:/host")]);
    assert_eq!(w["Config"]["WorkingDir"], "/shared");
    assert_eq!(w["Config"]["Labels"]["team"], "berth-tests");
    assert_eq!(w["Config"]["Labels"]["berth.task-id"], id.as_str(), "Berth's label wins");
    let writer_name = w["Name"].as_str().unwrap_or_default().trim_start_matches('/').to_string();

    let r = inspect(&id, "reader");
    assert_eq!(r["Config"]["User"], "65534:65534");
    assert_eq!(r["Config"]["Hostname"], "reader-host");
    assert_eq!(r["HostConfig"]["ExtraHosts"], json!(["db.internal:10.9.8.7"]));
    assert_eq!(r["HostConfig"]["Ulimits"], json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}]));
    assert_eq!(r["HostConfig"]["CapAdd"], json!(["NET_ADMIN"]));
    assert_eq!(r["HostConfig"]["CapDrop"], json!(["MKNOD"]));
    assert_eq!(r["HostConfig"]["VolumesFrom"], json!([format!("{writer_name}:ro")]));
    assert_eq!(
        r["HostConfig"]["LogConfig"],
        json!({"Type": "json-file", "Config": {"max-size": "1m"}})
    );

    let labels = volume_labels(&volume);
    assert_eq!(labels["berth.volume-scope"], "task", "{labels}");
    assert_eq!(labels["berth.task-id"], id.as_str(), "{labels}");
    let from_writer = std::fs::read_to_string(host_dir.join("from-writer")).unwrap_or_default();
    assert_eq!(from_writer, "host-ok\n");

    // Let the reader finish: the essential container exits 0 and the task stops.
    std::fs::write(host_dir.join("go"), "").expect("writing the go file");
    let t = wait_task(&dev, &id, "STOPPED", |t| t["lastStatus"] == "STOPPED");
    assert_eq!(container(&t, "writer")["exitCode"], 0, "{t}");
    assert_eq!(container(&t, "reader")["exitCode"], 0, "reader checks passed: {t}");

    // The task volume goes with the task's containers.
    wait_until("the task's containers and task volume are removed", WAIT, || {
        (docker_containers_with_label("berth.task-id", &id).is_empty() && !volume_exists(&volume))
            .then_some(())
    });
}

#[test]
fn shared_volumes_persist_across_tasks_and_must_exist_without_autoprovision() {
    if !require_docker("shared_volumes_persist_across_tasks_and_must_exist_without_autoprovision") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(&dir.path().join("dev"), &["--task-cleanup-wait-secs", CLEANUP_WAIT_SECS]);
    let stamp = format!("{}-{}", std::process::id(), epoch_secs() as u64);
    let shared = format!("berth-test-shared-{stamp}");
    let missing = format!("berth-test-missing-{stamp}");

    let family = |name: &str, volume: &str, autoprovision: bool, script: &str| {
        json!({
            "family": name,
            "volumes": [{"name": volume, "dockerVolumeConfiguration":
                {"scope": "shared", "autoprovision": autoprovision, "driver": "local",
                 "labels": {"purpose": "berth-tests"}}}],
            "containerDefinitions": [
                {"name": "app", "image": "berth/httpd:1", "memory": 32,
                 "entryPoint": ["sh", "-c"], "command": [script],
                 "mountPoints": [{"sourceVolume": volume, "containerPath": "/data"}]}
            ]
        })
    };
    register(&dev, dir.path(), &family("put", &shared, true, "echo kept > /data/file"));
    register(&dev, dir.path(), &family("get", &shared, true, "[ \"$(cat /data/file)\" = kept ]"));
    register(&dev, dir.path(), &family("absent", &missing, false, "true"));

    let put = run(&dev, "put");
    let t = wait_task(&dev, &put, "STOPPED", |t| t["lastStatus"] == "STOPPED");
    assert_eq!(container(&t, "app")["exitCode"], 0, "{t}");
    wait_until("put's container is removed", WAIT, || {
        docker_containers_with_label("berth.task-id", &put).is_empty().then_some(())
    });
    assert!(volume_exists(&shared), "a shared volume outlives its task");
    let labels = volume_labels(&shared);
    assert_eq!(labels["berth.volume-scope"], "shared", "{labels}");
    assert_eq!(labels["purpose"], "berth-tests", "{labels}");

    let get = run(&dev, "get");
    let t = wait_task(&dev, &get, "STOPPED", |t| t["lastStatus"] == "STOPPED");
    assert_eq!(container(&t, "app")["exitCode"], 0, "the second task read the file: {t}");

    let absent = run(&dev, "absent");
    let t = wait_task(&dev, &absent, "STOPPED", |t| t["lastStatus"] == "STOPPED");
    let reason = t["stoppedReason"].as_str().unwrap_or_default();
    assert!(reason.contains("CannotCreateContainerError"), "{t}");
    assert!(reason.contains("autoprovision"), "{t}");
    assert!(!volume_exists(&missing), "no volume is made without autoprovision");

    wait_until("get's container is removed", WAIT, || {
        docker_containers_with_label("berth.task-id", &get).is_empty().then_some(())
    });
    let _ = Command::new("docker").args(["volume", "rm", &shared]).output();
}

#[test]
fn links_dns_and_disabled_networking_work_in_bridge_mode() {
    if !require_docker("links_dns_and_disabled_networking_work_in_bridge_mode") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(&dir.path().join("dev"), &["--task-cleanup-wait-secs", CLEANUP_WAIT_SECS]);
    let client = "for i in $(seq 1 50); do \
            wget -q -O /dev/null http://web-alias:8080/ && break; sleep 0.2; done; \
        wget -q -O /dev/null http://web-alias:8080/ || exit 3; \
        grep -q 'nameserver 10.0.0.2' /etc/resolv.conf || exit 4; \
        grep -q 'search.*corp.example' /etc/resolv.conf || exit 5";
    let doc = json!({
        "family": "linked",
        "networkMode": "bridge",
        "containerDefinitions": [
            {"name": "web", "image": "berth/httpd:1", "memory": 32},
            {"name": "isolated", "image": "berth/httpd:1", "memory": 32, "essential": false,
             "entryPoint": ["sh", "-c"], "command": ["[ \"$(ls /sys/class/net)\" = lo ]"],
             "disableNetworking": true},
            {"name": "client", "image": "berth/httpd:1", "memory": 32, "essential": false,
             "entryPoint": ["sh", "-c"], "command": [client],
             "links": ["web:web-alias"],
             "dnsServers": ["10.0.0.2"], "dnsSearchDomains": ["corp.example"]}
        ]
    });
    register(&dev, dir.path(), &doc);
    let id = run(&dev, "linked");
    // web (essential) keeps the task running while the others have exited.
    let t = wait_task(&dev, &id, "client and isolated exited", |t| {
        !container(t, "client")["exitCode"].is_null()
            && !container(t, "isolated")["exitCode"].is_null()
    });
    assert_eq!(t["lastStatus"], "RUNNING", "{t}");
    assert_eq!(container(&t, "client")["exitCode"], 0, "client reached web by its alias: {t}");
    assert_eq!(container(&t, "isolated")["exitCode"], 0, "only loopback: {t}");
    let web = inspect(&id, "web");
    let web_name = web["Name"].as_str().unwrap_or_default().trim_start_matches('/').to_string();
    let c = inspect(&id, "client");
    let links = c["HostConfig"]["Links"].to_string();
    assert!(links.contains(&format!("/{web_name}:")) && links.contains("web-alias"), "{links}");
    assert_eq!(c["HostConfig"]["Dns"], json!(["10.0.0.2"]));
    assert_eq!(c["HostConfig"]["DnsSearch"], json!(["corp.example"]));
    assert_eq!(inspect(&id, "isolated")["Config"]["NetworkDisabled"], true);
    dev.json(&["task", "stop", &id]);
    wait_task(&dev, &id, "STOPPED", |t| t["lastStatus"] == "STOPPED");
}
