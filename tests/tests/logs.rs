//! End to end, with real containers: `berth task logs` reads a task container's output from the
//! agent that runs it (the agent's HTTP API, found through the controller's `agentEndpoint`):
//! everything so far, `--tail N` and `--tail all`, `--container` selection (and the error naming the containers
//! when it is missing), `--follow` receiving a line written after it started and ending when the
//! container exits, a STOPPED task whose containers are gone, one that never created a
//! container (its image cannot be pulled: the stoppedReason is shown), an unknown task, and an agent
//! whose advertised API does not answer. Needs a Docker daemon (skips without one unless
//! BERTH_REQUIRE_DOCKER=1).

use berth_tests::agent::AgentProcess;
use berth_tests::*;
use serde_json::{Value, json};
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// `main` prints known lines, then waits for /tmp/go (made by the test with `docker exec`),
/// prints `after-go` and exits; `side` prints a line on stdout and one on stderr, and sleeps.
/// (The engine copies stdout and stderr separately, so their relative order is not asserted.)
fn demo_taskdef() -> Value {
    json!({
        "family": "logs-demo",
        "containerDefinitions": [
            {
                "name": "main",
                "image": "busybox:latest",
                "memory": 32,
                "essential": true,
                "command": ["sh", "-c",
                    "echo main-1; echo main-2; echo main-3; echo ready; \
                     while [ ! -e /tmp/go ]; do sleep 0.2; done; echo after-go"]
            },
            {
                "name": "side",
                "image": "busybox:latest",
                "memory": 32,
                "essential": false,
                "stopTimeout": 2,
                "command": ["sh", "-c", "echo side-out; echo side-err >&2; exec sleep 3600"]
            }
        ]
    })
}

fn sleeper_taskdef() -> Value {
    json!({
        "family": "logs-sleeper",
        "containerDefinitions": [{
            "name": "app",
            "image": "busybox:latest",
            "memory": 32,
            "stopTimeout": 2,
            "command": ["sh", "-c", "echo bye; exec sleep 3600"]
        }]
    })
}

fn register(dev: &Dev, dir: &Path, doc: &Value) {
    let family = doc["family"].as_str().unwrap_or_default();
    let path = dir.join(format!("{family}.json"));
    std::fs::write(&path, doc.to_string()).expect("writing the task definition");
    let out = dev.berth(&["-o", "json", "taskdef", "register", path.to_str().unwrap_or_default()]);
    assert!(out.status.success(), "register failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn run_task(dev: &Dev, family: &str, extra: &[&str]) -> String {
    let mut args = vec!["task", "run", "--taskdef", family];
    args.extend_from_slice(extra);
    let run = dev.json(&args);
    assert_eq!(run["failures"].as_array().map(|a| a.len()), Some(0), "{run}");
    task_id(&run["tasks"][0])
}

fn wait_task(dev: &Dev, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_until(&format!("task {id}: {what}"), WAIT, || {
        let t = dev.json(&["task", "describe", id]);
        f(&t).then_some(t)
    })
}

fn all_running(t: &Value) -> bool {
    t["lastStatus"] == "RUNNING"
        && t["containers"]
            .as_array()
            .is_some_and(|cs| cs.iter().all(|c| c["lastStatus"] == "RUNNING"))
}

fn logs(dev: &Dev, args: &[&str]) -> Output {
    let mut all = vec!["task", "logs"];
    all.extend_from_slice(args);
    dev.berth(&all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Engine id of the task's container `name` (ECS name).
fn engine_id(task: &str, name: &str) -> String {
    docker_containers_with_label("berth.task-id", task)
        .into_iter()
        .find(|id| {
            let out = Command::new("docker")
                .args(["inspect", "-f", "{{index .Config.Labels \"berth.container-name\"}}", id])
                .output();
            out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == name)
        })
        .unwrap_or_else(|| panic!("no container {name} of task {task}"))
}

#[test]
fn task_logs_tail_container_follow_and_errors() {
    if !require_docker("task_logs_tail_container_follow_and_errors") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(&dir.path().join("dev"), &[]);
    register(&dev, dir.path(), &demo_taskdef());
    register(&dev, dir.path(), &sleeper_taskdef());

    // The instance advertises its agent API.
    let instance = &dev.json(&["instance", "list"])[0];
    let endpoint = instance["agentEndpoint"].as_str().unwrap_or_default().to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "agentEndpoint: {instance}");

    let id = run_task(&dev, "logs-demo", &[]);
    wait_task(&dev, &id, "RUNNING with both containers", all_running);

    // Two containers and no --container: refused, naming both.
    let out = logs(&dev, &[&id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "task {id} has 2 containers (main, side): choose one with --container NAME"
        )),
        "{}",
        stderr(&out)
    );

    // Everything so far.
    let all = wait_until("main has printed `ready`", WAIT, || {
        let out = logs(&dev, &[&id, "--container", "main"]);
        (out.status.success() && stdout(&out).contains("ready\n")).then(|| stdout(&out))
    });
    assert_eq!(all, "main-1\nmain-2\nmain-3\nready\n");

    let out = logs(&dev, &[&id, "--container", "main", "--tail", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ready\n");
    let out = logs(&dev, &[&id, "--container", "main", "--tail", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "main-1\nmain-2\nmain-3\nready\n");

    // stdout and stderr together, both on the command's stdout.
    let side = wait_until("side has printed both lines", WAIT, || {
        let out = logs(&dev, &[&id, "--container", "side"]);
        let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
        lines.sort();
        (lines.len() >= 2).then_some(lines)
    });
    assert_eq!(side, ["side-err", "side-out"]);

    let out = logs(&dev, &[&id, "--container", "nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no container named 'nope' (its containers: main, side)"),
        "{}",
        stderr(&out)
    );

    let out = logs(&dev, &[&id, "--tail", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--tail"), "clap names the flag: {}", stderr(&out));

    // --follow: sees `ready` (so the stream is open), then a line the container prints only
    // after the test's trigger, then ends by itself when the container exits.
    let mut child = Command::new(berth_bin())
        .args(["--endpoint", &dev.endpoint, "task", "logs", &id, "--container", "main"])
        .args(["--follow", "--tail", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning berth task logs --follow");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stdout.take().expect("stdout");
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let text = || seen.lock().expect("lock").clone();
    wait_until("--follow prints `ready`", WAIT, || text().contains("ready\n").then_some(()));
    assert!(!text().contains("after-go"));
    let main = engine_id(&id, "main");
    let touched = Command::new("docker").args(["exec", &main, "touch", "/tmp/go"]).status();
    assert!(touched.is_ok_and(|s| s.success()), "docker exec touch /tmp/go");
    let status = wait_until("--follow ends once the container exits", WAIT, || {
        child.try_wait().ok().flatten()
    });
    let _ = reader.join();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "follow exit: {status:?}: {err}");
    assert_eq!(text(), "ready\nafter-go\n");

    // An essential container exited: the task stops; its containers stay until cleanup, so its
    // output can still be read.
    wait_task(&dev, &id, "STOPPED", |t| t["lastStatus"] == "STOPPED");
    let out = logs(&dev, &[&id, "--container", "main", "--tail", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ready\nafter-go\n");

    // A stopped task whose containers the agent removed: said so.
    let gone = run_task(&dev, "logs-sleeper", &[]);
    wait_task(&dev, &gone, "RUNNING", all_running);
    let out = logs(&dev, &[&gone]);
    assert_eq!(stdout(&out), "bye\n", "{}", stderr(&out));
    dev.json(&["task", "stop", &gone]);
    wait_until("the stopped task's containers are removed", WAIT, || {
        let t = dev.json(&["task", "describe", &gone]);
        (t["lastStatus"] == "STOPPED"
            && docker_containers_with_label("berth.task-id", &gone).is_empty())
        .then_some(())
    });
    let out = logs(&dev, &[&gone]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("task {gone} is STOPPED and its containers are gone")),
        "{}",
        stderr(&out)
    );

    // A task that never created a container (its image cannot be pulled): its stoppedReason.
    register(
        &dev,
        dir.path(),
        &json!({"family": "logs-nopull", "containerDefinitions": [{
            "name": "app", "image": "127.0.0.1:9/berth-missing:1", "memory": 32
        }]}),
    );
    let never = run_task(&dev, "logs-nopull", &[]);
    let t = wait_task(&dev, &never, "STOPPED", |t| t["lastStatus"] == "STOPPED");
    let reason = t["stoppedReason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("CannotPullContainerError"), "{t}");
    let out = logs(&dev, &[&never]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "task {never} stopped before any of its containers was created, so it has no logs: {reason}"
        )),
        "{}",
        stderr(&out)
    );

    // An unknown task: the controller's error, non-zero exit.
    let out = logs(&dev, &["00000000-0000-4000-8000-000000000000"]);
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(stderr(&out).to_lowercase().contains("not found"), "{}", stderr(&out));

    // An agent whose advertised API does not answer: its address is named.
    let agent_dir = dir.path().join("agent2");
    let mut agent2 =
        AgentProcess::start(&dev.endpoint, &agent_dir, &["--advertise-http", "http://127.0.0.1:9"]);
    let second = wait_until("the second agent registered and connected", WAIT, || {
        let id = agent2.instance_id();
        (!id.is_empty() && dev.json(&["instance", "describe", &id])["agentConnected"] == true)
            .then_some(id)
    });
    let described = dev.json(&["instance", "describe", &second]);
    assert_eq!(described["agentEndpoint"], "http://127.0.0.1:9", "--advertise-http is registered");
    let far = run_task(
        &dev,
        "logs-sleeper",
        &["--constraint", &format!("memberOf(ec2InstanceId == {second})")],
    );
    wait_task(&dev, &far, "RUNNING on the second agent", all_running);
    let out = logs(&dev, &[&far]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "cannot reach the agent of container instance {second} at http://127.0.0.1:9"
        )),
        "{}",
        stderr(&out)
    );
    dev.json(&["task", "stop", &far]);
    wait_until("the second agent's task is removed", WAIT, || {
        docker_containers_with_label("berth.task-id", &far).is_empty().then_some(())
    });
    agent2.kill();
}
