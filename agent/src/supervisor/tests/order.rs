//! Container ordering (`dependsOn`, `links`, `startTimeout`, reverse-order shutdown) through the
//! whole supervisor, against the SimulatedRuntime wrapped in a recorder of start/stop calls.

use super::*;
use crate::runtime::{ContainerSpec, LABEL_CONTAINER_NAME, RuntimeError};
use async_trait::async_trait;
use berth_proto::model::{ContainerDependency, VolumeFrom};

/// Records `start:NAME` / `stop:NAME` (the task's container names) in call order.
struct Recorder {
    inner: SimulatedRuntime,
    calls: std::sync::Mutex<Vec<String>>,
}

impl Recorder {
    fn new(inner: SimulatedRuntime) -> Arc<Recorder> {
        Arc::new(Recorder { inner, calls: std::sync::Mutex::new(Vec::new()) })
    }

    async fn record(&self, verb: &str, id: &str) {
        let name = match self.inner.inspect(id).await {
            Ok(c) => c.label(LABEL_CONTAINER_NAME).unwrap_or("?").to_string(),
            Err(_) => "?".to_string(),
        };
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{verb}:{name}"));
    }

    /// The recorded calls of one verb, in order.
    fn calls(&self, verb: &str) -> Vec<String> {
        let prefix = format!("{verb}:");
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|c| c.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }
}

#[async_trait]
impl ContainerRuntime for Recorder {
    async fn version(&self) -> Result<String, RuntimeError> {
        self.inner.version().await
    }
    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        self.inner.image_present(image).await
    }
    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.inner.pull_image(image).await
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.inner.create(spec).await
    }
    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.record("start", id).await;
        self.inner.start(id).await
    }
    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        self.inner.inspect(id).await
    }
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        if self.inner.inspect(id).await.is_ok_and(|c| c.state == ContainerState::Running) {
            self.record("stop", id).await;
        }
        self.inner.stop(id, timeout).await
    }
    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.remove(id).await
    }
    async fn list(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.inner.list(key, value).await
    }
    async fn logs(
        &self,
        id: &str,
        opts: crate::runtime::LogsOptions,
    ) -> Result<crate::runtime::LogStream, RuntimeError> {
        self.inner.logs(id, opts).await
    }
}

fn depends(mut c: ContainerDefinition, target: &str, condition: &str) -> ContainerDefinition {
    c.depends_on
        .get_or_insert_with(Vec::new)
        .push(ContainerDependency { container_name: target.into(), condition: condition.into() });
    c
}

fn sleeper(name: &str, essential: bool) -> ContainerDefinition {
    container(name, &["sleep", "3600"], essential)
}

fn stopped_reason(r: &TaskStatusReport) -> &str {
    r.stopped_reason.as_deref().unwrap_or("")
}

fn was_created(rt: &SimulatedRuntime, task: &str, container: &str) -> bool {
    rt.containers().iter().any(|c| c.name == format!("berth-web-1-{container}-{task}"))
}

#[tokio::test]
async fn containers_start_in_dependency_order_and_stop_in_reverse() {
    let rt = sim();
    let rec = Recorder::new(rt.clone());
    let mut sup = supervisor(rec.clone(), "i-order", PullBehavior::PreferCached);
    // Definition order is the opposite of the start order: proxy -> app -> db.
    let mut app = depends(sleeper("app", true), "db", "START");
    app.links = Some(vec!["cache:cache".into()]);
    let def = taskdef(vec![
        depends(sleeper("proxy", true), "app", "START"),
        app,
        sleeper("db", true),
        sleeper("cache", false),
    ]);
    sup.apply(true, &[assignment("to1", 1, "RUNNING", &def)]).await;
    wait_status(&sup, "to1", "RUNNING").await;
    let starts = rec.calls("start");
    let pos = |n: &str| starts.iter().position(|s| s == n).unwrap_or(usize::MAX);
    assert!(pos("db") < pos("app") && pos("cache") < pos("app"), "{starts:?}");
    assert!(pos("app") < pos("proxy"), "{starts:?}");

    sup.apply(true, &[assignment("to1", 2, STOPPED, &def)]).await;
    wait_status(&sup, "to1", "STOPPED").await;
    let stops = rec.calls("stop");
    let pos = |n: &str| stops.iter().position(|s| s == n).unwrap_or(usize::MAX);
    assert_eq!(stops.len(), 4, "{stops:?}");
    assert!(pos("proxy") < pos("app"), "{stops:?}");
    assert!(pos("app") < pos("db") && pos("app") < pos("cache"), "{stops:?}");
}

#[tokio::test]
async fn success_dependency_waits_for_exit_zero() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-success", PullBehavior::PreferCached);
    let def =
        taskdef(vec![depends(sleeper("app", true), "init", "SUCCESS"), sleeper("init", false)]);
    sup.apply(true, &[assignment("ts1", 1, "RUNNING", &def)]).await;
    wait_for(WAIT, "init running", || async {
        rt.containers()
            .iter()
            .any(|c| c.name.ends_with("-init-ts1") && c.state == ContainerState::Running)
            .then_some(())
    })
    .await;
    assert!(!was_created(&rt, "ts1", "app"), "app waits for init to succeed");
    assert_eq!(sup.report("ts1").map(|r| r.last_status), Some("PENDING".to_string()));
    assert!(rt.exit_container("berth-web-1-init-ts1", 0));
    let r = wait_status(&sup, "ts1", "RUNNING").await;
    assert_eq!(r.containers.iter().find(|c| c.name == "init").and_then(|c| c.exit_code), Some(0));
}

#[tokio::test]
async fn success_dependency_exiting_non_zero_stops_the_task_and_the_dependent_never_starts() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-fail", PullBehavior::PreferCached);
    let init = container("init", &["sh", "-c", "exit 1"], false);
    let def = taskdef(vec![depends(sleeper("app", true), "init", "SUCCESS"), init]);
    sup.apply(true, &[assignment("tf1", 1, "RUNNING", &def)]).await;
    let r = wait_status(&sup, "tf1", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some(STOP_CODE_FAILED_TO_START));
    assert_eq!(
        stopped_reason(&r),
        "DependencyError: container app cannot start: it depends on init (SUCCESS), which \
         exited with code 1"
    );
    assert!(!was_created(&rt, "tf1", "app"), "app never started");
    let app = r.containers.iter().find(|c| c.name == "app").map(|c| c.last_status.clone());
    assert_eq!(app.as_deref(), Some("STOPPED"));
}

#[tokio::test]
async fn start_timeout_of_a_dependency_stops_the_task() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-timeout", PullBehavior::PreferCached);
    let mut dep = sleeper("dep", false);
    dep.start_timeout = Some(1);
    let def = taskdef(vec![depends(sleeper("app", true), "dep", "COMPLETE"), dep]);
    sup.apply(true, &[assignment("tt1", 1, "RUNNING", &def)]).await;
    let r = wait_status(&sup, "tt1", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some(STOP_CODE_FAILED_TO_START));
    assert!(stopped_reason(&r).contains("within its startTimeout of 1s"), "{r:?}");
    assert!(!was_created(&rt, "tt1", "app"));
    let dep = r.containers.iter().find(|c| c.name == "dep").and_then(|c| c.exit_code);
    assert_eq!(dep, Some(143), "the dependency was stopped with the task");
}

#[tokio::test]
async fn healthy_dependency_starts_the_dependent_once_healthy() {
    let rt = sim();
    let mut sup = supervisor(Arc::new(rt.clone()), "i-healthy", PullBehavior::PreferCached);
    let mut db = sleeper("db", true);
    db.health_check = Some(shell_check("probe"));
    let def = taskdef(vec![depends(sleeper("app", false), "db", "HEALTHY"), db]);
    sup.apply(true, &[assignment("th1", 1, "RUNNING", &def)]).await;
    wait_for(WAIT, "db running", || async {
        rt.containers()
            .iter()
            .any(|c| c.name.ends_with("-db-th1") && c.state == ContainerState::Running)
            .then_some(())
    })
    .await;
    assert!(!was_created(&rt, "th1", "app"), "db is not HEALTHY yet");
    assert!(rt.set_health("berth-web-1-db-th1", ContainerHealth::Healthy));
    let r = wait_status(&sup, "th1", "RUNNING").await;
    let app = r.containers.iter().find(|c| c.name == "app").map(|c| c.last_status.clone());
    assert_eq!(app.as_deref(), Some("RUNNING"));
}

/// The ECS agent's `datavolume` case: `exit` and `dataSource` mount the volumes of
/// `data-volume-source`, whose command cannot run.
fn datavolume_def() -> TaskDefinition {
    let from = |mut c: ContainerDefinition| {
        c.volumes_from = Some(vec![VolumeFrom {
            source_container: Some("data-volume-source".into()),
            read_only: None,
        }]);
        c
    };
    taskdef(vec![
        from(sleeper("exit", true)),
        from(container("dataSource", &["sh", "-c", "touch /data/success"], false)),
        container("data-volume-source", &["data volumes shouldn't need to run"], false),
    ])
}

#[tokio::test]
async fn volumes_from_source_is_created_first_and_a_failed_non_essential_start_is_stopped() {
    let rt = sim();
    rt.fail_starts_of("data-volume-source", Some("exec: not found in $PATH"));
    let rec = Recorder::new(rt.clone());
    let mut sup = supervisor(rec.clone(), "i-dv", PullBehavior::PreferCached);
    let def = datavolume_def();
    sup.apply(true, &[assignment("tdv", 1, "RUNNING", &def)]).await;
    let r = wait_status(&sup, "tdv", "RUNNING").await;
    let source = r.containers.iter().find(|c| c.name == "data-volume-source");
    assert_eq!(source.map(|c| c.last_status.as_str()), Some("STOPPED"), "{r:?}");
    assert_eq!(
        source.and_then(|c| c.reason.as_deref()),
        Some("CannotStartContainerError: container engine error: exec: not found in $PATH")
    );
    assert_eq!(source.and_then(|c| c.exit_code), None);
    // A few more polls: the failed start is never tried again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let starts = rec.calls("start");
    let tries = starts.iter().filter(|s| *s == "data-volume-source").count();
    assert_eq!(tries, 1, "{starts:?}");
    assert!(rt.exit_container("berth-web-1-exit-tdv", 42));
    let r = wait_status(&sup, "tdv", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some("EssentialContainerExited"));
    let exit = r.containers.iter().find(|c| c.name == "exit");
    assert_eq!(exit.and_then(|c| c.exit_code), Some(42));
}

#[tokio::test]
async fn essential_start_failure_still_fails_the_task() {
    let rt = sim();
    rt.fail_starts_of("exit", Some("exec: not found in $PATH"));
    let mut sup = supervisor(Arc::new(rt.clone()), "i-dv2", PullBehavior::PreferCached);
    sup.apply(true, &[assignment("tdv2", 1, "RUNNING", &datavolume_def())]).await;
    let r = wait_status(&sup, "tdv2", "STOPPED").await;
    assert_eq!(r.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert!(stopped_reason(&r).starts_with("CannotStartContainerError:"), "{r:?}");
}
