//! End to end with real containers: per-task secrets (`berth secret`, ECS `secrets[].valueFrom`).
//!
//! * Secrets put with `--from-file` and `--value` reach a container's environment through the
//!   three `valueFrom` forms (bare name, Secrets Manager ARN with a JSON key, SSM parameter ARN);
//!   the container writes what it saw to a host directory outside every Berth data dir.
//! * The values appear nowhere else: not in `task describe`, `taskdef describe`, `task list`,
//!   `secret list`, `berth events`, the HTTP port's `/v1/events`, the controller and agent logs,
//!   nor in any file under the controller's and the agent's data dirs (the store, Raft log,
//!   snapshots, event log, state files). The container's own `docker inspect` env is allowed.
//! * A task referencing a missing secret is STOPPED with `TaskFailedToStart` and
//!   `ResourceInitializationError: … secret NAME not found`, and no container is created.
//! * A controller restarted with another cluster key stops such a task with a clear reason and
//!   keeps serving.
//!
//! Needs a Docker daemon (skips without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn random(tag: &str) -> String {
    format!("{tag}-{}", berth_controller::crypto::random_secret(16).expect("random"))
}

fn ok(dev: &Dev, args: &[&str]) -> String {
    let out = dev.berth(args);
    assert!(out.status.success(), "berth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn register(dev: &Dev, dir: &Path, doc: &Value) -> String {
    let family = doc["family"].as_str().unwrap_or_default();
    let path = dir.join(format!("{family}.json"));
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    ok(dev, &["-o", "json", "taskdef", "register", path.to_str().unwrap_or_default()])
}

fn run(dev: &Dev, family: &str) -> String {
    let run = dev.json(&["task", "run", "--taskdef", family]);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    task_id(&run["tasks"][0])
}

fn wait_stopped(dev: &Dev, id: &str) -> Value {
    wait_until(&format!("task {id} STOPPED"), WAIT, || {
        let t = dev.json(&["task", "describe", id]);
        (t["lastStatus"] == "STOPPED").then_some(t)
    })
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn logged_field(log: &str, message: &str, key: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"].as_str().is_some_and(|m| m.contains(message)))
        .and_then(|v| v["fields"][key].as_str().map(str::to_string))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() { files(&p, out) } else { out.push(p) }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Panics naming `place` if any value shows up in `text`.
fn assert_absent(place: &str, text: &[u8], values: &[&str]) {
    for v in values {
        assert!(!contains(text, v), "a secret value leaked into {place}");
    }
}

#[test]
fn secrets_reach_the_container_and_nothing_else() {
    if !require_docker("secrets_reach_the_container_and_nothing_else") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev_dir = dir.path().join("dev");
    let mut dev = Dev::start(&dev_dir, &["--log-format", "json", "--task-cleanup-wait-secs", "2"]);
    let out_dir = dir.path().join("seen");
    std::fs::create_dir_all(&out_dir).expect("out dir");

    let password = random("pw");
    let decoy = random("old");
    let user = random("user");
    let token = random("tok");
    let values = [password.as_str(), decoy.as_str(), user.as_str(), token.as_str()];

    // The first version by --value, the second from a file: the container must see the second.
    let put = dev.json(&["secret", "put", "db-pass", "--value", &decoy, "--description", "db"]);
    assert_eq!(
        (put["name"].as_str(), put["version"].as_u64()),
        (Some("db-pass"), Some(1)),
        "{put}"
    );
    assert_eq!(put["arn"], "arn:aws:secretsmanager:local:000000000000:secret:db-pass", "{put}");
    let file = dir.path().join("pw.txt");
    std::fs::write(&file, &password).expect("write");
    let put = dev.json(&["secret", "put", "db-pass", "--from-file", file.to_str().unwrap_or("")]);
    assert_eq!(put["version"].as_u64(), Some(2), "{put}");
    assert_eq!(put["description"], "db", "an update without --description keeps it");
    let creds = dir.path().join("creds.json");
    std::fs::write(&creds, json!({"user": user, "port": 5432}).to_string()).expect("write");
    dev.json(&["secret", "put", "api-creds", "--from-file", creds.to_str().unwrap_or("")]);
    dev.json(&["secret", "put", "app/token", "--value", &token]);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&creds);

    // Too large: refused with the limit named.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 64 * 1024 + 1]).expect("write");
    let out = dev.berth(&["secret", "put", "big", "--from-file", big.to_str().unwrap_or("")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 65536 bytes"));
    let out = dev.berth(&["secret", "put", "bad name", "--value", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret name 'bad name' is invalid"));

    let script = "printf %s \"$DB_PASSWORD\" > /seen/password; printf %s \"$API_USER\" > /seen/user; \
                  printf %s \"$TOKEN\" > /seen/token; printf %s \"$PLAIN\" > /seen/plain";
    let doc = json!({
        "family": "secretive",
        "volumes": [{"name": "seen", "host": {"sourcePath": out_dir.to_str().unwrap_or("")}}],
        "containerDefinitions": [{
            "name": "app", "image": "berth/httpd:1", "memory": 32,
            "entryPoint": ["sh", "-c"], "command": [script],
            "mountPoints": [{"sourceVolume": "seen", "containerPath": "/seen"}],
            "environment": [{"name": "PLAIN", "value": "not-secret"}],
            "secrets": [
                {"name": "DB_PASSWORD", "valueFrom": "db-pass"},
                {"name": "API_USER",
                 "valueFrom": "arn:aws:secretsmanager:local:000000000000:secret:api-creds:user::"},
                {"name": "TOKEN", "valueFrom": "arn:aws:ssm:local:000000000000:parameter/app/token"}
            ]
        }]
    });
    let registered = register(&dev, dir.path(), &doc);
    assert!(!registered.contains("not resolved"), "no 'not resolved' warning: {registered}");
    let id = run(&dev, "secretive");
    let task = wait_stopped(&dev, &id);
    let app = &task["containers"][0];
    assert_eq!(app["exitCode"].as_i64(), Some(0), "{task}");
    let seen = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap_or_default();
    assert_eq!(seen("password"), password, "the container saw the current value");
    assert_eq!(seen("user"), user, "the JSON key was selected");
    assert_eq!(seen("token"), token, "the SSM parameter ARN resolved");
    assert_eq!(seen("plain"), "not-secret");

    // A missing secret: STOPPED with ECS's reason, no container.
    let missing = json!({
        "family": "needs-missing",
        "containerDefinitions": [{
            "name": "app", "image": "berth/httpd:1", "memory": 32,
            "secrets": [{"name": "X", "valueFrom": "nope"}]
        }]
    });
    register(&dev, dir.path(), &missing);
    let missing_id = run(&dev, "needs-missing");
    let t = wait_stopped(&dev, &missing_id);
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t}");
    let reason = t["stoppedReason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("ResourceInitializationError: unable to pull secrets or registry auth")
            && reason.contains("secret nope not found"),
        "{reason}"
    );
    assert!(docker_containers_with_label("berth.task-id", &missing_id).is_empty());

    // Where the values must not be.
    let described = ok(&dev, &["-o", "json", "task", "describe", &id]);
    assert_absent("task describe", described.as_bytes(), &values);
    let td = ok(&dev, &["-o", "json", "taskdef", "describe", "secretive"]);
    assert_absent("taskdef describe", td.as_bytes(), &values);
    assert!(
        td.contains("\"valueFrom\": \"db-pass\"") || td.contains("\"valueFrom\":\"db-pass\""),
        "{td}"
    );
    for args in [
        &["task", "list"][..],
        &["-o", "json", "task", "list", "--desired-status", "STOPPED"],
        &["task", "describe", &id],
        &["secret", "list"],
        &["-o", "json", "secret", "list"],
    ] {
        let out = dev.berth(args);
        assert_absent(&format!("berth {args:?}"), &out.stdout, &values);
        assert_absent(&format!("berth {args:?}"), &out.stderr, &values);
    }
    let list = dev.json(&["secret", "list"]);
    let names: Vec<&str> =
        list.as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, vec!["api-creds", "app/token", "db-pass"], "{list}");
    let events = ok(&dev, &["events"]);
    assert!(events.contains(&id), "the event log has the task: {events}");
    assert_absent("berth events", events.as_bytes(), &values);
    let log = dev.log();
    let http = logged_field(&log, "controller HTTP port serving", "http_addr")
        .unwrap_or_else(|| panic!("no controller HTTP address in the log"));
    let body = http_get(&http, "/v1/events");
    assert!(body.contains(&id), "{body}");
    assert_absent("/v1/events", body.as_bytes(), &values);

    // Stop the processes so every byte is flushed, then read every file they keep.
    dev.stop();
    assert_absent("the controller and agent logs", dev.log().as_bytes(), &values);
    let mut all = Vec::new();
    files(&dev_dir.join("controller"), &mut all);
    files(&dev_dir.join("agent"), &mut all);
    assert!(all.iter().any(|p| p.ends_with("cluster.key")), "{all:?}");
    assert!(all.len() > 3, "{all:?}");
    let mut store_has_the_task = false;
    for p in &all {
        let bytes = std::fs::read(p).unwrap_or_default();
        assert_absent(&p.display().to_string(), &bytes, &values);
        store_has_the_task |= contains(&bytes, &id) && contains(&bytes, "db-pass");
    }
    // The grep can see plaintext: the store keeps the task and the secret's name readable.
    assert!(store_has_the_task, "no file under the data dirs names the task and the secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dev_dir.join("controller/cluster.key");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Another cluster key: the secret cannot be opened; the task stops with a reason, the
    // controller keeps serving. Deleting a secret works without the key.
    let other = berth_controller::crypto::ClusterKey::generate().expect("key");
    other.store(&dev_dir.join("controller/cluster.key")).expect("store key");
    dev.restart();
    let other_id = run(&dev, "secretive");
    let t = wait_stopped(&dev, &other_id);
    let reason = t["stoppedReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("secret db-pass cannot be opened with this controller's cluster key"),
        "{reason}"
    );
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t}");
    ok(&dev, &["secret", "delete", "db-pass"]);
    let list = dev.json(&["secret", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let out = dev.berth(&["secret", "delete", "db-pass"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Secret db-pass not found"));
}
