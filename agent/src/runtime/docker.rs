//! `DockerRuntime`: [`ContainerRuntime`] over the Docker Engine API with bollard 0.21.
//!
//! Connects to a unix socket (`unix:///var/run/docker.sock` by default, or `DOCKER_HOST`) or
//! an `http://`/`tcp://` address, then negotiates the API version (Debian's 20.10 daemon speaks
//! 1.41; bollard's default is newer). Logs always go to the `json-file` driver.
//!
//! * `awsvpc.rs`  — the awsvpc task network, pause containers with an address of their own, and
//!   the built-in pause image (`docker import` of an in-memory tar).
//! * `create.rs`  — [`ContainerSpec`] → the engine's create body (config and host config). Pure.
//! * `init.rs`    — `initProcessEnabled`: the engine's init binary mounted at `/dev/init` and
//!   prefixed to the effective command, as Docker 1.13–17.x did (pure; `--init-binary`). The
//!   binary is found once per runtime ([`DockerRuntime::with_init_binary`], `/info`), and the
//!   image's entry point and command are read (image inspect) when the definition sets none.
//! * `stats.rs`   — one-shot stats samples, a container's networks, the bridge gateway.
//! * `volumes.rs` — engine volumes: created before a container that mounts them, task-scoped
//!   ones removed with the task's last container.
//! * `logs.rs`    — a container's stdout/stderr (the engine's logs endpoint) as a stream.
//!
//! Health checks are Docker's own (`HealthConfig` on create, durations in nanoseconds); inspect
//! reads `State.Health.Status`, and list reads the summary's `Health` (API ≥ 1.52) or, from older
//! daemons, the "(healthy)" / "(unhealthy)" / "(health: starting)" suffix of its status text, so
//! that the observer can tell a health change without inspecting every container every poll.

mod awsvpc;
mod create;
pub mod init;
mod logs;
mod stats;
mod volumes;

use super::{
    BoundPort, ContainerHealth, ContainerInfo, ContainerNetwork, ContainerRuntime, ContainerSpec,
    ContainerState, ContainerStats, LogStream, LogsOptions, RuntimeError,
};
use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHealthStatusEnum,
    ContainerSummaryStateEnum, HealthStatusEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use create::create_body;
use futures::StreamExt;
pub use init::InitBinary;
use init::{ImageCommand, InitLaunch};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default engine address.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds a single engine request may take. Must exceed the longest stop timeout a task may
/// ask for (ECS allows 120 s) plus the SIGKILL, since `stop` blocks until the container is down.
const DOCKER_REQUEST_TIMEOUT_SECS: u64 = 300;

/// The real container runtime.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// awsvpc address allocation and pause image builds, one at a time (`awsvpc.rs`).
    awsvpc: Arc<awsvpc::AwsvpcLocks>,
    /// Where `initProcessEnabled` containers get their init (`init.rs`).
    init: Arc<InitState>,
}

/// `--init-binary`, and the binary it came to (resolved at the first container that needs it).
#[derive(Debug, Default)]
struct InitState {
    setting: InitBinary,
    /// The engine listens on a unix socket, so it runs on this host and sees its files.
    local_engine: bool,
    resolved: tokio::sync::OnceCell<Option<PathBuf>>,
}

impl DockerRuntime {
    /// Connects to `host` (default [`DEFAULT_DOCKER_HOST`]) and negotiates the API version.
    pub async fn connect(host: Option<&str>) -> Result<Self, RuntimeError> {
        let host = host.unwrap_or(DEFAULT_DOCKER_HOST);
        let local_engine = host.starts_with("unix://") || host.starts_with('/');
        let docker = if local_engine {
            Docker::connect_with_unix(
                host,
                DOCKER_REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(
                host,
                DOCKER_REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
        } else {
            return Err(RuntimeError::Unavailable(format!("unsupported docker host {host}")));
        }
        .map_err(|e| RuntimeError::Unavailable(format!("{host}: {e}")))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::Unavailable(format!("{host}: {e}")))?;
        let init = Arc::new(InitState { local_engine, ..Default::default() });
        Ok(Self { docker, awsvpc: Default::default(), init })
    }

    /// Where `initProcessEnabled` containers get their init from (`--init-binary`; default
    /// [`InitBinary::Auto`]).
    pub fn with_init_binary(mut self, setting: InitBinary) -> Self {
        let local_engine = self.init.local_engine;
        self.init = Arc::new(InitState { setting, local_engine, ..Default::default() });
        self
    }

    /// The init binary to mount at `/dev/init`, looked up once; `None`: the engine's own
    /// `--init` (warned once when `auto` finds nothing).
    async fn init_binary(&self) -> Result<Option<PathBuf>, RuntimeError> {
        let state = &self.init;
        let found = state
            .resolved
            .get_or_try_init(|| async {
                let found = match &state.setting {
                    InitBinary::Engine => None,
                    InitBinary::Path(path) => Some(path.clone()),
                    InitBinary::Auto if !state.local_engine => {
                        tracing::warn!(
                            "initProcessEnabled: the engine is not on this host, so its init \
                             binary cannot be found here; containers get the engine's --init \
                             (/sbin/docker-init). Set --init-binary to its path on that host."
                        );
                        None
                    }
                    InitBinary::Auto => {
                        let info = self.docker.info().await.map_err(|e| map_err("info", e))?;
                        let name = info
                            .init_binary
                            .filter(|n| !n.trim().is_empty())
                            .unwrap_or_else(|| init::DEFAULT_INIT_BINARY.to_string());
                        let path_env = std::env::var_os("PATH");
                        let candidates = init::search_paths(&name, path_env.as_deref());
                        let found = init::locate(&candidates, init::executable_file);
                        if found.is_none() {
                            tracing::warn!(
                                init_binary = %name,
                                "initProcessEnabled: the engine's init binary is not on this \
                                 host (the agent in a container without the host's /usr?); \
                                 containers get the engine's --init (/sbin/docker-init). Set \
                                 --init-binary to its path to run it as /dev/init."
                            );
                        }
                        found
                    }
                };
                if let Some(path) = &found {
                    tracing::info!(binary = %path.display(), "initProcessEnabled: init runs as /dev/init");
                }
                Ok::<_, RuntimeError>(found)
            })
            .await?;
        Ok(found.clone())
    }

    /// How the init of `spec` (which asked for one) is launched (`init::plan`).
    async fn init_launch(&self, spec: &ContainerSpec) -> Result<InitLaunch, RuntimeError> {
        let Some(binary) = self.init_binary().await? else {
            return Ok(InitLaunch::Engine);
        };
        let image = if init::needs_image(spec.entrypoint.as_deref()) {
            let inspected = self
                .docker
                .inspect_image(&spec.image)
                .await
                .map_err(|e| map_err(&format!("inspect image {}", spec.image), e))?;
            let config = inspected.config.unwrap_or_default();
            ImageCommand { entrypoint: config.entrypoint, cmd: config.cmd }
        } else {
            ImageCommand::default()
        };
        Ok(init::plan(Some(&binary), spec.entrypoint.as_deref(), spec.cmd.as_deref(), &image))
    }

    /// The underlying bollard client (for tests that need engine calls the trait lacks).
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn map_err(context: &str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError { status_code: 404, message } => {
            RuntimeError::NotFound(format!("{context}: {message}"))
        }
        BollardError::DockerResponseServerError { status_code: 409, message } => {
            RuntimeError::Conflict(format!("{context}: {message}"))
        }
        BollardError::DockerResponseServerError { message, .. } => {
            RuntimeError::Engine(format!("{context}: {message}"))
        }
        BollardError::SocketNotFoundError(p) => RuntimeError::Unavailable(p),
        // Transport failures: the engine may come back, so callers retry instead of failing
        // the task.
        e @ (BollardError::RequestTimeoutError
        | BollardError::IOError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }) => {
            RuntimeError::Unavailable(format!("{context}: {e}"))
        }
        other => RuntimeError::Engine(format!("{context}: {other}")),
    }
}

fn health_of_status(status: Option<HealthStatusEnum>) -> Option<ContainerHealth> {
    match status? {
        HealthStatusEnum::STARTING => Some(ContainerHealth::Starting),
        HealthStatusEnum::HEALTHY => Some(ContainerHealth::Healthy),
        HealthStatusEnum::UNHEALTHY => Some(ContainerHealth::Unhealthy),
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
    }
}

/// Health as the list call shows it: the structured field when the daemon sends it, else the
/// suffix Docker appends to a running container's status text ("Up 3 seconds (healthy)").
fn health_of_summary(c: &ContainerSummary) -> Option<ContainerHealth> {
    if let Some(status) = c.health.as_ref().and_then(|h| h.status) {
        return match status {
            ContainerSummaryHealthStatusEnum::STARTING => Some(ContainerHealth::Starting),
            ContainerSummaryHealthStatusEnum::HEALTHY => Some(ContainerHealth::Healthy),
            ContainerSummaryHealthStatusEnum::UNHEALTHY => Some(ContainerHealth::Unhealthy),
            ContainerSummaryHealthStatusEnum::NONE | ContainerSummaryHealthStatusEnum::EMPTY => {
                None
            }
        };
    }
    health_of_status_text(c.status.as_deref()?)
}

fn health_of_status_text(text: &str) -> Option<ContainerHealth> {
    if !text.starts_with("Up ") {
        return None;
    }
    if text.ends_with("(healthy)") {
        Some(ContainerHealth::Healthy)
    } else if text.ends_with("(unhealthy)") {
        Some(ContainerHealth::Unhealthy)
    } else if text.ends_with("(health: starting)") {
        Some(ContainerHealth::Starting)
    } else {
        None
    }
}

fn parse_port_key(key: &str) -> Option<(u16, String)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Some((port.parse().ok()?, proto.to_string()))
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn version(&self) -> Result<String, RuntimeError> {
        let v = self.docker.version().await.map_err(|e| map_err("version", e))?;
        Ok(v.version.unwrap_or_default())
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(map_err("inspect image", e)),
        }
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        // `from_image` with the tag inside the reference: the engine splits `repo:tag` itself.
        let opts = CreateImageOptionsBuilder::default().from_image(image).build();
        let mut stream = Box::pin(self.docker.create_image(Some(opts), None, None));
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(RuntimeError::Pull {
                    image: image.to_string(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        if let Some(tn) = &spec.task_network {
            return awsvpc::create_pause(&self.docker, &self.awsvpc, spec, tn).await;
        }
        let mut body = create_body(spec);
        if spec.options.init == Some(true) {
            init::apply(&mut body, &self.init_launch(spec).await?);
        }
        let created_volumes = volumes::ensure(&self.docker, spec).await?;
        let opts = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        match self.docker.create_container(Some(opts), body).await {
            Ok(resp) => Ok(resp.id),
            Err(e) => {
                // Take back the task volumes made for this container alone; the create is
                // retried or the task fails, and either way nothing else holds them.
                if let Err(v) =
                    volumes::remove_unused_task_volumes(&self.docker, &created_volumes).await
                {
                    tracing::warn!(container = %spec.name, error = %v, "task volume cleanup failed");
                }
                Err(map_err(&format!("create {}", spec.name), e))
            }
        }
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.docker.start_container(id, None).await.map_err(|e| map_err(&format!("start {id}"), e))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let r = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| map_err(&format!("inspect {id}"), e))?;
        let st = r.state.unwrap_or_default();
        let state = match st.status {
            Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
            Some(ContainerStateStatusEnum::RUNNING)
            | Some(ContainerStateStatusEnum::PAUSED)
            | Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Running,
            Some(ContainerStateStatusEnum::EXITED) | Some(ContainerStateStatusEnum::DEAD) => {
                ContainerState::Exited
            }
            _ => ContainerState::Other,
        };
        // Only a running container has a verdict: on stop Docker sets "unhealthy" regardless.
        let health = if state == ContainerState::Running {
            health_of_status(st.health.and_then(|h| h.status))
        } else {
            None
        };
        let config = r.config.unwrap_or_default();
        let mut ports = Vec::new();
        let port_map = r.network_settings.and_then(|n| n.ports).unwrap_or_default();
        for (key, bindings) in port_map {
            let Some((container_port, protocol)) = parse_port_key(&key) else {
                continue;
            };
            for b in bindings.unwrap_or_default() {
                let Some(host_port) = b.host_port.and_then(|p| p.parse::<u16>().ok()) else {
                    continue;
                };
                let host_ip = b.host_ip.unwrap_or_default();
                // Docker binds IPv4 and IPv6 separately; report the IPv4 (or wildcard) one.
                if host_ip.contains(':') {
                    continue;
                }
                ports.push(BoundPort {
                    container_port,
                    host_port,
                    protocol: protocol.clone(),
                    host_ip: if host_ip.is_empty() { "0.0.0.0".to_string() } else { host_ip },
                });
            }
        }
        ports.sort();
        ports.dedup();
        Ok(ContainerInfo {
            id: r.id.unwrap_or_else(|| id.to_string()),
            name: r.name.unwrap_or_default().trim_start_matches('/').to_string(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            state,
            exit_code: if state == ContainerState::Exited { st.exit_code } else { None },
            ports,
            error: st.error.filter(|e| !e.is_empty()),
            health,
        })
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let secs = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::default().t(secs).build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(map_err(&format!("stop {id}"), e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        // Task volumes go with the task's last container: read what it mounts before it goes.
        let mounted = volumes::mounted_by(&self.docker, id).await;
        let opts = RemoveContainerOptionsBuilder::default().v(true).build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => {}
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(map_err(&format!("remove {id}"), e)),
        }
        // The container is gone; a volume that cannot be removed now is not worth failing the
        // removal for (a retry would no longer know which volumes it used).
        if let Err(e) = volumes::remove_unused_task_volumes(&self.docker, &mounted).await {
            tracing::warn!(container = %id, error = %e, "task volume cleanup failed");
        }
        Ok(())
    }

    async fn ensure_pause_image(&self, image: &str) -> Result<(), RuntimeError> {
        awsvpc::ensure_builtin_image(&self.docker, &self.awsvpc, image).await
    }

    fn watch(&self, key: &str, value: &str) -> Option<futures::stream::BoxStream<'static, String>> {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        filters.insert("label".to_string(), vec![format!("{key}={value}")]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        let events = self.docker.events(Some(opts));
        // Exec events (health checks run as execs) are noise: their outcome shows up as a
        // `health_status` event. The stream stops at the first error (the observer re-opens it).
        Some(
            events
                .take_while(|e| futures::future::ready(e.is_ok()))
                .filter_map(|e| {
                    let e = e.ok();
                    let action = e.as_ref().and_then(|e| e.action.clone()).unwrap_or_default();
                    let id = e.and_then(|e| e.actor).and_then(|a| a.id);
                    futures::future::ready(id.filter(|_| !action.starts_with("exec_")))
                })
                .boxed(),
        )
    }

    async fn list(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![format!("{key}={value}")]);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| map_err("list", e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let state = match c.state {
                    Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
                    Some(ContainerSummaryStateEnum::RUNNING)
                    | Some(ContainerSummaryStateEnum::PAUSED)
                    | Some(ContainerSummaryStateEnum::RESTARTING) => ContainerState::Running,
                    Some(ContainerSummaryStateEnum::EXITED)
                    | Some(ContainerSummaryStateEnum::DEAD) => ContainerState::Exited,
                    _ => ContainerState::Other,
                };
                let health =
                    if state == ContainerState::Running { health_of_summary(&c) } else { None };
                Some(ContainerInfo {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    image: c.image.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default().into_iter().collect::<BTreeMap<_, _>>(),
                    state,
                    exit_code: None,
                    ports: Vec::new(),
                    error: None,
                    health,
                })
            })
            .collect())
    }

    async fn logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, RuntimeError> {
        logs::logs(&self.docker, id, opts).await
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        stats::sample(&self.docker, id).await
    }

    async fn networks(&self, id: &str) -> Result<Vec<ContainerNetwork>, RuntimeError> {
        stats::networks(&self.docker, id).await
    }

    async fn bridge_gateway(&self) -> Result<Option<std::net::IpAddr>, RuntimeError> {
        stats::bridge_gateway(&self.docker).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_status_text_yields_health() {
        assert_eq!(health_of_status_text("Up 2 seconds (healthy)"), Some(ContainerHealth::Healthy));
        assert_eq!(
            health_of_status_text("Up 3 minutes (unhealthy)"),
            Some(ContainerHealth::Unhealthy)
        );
        assert_eq!(
            health_of_status_text("Up Less than a second (health: starting)"),
            Some(ContainerHealth::Starting)
        );
        assert_eq!(health_of_status_text("Up 5 seconds"), None);
        assert_eq!(health_of_status_text("Exited (137) 2 seconds ago"), None);
    }
}

/// `initProcessEnabled` on the real engine: `auto` runs the engine's init as `/dev/init` (PID 1
/// named `init`), `engine` as Docker's own `/sbin/docker-init`; the image's Cmd still runs.
#[cfg(test)]
mod init_tests {
    use super::*;
    use crate::runtime::LABEL_INSTANCE_ID;
    use crate::testkit::{docker_with_test_image, remove_instance_containers, unique_id, wait_for};

    async fn exit_code(rt: &DockerRuntime, spec: &ContainerSpec) -> Option<i64> {
        let id = rt.create(spec).await.expect("create");
        rt.start(&id).await.expect("start");
        let exited = wait_for(Duration::from_secs(20), "the container to exit", || async {
            rt.inspect(&id).await.ok().filter(|i| i.state == ContainerState::Exited)
        })
        .await;
        exited.exit_code
    }

    fn spec(instance: &str, name: &str, script: &str) -> ContainerSpec {
        let mut spec = ContainerSpec {
            name: format!("{instance}-{name}"),
            image: crate::testkit::TEST_IMAGE.to_string(),
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            network_mode: "none".into(),
            ..Default::default()
        };
        spec.labels.insert(LABEL_INSTANCE_ID.into(), instance.into());
        spec.options.init = Some(true);
        spec
    }

    #[tokio::test]
    async fn init_process_runs_as_dev_init_or_as_the_engines_init() {
        let Some(rt) = docker_with_test_image().await else {
            return;
        };
        let instance = unique_id("init");
        let pid1 = r#"read -r comm < /proc/1/comm; [ "$comm" = "$WANT" ] && exit 42; echo "$comm"; exit 1"#;
        let mut dev_init = spec(&instance, "dev-init", pid1);
        dev_init.env = vec!["WANT=init".into()];
        let found = rt.init_binary().await.expect("init binary lookup");
        if found.is_some() {
            assert_eq!(exit_code(&rt, &dev_init).await, Some(42), "PID 1 is /dev/init");
            // No command in the definition: the image's Cmd (/bin/sh, stdin closed) runs
            // under the init and exits 0.
            let mut image_cmd = spec(&instance, "image-cmd", "");
            image_cmd.cmd = None;
            assert_eq!(exit_code(&rt, &image_cmd).await, Some(0));
        } else {
            eprintln!("SKIP /dev/init: no docker-init on this host");
        }
        let engine = rt.clone().with_init_binary(InitBinary::Engine);
        let mut docker_init = spec(&instance, "docker-init", pid1);
        docker_init.env = vec!["WANT=docker-init".into()];
        assert_eq!(exit_code(&engine, &docker_init).await, Some(42), "PID 1 is docker-init");
        remove_instance_containers(&rt, &instance).await;
    }
}
