//! # stats — periodic container usage sampling
//!
//! ```text
//!  every --stats-interval-secs:  observer snapshot ─► running containers ─► runtime.stats(id)
//!        (one-shot samples, a few at a time) ─► usage() against the previous sample (pure)
//!        ─► one StatsReport per agent per period ─► watch channel ─► session ─► controller
//! ```
//!
//! * [`usage`]: two engine samples → [`ContainerUsage`] in Container Insights units (CPU units,
//!   1024 = one core; MiB). Docker's one-shot stats carry no `precpu_stats`, so the rate comes
//!   from the previous sample the sampler kept; a container's first sample has memory only.
//! * [`StatsCache`]: the latest engine sample per container, shared with the task metadata
//!   endpoint (its `/stats` answers carry that sample as `precpu_stats` / `preread`).
//! * [`StatsSampler`]: the loop, started with the supervisor; `interval` zero disables it.
//!   Reports go through a `watch` channel: while the controller is unreachable only the latest
//!   period waits (stats are a gauge; old periods are worth nothing).
//!
//! Sampling failures (a container that just exited, a runtime without stats) skip that
//! container for the period; they are logged at debug level only.

use crate::Clock;
use crate::runtime::{ContainerRuntime, ContainerState, ContainerStats, LABEL_CONTAINER_NAME};
use crate::supervisor::observer::ObserverHandle;
use berth_proto::model::{ContainerUsage, ContainerUsageSample, StatsReport, Timestamp, round2};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// ECS's default stats period (`ECS_POLLING_METRICS_WAIT_DURATION` sends every 20 s).
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(20);

/// Stats calls in flight at once: Docker computes each from cgroup files; a few in parallel keep
/// a period short without flooding the engine.
const PARALLEL_SAMPLES: usize = 8;

const MIB: f64 = 1024.0 * 1024.0;
const CPU_UNITS_PER_CORE: f64 = 1024.0;

/// Usage between `prev` and `cur` of one container, sampled at `at`. Pure.
///
/// CPU units = (container CPU time delta / host CPU time delta) × online CPUs × 1024, the
/// formula of `docker stats` and the ECS agent. No CPU figure without a usable previous sample
/// (none yet, or counters went backwards because the container restarted).
pub fn usage(prev: Option<&ContainerStats>, cur: &ContainerStats, at: Timestamp) -> ContainerUsage {
    let cpu = prev.and_then(|p| {
        let used = cur.cpu_total_usage_ns.checked_sub(p.cpu_total_usage_ns)?;
        let host = cur.system_cpu_usage_ns?.checked_sub(p.system_cpu_usage_ns?)?;
        if host == 0 {
            return None;
        }
        let cpus = f64::from(cur.online_cpus.unwrap_or(1));
        Some(round2(used as f64 / host as f64 * cpus * CPU_UNITS_PER_CORE))
    });
    ContainerUsage {
        cpu_utilized: cpu,
        memory_utilized: round2(cur.memory_usage_bytes as f64 / MIB),
        memory_limit: cur.memory_limit_bytes.map(|l| round2(l as f64 / MIB)),
        sampled_at: at,
    }
}

/// The latest engine sample of every running container, by container id.
#[derive(Debug, Default)]
pub struct StatsCache {
    latest: Mutex<HashMap<String, ContainerStats>>,
}

impl StatsCache {
    pub fn get(&self, id: &str) -> Option<ContainerStats> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// Stores `cur` as the latest sample of `id`, returning the one it replaces.
    fn replace(&self, id: &str, cur: ContainerStats) -> Option<ContainerStats> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), cur)
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, _| keep(id));
    }
}

/// The sampling loop of one agent; aborted when dropped.
pub struct StatsSampler {
    rx: watch::Receiver<Option<Arc<StatsReport>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl StatsSampler {
    /// Starts sampling every `interval` (`None` when `interval` is zero: stats are off).
    pub fn start(
        runtime: Arc<dyn ContainerRuntime>,
        observer: ObserverHandle,
        interval: Duration,
        clock: Arc<dyn Clock>,
        cache: Arc<StatsCache>,
    ) -> Option<StatsSampler> {
        if interval.is_zero() {
            return None;
        }
        let (tx, rx) = watch::channel(None);
        let handle = tokio::spawn(run(runtime, observer, interval, clock, cache, tx));
        Some(StatsSampler { rx, handle })
    }

    /// The next period's report (waits for it).
    pub async fn next(&mut self) -> Option<Arc<StatsReport>> {
        self.rx.changed().await.ok()?;
        self.rx.borrow_and_update().clone()
    }
}

impl Drop for StatsSampler {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The next report of `sampler`, or never when there is none (for `select!`).
pub async fn next_report(sampler: Option<&mut StatsSampler>) -> Option<Arc<StatsReport>> {
    match sampler {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn run(
    runtime: Arc<dyn ContainerRuntime>,
    observer: ObserverHandle,
    interval: Duration,
    clock: Arc<dyn Clock>,
    cache: Arc<StatsCache>,
    tx: watch::Sender<Option<Arc<StatsReport>>>,
) {
    let snapshots = observer.subscribe();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snap = snapshots.borrow().clone();
        let running: Vec<(String, String, String)> = snap
            .by_task
            .iter()
            .flat_map(|(task, infos)| infos.iter().map(move |c| (task, c)))
            .filter(|(_, c)| c.state == ContainerState::Running)
            .filter_map(|(task, c)| {
                let name = c.label(LABEL_CONTAINER_NAME)?;
                Some((task.clone(), name.to_string(), c.id.clone()))
            })
            .collect();
        let ids: Vec<String> = running.iter().map(|(_, _, id)| id.clone()).collect();
        let results: Vec<_> = futures::stream::iter(ids)
            .map(|id| {
                let rt = runtime.clone();
                async move { rt.stats(&id).await }
            })
            .buffered(PARALLEL_SAMPLES)
            .collect()
            .await;
        let at = clock.now();
        let mut samples = Vec::new();
        for ((task_id, container_name, id), r) in running.iter().zip(results) {
            match r {
                Ok(cur) => {
                    let prev = cache.replace(id, cur.clone());
                    samples.push(ContainerUsageSample {
                        task_id: task_id.clone(),
                        container_name: container_name.clone(),
                        stats: usage(prev.as_ref(), &cur, at),
                    });
                }
                Err(e) => tracing::debug!(container = %id, error = %e, "stats sample skipped"),
            }
        }
        cache.retain(|id| running.iter().any(|(_, _, r)| r == id));
        if !samples.is_empty() && tx.send(Some(Arc::new(StatsReport { samples }))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu: u64, system: u64, mem_mib: u64) -> ContainerStats {
        ContainerStats {
            cpu_total_usage_ns: cpu,
            system_cpu_usage_ns: Some(system),
            online_cpus: Some(2),
            memory_usage_bytes: mem_mib << 20,
            memory_limit_bytes: Some(128 << 20),
            raw: serde_json::Value::Null,
        }
    }

    #[test]
    fn cpu_units_come_from_two_samples_and_memory_from_one() {
        let first = usage(None, &sample(1_000, 10_000, 3), Timestamp(5));
        assert_eq!(first.cpu_utilized, None);
        assert_eq!(first.memory_utilized, 3.0);
        assert_eq!(first.memory_limit, Some(128.0));
        assert_eq!(first.sampled_at, Timestamp(5));
        // 0.5 s of container CPU over 2 s of host CPU on 2 CPUs: half a core = 512 units.
        let prev = sample(1_000_000_000, 10_000_000_000, 3);
        let cur = sample(1_500_000_000, 12_000_000_000, 4);
        assert_eq!(usage(Some(&prev), &cur, Timestamp(6)).cpu_utilized, Some(512.0));
    }

    #[tokio::test]
    async fn the_sampler_reports_simulated_usage_of_running_containers() {
        use crate::runtime::simulated::SIMULATED_MEMORY_BYTES;
        use crate::runtime::{ContainerSpec, LABEL_INSTANCE_ID, LABEL_TASK_ID, SimulatedRuntime};
        let sim = SimulatedRuntime::new();
        sim.add_cached_image("img");
        let labels =
            [(LABEL_INSTANCE_ID, "i1"), (LABEL_TASK_ID, "t1"), (LABEL_CONTAINER_NAME, "app")];
        let spec = ContainerSpec {
            name: "c1".into(),
            image: "img".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            memory_bytes: Some(64 << 20),
            ..Default::default()
        };
        let id = sim.create(&spec).await.expect("create");
        sim.start(&id).await.expect("start");
        let rt: Arc<dyn ContainerRuntime> = Arc::new(sim);
        let (observer, observer_task) =
            crate::supervisor::observer::spawn(rt.clone(), "i1".into(), Duration::from_millis(10));
        let cache = Arc::new(StatsCache::default());
        let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock);
        let mut sampler =
            StatsSampler::start(rt, observer, Duration::from_millis(20), clock, cache.clone())
                .expect("sampling is on");
        let report = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let r = sampler.next().await.expect("the sampler runs");
                if r.samples.first().is_some_and(|s| s.stats.cpu_utilized.is_some()) {
                    return r;
                }
            }
        })
        .await
        .expect("a report with CPU in time");
        observer_task.abort();
        assert_eq!(report.samples.len(), 1);
        let s = &report.samples[0];
        assert_eq!((s.task_id.as_str(), s.container_name.as_str()), ("t1", "app"));
        // A quarter of a core per simulated period, on the simulated 2 CPUs.
        assert_eq!(s.stats.cpu_utilized, Some(256.0));
        assert_eq!(s.stats.memory_utilized, (SIMULATED_MEMORY_BYTES >> 20) as f64);
        assert_eq!(s.stats.memory_limit, Some(64.0));
        assert!(cache.get(&id).is_some(), "the latest sample is kept for the endpoint");
    }

    #[test]
    fn restarted_counters_or_no_host_time_give_no_cpu() {
        let prev = sample(9_000, 10_000, 1);
        assert_eq!(usage(Some(&prev), &sample(1_000, 20_000, 1), Timestamp(1)).cpu_utilized, None);
        assert_eq!(usage(Some(&prev), &sample(9_500, 10_000, 1), Timestamp(1)).cpu_utilized, None);
    }
}
