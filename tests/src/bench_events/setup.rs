//! What the `events` suite runs against the cluster besides its subscribers.
//!
//! ```text
//!  SimulatedAgents ×instances (real agent code over SimulatedRuntime) ──sessions──► members
//!  wait_instances: until every instance is connected
//!  produce_all ──► produce ×producers: RunTask ×10 (Shared::sent), StopTask of the oldest
//!  log_end: the last index the most advanced member holds
//! ```
//!
//! Everything goes through the gRPC API (or the agent's own session); nothing here reads the
//! controllers' storage.

use super::{
    CALL_TIMEOUT, RETRY_PAUSE, SETUP_TIMEOUT, STARTED_BY_PREFIX, Shared, member, poll_until,
};
use crate::cluster::client_for;
use anyhow::{Context, Result, bail};
use berth_agent::simulate::{SimBehavior, SimNodeRuntime, SimulationConfig, node_seed};
use berth_agent::{Agent, AgentConfig};
use berth_proto::v1;
use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per instance: far more than the live tasks need (each 1 CPU unit, 16 MiB).
const INSTANCE_CPU_UNITS: i64 = 1 << 20;
const INSTANCE_MEMORY_MIB: i64 = 1 << 22;
/// RunTask's maximum count (ECS's): the most events one call can create.
const TASKS_PER_CALL: i64 = 10;
/// Tasks a producer keeps running before stopping its oldest: they live a few calls long, so
/// most reach RUNNING (the RUNNING-filtered subscribers get events) before they are stopped.
pub(super) const LIVE_TASKS_PER_PRODUCER: usize = 40;
/// How long agents get to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

// ---- producers -------------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct ProducerOutcome {
    pub(super) calls: u64,
    pub(super) tasks: u64,
    pub(super) stops: u64,
    pub(super) placement_failures: u64,
    pub(super) errors: u64,
    pub(super) last_error: Option<String>,
}

impl ProducerOutcome {
    fn failed(&mut self, call: &str, e: impl Display) {
        self.errors += 1;
        self.last_error = Some(format!("{call}: {e}"));
    }

    fn merge(&mut self, o: ProducerOutcome) {
        self.calls += o.calls;
        self.tasks += o.tasks;
        self.stops += o.stops;
        self.placement_failures += o.placement_failures;
        self.errors += o.errors;
        self.last_error = o.last_error.or(self.last_error.take());
    }
}

/// Runs `n` producers, round-robin over the members, until `deadline`; their outcomes summed.
pub(super) async fn produce_all(
    n: usize,
    endpoints: &[String],
    deadline: Instant,
    shared: &Arc<Shared>,
) -> Result<ProducerOutcome> {
    let producers: Vec<_> = (0..n)
        .map(|p| tokio::spawn(produce(p, member(endpoints, p), deadline, shared.clone())))
        .collect();
    let mut produced = ProducerOutcome::default();
    for h in producers {
        produced.merge(h.await?);
    }
    Ok(produced)
}

/// Loops RunTask (tagged with its call key) and StopTask of the oldest tasks beyond
/// [`LIVE_TASKS_PER_PRODUCER`] until `deadline`.
async fn produce(
    producer: usize,
    endpoint: String,
    deadline: Instant,
    shared: Arc<Shared>,
) -> ProducerOutcome {
    let mut api = client_for(&endpoint, CALL_TIMEOUT);
    let mut out = ProducerOutcome::default();
    let mut live: VecDeque<String> = VecDeque::with_capacity(LIVE_TASKS_PER_PRODUCER * 2);
    let mut seq: u64 = 0;
    while Instant::now() < deadline {
        seq += 1;
        let key = ((producer as u64) << 32) | seq;
        if let Ok(mut sent) = shared.sent.lock() {
            sent.insert(key, Instant::now());
        }
        out.calls += 1;
        let reply = api
            .run_task(v1::RunTaskRequest {
                task_definition: "evbench".into(),
                count: TASKS_PER_CALL,
                started_by: format!("{STARTED_BY_PREFIX}{key}"),
                ..Default::default()
            })
            .await;
        match reply.map_err(|s| s.to_string()).and_then(|r| {
            serde_json::from_str::<berth_proto::model::RunTaskResponse>(&r.into_inner().json)
                .map_err(|e| e.to_string())
        }) {
            Ok(r) => {
                out.tasks += r.tasks.len() as u64;
                out.placement_failures += r.failures.len() as u64;
                live.extend(r.tasks.into_iter().map(|t| t.task_arn));
            }
            Err(e) => {
                out.failed("RunTask", e);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        while live.len() > LIVE_TASKS_PER_PRODUCER && Instant::now() < deadline {
            let Some(arn) = live.pop_front() else { break };
            out.calls += 1;
            let r = api
                .stop_task(v1::StopTaskRequest {
                    task: arn,
                    reason: "events bench".into(),
                    ..Default::default()
                })
                .await;
            match r {
                Ok(_) => out.stops += 1,
                Err(s) => out.failed("StopTask", s),
            }
        }
    }
    out
}

// ---- simulated agents ------------------------------------------------------------------------

/// In-process agents over the fake engine, one per container instance.
pub(super) struct SimulatedAgents {
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    handles: Vec<tokio::task::JoinHandle<Result<(), berth_agent::AgentError>>>,
}

impl SimulatedAgents {
    /// `n` nodes as `berth-agent --simulate` builds them (`berth_agent::simulate`: per-node
    /// config, data dir `dir/sim-node-I`, endpoints rotated so sessions spread over the
    /// members, a fake engine on which every image is present), each stoppable here.
    pub(super) fn start(endpoints: &[String], n: usize, dir: &std::path::Path) -> Result<Self> {
        let sim = SimulationConfig {
            nodes: n,
            base: AgentConfig {
                endpoints: endpoints.to_vec(),
                data_dir: dir.to_path_buf(),
                cpu_units: Some(INSTANCE_CPU_UNITS),
                memory_mib: Some(INSTANCE_MEMORY_MIB),
                ..Default::default()
            },
            template: Default::default(),
            behavior: SimBehavior::default(),
            seed: 0,
        };
        sim.validate()?;
        let mut agents = SimulatedAgents { stops: vec![], handles: vec![] };
        for i in 0..n {
            let cfg = sim.node_config(i);
            std::fs::create_dir_all(&cfg.data_dir)?;
            let runtime = SimNodeRuntime::new(sim.behavior.clone(), node_seed(sim.seed, i));
            let agent = Agent::with_runtime(cfg, Arc::new(runtime))?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            agents.stops.push(tx);
            agents.handles.push(tokio::spawn(agent.run(async move {
                let _ = rx.await;
            })));
        }
        Ok(agents)
    }

    pub(super) async fn stop(self) -> Result<()> {
        for tx in self.stops {
            let _ = tx.send(());
        }
        for h in self.handles {
            tokio::time::timeout(STOP_TIMEOUT, h)
                .await
                .context("a simulated agent did not stop")???;
        }
        Ok(())
    }
}

/// Waits until `n` container instances are connected, as `endpoint` lists them.
pub(super) async fn wait_instances(endpoint: &str, n: usize) -> Result<()> {
    let api = client_for(endpoint, CALL_TIMEOUT);
    let connected = async || {
        let listed = crate::paging::list_all(v1::ListInstancesRequest::default(), |r| {
            let mut c = api.clone();
            async move { c.list_container_instances(r).await }
        })
        .await;
        let Ok(items) = listed else {
            return false;
        };
        let connected = items
            .iter()
            .filter_map(|i| serde_json::from_str::<serde_json::Value>(i).ok())
            .filter(|i| i["agentConnected"] == serde_json::Value::Bool(true))
            .count();
        connected >= n
    };
    if !poll_until(Instant::now() + SETUP_TIMEOUT, RETRY_PAUSE, connected).await {
        bail!("{n} simulated container instances did not connect within {SETUP_TIMEOUT:?}");
    }
    Ok(())
}

// ---- the log's end ---------------------------------------------------------------------------

/// The last index of the log, as the most advanced member holds it: a non-follow subscription
/// on each member from `from` (absent: the oldest retained). Never below `from - 1`.
pub(super) async fn log_end(endpoints: &[String], from: Option<u64>) -> Result<u64> {
    let mut end = from.map_or(0, |f| f - 1);
    for ep in endpoints {
        let mut api = client_for(ep, CALL_TIMEOUT);
        let read = async {
            let req = v1::SubscribeEventsRequest { from_index: from, ..Default::default() };
            let mut stream = api.subscribe_events(req).await?.into_inner();
            let mut last = 0;
            while let Some(e) = stream.message().await? {
                last = e.index;
            }
            Ok::<u64, tonic::Status>(last)
        };
        let last = tokio::time::timeout(CALL_TIMEOUT, read)
            .await
            .with_context(|| format!("reading the log's end on {ep}: timed out"))?
            .with_context(|| format!("reading the log's end on {ep}"))?;
        end = end.max(last);
    }
    Ok(end)
}
