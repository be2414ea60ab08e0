//! Supervisor behaviour against the SimulatedRuntime, and end to end against real Docker.

use super::*;
use crate::SystemClock;
use crate::runtime::{
    ContainerHealth, ContainerInfo, ContainerState, DockerRuntime, LABEL_TASK_ID, SimulatedRuntime,
};
use crate::testkit::{
    TEST_IMAGE, docker_with_test_image, remove_instance_containers, unique_id, wait_for,
};
use berth_proto::model::{ContainerDefinition, HealthCheck, PortMapping, Task, TaskDefinition};
use serde_json::json;

mod awsvpc;
mod order;

const WAIT: Duration = Duration::from_secs(20);

fn task_json(task_id: &str, desired: &str) -> String {
    let task = Task {
        task_arn: format!("arn:aws:ecs:local:000000000000:task/test/{task_id}"),
        cluster_arn: "arn:aws:ecs:local:000000000000:cluster/test".into(),
        task_definition_arn: "arn:aws:ecs:local:000000000000:task-definition/web:1".into(),
        last_status: "PENDING".into(),
        desired_status: desired.into(),
        version: 1,
        ..Default::default()
    };
    serde_json::to_string(&task).unwrap_or_default()
}

fn container(name: &str, cmd: &[&str], essential: bool) -> ContainerDefinition {
    ContainerDefinition {
        name: name.into(),
        image: TEST_IMAGE.into(),
        memory: Some(32),
        essential: Some(essential),
        command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

fn taskdef(containers: Vec<ContainerDefinition>) -> TaskDefinition {
    TaskDefinition {
        family: "web".into(),
        revision: Some(1),
        container_definitions: containers,
        ..Default::default()
    }
}

fn assignment(task_id: &str, version: u64, desired: &str, def: &TaskDefinition) -> Assignment {
    Assignment {
        task_id: task_id.into(),
        version,
        desired_status: desired.into(),
        task_json: task_json(task_id, desired),
        task_definition_json: serde_json::to_string(def).unwrap_or_default(),
        secrets: vec![],
    }
}

fn supervisor(rt: Arc<dyn ContainerRuntime>, instance: &str, pull: PullBehavior) -> Supervisor {
    let cfg = SupervisorConfig {
        instance_id: instance.into(),
        cluster: "test".into(),
        pull_behavior: pull,
        poll_interval: Duration::from_millis(50),
        task_cleanup_wait: Duration::from_secs(3600),
        awsvpc: Default::default(),
    };
    Supervisor::new(rt, cfg, Arc::new(SystemClock)).0
}

async fn wait_status(sup: &Supervisor, task: &str, status: &str) -> TaskStatusReport {
    wait_for(WAIT, &format!("task {task} {status}"), || async {
        sup.report(task).filter(|r| r.last_status == status)
    })
    .await
}

/// A CMD-SHELL health check probing every second (below ECS's registration minimum of 5 s, which
/// the agent does not re-check), unhealthy after one failure.
fn shell_check(command: &str) -> HealthCheck {
    HealthCheck {
        command: vec!["CMD-SHELL".into(), command.into()],
        interval: Some(1),
        timeout: Some(2),
        retries: Some(1),
        start_period: None,
    }
}

fn health_of<'a>(r: &'a TaskStatusReport, container: &str) -> Option<&'a str> {
    r.containers.iter().find(|c| c.name == container).and_then(|c| c.health_status.as_deref())
}

async fn wait_health(sup: &Supervisor, task: &str, health: &str) -> TaskStatusReport {
    wait_for(WAIT, &format!("task {task} {health}"), || async {
        sup.report(task).filter(|r| r.health_status.as_deref() == Some(health))
    })
    .await
}

fn sim() -> SimulatedRuntime {
    let rt = SimulatedRuntime::new();
    rt.add_cached_image(TEST_IMAGE);
    rt
}

fn web_def() -> TaskDefinition {
    let mut web = container("web", &["httpd", "-f", "-p", "80", "-h", "/www"], true);
    web.port_mappings = Some(vec![PortMapping {
        container_port: Some(80),
        host_port: Some(0),
        ..Default::default()
    }]);
    taskdef(vec![web, container("side", &["sleep", "3600"], false)])
}

#[tokio::test]
async fn running_task_reports_running_with_dynamic_host_port() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-run", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t1", 1, "RUNNING", &web_def())]).await;
    let r = wait_status(&sup, "t1", "RUNNING").await;
    let web = &r.containers[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.last_status, "RUNNING");
    assert!(web.runtime_id.is_some());
    assert_eq!(web.network_bindings.len(), 1);
    assert_eq!(web.network_bindings[0].container_port, 80);
    assert!(web.network_bindings[0].host_port >= crate::runtime::simulated::FIRST_DYNAMIC_PORT);
    assert!(r.pull_started_at.is_some() && r.pull_stopped_at.is_some());
    let names: Vec<String> = rt.containers().iter().map(|c| c.name.clone()).collect();
    assert!(names.contains(&"berth-web-1-web-t1".to_string()), "{names:?}");
}

#[tokio::test]
async fn essential_exit_stops_task_with_exit_codes() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-exit", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t2", 1, "RUNNING", &web_def())]).await;
    wait_status(&sup, "t2", "RUNNING").await;
    assert!(rt.exit_container("berth-web-1-web-t2", 3));
    let r = wait_status(&sup, "t2", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(r.stopped_reason.as_deref(), Some("Essential container in task exited"));
    assert_eq!(r.containers[0].exit_code, Some(3));
    assert_eq!(r.containers[1].last_status, "STOPPED");
    assert_eq!(r.containers[1].exit_code, Some(143), "the other container was stopped");
    assert!(rt.containers().iter().all(|c| c.state != ContainerState::Running));
}

#[tokio::test]
async fn desired_stopped_stops_and_removes_containers() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-stop", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t3", 1, "RUNNING", &web_def())]).await;
    wait_status(&sup, "t3", "RUNNING").await;
    sup.apply(false, &[assignment("t3", 2, "STOPPED", &web_def())]).await;
    let r = wait_status(&sup, "t3", "STOPPED").await;
    assert!(r.containers.iter().all(|c| c.exit_code == Some(143)));
    wait_for(WAIT, "containers removed", || async { rt.containers().is_empty().then_some(()) })
        .await;
}

#[tokio::test]
async fn container_turning_unhealthy_is_reported_and_the_task_keeps_running() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-health", PullBehavior::PreferCached);
    let mut def = web_def(); // web: essential; side: not essential, no check
    def.container_definitions[0].health_check = Some(shell_check("wget -q -O- localhost"));
    sup.apply(true, &[assignment("t11", 1, "RUNNING", &def)]).await;
    let r = wait_status(&sup, "t11", "RUNNING").await;
    assert_eq!(health_of(&r, "web"), Some("UNKNOWN"), "not evaluated yet");
    assert_eq!(health_of(&r, "side"), None, "no health check");
    assert_eq!(r.health_status.as_deref(), Some("UNKNOWN"));

    assert!(rt.set_health("berth-web-1-web-t11", ContainerHealth::Healthy));
    let r = wait_health(&sup, "t11", "HEALTHY").await;
    assert_eq!(health_of(&r, "web"), Some("HEALTHY"));

    assert!(rt.set_health("berth-web-1-web-t11", ContainerHealth::Unhealthy));
    let r = wait_health(&sup, "t11", "UNHEALTHY").await;
    assert_eq!(health_of(&r, "web"), Some("UNHEALTHY"));
    assert_eq!(health_of(&r, "side"), None);
    // ECS: a standalone task keeps running when unhealthy; replacing it is the scheduler's call.
    assert_eq!(r.last_status, "RUNNING");
    assert!(rt.containers().iter().all(|c| c.state == ContainerState::Running));

    // Stopped, the container keeps its last verdict (the engine has none for it any more).
    sup.apply(false, &[assignment("t11", 2, "STOPPED", &def)]).await;
    let r = wait_status(&sup, "t11", "STOPPED").await;
    assert_eq!(health_of(&r, "web"), Some("UNHEALTHY"));
}

#[tokio::test]
async fn unhealthy_non_essential_container_does_not_make_the_task_unhealthy() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-health-side", PullBehavior::PreferCached);
    let mut def = web_def();
    def.container_definitions[0].health_check = Some(shell_check("true"));
    def.container_definitions[1].health_check = Some(shell_check("false"));
    sup.apply(true, &[assignment("t12", 1, "RUNNING", &def)]).await;
    let r = wait_health(&sup, "t12", "HEALTHY").await;
    assert_eq!(health_of(&r, "web"), Some("HEALTHY"));
    assert_eq!(health_of(&r, "side"), Some("UNHEALTHY"));
}

#[tokio::test]
async fn stale_assignment_version_is_ignored() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-stale", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t4", 5, "RUNNING", &web_def())]).await;
    wait_status(&sup, "t4", "RUNNING").await;
    sup.apply(false, &[assignment("t4", 4, "STOPPED", &web_def())]).await;
    sup.apply(false, &[assignment("t4", 5, "RUNNING", &web_def())]).await;
    assert_eq!(sup.report("t4").map(|r| r.last_status), Some("RUNNING".into()));
    assert!(rt.containers().iter().all(|c| c.state == ContainerState::Running));
}

#[tokio::test]
async fn restarted_supervisor_adopts_running_containers_without_duplicates() {
    let rt = sim();
    let def = web_def();
    {
        let mut sup = supervisor(Arc::new(rt.clone()), "i-adopt", PullBehavior::PreferCached);
        sup.apply(true, &[assignment("t5", 1, "RUNNING", &def)]).await;
        wait_status(&sup, "t5", "RUNNING").await;
    } // dropped: workers stop, containers stay
    assert_eq!(rt.create_count(), 2);
    let mut sup = supervisor(Arc::new(rt.clone()), "i-adopt", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t5", 1, "RUNNING", &def)]).await;
    let r = wait_status(&sup, "t5", "RUNNING").await;
    assert_eq!(rt.create_count(), 2, "no container was created again");
    assert_eq!(rt.containers().len(), 2);
    assert!(r.containers.iter().all(|c| c.last_status == "RUNNING"));
}

#[tokio::test]
async fn a_task_that_ran_is_never_started_again_when_its_containers_are_gone() {
    let rt = sim();
    let def = web_def();
    {
        let mut sup = supervisor(Arc::new(rt.clone()), "i-gone", PullBehavior::PreferCached);
        sup.apply(true, &[assignment("t9", 1, "RUNNING", &def)]).await;
        wait_status(&sup, "t9", "RUNNING").await;
    } // the agent stops; its containers stay
    let created = rt.create_count();
    for c in rt.containers() {
        rt.exit_container(&c.id, 137);
        rt.remove(&c.id).await.expect("remove");
    } // someone removes them (docker rm -f) while no agent runs
    let mut ran = assignment("t9", 2, "RUNNING", &def);
    let mut task: Task = serde_json::from_str(&ran.task_json).expect("task json");
    task.last_status = "RUNNING".into();
    ran.task_json = serde_json::to_string(&task).expect("encode");
    let mut sup = supervisor(Arc::new(rt.clone()), "i-gone", PullBehavior::PreferCached);
    sup.apply(true, &[ran]).await;
    let r = wait_status(&sup, "t9", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(rt.create_count(), created, "no container was created again");
    assert!(rt.containers().is_empty());
}

/// A task that stopped on its own keeps its exited containers for the cleanup wait (for logs and
/// inspection), through a reconnect's full assignment set and an agent restart, while a running
/// task the controller dropped meanwhile is stopped and removed at once; after the wait they go.
#[tokio::test]
async fn a_self_stopped_task_keeps_its_containers_for_the_cleanup_wait_across_restarts() {
    let rt = sim();
    let def = web_def();
    let of_task =
        |t: &str| rt.containers().iter().filter(|c| c.label(LABEL_TASK_ID) == Some(t)).count();
    {
        let mut sup = supervisor(Arc::new(rt.clone()), "i-keep", PullBehavior::PreferCached);
        sup.apply(
            true,
            &[assignment("k1", 1, "RUNNING", &def), assignment("k2", 1, "RUNNING", &def)],
        )
        .await;
        wait_status(&sup, "k1", "RUNNING").await;
        wait_status(&sup, "k2", "RUNNING").await;
        assert!(rt.exit_container("berth-web-1-web-k1", 3));
        wait_status(&sup, "k1", "STOPPED").await;
        // A reconnect's full set without k1 (the controller has it STOPPED) and without k2.
        sup.apply(true, &[assignment("k3", 1, "RUNNING", &def)]).await;
        wait_for(WAIT, "k2 stopped and removed", || async { (of_task("k2") == 0).then_some(()) })
            .await;
        assert_eq!(of_task("k1"), 2, "k1's exited containers are kept");
    } // the agent stops
    // Restarted with a short wait: k1 is an orphan whose containers all exited: kept, then gone.
    let cfg = SupervisorConfig {
        instance_id: "i-keep".into(),
        cluster: "test".into(),
        pull_behavior: PullBehavior::PreferCached,
        poll_interval: Duration::from_millis(50),
        task_cleanup_wait: Duration::from_millis(1500),
        awsvpc: Default::default(),
    };
    let (mut sup, _reports) = Supervisor::new(Arc::new(rt.clone()), cfg, Arc::new(SystemClock));
    let restarted = std::time::Instant::now();
    sup.apply(true, &[]).await; // k3 dropped too: it runs, so it goes at once
    wait_for(WAIT, "k3 stopped and removed", || async { (of_task("k3") == 0).then_some(()) }).await;
    assert_eq!(of_task("k1"), 2, "still kept after the restart");
    wait_for(WAIT, "k1 removed after the cleanup wait", || async {
        (of_task("k1") == 0).then_some(())
    })
    .await;
    assert!(restarted.elapsed() >= Duration::from_millis(1500), "not before the wait");
}

#[tokio::test]
async fn full_assignment_removes_unassigned_tasks_and_ignores_other_instances() {
    let rt = sim();
    let def = web_def();
    let mut other = supervisor(Arc::new(rt.clone()), "i-other", PullBehavior::PreferCached);
    other.apply(true, &[assignment("t6", 1, "RUNNING", &def)]).await;
    wait_status(&other, "t6", "RUNNING").await;
    {
        let mut sup = supervisor(Arc::new(rt.clone()), "i-mine", PullBehavior::PreferCached);
        sup.apply(true, &[assignment("t7", 1, "RUNNING", &def)]).await;
        wait_status(&sup, "t7", "RUNNING").await;
    }
    // Restarted agent whose full set no longer holds t7: its containers go, t6's stay.
    let mut sup = supervisor(Arc::new(rt.clone()), "i-mine", PullBehavior::PreferCached);
    sup.apply(true, &[]).await;
    let of_task = |t: &str, cs: &[ContainerInfo]| {
        cs.iter().filter(|c| c.label(LABEL_TASK_ID) == Some(t)).count()
    };
    wait_for(WAIT, "t7 containers removed", || async {
        (of_task("t7", &rt.containers()) == 0).then_some(())
    })
    .await;
    assert_eq!(of_task("t6", &rt.containers()), 2);
    assert!(sup.report("t7").is_none(), "orphans are cleaned up silently");
}

#[tokio::test]
async fn bad_assignment_json_reports_task_failed_to_start() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-bad", PullBehavior::PreferCached);
    let mut a = assignment("t8", 1, "RUNNING", &web_def());
    a.task_definition_json = "{not json".into();
    sup.apply(true, &[a]).await;
    let r = wait_status(&sup, "t8", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert!(r.stopped_reason.unwrap_or_default().contains("task definition JSON"));
}

#[tokio::test]
async fn missing_image_fails_task_with_cannot_pull_error() {
    let rt = SimulatedRuntime::new(); // nothing cached, nothing in the registry
    let mut sup = supervisor(Arc::new(rt.clone()), "i-pull", PullBehavior::Default);
    sup.apply(true, &[assignment("t9", 1, "RUNNING", &web_def())]).await;
    let r = wait_status(&sup, "t9", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert!(r.stopped_reason.unwrap_or_default().starts_with("CannotPullContainerError:"));
    assert_eq!(rt.create_count(), 0);
}

#[tokio::test]
async fn create_failure_reports_cannot_create_container_error() {
    let rt = sim();
    rt.fail_creates(Some("disk full"));
    let mut sup = supervisor(Arc::new(rt.clone()), "i-create", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("t10", 1, "RUNNING", &web_def())]).await;
    let r = wait_status(&sup, "t10", "STOPPED").await;
    assert!(r.stopped_reason.unwrap_or_default().starts_with("CannotCreateContainerError:"));
}

#[tokio::test]
async fn pull_behaviours_follow_ecs_image_pull_behavior() {
    let prep = images::ImagePreparer::default();
    let rt = SimulatedRuntime::new();
    rt.add_cached_image("cached:1"); // cached, not in the registry
    rt.add_registry_image("remote:1");

    // default: pull fails → falls back to the cached image.
    assert!(prep.prepare(&rt, "cached:1", PullBehavior::Default).await.is_ok());
    assert_eq!(rt.pull_count("cached:1"), 1);
    // always: pull fails → fails.
    assert!(prep.prepare(&rt, "cached:1", PullBehavior::Always).await.is_err());
    // prefer-cached: cached → no pull.
    assert!(prep.prepare(&rt, "cached:1", PullBehavior::PreferCached).await.is_ok());
    assert_eq!(rt.pull_count("cached:1"), 2);
    // prefer-cached: absent → pull.
    assert!(prep.prepare(&rt, "remote:1", PullBehavior::PreferCached).await.is_ok());
    assert_eq!(rt.pull_count("remote:1"), 1);
    // once: pulled by this agent and cached → no pull; removed → pulled again.
    assert!(prep.prepare(&rt, "remote:1", PullBehavior::Once).await.is_ok());
    assert_eq!(rt.pull_count("remote:1"), 1);
    rt.remove_cached_image("remote:1");
    assert!(prep.prepare(&rt, "remote:1", PullBehavior::Once).await.is_ok());
    assert_eq!(rt.pull_count("remote:1"), 2);
    // always: pulls every time.
    assert!(prep.prepare(&rt, "remote:1", PullBehavior::Always).await.is_ok());
    assert_eq!(rt.pull_count("remote:1"), 3);
    // prefer-cached / default with neither cache nor registry → CannotPullContainerError.
    let e =
        prep.prepare(&rt, "nowhere:1", PullBehavior::PreferCached).await.err().unwrap_or_default();
    assert!(e.starts_with("CannotPullContainerError:"), "{e}");
}

// ---- real Docker -------------------------------------------------------------------------------

struct DockerCase {
    rt: DockerRuntime,
    instance: String,
}

/// Task ids must be unique per run: container names embed them, and a container left by an
/// earlier, aborted run must not collide.
fn unique_task(prefix: &str) -> String {
    unique_id(prefix).replace('-', "")
}

impl DockerCase {
    async fn new(prefix: &str) -> Option<DockerCase> {
        let rt = docker_with_test_image().await?;
        Some(DockerCase { rt, instance: unique_id(prefix) })
    }
    fn supervisor(&self) -> Supervisor {
        supervisor(Arc::new(self.rt.clone()), &self.instance, PullBehavior::PreferCached)
    }
    async fn cleanup(self) {
        remove_instance_containers(&self.rt, &self.instance).await;
    }
}

#[tokio::test]
async fn docker_essential_container_exit_3_stops_task_with_exit_code_3() {
    let Some(case) = DockerCase::new("exit3").await else {
        return;
    };
    let mut sup = case.supervisor();
    let task = unique_task("exit3");
    let def = taskdef(vec![container("main", &["sh", "-c", "exit 3"], true)]);
    sup.apply(true, &[assignment(&task, 1, "RUNNING", &def)]).await;
    let r = wait_status(&sup, &task, "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(r.containers[0].exit_code, Some(3));
    drop(sup);
    case.cleanup().await;
}

#[tokio::test]
async fn docker_health_checks_turn_healthy_and_unhealthy() {
    let Some(case) = DockerCase::new("health").await else {
        return;
    };
    let mut sup = case.supervisor();
    let checked = |name: &str, essential: bool, command: &str| {
        let mut c = container(name, &["sleep", "3600"], essential);
        c.health_check = Some(shell_check(command));
        c.stop_timeout = Some(1); // `sleep` as PID 1 ignores SIGTERM
        c
    };
    // One task whose essential container passes and whose sidecar fails; one whose essential
    // container fails.
    let mixed = unique_task("hmixed");
    let mixed_def = taskdef(vec![checked("ok", true, "true"), checked("bad", false, "false")]);
    let failing = unique_task("hfail");
    let failing_def = taskdef(vec![checked("main", true, "false")]);
    sup.apply(
        true,
        &[
            assignment(&mixed, 1, "RUNNING", &mixed_def),
            assignment(&failing, 1, "RUNNING", &failing_def),
        ],
    )
    .await;
    let r = wait_for(WAIT, "mixed task: ok HEALTHY and bad UNHEALTHY", || async {
        sup.report(&mixed).filter(|r| {
            health_of(r, "ok") == Some("HEALTHY") && health_of(r, "bad") == Some("UNHEALTHY")
        })
    })
    .await;
    assert_eq!(r.last_status, "RUNNING");
    assert_eq!(r.health_status.as_deref(), Some("HEALTHY"), "only essential containers count");
    let r = wait_health(&sup, &failing, "UNHEALTHY").await;
    assert_eq!(health_of(&r, "main"), Some("UNHEALTHY"));
    assert_eq!(r.last_status, "RUNNING", "an unhealthy standalone task keeps running");
    drop(sup);
    case.cleanup().await;
}

async fn http_get(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    buf.starts_with("HTTP/1.").then_some(buf)
}

#[tokio::test]
async fn docker_httpd_dynamic_host_port_answers_http() {
    let Some(case) = DockerCase::new("httpd").await else {
        return;
    };
    let mut sup = case.supervisor();
    let task = unique_task("httpd");
    let mut web = container("web", &["httpd", "-f", "-p", "80", "-h", "/www"], true);
    web.port_mappings = Some(vec![PortMapping {
        container_port: Some(80),
        host_port: Some(0),
        ..Default::default()
    }]);
    web.stop_timeout = Some(1); // httpd as PID 1 has no SIGTERM handler
    let def = taskdef(vec![web]);
    sup.apply(true, &[assignment(&task, 1, "RUNNING", &def)]).await;
    let r = wait_status(&sup, &task, "RUNNING").await;
    let port = r.containers[0].network_bindings.first().map(|b| b.host_port).unwrap_or(0);
    assert_ne!(port, 0, "a real host port was reported: {r:?}");
    let body = wait_for(WAIT, "httpd to answer", || http_get(port)).await;
    assert!(body.contains("berth ok"), "{body}");
    sup.apply(false, &[assignment(&task, 2, "STOPPED", &def)]).await;
    wait_status(&sup, &task, "STOPPED").await;
    drop(sup);
    case.cleanup().await;
}

#[tokio::test]
async fn docker_stop_timeout_kills_sigterm_ignoring_container_and_removes_it() {
    let Some(case) = DockerCase::new("sigkill").await else {
        return;
    };
    let mut sup = case.supervisor();
    // `sh` as PID 1 with a TERM trap that does nothing: only SIGKILL ends it.
    let task = unique_task("sigkill");
    let mut c =
        container("stubborn", &["sh", "-c", "trap '' TERM; while true; do sleep 1; done"], true);
    c.stop_timeout = Some(2);
    let def = taskdef(vec![c]);
    sup.apply(true, &[assignment(&task, 1, "RUNNING", &def)]).await;
    wait_status(&sup, &task, "RUNNING").await;
    let started = std::time::Instant::now();
    sup.apply(false, &[assignment(&task, 2, "STOPPED", &def)]).await;
    let r = wait_status(&sup, &task, "STOPPED").await;
    assert_eq!(r.containers[0].exit_code, Some(137), "killed: {r:?}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let rt = case.rt.clone();
    let instance = case.instance.clone();
    wait_for(WAIT, "container removed", || {
        let rt = rt.clone();
        let instance = instance.clone();
        async move {
            rt.list(crate::runtime::LABEL_INSTANCE_ID, &instance)
                .await
                .ok()
                .filter(|l| l.is_empty())
                .map(|_| ())
        }
    })
    .await;
    drop(sup);
    case.cleanup().await;
}

#[test]
fn report_json_uses_ecs_field_names() {
    let r = TaskStatusReport {
        task_id: "t".into(),
        last_status: "STOPPED".into(),
        stop_code: Some("X".into()),
        ..Default::default()
    };
    let v: serde_json::Value = serde_json::to_value(&r).unwrap_or_default();
    assert_eq!(
        v,
        json!({"taskId": "t", "lastStatus": "STOPPED", "containers": [], "stopCode": "X"})
    );
}

/// The report queue is bounded: past `REPORT_QUEUE_BOUND` transitions are not queued, and the
/// reconnect drain then ends with the latest report of every task, so no final state is lost.
#[test]
fn report_queue_is_bounded_and_an_overflow_resends_the_latest_of_every_task() {
    use super::{REPORT_QUEUE_BOUND, ReportBoard, ReportStream};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let board = Arc::new(ReportBoard::new(tx));
    let mut stream = ReportStream { rx, board: board.clone() };
    let report = |task: &str, n: usize| TaskStatusReport {
        task_id: task.into(),
        last_status: if n == 0 { "PENDING".into() } else { "RUNNING".into() },
        stopped_reason: Some(format!("n{n}")),
        ..Default::default()
    };
    for n in 0..REPORT_QUEUE_BOUND + 10 {
        board.publish(report("a", n));
    }
    board.publish(report("b", 1));
    let out = stream.drain_for_reconnect();
    assert_eq!(out.len(), REPORT_QUEUE_BOUND + 2, "the bound, then the latest of a and b");
    assert_eq!(out[0], report("a", 0), "oldest first");
    assert_eq!(out[REPORT_QUEUE_BOUND - 1], report("a", REPORT_QUEUE_BOUND - 1));
    assert_eq!(out[REPORT_QUEUE_BOUND], report("a", REPORT_QUEUE_BOUND + 9), "a's final state");
    assert_eq!(out[REPORT_QUEUE_BOUND + 1], report("b", 1), "b's only report");
    // Drained: the queue takes reports again; a task whose latest report is queued is not
    // repeated, one with nothing queued gets its latest re-sent.
    board.publish(report("a", 99));
    assert_eq!(stream.drain_for_reconnect(), vec![report("a", 99), report("b", 1)]);
}

/// With the safety-net poll far away (2 min), an exit the agent did not cause is still noticed
/// at once: Docker's event stream pokes the observer.
#[tokio::test]
async fn docker_exit_on_its_own_is_noticed_through_engine_events() {
    let Some(case) = DockerCase::new("events").await else {
        return;
    };
    let cfg = SupervisorConfig {
        instance_id: case.instance.clone(),
        cluster: "test".into(),
        pull_behavior: PullBehavior::PreferCached,
        poll_interval: Duration::from_secs(120),
        task_cleanup_wait: Duration::from_secs(3600),
        awsvpc: Default::default(),
    };
    let mut sup = Supervisor::new(Arc::new(case.rt.clone()), cfg, Arc::new(SystemClock)).0;
    let task = unique_task("events");
    let def = taskdef(vec![container("main", &["sh", "-c", "sleep 2; exit 4"], true)]);
    sup.apply(false, &[assignment(&task, 1, "RUNNING", &def)]).await;
    wait_status(&sup, &task, "RUNNING").await;
    let running = std::time::Instant::now();
    let r = wait_status(&sup, &task, "STOPPED").await;
    assert!(running.elapsed() < Duration::from_secs(20), "noticed after {:?}", running.elapsed());
    assert_eq!(r.containers[0].exit_code, Some(4));
    drop(sup);
    case.cleanup().await;
}
