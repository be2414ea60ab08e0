//! # simulate — many simulated container instances in one process (`berth-agent --simulate N`)
//!
//! A scale tool, named as such everywhere: every node it registers runs the real agent code
//! ([`crate::Agent`]: session, supervisor, observer) over its own [`SimulatedRuntime`], an
//! in-memory fake engine; no Docker is involved and no process is started.
//!
//! ```text
//!  SimulationConfig ──► node i: AgentConfig (data dir DATA/sim-node-i, attributes from the
//!                       template's value i mod n, hostname simulated-i)
//!                       + SimNodeRuntime (delays, failures; RNG seeded by seed and i)
//!                         over SimulatedRuntime ──► Agent::run  ×N, one tokio runtime
//! ```
//!
//! * [`AttributesTemplate`]: `KEY=V1|V2|…,KEY2=…`; node `i` gets value `i mod n` of each key
//!   (round-robin by node index), e.g. `ecs.availability-zone=az-a|az-b|az-c`.
//! * [`SimBehavior`]: how the fake engine behaves — a delay before each start and each stop,
//!   and the probability that a start fails (the container then stays `created`, and the task
//!   stops as it would on Docker). Randomness comes from [`SimRng`], seeded per node from
//!   `--sim-seed` and the node index, so a run is reproducible.
//! * Every image is "present": a simulated node never pulls.
//!
//! Each node keeps its instance id in its own data dir, so restarting the simulation with the
//! same `--data-dir` brings the same instances back.

use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, RuntimeError, SimulatedRuntime,
};
use crate::{Agent, AgentConfig, AgentError, PullBehavior};
use async_trait::async_trait;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A simulated node's safety-net poll of its fake engine (see `SimulationConfig::node_config`).
pub const SIM_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// CPU units a simulated node offers unless told otherwise (an m5.large: 2 vCPU).
pub const DEFAULT_SIM_CPU_UNITS: i64 = 2048;
/// Memory MiB a simulated node offers unless told otherwise (an m5.large: 8 GiB).
pub const DEFAULT_SIM_MEMORY_MIB: i64 = 8192;

/// Per-key value lists; node `i` gets value `i mod len` of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributesTemplate {
    pub keys: Vec<(String, Vec<String>)>,
}

impl std::str::FromStr for AttributesTemplate {
    type Err = AgentError;

    /// Parses `KEY=V1|V2,KEY2=V3`. The error names the offending entry and the rule.
    fn from_str(s: &str) -> Result<Self, AgentError> {
        let bad = |m: String| AgentError::Config(format!("attributes template: {m}"));
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((k, vs)) = entry.split_once('=') else {
                return Err(bad(format!("{entry:?}: expected KEY=V1|V2|…")));
            };
            let k = k.trim();
            if k.is_empty() {
                return Err(bad(format!("{entry:?}: the attribute name must not be empty")));
            }
            if keys.iter().any(|(have, _)| have == k) {
                return Err(bad(format!("{k:?} appears twice")));
            }
            let values: Vec<String> = vs.split('|').map(|v| v.trim().to_string()).collect();
            if values.iter().any(String::is_empty) {
                return Err(bad(format!("{entry:?}: every value must be non-empty")));
            }
            keys.push((k.to_string(), values));
        }
        Ok(AttributesTemplate { keys })
    }
}

impl AttributesTemplate {
    /// The attributes of node `index`.
    pub fn for_node(&self, index: usize) -> Vec<(String, String)> {
        self.keys.iter().map(|(k, vs)| (k.clone(), vs[index % vs.len()].clone())).collect()
    }
}

/// How the simulated engine behaves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimBehavior {
    /// Delay before a container start takes effect.
    pub start_delay: Duration,
    /// Delay before a container stop takes effect.
    pub stop_delay: Duration,
    /// Probability in [0, 1] that a container start fails.
    pub start_failure_rate: f64,
}

/// Everything `--simulate N` needs.
#[derive(Debug, Clone)]
pub struct SimulationConfig {
    pub nodes: usize,
    /// Shared by every node: endpoints, cluster, custom attributes, cpu/memory per node, data
    /// dir (each node uses `data_dir/sim-node-<i>`).
    pub base: AgentConfig,
    pub template: AttributesTemplate,
    pub behavior: SimBehavior,
    pub seed: u64,
}

impl SimulationConfig {
    /// Checks the fields; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), AgentError> {
        if self.nodes == 0 {
            return Err(AgentError::Config("simulate: the node count must be at least 1".into()));
        }
        let r = self.behavior.start_failure_rate;
        if !(0.0..=1.0).contains(&r) {
            return Err(AgentError::Config(format!(
                "sim-start-failure-rate: {r} must be between 0 and 1"
            )));
        }
        self.base.validate()
    }

    /// The agent config of node `index`.
    pub fn node_config(&self, index: usize) -> AgentConfig {
        let mut cfg = self.base.clone();
        // Template values override custom ones of the same name.
        let templated = self.template.for_node(index);
        cfg.attributes.retain(|(k, _)| !templated.iter().any(|(t, _)| t == k));
        cfg.attributes.extend(templated);
        cfg.data_dir = node_dir(&self.base.data_dir, index);
        cfg.hostname = Some(format!("simulated-{index}"));
        cfg.image_pull_behavior = PullBehavior::PreferCached;
        cfg.exit_when_revoked = false;
        // The fake engine changes only through this agent's own calls, after each of which the
        // worker pokes the observer: the safety-net list (1 s against Docker, which also changes
        // on its own) is kept, but rarer, or 5,000 nodes list their engines 5,000 times a second.
        cfg.poll_interval = cfg.poll_interval.max(SIM_POLL_INTERVAL);
        cfg.cpu_units = Some(self.base.cpu_units.unwrap_or(DEFAULT_SIM_CPU_UNITS));
        cfg.memory_mib = Some(self.base.memory_mib.unwrap_or(DEFAULT_SIM_MEMORY_MIB));
        // Spread endpoint choice so sessions land on every controller.
        let n = cfg.endpoints.len();
        cfg.endpoints.rotate_left(index % n);
        cfg
    }
}

/// Runs every simulated node until `shutdown` resolves; the first node error ends the run.
pub async fn run(
    sim: SimulationConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    sim.validate()?;
    tracing::info!(
        nodes = sim.nodes,
        seed = sim.seed,
        "starting SIMULATED container instances (no Docker)"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut nodes = tokio::task::JoinSet::new();
    for i in 0..sim.nodes {
        let cfg = sim.node_config(i);
        let runtime = SimNodeRuntime::new(sim.behavior.clone(), node_seed(sim.seed, i));
        let agent = Agent::with_runtime(cfg, Arc::new(runtime))?;
        let mut rx = stop_rx.clone();
        nodes.spawn(agent.run(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }));
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut result = Ok(());
    tokio::select! {
        _ = &mut shutdown => {}
        Some(r) = nodes.join_next() => {
            result = flatten(r);
        }
    }
    let _ = stop_tx.send(true);
    while let Some(r) = nodes.join_next().await {
        if result.is_ok() {
            result = flatten(r);
        }
    }
    tracing::info!("simulated container instances stopped");
    result
}

fn flatten(r: Result<Result<(), AgentError>, tokio::task::JoinError>) -> Result<(), AgentError> {
    r.map_err(|e| AgentError::Config(format!("a simulated node panicked: {e}")))?
}

/// The seed of node `index`'s RNG.
pub fn node_seed(seed: u64, index: usize) -> u64 {
    SimRng::new(seed ^ (index as u64).wrapping_mul(0xa076_1d64_78bd_642f)).next_u64()
}

/// splitmix64: small, seeded, good enough for failure dice.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One simulated node's engine: [`SimulatedRuntime`] plus delays, failures and "every image is
/// present".
#[derive(Debug)]
pub struct SimNodeRuntime {
    inner: SimulatedRuntime,
    behavior: SimBehavior,
    rng: Mutex<SimRng>,
}

impl SimNodeRuntime {
    pub fn new(behavior: SimBehavior, seed: u64) -> Self {
        SimNodeRuntime {
            inner: SimulatedRuntime::new(),
            behavior,
            rng: Mutex::new(SimRng::new(seed)),
        }
    }

    /// The fake engine underneath (for tests).
    pub fn inner(&self) -> &SimulatedRuntime {
        &self.inner
    }

    fn start_fails(&self) -> bool {
        let rate = self.behavior.start_failure_rate;
        if rate <= 0.0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.next_f64() < rate
    }
}

#[async_trait]
impl ContainerRuntime for SimNodeRuntime {
    async fn version(&self) -> Result<String, RuntimeError> {
        self.inner.version().await
    }

    async fn image_present(&self, _image: &str) -> Result<bool, RuntimeError> {
        Ok(true)
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.inner.add_cached_image(image);
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.inner.add_cached_image(&spec.image);
        self.inner.create(spec).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        if !self.behavior.start_delay.is_zero() {
            tokio::time::sleep(self.behavior.start_delay).await;
        }
        if self.start_fails() {
            return Err(RuntimeError::Engine(
                "simulated start failure (--sim-start-failure-rate)".into(),
            ));
        }
        self.inner.start(id).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        self.inner.inspect(id).await
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        if !self.behavior.stop_delay.is_zero() {
            tokio::time::sleep(self.behavior.stop_delay).await;
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

/// Where node `index` keeps its instance id, under the simulation's data dir.
pub fn node_dir(data_dir: &std::path::Path, index: usize) -> PathBuf {
    data_dir.join(format!("sim-node-{index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_spreads_values_round_robin_by_node_index() {
        let t: AttributesTemplate =
            "ecs.availability-zone=az-a|az-b|az-c, ecs.instance-type=m5.large|c5.xlarge"
                .parse()
                .expect("parses");
        assert_eq!(
            t.for_node(4),
            vec![
                ("ecs.availability-zone".to_string(), "az-b".to_string()),
                ("ecs.instance-type".to_string(), "m5.large".to_string()),
            ]
        );
        assert_eq!(t.for_node(5)[1].1, "c5.xlarge");
    }

    #[test]
    fn template_rejects_empty_values_and_duplicate_keys() {
        assert!("a=x||y".parse::<AttributesTemplate>().is_err());
        assert!("a=x,a=y".parse::<AttributesTemplate>().is_err());
        assert!("=x".parse::<AttributesTemplate>().is_err());
        assert!("novalue".parse::<AttributesTemplate>().is_err());
        assert_eq!("".parse::<AttributesTemplate>().ok(), Some(AttributesTemplate::default()));
    }

    #[test]
    fn node_config_gives_each_node_its_dir_hostname_and_templated_attributes() {
        let sim = SimulationConfig {
            nodes: 3,
            base: AgentConfig {
                endpoints: vec!["http://a:1".into(), "http://b:1".into()],
                attributes: vec![
                    ("ecs.availability-zone".into(), "x".into()),
                    ("t".into(), "1".into()),
                ],
                data_dir: PathBuf::from("/d"),
                ..Default::default()
            },
            template: "ecs.availability-zone=az-a|az-b".parse().expect("parses"),
            behavior: SimBehavior::default(),
            seed: 1,
        };
        let c = sim.node_config(1);
        assert_eq!(c.data_dir, PathBuf::from("/d/sim-node-1"));
        assert_eq!(c.hostname.as_deref(), Some("simulated-1"));
        assert_eq!(
            c.attributes,
            vec![
                ("t".to_string(), "1".to_string()),
                ("ecs.availability-zone".to_string(), "az-b".to_string())
            ]
        );
        assert_eq!(c.endpoints[0], "http://b:1");
        assert_eq!(c.cpu_units, Some(DEFAULT_SIM_CPU_UNITS));
    }

    #[test]
    fn validate_rejects_zero_nodes_and_bad_rates() {
        let mut sim = SimulationConfig {
            nodes: 0,
            base: AgentConfig::default(),
            template: AttributesTemplate::default(),
            behavior: SimBehavior::default(),
            seed: 0,
        };
        assert!(sim.validate().is_err());
        sim.nodes = 1;
        sim.behavior.start_failure_rate = 1.5;
        assert!(sim.validate().is_err());
        sim.behavior.start_failure_rate = 0.5;
        assert!(sim.validate().is_ok());
    }

    #[test]
    fn seeded_failures_are_reproducible_and_near_the_rate() {
        let b = SimBehavior { start_failure_rate: 0.25, ..Default::default() };
        let count = |seed| {
            let rt = SimNodeRuntime::new(b.clone(), seed);
            (0..4000).filter(|_| rt.start_fails()).count()
        };
        assert_eq!(count(7), count(7));
        let n = count(7);
        assert!((900..1100).contains(&n), "{n} failures of 4000 at rate 0.25");
        assert_ne!(node_seed(7, 0), node_seed(7, 1));
    }

    #[tokio::test]
    async fn start_failure_leaves_the_container_created() {
        let rt =
            SimNodeRuntime::new(SimBehavior { start_failure_rate: 1.0, ..Default::default() }, 3);
        let spec = ContainerSpec { name: "c".into(), image: "any:1".into(), ..Default::default() };
        assert!(rt.image_present("never-pulled").await.unwrap_or(false));
        let id = rt.create(&spec).await.expect("create");
        assert!(matches!(rt.start(&id).await, Err(RuntimeError::Engine(_))));
        let info = rt.inspect(&id).await.expect("inspect");
        assert_eq!(info.state, crate::runtime::ContainerState::Created);
    }
}
