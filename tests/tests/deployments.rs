//! End to end, with real containers (issue 5's proof): rolling deployments within
//! minimumHealthyPercent/maximumPercent, the min = max = 100 deadlock event, and the circuit
//! breaker rolling back without touching the old healthy tasks. Needs a Docker daemon (skips
//! without one unless BERTH_REQUIRE_DOCKER=1).
//!
//! `berth dev` runs with `--task-settle-secs 3`: a task without health checks counts as healthy
//! after 3 s RUNNING instead of ECS's 40 s, so a rollout takes seconds.

use berth_tests::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SETTLE_SECS: f64 = 3.0;

fn start_dev(dir: &Path) -> Dev {
    Dev::start(dir, &["--task-settle-secs", "3"])
}

/// Registers `family` with one httpd container; `marker` makes each revision distinct.
fn register_web(dev: &Dev, dir: &Path, family: &str, marker: &str) -> Value {
    let path = dir.join(format!("{family}-{marker}.json"));
    let doc = serde_json::json!({
        "family": family,
        "containerDefinitions": [{
            "name": "web", "image": "berth/httpd:1", "memory": 32, "essential": true,
            "portMappings": [{"containerPort": 8080, "hostPort": 0}],
            "environment": [{"name": "MARKER", "value": marker}]
        }]
    });
    std::fs::write(&path, doc.to_string()).unwrap();
    dev.json(&["taskdef", "register", path.to_str().unwrap()])
}

/// Registers `family` with a container that exits 1 right after it starts.
fn register_crashing(dev: &Dev, dir: &Path, family: &str) -> Value {
    let path = dir.join(format!("{family}-crash.json"));
    let doc = serde_json::json!({
        "family": family,
        "containerDefinitions": [{
            "name": "web", "image": "berth/httpd:1", "memory": 32, "essential": true,
            "command": ["sh", "-c", "sleep 0.5; exit 1"]
        }]
    });
    std::fs::write(&path, doc.to_string()).unwrap();
    dev.json(&["taskdef", "register", path.to_str().unwrap()])
}

fn tasks(dev: &Dev, service: &str) -> Vec<Value> {
    dev.json(&["task", "list", "--service", service]).as_array().cloned().unwrap_or_default()
}

/// RUNNING, still wanted, and RUNNING for at least the settle time (what the controller counts
/// as healthy for a task without health checks). `now` must be read after `tasks` was listed,
/// so this never counts fewer healthy tasks than the controller did when it decided.
fn healthy(tasks: &[Value], now: f64) -> usize {
    tasks
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING" && t["desiredStatus"] == "RUNNING")
        .filter(|t| t["startedAt"].as_f64().is_some_and(|s| now - s >= SETTLE_SECS))
        .count()
}

fn running_containers(instance: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=berth.instance-id={instance}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).count()
}

fn primary(svc: &Value) -> Value {
    svc["deployments"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["status"] == "PRIMARY").cloned())
        .unwrap_or(Value::Null)
}

fn wait_completed(dev: &Dev, service: &str, taskdef_suffix: &str, timeout: Duration) -> Value {
    wait_service(
        dev,
        service,
        &format!("PRIMARY deployment on {taskdef_suffix} COMPLETED"),
        timeout,
        || {
            let svc = dev.json(&["service", "describe", service]);
            let p = primary(&svc);
            (p["rolloutState"] == "COMPLETED"
                && p["taskDefinition"].as_str().is_some_and(|t| t.ends_with(taskdef_suffix)))
            .then_some(svc)
        },
    )
}

/// [`wait_until`] that, on timeout, prints the service and its stopped tasks first (the panic
/// alone would not say why the condition never held).
fn wait_service<T>(
    dev: &Dev,
    service: &str,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            let svc = dev.json(&["service", "describe", service]);
            let stopped =
                dev.json(&["task", "list", "--service", service, "--desired-status", "STOPPED"]);
            let brief: Vec<String> = stopped
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "{} {} stopCode={} reason={} startedAt={} stoppedAt={}",
                        task_id(t),
                        t["taskDefinitionArn"]
                            .as_str()
                            .unwrap_or("")
                            .rsplit('/')
                            .next()
                            .unwrap_or(""),
                        t["stopCode"],
                        t["stoppedReason"],
                        t["startedAt"],
                        t["stoppedAt"]
                    )
                })
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for: {what}\nservice: {svc:#}\nstopped tasks:\n{}",
                brief.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The deployment `id` is listed as FAILED, or (once drained and delisted after the rollback)
/// the service recorded its failure event.
fn breaker_tripped(svc: &Value, id: &str) -> bool {
    let listed_failed = svc["deployments"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d["id"] == id && d["rolloutState"] == "FAILED"));
    let event =
        events(svc).iter().any(|m| m.contains(&format!("(deployment {id}) deployment failed")));
    listed_failed || event
}

/// How many STOPPED tasks of `service` ran `taskdef_suffix` and stopped with `stop_code`.
fn stopped_of(dev: &Dev, service: &str, taskdef_suffix: &str, stop_code: &str) -> usize {
    let stopped = dev.json(&["task", "list", "--service", service, "--desired-status", "STOPPED"]);
    stopped
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["taskDefinitionArn"].as_str().is_some_and(|a| a.ends_with(taskdef_suffix))
                && t["stopCode"] == stop_code
        })
        .count()
}

fn instance_id(dev: &Dev) -> String {
    dev.json(&["instance", "list"])[0]["ec2InstanceId"].as_str().unwrap().to_string()
}

fn events(svc: &Value) -> Vec<String> {
    svc["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn rolling_update_stays_within_min_healthy_and_max_percent() {
    if !require_docker("rolling_update_stays_within_min_healthy_and_max_percent") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start_dev(dir.path());
    let instance = instance_id(&dev);
    register_web(&dev, dir.path(), "roll", "one");
    register_web(&dev, dir.path(), "roll", "two");
    dev.json(&[
        "service",
        "create",
        "roll",
        "--taskdef",
        "roll:1",
        "--desired-count",
        "4",
        "--min-healthy-percent",
        "50",
        "--max-percent",
        "200",
    ]);
    wait_completed(&dev, "roll", "roll:1", Duration::from_secs(120));
    wait_until("4 healthy tasks of roll:1", Duration::from_secs(60), || {
        let t = tasks(&dev, "roll");
        (healthy(&t, epoch_secs()) == 4).then_some(())
    });
    let old: BTreeSet<String> = tasks(&dev, "roll").iter().map(task_id).collect();
    assert_eq!(old.len(), 4);

    // Sample every 200 ms while the deployment rolls.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let endpoint = dev.endpoint.clone();
        let instance = instance.clone();
        std::thread::spawn(move || {
            let (mut min_healthy, mut max_running, mut samples) = (usize::MAX, 0, 0);
            while !done.load(Ordering::SeqCst) {
                if let Ok(list) = berth_json(&endpoint, &["task", "list", "--service", "roll"]) {
                    let now = epoch_secs();
                    let list = list.as_array().cloned().unwrap_or_default();
                    min_healthy = min_healthy.min(healthy(&list, now));
                    samples += 1;
                }
                max_running = max_running.max(running_containers(&instance));
                std::thread::sleep(Duration::from_millis(200));
            }
            (min_healthy, max_running, samples)
        })
    };
    let svc = dev.json(&["service", "update", "roll", "--taskdef", "roll:2"]);
    assert!(primary(&svc)["taskDefinition"].as_str().unwrap().ends_with("roll:2"), "{svc}");
    wait_completed(&dev, "roll", "roll:2", Duration::from_secs(180));
    let final_tasks =
        wait_until("4 new tasks RUNNING and no old one", Duration::from_secs(60), || {
            let t = tasks(&dev, "roll");
            let running: Vec<&Value> = t.iter().filter(|t| t["lastStatus"] == "RUNNING").collect();
            (running.len() == 4
                && t.len() == 4
                && running.iter().all(|t| {
                    t["taskDefinitionArn"].as_str().is_some_and(|a| a.ends_with("roll:2"))
                        && !old.contains(&task_id(t))
                }))
            .then_some(t)
        });
    done.store(true, Ordering::SeqCst);
    let (min_healthy, max_running, samples) = sampler.join().unwrap();
    println!(
        "rolling update: samples={samples} min_healthy={min_healthy} max_running={max_running}"
    );
    assert!(samples >= 5, "too few samples ({samples})");
    assert!(min_healthy >= 2, "fewer than 50% of 4 healthy during the rollout: {min_healthy}");
    assert!(max_running <= 8, "more than 200% of 4 containers running: {max_running}");
    for id in &old {
        let t = dev.json(&["task", "describe", id]);
        assert_eq!(t["lastStatus"], "STOPPED", "old task {id}");
        assert_eq!(t["stopCode"], "ServiceSchedulerInitiated", "old task {id}");
    }
    assert_eq!(final_tasks.len(), 4);
    wait_until("only the 4 new containers run", Duration::from_secs(60), || {
        (running_containers(&instance) == 4).then_some(())
    });
    dev.json(&["service", "delete", "roll", "--force"]);
    dev.stop();
}

#[test]
fn min_100_max_100_records_the_deadlock_event_and_kills_nothing() {
    if !require_docker("min_100_max_100_records_the_deadlock_event_and_kills_nothing") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start_dev(dir.path());
    register_web(&dev, dir.path(), "stuck", "one");
    register_web(&dev, dir.path(), "stuck", "two");
    dev.json(&[
        "service",
        "create",
        "stuck",
        "--taskdef",
        "stuck:1",
        "--desired-count",
        "1",
        "--min-healthy-percent",
        "100",
        "--max-percent",
        "100",
    ]);
    wait_completed(&dev, "stuck", "stuck:1", Duration::from_secs(120));
    let before: Vec<String> = tasks(&dev, "stuck").iter().map(task_id).collect();
    assert_eq!(before.len(), 1);
    dev.json(&["service", "update", "stuck", "--taskdef", "stuck:2"]);
    let svc = wait_until("the deployment-configuration event", Duration::from_secs(60), || {
        let svc = dev.json(&["service", "describe", "stuck"]);
        events(&svc)
            .iter()
            .any(|m| {
                m.contains("was unable to stop or start tasks during a deployment because of the service deployment configuration")
            })
            .then_some(svc)
    });
    assert_eq!(primary(&svc)["rolloutState"], "IN_PROGRESS", "{svc}");
    // Nothing was killed and nothing new started: the one old task still runs.
    let now: Vec<Value> = tasks(&dev, "stuck");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(task_id(&now[0]), before[0]);
    assert_eq!(now[0]["lastStatus"], "RUNNING");
    let all = dev.json(&["task", "list", "--service", "stuck", "--desired-status", "STOPPED"]);
    assert_eq!(all.as_array().map(|a| a.len()), Some(0), "no task was stopped: {all}");
    dev.json(&["service", "delete", "stuck", "--force"]);
    dev.stop();
}

#[test]
fn circuit_breaker_rolls_back_and_never_stops_the_old_healthy_tasks() {
    if !require_docker("circuit_breaker_rolls_back_and_never_stops_the_old_healthy_tasks") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start_dev(dir.path());
    register_web(&dev, dir.path(), "brk", "good");
    register_crashing(&dev, dir.path(), "brk");
    dev.json(&[
        "service",
        "create",
        "brk",
        "--taskdef",
        "brk:1",
        "--desired-count",
        "2",
        "--circuit-breaker",
        "--rollback",
    ]);
    wait_completed(&dev, "brk", "brk:1", Duration::from_secs(120));
    let old: BTreeSet<String> = tasks(&dev, "brk").iter().map(task_id).collect();
    assert_eq!(old.len(), 2);

    let svc = dev.json(&["service", "update", "brk", "--taskdef", "brk:2"]);
    let bad = primary(&svc)["id"].as_str().unwrap().to_string();
    // The breaker trips (threshold clamp(ceil(0.5 × 2), 3, 200) = 3 failed tasks) and the
    // service rolls back to brk:1.
    let svc =
        wait_service(&dev, "brk", "the bad deployment FAILED", Duration::from_secs(180), || {
            let svc = dev.json(&["service", "describe", "brk"]);
            // The old tasks are checked on every poll: never stopped, never asked to stop.
            for id in &old {
                let t = dev.json(&["task", "describe", id]);
                assert_eq!(t["desiredStatus"], "RUNNING", "old healthy task {id} was stopped: {t}");
            }
            breaker_tripped(&svc, &bad).then_some(svc)
        });
    // While it is still listed, the failed deployment says why (once drained it goes INACTIVE
    // and leaves the list, as in ECS; the event stays).
    if let Some(failed) = svc["deployments"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == bad.as_str()).cloned())
    {
        assert_eq!(failed["rolloutState"], "FAILED", "{failed}");
        assert!(failed["failedTasks"].as_i64().unwrap_or(0) >= 3, "{failed}");
        let reason = failed["rolloutStateReason"].as_str().unwrap_or("");
        assert!(reason.contains("circuit breaker"), "{reason}");
    }
    let crashed = stopped_of(&dev, "brk", "brk:2", "EssentialContainerExited");
    assert!(crashed >= 3, "the breaker trips after 3 failed tasks, saw {crashed}");
    let svc = wait_completed(&dev, "brk", "brk:1", Duration::from_secs(60));
    assert!(svc["taskDefinition"].as_str().unwrap().ends_with("brk:1"), "{svc}");
    let now: BTreeSet<String> =
        tasks(&dev, "brk").iter().filter(|t| t["lastStatus"] == "RUNNING").map(task_id).collect();
    assert_eq!(now, old, "the rollback kept the two old tasks");
    assert!(
        events(&svc).iter().any(|m| m.contains("rolling back") || m.contains("rolled back")),
        "{:?}",
        events(&svc)
    );
    dev.json(&["service", "delete", "brk", "--force"]);
    dev.stop();
}

#[test]
fn failing_health_checks_replace_tasks_and_trip_the_breaker() {
    if !require_docker("failing_health_checks_replace_tasks_and_trip_the_breaker") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = start_dev(dir.path());
    register_web(&dev, dir.path(), "hc", "good");
    // Revision 2 serves HTTP but its health check never passes (ECS's shortest interval, 5 s,
    // and one retry: UNHEALTHY about 5 s after the start).
    let path = dir.path().join("hc-sick.json");
    let doc = serde_json::json!({
        "family": "hc",
        "containerDefinitions": [{
            "name": "web", "image": "berth/httpd:1", "memory": 32, "essential": true,
            "portMappings": [{"containerPort": 8080, "hostPort": 0}],
            "healthCheck": {"command": ["CMD-SHELL", "exit 1"], "interval": 5, "timeout": 2, "retries": 1}
        }]
    });
    std::fs::write(&path, doc.to_string()).unwrap();
    dev.json(&["taskdef", "register", path.to_str().unwrap()]);
    dev.json(&[
        "service",
        "create",
        "hc",
        "--taskdef",
        "hc:1",
        "--desired-count",
        "2",
        "--circuit-breaker",
        "--rollback",
    ]);
    wait_completed(&dev, "hc", "hc:1", Duration::from_secs(120));
    let old: BTreeSet<String> = tasks(&dev, "hc").iter().map(task_id).collect();

    let svc = dev.json(&["service", "update", "hc", "--taskdef", "hc:2"]);
    let sick = primary(&svc)["id"].as_str().unwrap().to_string();
    // The new tasks turn UNHEALTHY and are replaced; the breaker counts them and trips.
    wait_service(&dev, "hc", "the unhealthy deployment FAILED", Duration::from_secs(240), || {
        let svc = dev.json(&["service", "describe", "hc"]);
        breaker_tripped(&svc, &sick).then_some(())
    });
    let stopped = dev.json(&["task", "list", "--service", "hc", "--desired-status", "STOPPED"]);
    let unhealthy: Vec<&Value> = stopped
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["stoppedReason"] == "Task failed container health checks")
        .collect();
    assert!(unhealthy.len() >= 3, "three unhealthy tasks replaced: {stopped}");
    for t in &unhealthy {
        assert!(t["taskDefinitionArn"].as_str().unwrap().ends_with("hc:2"), "{t}");
        assert_eq!(t["healthStatus"], "UNHEALTHY", "{t}");
    }
    wait_completed(&dev, "hc", "hc:1", Duration::from_secs(60));
    let now: BTreeSet<String> =
        tasks(&dev, "hc").iter().filter(|t| t["lastStatus"] == "RUNNING").map(task_id).collect();
    assert_eq!(now, old, "rolled back onto the old healthy tasks");
    dev.json(&["service", "delete", "hc", "--force"]);
    dev.stop();
}
