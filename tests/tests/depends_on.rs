//! End to end with real containers: `dependsOn` orders container starts (SUCCESS waits for the
//! target's exit 0, HEALTHY for its first passing health check, both checked against Docker's
//! own timestamps), and a SUCCESS target that exits non-zero stops the task before the dependent
//! is ever created. Needs a Docker daemon (skips without one unless BERTH_REQUIRE_DOCKER=1).

use berth_tests::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn register(dev: &Dev, dir: &std::path::Path, family: &str, containers: Value) {
    let path = dir.join(format!("{family}.json"));
    let doc = serde_json::json!({"family": family, "containerDefinitions": containers});
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    dev.json(&["taskdef", "register", path.to_str().unwrap_or_default()]);
}

fn run(dev: &Dev, family: &str) -> String {
    let run = dev.json(&["task", "run", "--taskdef", family]);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    task_id(&run["tasks"][0])
}

fn wait_status(dev: &Dev, id: &str, status: &str) -> Value {
    wait_until(&format!("task {id} {status}"), WAIT, || {
        let t = dev.json(&["task", "describe", id]);
        (t["lastStatus"] == status).then_some(t)
    })
}

/// `docker inspect --format FORMAT` of the task's container named `name` (ECS name).
fn inspect(task: &str, name: &str, format: &str) -> Option<String> {
    docker_containers_with_label("berth.task-id", task).into_iter().find_map(|id| {
        let out = Command::new("docker")
            .args(["inspect", "--format"])
            .arg(format!("{{{{index .Config.Labels \"berth.container-name\"}}}}|{format}"))
            .arg(&id)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (label, value) = text.split_once('|')?;
        (label == name).then(|| value.to_string())
    })
}

/// Docker's RFC 3339 timestamps (`2024-05-01T10:00:01.5Z`, UTC, trailing zeros trimmed; JSON
/// quoted or not) as
/// (date, seconds into the day), which order correctly.
fn instant(ts: &str) -> (String, f64) {
    let ts = ts.trim_matches('"').trim_end_matches('Z');
    let (date, time) = ts.split_once('T').unwrap_or((ts, "0:0:0"));
    let secs = time
        .split(':')
        .map(|p| p.parse::<f64>().unwrap_or(f64::NAN))
        .fold(0.0, |acc, p| acc * 60.0 + p);
    (date.to_string(), secs)
}

fn container<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn dependent_starts_only_after_its_success_and_healthy_dependencies() {
    if !require_docker("dependent_starts_only_after_its_success_and_healthy_dependencies") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = Dev::start(dir.path(), &[]);
    register(
        &dev,
        dir.path(),
        "ordered",
        serde_json::json!([
            {"name": "app", "image": "busybox:latest", "memory": 32, "essential": true,
             "command": ["sh", "-c", "sleep 60"], "stopTimeout": 2,
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"},
                           {"containerName": "db", "condition": "HEALTHY"}]},
            {"name": "init", "image": "busybox:latest", "memory": 32, "essential": false,
             "command": ["sh", "-c", "sleep 1; exit 0"]},
            {"name": "db", "image": "busybox:latest", "memory": 32, "essential": true,
             "command": ["sh", "-c", "sleep 60"], "stopTimeout": 2,
             "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 1}}
        ]),
    );
    let id = run(&dev, "ordered");
    let t = wait_status(&dev, &id, "RUNNING");
    assert_eq!(container(&t, "init")["exitCode"], 0, "{t}");
    assert_eq!(container(&t, "app")["lastStatus"], "RUNNING", "{t}");

    let app_started = inspect(&id, "app", "{{.State.StartedAt}}").expect("app container");
    let init_finished = inspect(&id, "init", "{{.State.FinishedAt}}").expect("init container");
    let db_healthy =
        inspect(&id, "db", "{{json (index .State.Health.Log 0).End}}").expect("db probe");
    assert!(
        instant(&app_started) > instant(&init_finished),
        "app started at {app_started}, before init finished at {init_finished}"
    );
    assert!(
        instant(&app_started) > instant(&db_healthy),
        "app started at {app_started}, before db's first passing probe at {db_healthy}"
    );

    // PID 1 `sh` ignores SIGTERM: each container is killed after its own 2 s stopTimeout,
    // app (the dependent) first, then db.
    dev.json(&["task", "stop", &id]);
    let t = wait_status(&dev, &id, "STOPPED");
    assert_eq!(t["desiredStatus"], "STOPPED");
    dev.stop();
}

#[test]
fn failed_success_dependency_stops_the_task_and_the_dependent_never_starts() {
    if !require_docker("failed_success_dependency_stops_the_task_and_the_dependent_never_starts") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = Dev::start(dir.path(), &[]);
    register(
        &dev,
        dir.path(),
        "initfails",
        serde_json::json!([
            {"name": "app", "image": "busybox:latest", "memory": 32, "essential": true,
             "command": ["sh", "-c", "sleep 60"],
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]},
            {"name": "init", "image": "busybox:latest", "memory": 32, "essential": false,
             "command": ["sh", "-c", "exit 1"]}
        ]),
    );
    let id = run(&dev, "initfails");
    let t = wait_status(&dev, &id, "STOPPED");
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t}");
    assert_eq!(
        t["stoppedReason"],
        "DependencyError: container app cannot start: it depends on init (SUCCESS), which \
         exited with code 1",
        "{t}"
    );
    assert_eq!(container(&t, "init")["exitCode"], 1, "{t}");
    let app = container(&t, "app");
    assert_eq!(app["lastStatus"], "STOPPED", "{t}");
    assert!(app["runtimeId"].is_null() && app["exitCode"].is_null(), "app never ran: {t}");
    assert!(inspect(&id, "app", "{{.Id}}").is_none(), "no app container was created");
    dev.stop();
}
