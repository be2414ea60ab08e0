//! `SimulatedRuntime`: an in-memory container engine for unit tests and scale simulations.
//!
//! It is a fake, named as such, and never stands where a user expects Docker. Images are "cached"
//! when added with [`SimulatedRuntime::add_cached_image`] and "pullable" when added with
//! [`SimulatedRuntime::add_registry_image`]. Started containers run until test code calls
//! [`SimulatedRuntime::exit_container`] or the agent stops them. Dynamic host ports come from a
//! counter starting at [`FIRST_DYNAMIC_PORT`]. One command is understood so that the shared
//! conformance suite can run unchanged against both runtimes: a container whose command ends in
//! `-c "exit N"` (e.g. `sh -c 'exit 3'`) exits with code N as soon as it starts.
//!
//! A start can be made to fail for one task container ([`SimulatedRuntime::fail_starts_of`]);
//! like Docker when the command is not an executable, the container then stays `created` with
//! the engine's error.
//!
//! Health: a started container with a health check is [`ContainerHealth::Starting`] until test
//! code calls [`SimulatedRuntime::set_health`]; for the conformance suite, a check whose command
//! is exactly `true` or `false` (`["CMD", "true"]`, `["CMD-SHELL", "false"]`) reaches its verdict
//! as soon as the container starts (no intervals or retries are simulated).
//!
//! Stats (`stats.rs`): simulated, deterministic numbers — each sample of a running container
//! adds [`SIMULATED_CPU_NS_PER_SAMPLE`] of CPU time, so two samples read as a quarter of a core;
//! memory in use is always [`SIMULATED_MEMORY_BYTES`].
//!
//! awsvpc: a pause container (a spec with `task_network`) gets an address from the same
//! allocator as on Docker, in the same `berth.awsvpc.*` labels; the built-in pause image is
//! "built" by [`ContainerRuntime::ensure_pause_image`] adding it to the cache.
//!
//! Output (`logs.rs`): only what test code writes with [`SimulatedRuntime::append_log`]; a
//! container nobody wrote to shows [`SIMULATED_NO_LOGS`].

mod logs;
mod stats;

pub use logs::SIMULATED_NO_LOGS;
pub use stats::{SIMULATED_CPU_NS_PER_SAMPLE, SIMULATED_MEMORY_BYTES};

use super::{
    BoundPort, ContainerHealth, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState,
    LABEL_CONTAINER_NAME, LogChunk, LogStream, LogsOptions, RuntimeError,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// First dynamic host port handed out (Docker's default ephemeral range starts here too).
pub const FIRST_DYNAMIC_PORT: u16 = 49153;

#[derive(Debug, Default)]
struct SimState {
    cached: HashSet<String>,
    registry: HashSet<String>,
    pulls: HashMap<String, u32>,
    containers: BTreeMap<String, ContainerInfo>,
    next_id: u64,
    next_port: u16,
    creates: u64,
    /// Names of containers that ignore SIGTERM (stop ends with 137 instead of 143).
    ignores_sigterm: HashSet<String>,
    fail_create: Option<String>,
    /// Task container name (`berth.container-name` label) → error every start of it fails with.
    fail_start: HashMap<String, String>,
    /// The spec each container was created from (its "config": port mappings, network mode).
    specs: HashMap<String, ContainerSpec>,
    /// Container id → how many stats samples were taken (`stats.rs`: the fake counters grow
    /// with it).
    stats_samples: HashMap<String, u64>,
    /// Container id → the output lines test code wrote (`logs.rs`).
    logs: HashMap<String, Vec<LogChunk>>,
    /// Woken when output is written or a container stops running (log followers wait on it).
    log_changed: Arc<tokio::sync::Notify>,
}

/// In-memory fake container engine. Cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct SimulatedRuntime {
    state: Arc<Mutex<SimState>>,
}

impl SimulatedRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding this lock can only come from a bug in this file; keep going
        // with the data as it is rather than poisoning every later test step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `image` present locally, as if pulled earlier.
    pub fn add_cached_image(&self, image: &str) {
        self.lock().cached.insert(image.to_string());
    }

    /// Makes `image` pullable (it exists in the simulated registry).
    pub fn add_registry_image(&self, image: &str) {
        self.lock().registry.insert(image.to_string());
    }

    /// Removes `image` from the local cache.
    pub fn remove_cached_image(&self, image: &str) {
        self.lock().cached.remove(image);
    }

    /// How many pull attempts (successful or not) were made for `image`.
    pub fn pull_count(&self, image: &str) -> u32 {
        self.lock().pulls.get(image).copied().unwrap_or(0)
    }

    /// How many containers were ever created.
    pub fn create_count(&self) -> u64 {
        self.lock().creates
    }

    /// Makes every later `create` fail with `message`.
    pub fn fail_creates(&self, message: Option<&str>) {
        self.lock().fail_create = message.map(str::to_string);
    }

    /// Makes every later `start` of a container whose task container name (the
    /// `berth.container-name` label) is `container` fail with `message` (`None`: start again).
    pub fn fail_starts_of(&self, container: &str, message: Option<&str>) {
        let mut st = self.lock();
        match message {
            Some(m) => st.fail_start.insert(container.to_string(), m.to_string()),
            None => st.fail_start.remove(container),
        };
    }

    /// Marks the container named `name` as ignoring SIGTERM: a stop then ends with exit code 137.
    pub fn ignore_sigterm(&self, name: &str) {
        self.lock().ignores_sigterm.insert(name.to_string());
    }

    /// Makes a running container exit with `code`. Returns false if no such running container.
    pub fn exit_container(&self, id_or_name: &str, code: i64) -> bool {
        let mut st = self.lock();
        let Some(c) = find_mut(&mut st.containers, id_or_name) else {
            return false;
        };
        if c.state != ContainerState::Running {
            return false;
        }
        c.state = ContainerState::Exited;
        c.exit_code = Some(code);
        c.ports.clear();
        c.health = None;
        logs::notify_followers(&st);
        true
    }

    /// Sets the health verdict of a running container that has a health check, as the engine's
    /// probe would. Returns false if there is no such container.
    pub fn set_health(&self, id_or_name: &str, health: ContainerHealth) -> bool {
        let mut st = self.lock();
        let SimState { containers, specs, .. } = &mut *st;
        let Some(c) = find_mut(containers, id_or_name) else {
            return false;
        };
        let checked = specs.get(&c.id).is_some_and(|s| s.health_check.is_some());
        if c.state != ContainerState::Running || !checked {
            return false;
        }
        c.health = Some(health);
        true
    }

    /// Snapshot of all containers (for test assertions).
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.lock().containers.values().cloned().collect()
    }
}

/// `[.., "-c", "exit N"]` → N.
fn scripted_exit(spec: &ContainerSpec) -> Option<i64> {
    let cmd = spec.cmd.as_ref()?;
    match cmd.as_slice() {
        [.., flag, script] if flag == "-c" => {
            script.trim().strip_prefix("exit ")?.trim().parse().ok()
        }
        _ => None,
    }
}

/// The health of a container that just started: a `true` / `false` check decides at once.
fn health_at_start(spec: &ContainerSpec) -> Option<ContainerHealth> {
    let test = &spec.health_check.as_ref()?.test;
    let command = match test.as_slice() {
        [kind, command] if kind == "CMD-SHELL" => command.trim(),
        [kind, command] if kind == "CMD" => command.as_str(),
        _ => "",
    };
    Some(match command {
        "true" => ContainerHealth::Healthy,
        "false" => ContainerHealth::Unhealthy,
        _ => ContainerHealth::Starting,
    })
}

fn find_mut<'a>(
    containers: &'a mut BTreeMap<String, ContainerInfo>,
    id_or_name: &str,
) -> Option<&'a mut ContainerInfo> {
    if containers.contains_key(id_or_name) {
        return containers.get_mut(id_or_name);
    }
    containers.values_mut().find(|c| c.name == id_or_name)
}

#[async_trait]
impl ContainerRuntime for SimulatedRuntime {
    async fn version(&self) -> Result<String, RuntimeError> {
        Ok("simulated".to_string())
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(self.lock().cached.contains(image))
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        *st.pulls.entry(image.to_string()).or_default() += 1;
        if st.registry.contains(image) {
            st.cached.insert(image.to_string());
            Ok(())
        } else {
            Err(RuntimeError::Pull {
                image: image.to_string(),
                message: "simulated registry has no such image".to_string(),
            })
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut st = self.lock();
        if let Some(msg) = &st.fail_create {
            return Err(RuntimeError::Engine(msg.clone()));
        }
        if !st.cached.contains(&spec.image) {
            return Err(RuntimeError::NotFound(format!("image {}", spec.image)));
        }
        if st.containers.values().any(|c| c.name == spec.name) {
            return Err(RuntimeError::Conflict(format!("name {} is in use", spec.name)));
        }
        st.next_id += 1;
        st.creates += 1;
        let id = format!("sim{:061x}", st.next_id);
        let labels = match &spec.task_network {
            Some(tn) => pause_labels(&st, spec, tn)?,
            None => spec.labels.clone(),
        };
        let info = ContainerInfo {
            id: id.clone(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            labels,
            state: ContainerState::Created,
            exit_code: None,
            ports: Vec::new(),
            error: None,
            health: None,
        };
        st.containers.insert(id.clone(), info);
        st.specs.insert(id.clone(), spec.clone());
        Ok(id)
    }

    /// The built-in pause image is "built" by adding it to the cache.
    async fn ensure_pause_image(&self, image: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        if image == super::pause_image::BUILTIN_PAUSE_IMAGE {
            st.cached.insert(image.to_string());
        }
        if st.cached.contains(image) {
            Ok(())
        } else {
            Err(RuntimeError::NotFound(format!("pause image {image}")))
        }
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let spec = find_mut(&mut st.containers, id).map(|c| c.id.clone());
        let spec = spec.and_then(|key| st.specs.get(&key).cloned());
        if st.next_port == 0 {
            st.next_port = FIRST_DYNAMIC_PORT;
        }
        let mut next_port = st.next_port;
        let st_fail = st.fail_start.clone();
        let c = find_mut(&mut st.containers, id)
            .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))?;
        if c.state == ContainerState::Running {
            return Ok(());
        }
        let failure = c.label(LABEL_CONTAINER_NAME).and_then(|n| st_fail.get(n)).cloned();
        if let Some(message) = failure {
            c.error = Some(message.clone());
            return Err(RuntimeError::Engine(message));
        }
        c.state = ContainerState::Running;
        c.exit_code = None;
        c.ports.clear();
        c.health = spec.as_ref().and_then(health_at_start);
        if let Some(spec) = &spec {
            for pm in &spec.port_mappings {
                let host_port = match (spec.network_mode.as_str(), pm.host_port) {
                    ("none", _) => continue,
                    ("host", _) => pm.container_port,
                    (_, Some(p)) if p != 0 => p,
                    _ => {
                        let p = next_port;
                        next_port = next_port.saturating_add(1);
                        p
                    }
                };
                c.ports.push(BoundPort {
                    container_port: pm.container_port,
                    host_port,
                    protocol: pm.protocol.clone(),
                    host_ip: "0.0.0.0".to_string(),
                });
            }
        }
        if let Some(code) = spec.as_ref().and_then(scripted_exit) {
            c.state = ContainerState::Exited;
            c.exit_code = Some(code);
            c.ports.clear();
            c.health = None;
        }
        st.next_port = next_port;
        logs::notify_followers(&st);
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let mut st = self.lock();
        find_mut(&mut st.containers, id)
            .map(|c| c.clone())
            .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))
    }

    async fn stop(&self, id: &str, _timeout: Duration) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let SimState { containers, ignores_sigterm, .. } = &mut *st;
        let c = find_mut(containers, id)
            .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))?;
        if c.state == ContainerState::Running {
            // SIGTERM ends the process with 143; one that ignores it is SIGKILLed (137).
            c.exit_code = Some(if ignores_sigterm.contains(&c.name) { 137 } else { 143 });
            c.state = ContainerState::Exited;
            c.ports.clear();
            c.health = None;
        }
        logs::notify_followers(&st);
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let key = match find_mut(&mut st.containers, id) {
            Some(c) if c.state == ContainerState::Running => {
                return Err(RuntimeError::Conflict(format!("container {id} is running")));
            }
            Some(c) => c.id.clone(),
            None => return Ok(()),
        };
        st.containers.remove(&key);
        st.specs.remove(&key);
        st.logs.remove(&key);
        logs::notify_followers(&st);
        Ok(())
    }

    async fn list(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Ok(self
            .lock()
            .containers
            .values()
            .filter(|c| c.label(key) == Some(value))
            .cloned()
            .collect())
    }

    async fn logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, RuntimeError> {
        logs::logs(self, id, opts)
    }

    async fn stats(&self, id: &str) -> Result<super::ContainerStats, RuntimeError> {
        let mut st = self.lock();
        let SimState { containers, specs, stats_samples, .. } = &mut *st;
        let c = find_mut(containers, id)
            .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))?;
        let n = stats_samples.entry(c.id.clone()).or_default();
        *n += 1;
        let limit = specs.get(&c.id).and_then(|s| s.memory_bytes);
        Ok(stats::simulated_sample(c, *n, limit))
    }
}

/// A pause container (awsvpc) gets an address as the Docker runtime gives one (the task
/// network's allocator, skipping the addresses of the other pause containers), recorded in the
/// same `berth.awsvpc.*` labels.
fn pause_labels(
    st: &SimState,
    spec: &ContainerSpec,
    tn: &super::task_network::TaskNetworkSpec,
) -> Result<BTreeMap<String, String>, RuntimeError> {
    use super::task_network::*;
    let mut used: HashSet<std::net::Ipv4Addr> = [tn.subnet.gateway()].into();
    used.extend(
        st.containers
            .values()
            .filter_map(|c| c.label(LABEL_AWSVPC_IPV4)?.parse::<std::net::Ipv4Addr>().ok()),
    );
    let ip = allocate(&tn.subnet, &used, tn.seed).ok_or_else(|| {
        RuntimeError::Engine(format!("network {} has no free address", tn.network))
    })?;
    let mut labels = spec.labels.clone();
    labels.insert(LABEL_AWSVPC_IPV4.into(), ip.to_string());
    labels.insert(LABEL_AWSVPC_MAC.into(), mac_address(ip));
    labels.insert(LABEL_AWSVPC_DNS_NAME.into(), private_dns_name(ip, &tn.dns_domain));
    labels.insert(LABEL_AWSVPC_NETWORK.into(), tn.network.clone());
    labels.insert(LABEL_AWSVPC_SUBNET.into(), tn.subnet.to_string());
    Ok(labels)
}
