//! # metrics — the agent's Prometheus series (`GET /metrics` on the operator HTTP API)
//!
//! Names, types and labels are the contract of `charts/berth/METRICS.md`. One [`AgentMetrics`]
//! per agent (its own [`Registry`]: tests run several agents in one process), created by
//! [`crate::Agent`] and observed in three places:
//!
//! * [`InstrumentedRuntime`] — a decorator over the [`ContainerRuntime`] seam: every call's
//!   latency by operation, container start attempts by result (a failed create or start is a
//!   failure), image pulls by result and successful pull time;
//! * the session (`crate::session`) — heartbeat round trips (sent → acknowledged, matched by
//!   sequence number) and whether a controller session is registered (`berth_agent_connected`,
//!   which `/readyz` also reads);
//! * at scrape time ([`running_tasks`]) — tasks with a running container, from the runtime.
//!
//! Must not touch: containers (the decorator only times calls and passes them through).

use crate::runtime::{
    ContainerInfo, ContainerNetwork, ContainerRuntime, ContainerSpec, ContainerState,
    ContainerStats, LABEL_INSTANCE_ID, LABEL_TASK_ID, LogStream, LogsOptions, RuntimeError,
};
use async_trait::async_trait;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Media type of the text exposition format served on `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The agent's series; cheap to clone (clones share them).
#[derive(Clone)]
pub struct AgentMetrics {
    registry: Registry,
    pub running_tasks: IntGauge,
    pub container_starts: IntCounterVec,
    pub image_pulls: IntCounterVec,
    pub image_pull_duration: Histogram,
    pub docker_request_duration: HistogramVec,
    pub heartbeat_rtt: Histogram,
    pub connected: IntGauge,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: &C) {
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "metric not registered");
    }
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric")
}

impl AgentMetrics {
    /// A fresh registry with every agent series registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = AgentMetrics {
            running_tasks: IntGauge::new(
                "berth_agent_running_tasks",
                "Tasks with a RUNNING container on this agent.",
            )
            .expect("valid metric"),
            container_starts: IntCounterVec::new(
                Opts::new(
                    "berth_agent_container_starts_total",
                    "Container start attempts (create and start; a failed create counts as a \
                     failure).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            image_pulls: IntCounterVec::new(
                Opts::new("berth_agent_image_pulls_total", "Image pulls by result."),
                &["result"],
            )
            .expect("valid metric"),
            image_pull_duration: histogram(
                "berth_agent_image_pull_duration_seconds",
                "Time to pull one image (pulls skipped by the pull behavior are not observed).",
                prometheus::exponential_buckets(0.05, 2.0, 12).expect("buckets"),
            ),
            docker_request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "berth_agent_docker_request_duration_seconds",
                    "Latency of one Docker Engine API request.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("buckets")),
                &["operation"],
            )
            .expect("valid metric"),
            heartbeat_rtt: histogram(
                "berth_agent_heartbeat_rtt_seconds",
                "From sending a heartbeat to the controller's acknowledgement.",
                prometheus::exponential_buckets(0.0005, 2.0, 14).expect("buckets"),
            ),
            connected: IntGauge::new(
                "berth_agent_connected",
                "1 while a session with a controller is registered, else 0.",
            )
            .expect("valid metric"),
            registry,
        };
        let r = &m.registry;
        register(r, &m.running_tasks);
        register(r, &m.container_starts);
        register(r, &m.image_pulls);
        register(r, &m.image_pull_duration);
        register(r, &m.docker_request_duration);
        register(r, &m.heartbeat_rtt);
        register(r, &m.connected);
        for result in ["success", "failure"] {
            m.container_starts.with_label_values(&[result]);
            m.image_pulls.with_label_values(&[result]);
        }
        m
    }

    /// Whether a controller session is registered now.
    pub fn set_connected(&self, connected: bool) {
        self.connected.set(i64::from(connected));
    }

    pub fn is_connected(&self) -> bool {
        self.connected.get() == 1
    }

    /// The text exposition of the registry as it stands.
    pub fn encode(&self) -> String {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(
            |e| {
                tracing::warn!(error = %e, "encoding metrics failed");
                String::new()
            },
        )
    }
}

/// Tasks of `instance_id` with at least one running container.
pub fn running_tasks(containers: &[ContainerInfo]) -> usize {
    containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .filter_map(|c| c.label(LABEL_TASK_ID))
        .collect::<BTreeSet<_>>()
        .len()
}

/// How long a scrape waits for the runtime's container list before serving the last known
/// `berth_agent_running_tasks` (the same bound as `/readyz`: scrapes answer within a second
/// even when the engine hangs).
pub const RUNNING_TASKS_TIMEOUT: Duration = Duration::from_millis(800);

/// Refreshes `berth_agent_running_tasks` from the runtime (containers labelled with this
/// agent's `instance_id`); left as it was when the runtime fails or does not answer within
/// `timeout`.
pub async fn refresh_running_tasks(
    metrics: &AgentMetrics,
    runtime: &dyn ContainerRuntime,
    instance_id: &str,
    timeout: Duration,
) {
    if instance_id.is_empty() {
        metrics.running_tasks.set(0);
        return;
    }
    match tokio::time::timeout(timeout, runtime.list(LABEL_INSTANCE_ID, instance_id)).await {
        Ok(Ok(containers)) => metrics.running_tasks.set(running_tasks(&containers) as i64),
        Ok(Err(e)) => tracing::debug!(error = %e, "running tasks not refreshed"),
        Err(_) => tracing::debug!(
            timeout_ms = timeout.as_millis() as u64,
            "running tasks not refreshed: the container engine did not answer"
        ),
    }
}

/// A [`ContainerRuntime`] that times every call of the runtime it wraps
/// (`berth_agent_docker_request_duration_seconds{operation}`), counts starts by result and
/// times image pulls. Everything else passes through unchanged.
pub struct InstrumentedRuntime {
    inner: Arc<dyn ContainerRuntime>,
    metrics: AgentMetrics,
}

impl InstrumentedRuntime {
    pub fn new(inner: Arc<dyn ContainerRuntime>, metrics: AgentMetrics) -> Self {
        InstrumentedRuntime { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, RuntimeError>>,
    ) -> (Result<T, RuntimeError>, Duration) {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        self.metrics
            .docker_request_duration
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
        (result, elapsed)
    }
}

#[async_trait]
impl ContainerRuntime for InstrumentedRuntime {
    async fn version(&self) -> Result<String, RuntimeError> {
        self.timed("version", self.inner.version()).await.0
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        self.timed("inspect_image", self.inner.image_present(image)).await.0
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        let (result, elapsed) = self.timed("pull", self.inner.pull_image(image)).await;
        if result.is_ok() {
            self.metrics.image_pull_duration.observe(elapsed.as_secs_f64());
        }
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.metrics.image_pulls.with_label_values(&[outcome]).inc();
        result
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let result = self.timed("create", self.inner.create(spec)).await.0;
        // A create that fails is a start attempt that failed. A name conflict is not: the
        // supervisor resolves it (its own container) before deciding again.
        if let Err(e) = &result
            && !matches!(e, RuntimeError::Conflict(_))
        {
            self.metrics.container_starts.with_label_values(&["failure"]).inc();
        }
        result
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let result = self.timed("start", self.inner.start(id)).await.0;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.metrics.container_starts.with_label_values(&[outcome]).inc();
        result
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        self.timed("inspect", self.inner.inspect(id)).await.0
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        self.timed("stop", self.inner.stop(id, timeout)).await.0
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.timed("remove", self.inner.remove(id)).await.0
    }

    async fn list(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.timed("list", self.inner.list(key, value)).await.0
    }

    async fn ensure_pause_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.timed("ensure_pause_image", self.inner.ensure_pause_image(image)).await.0
    }

    async fn logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, RuntimeError> {
        // Timed to the stream's start: its length is the client's choice (follow).
        self.timed("logs", self.inner.logs(id, opts)).await.0
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        self.timed("stats", self.inner.stats(id)).await.0
    }

    async fn networks(&self, id: &str) -> Result<Vec<ContainerNetwork>, RuntimeError> {
        self.timed("networks", self.inner.networks(id)).await.0
    }

    async fn bridge_gateway(&self) -> Result<Option<std::net::IpAddr>, RuntimeError> {
        self.timed("bridge_gateway", self.inner.bridge_gateway()).await.0
    }

    fn watch(&self, key: &str, value: &str) -> Option<futures::stream::BoxStream<'static, String>> {
        self.inner.watch(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SimulatedRuntime;

    #[tokio::test]
    async fn the_decorator_times_calls_and_counts_starts() {
        let metrics = AgentMetrics::new();
        let rt = InstrumentedRuntime::new(Arc::new(SimulatedRuntime::new()), metrics.clone());
        assert!(rt.start("missing").await.is_err());
        assert!(rt.pull_image("nowhere/missing:1").await.is_err());
        let spec = ContainerSpec { image: "nowhere/missing:1".into(), ..Default::default() };
        assert!(rt.create(&spec).await.is_err());
        rt.list(LABEL_INSTANCE_ID, "i-1").await.expect("list");
        let text = metrics.encode();
        assert!(
            text.contains("berth_agent_container_starts_total{result=\"failure\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("berth_agent_container_starts_total{result=\"success\"} 0"),
            "{text}"
        );
        for op in ["start", "list"] {
            let needle = format!(
                "berth_agent_docker_request_duration_seconds_count{{operation=\"{op}\"}} 1"
            );
            assert!(text.contains(&needle), "{needle} missing:\n{text}");
        }
        assert!(text.contains("berth_agent_image_pulls_total{result=\"failure\"} 1"), "{text}");
        assert!(text.contains("berth_agent_image_pulls_total{result=\"success\"} 0"), "{text}");
        for name in [
            "berth_agent_running_tasks 0",
            "berth_agent_image_pull_duration_seconds_count 0",
            "berth_agent_heartbeat_rtt_seconds_count 0",
            "berth_agent_connected 0",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }

    /// A runtime whose `list` never returns (a hung engine); everything else delegates.
    struct HungList(SimulatedRuntime);

    #[async_trait]
    impl ContainerRuntime for HungList {
        async fn version(&self) -> Result<String, RuntimeError> {
            self.0.version().await
        }
        async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
            self.0.image_present(image).await
        }
        async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
            self.0.pull_image(image).await
        }
        async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
            self.0.create(spec).await
        }
        async fn start(&self, id: &str) -> Result<(), RuntimeError> {
            self.0.start(id).await
        }
        async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
            self.0.inspect(id).await
        }
        async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
            self.0.stop(id, timeout).await
        }
        async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
            self.0.remove(id).await
        }
        async fn list(&self, _key: &str, _value: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
            std::future::pending().await
        }
        async fn logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream, RuntimeError> {
            self.0.logs(id, opts).await
        }
    }

    #[tokio::test]
    async fn a_hung_engine_does_not_hang_the_refresh_and_keeps_the_last_value() {
        let metrics = AgentMetrics::new();
        metrics.running_tasks.set(3);
        let rt = HungList(SimulatedRuntime::new());
        let started = Instant::now();
        refresh_running_tasks(&metrics, &rt, "i-1", Duration::from_millis(50)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "refresh took {took:?}");
        assert_eq!(metrics.running_tasks.get(), 3);
        assert!(RUNNING_TASKS_TIMEOUT < Duration::from_secs(1));
    }

    #[test]
    fn running_tasks_counts_tasks_not_containers() {
        let c = |task: &str, state: ContainerState| ContainerInfo {
            id: format!("{task}-{state:?}"),
            name: String::new(),
            image: String::new(),
            labels: [(LABEL_TASK_ID.to_string(), task.to_string())].into(),
            state,
            exit_code: None,
            ports: vec![],
            error: None,
            health: None,
        };
        let list = [
            c("a", ContainerState::Running),
            c("a", ContainerState::Running),
            c("b", ContainerState::Exited),
            c("c", ContainerState::Running),
        ];
        assert_eq!(running_tasks(&list), 2);
    }
}
