//! The event stream end to end, through `berth events` (issue 6):
//! * a service run through create → scale → deploy → stop with real containers: a subscriber
//!   started before and one started after (`--from-index 0`) print the same sequence, with the
//!   expected detail-types in order and each task's `detail.version` strictly increasing;
//! * three `berth-controller` processes under continuous writes: a `berth events --follow`
//!   subscriber on a follower keeps streaming while the leader is `kill -9`ed, and resumes on
//!   another member when its own member is killed; the union of what it printed is gap-free and
//!   duplicate-free (compared by index).

use berth_proto::v1;
use berth_tests::cluster::{ControllerCluster, client_for};
use berth_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `berth events` process whose JSON lines are collected as they come.
struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Subscriber {
    fn start(endpoints: &str, args: &[&str]) -> Subscriber {
        let mut child = Command::new(berth_bin())
            .args(["--endpoint", endpoints, "events"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning berth events");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) =
            (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                sink.lock().expect("lines").push(v);
            }
        });
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().expect("stderr").push_str(&format!("{line}\n"));
            }
        });
        Subscriber { child, lines, stderr }
    }

    fn events(&self) -> Vec<Value> {
        self.lines.lock().expect("lines").clone()
    }

    fn last_index(&self) -> u64 {
        self.events().last().and_then(|e| e["index"].as_u64()).unwrap_or(0)
    }

    fn wait_for_index(&self, index: u64, timeout: Duration) {
        wait_until(&format!("the subscriber printed index {index}"), timeout, || {
            (self.last_index() >= index).then_some(())
        });
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn indexes(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["index"].as_u64().expect("index")).collect()
}

/// Each task's events have strictly increasing `detail.version`.
fn assert_task_versions_increase(events: &[Value]) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| e["detail-type"] == "ECS Task State Change") {
        let task = e["detail"]["taskArn"].as_str().expect("taskArn").to_string();
        let v = e["detail"]["version"].as_u64().expect("version");
        if let Some(before) = last.insert(task.clone(), v) {
            assert!(v > before, "task {task}: version {v} after {before}");
        }
    }
}

/// The position of the first event at or after `from` matching `f`.
fn find(events: &[Value], from: usize, what: &str, f: impl Fn(&Value) -> bool) -> usize {
    events[from..]
        .iter()
        .position(f)
        .map(|p| p + from)
        .unwrap_or_else(|| panic!("no {what} after position {from} in:\n{}", summary(events)))
}

/// One line per event: index, detail-type, and what changed.
fn summary(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            let d = &e["detail"];
            format!(
                "{} {} {} {} {}",
                e["index"],
                e["detail-type"].as_str().unwrap_or(""),
                d["eventName"].as_str().or(d["lastStatus"].as_str()).unwrap_or(""),
                d["deploymentId"].as_str().or(d["group"].as_str()).unwrap_or(""),
                d["version"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn deployment(e: &Value, name: &str) -> bool {
    e["detail-type"] == "ECS Deployment State Change" && e["detail"]["eventName"] == name
}

/// How many tasks of the service have an event with `status`.
fn distinct_tasks(events: &[Value], status: &str) -> usize {
    let tasks: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| task_status(e, status))
        .filter_map(|e| e["detail"]["taskArn"].as_str())
        .collect();
    tasks.len()
}

fn task_status(e: &Value, status: &str) -> bool {
    e["detail-type"] == "ECS Task State Change"
        && e["detail"]["lastStatus"] == status
        && e["detail"]["group"] == "service:web"
}

#[test]
fn a_service_lifecycle_streams_the_same_events_to_a_live_and_a_late_subscriber() {
    if !require_docker(
        "a_service_lifecycle_streams_the_same_events_to_a_live_and_a_late_subscriber",
    ) {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(dir.path(), &["--task-settle-secs", "2"]);
    let live = Subscriber::start(&dev.endpoint, &["--follow"]);
    let doc = |marker: &str| {
        serde_json::json!({
            "family": "web",
            "containerDefinitions": [{
                "name": "web", "image": "berth/httpd:1", "memory": 32,
                "environment": [{"name": "MARKER", "value": marker}]
            }]
        })
    };
    let td = dir.path().join("web.json");
    std::fs::write(&td, doc("one").to_string()).expect("write");
    dev.json(&["taskdef", "register", td.to_str().expect("path")]);
    dev.json(&["service", "create", "web", "--taskdef", "web", "--desired-count", "1"]);
    dev.json(&["service", "wait-running", "web", "--timeout", "90s"]);
    wait_until("the first deployment completed", Duration::from_secs(60), || {
        live.events().iter().any(|e| deployment(e, "SERVICE_DEPLOYMENT_COMPLETED")).then_some(())
    });
    dev.json(&["service", "update", "web", "--desired-count", "2"]);
    dev.json(&["service", "wait-running", "web", "--timeout", "90s"]);
    std::fs::write(&td, doc("two").to_string()).expect("write");
    dev.json(&["taskdef", "register", td.to_str().expect("path")]);
    let out = dev.berth(&[
        "service",
        "update",
        "web",
        "--taskdef",
        "web:2",
        "--wait",
        "--wait-timeout",
        "3m",
    ]);
    assert!(out.status.success(), "deploy: {}", String::from_utf8_lossy(&out.stderr));
    dev.json(&["service", "delete", "web", "--force"]);
    wait_until("every task of the service stopped", Duration::from_secs(90), || {
        let tasks = dev.json(&["task", "list", "--service", "web", "--desired-status", "RUNNING"]);
        tasks.as_array().is_some_and(|a| a.is_empty()).then_some(())
    });
    let stopped_tasks = || distinct_tasks(&live.events(), "STOPPED");
    // Four tasks ran: two of revision 1, two of revision 2.
    wait_until("the live subscriber saw four tasks stop", Duration::from_secs(60), || {
        (stopped_tasks() >= 4).then_some(())
    });

    let late = dev.berth(&["events", "--from-index", "0"]);
    assert!(late.status.success(), "late subscriber: {}", String::from_utf8_lossy(&late.stderr));
    let late: Vec<Value> = String::from_utf8_lossy(&late.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    live.wait_for_index(late.len() as u64, Duration::from_secs(30));
    let seen = live.events();
    assert_eq!(seen[..late.len()], late[..], "the same sequence, event for event");
    assert_eq!(indexes(&late), (1..=late.len() as u64).collect::<Vec<_>>());
    assert_task_versions_increase(&late);

    // The detail-types in the order of the lifecycle.
    let created = find(&late, 0, "deployment in progress (create)", |e| {
        deployment(e, "SERVICE_DEPLOYMENT_IN_PROGRESS")
    });
    let first_running = find(&late, created, "a RUNNING task", |e| task_status(e, "RUNNING"));
    let completed = find(&late, first_running, "deployment completed", |e| {
        deployment(e, "SERVICE_DEPLOYMENT_COMPLETED")
    });
    let steady = find(&late, completed, "steady state", |e| {
        e["detail-type"] == "ECS Service Action"
            && e["detail"]["eventName"] == "SERVICE_STEADY_STATE"
    });
    let deploy = find(&late, steady, "deployment in progress (deploy)", |e| {
        deployment(e, "SERVICE_DEPLOYMENT_IN_PROGRESS")
    });
    let replaced = find(&late, deploy, "an old task stopped", |e| task_status(e, "STOPPED"));
    let deployed = find(&late, replaced, "deployment completed (deploy)", |e| {
        deployment(e, "SERVICE_DEPLOYMENT_COMPLETED")
    });
    assert_ne!(late[created]["detail"]["deploymentId"], late[deploy]["detail"]["deploymentId"]);
    assert_eq!(late[deploy]["detail"]["deploymentId"], late[deployed]["detail"]["deploymentId"]);
    assert!(
        late.iter().any(|e| e["detail-type"] == "ECS Container Instance State Change"),
        "placing tasks changes the instance's resources"
    );
    assert_eq!(distinct_tasks(&late, "RUNNING"), 4, "two tasks of each revision ran");
}

/// Force-new-deployment of a service of 0, through any live member: each acknowledged write
/// makes events (a deployment in progress, then its completion).
fn spawn_writer(endpoints: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async move {
            let mut acked = 0;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let mut api = client_for(&endpoints[i % endpoints.len()], Duration::from_secs(5));
                let r = api
                    .update_service(v1::UpdateServiceRequest {
                        service: "ev".into(),
                        force_new_deployment: true,
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(_) => acked += 1,
                    Err(_) => {
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_subscriber_resumes_across_crashes_without_gap_or_duplicate() {
    let mut cluster = ControllerCluster::start_with_args(3, &["--snapshot-threshold", "200"]);
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let endpoints = cluster.endpoints();
    let mut api = cluster.client(leader, Duration::from_secs(5));
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: r#"{"family":"ev","containerDefinitions":[{"name":"a","image":"berth/httpd:1","memory":16}]}"#.into(),
        ..Default::default()
    })
    .await
    .expect("register");
    api.create_service(v1::CreateServiceRequest {
        service_name: "ev".into(),
        task_definition: "ev".into(),
        desired_count: 0,
        ..Default::default()
    })
    .await
    .expect("create service");

    // The subscriber's first endpoint is a follower.
    let ids = cluster.ids();
    let follower = *ids.iter().find(|id| **id != leader).expect("a follower");
    let first = cluster.member(follower).endpoint.clone();
    let mut order = vec![first.clone()];
    order.extend(endpoints.iter().filter(|e| **e != first).cloned());
    let sub = Subscriber::start(&order.join(","), &["--follow", "--from-index", "1"]);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(endpoints.clone(), stop.clone());
    let progress = |sub: &Subscriber, more: u64| {
        let target = sub.last_index() + more;
        sub.wait_for_index(target, Duration::from_secs(60));
    };
    progress(&sub, 30);

    cluster.crash(leader);
    let new_leader = cluster.wait_leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader);
    progress(&sub, 30);
    cluster.restart(leader);
    cluster.wait_converged(Duration::from_secs(60)).await;
    progress(&sub, 30);

    // Now the subscriber's own member dies: it must resume elsewhere.
    cluster.crash(follower);
    cluster.wait_leader(Duration::from_secs(30)).await;
    progress(&sub, 30);
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().expect("writer");
    assert!(acked > 0);

    // The end of the log as a live member holds it, once the reconciler has nothing left to do.
    let live = *cluster.running().first().expect("a live member");
    let mut last = 0;
    for _ in 0..3 {
        let mut api = cluster.client(live, Duration::from_secs(5));
        let mut stream = api
            .subscribe_events(v1::SubscribeEventsRequest {
                from_index: Some(1),
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner();
        let mut n = 0;
        while let Some(m) = stream.message().await.expect("stream") {
            assert_eq!(m.index, n + 1, "the member serves a contiguous log");
            n = m.index;
        }
        if n == last {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    sub.wait_for_index(last, Duration::from_secs(60));
    let got = indexes(&sub.events());
    assert_eq!(
        got[..last as usize],
        (1..=last).collect::<Vec<_>>()[..],
        "gap-free and duplicate-free; stderr: {}",
        sub.stderr.lock().expect("stderr")
    );
    assert!(
        sub.stderr.lock().expect("stderr").contains("note:"),
        "the subscriber reconnected at least once"
    );
}
