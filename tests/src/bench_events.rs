//! The `events` bench suite: fan-out of the cluster event stream (issue 6).
//!
//! Setup: 3 `berth-controller` processes forming one Raft group on loopback (release build,
//! started as the `raft` suite starts them); `--instances` (default 10) container instances,
//! each an in-process agent running the real session and supervisor code over
//! `SimulatedRuntime` — a FAKE container engine (a "container" is an in-memory record that runs
//! until stopped; no Docker) — registering ample CPU and memory; one tiny task definition.
//!
//! ```text
//!  producers ──RunTask ×10 / StopTask──► controllers (Raft) ──assignments──► simulated agents
//!      │ instant each call was sent            │ every change appends events      │
//!      ▼                                       │ on every member  ◄──reports──────┘
//!  Shared::sent (call key → Instant) ◄─lookup─ subscribers (follow, round-robin over members)
//! ```
//!
//! Workload: `--producers` (default 4) clients, round-robin over the members, loop for
//! `--seconds` (default 10): RunTask of 10 tasks (each call tagged `startedBy` with its key),
//! then StopTask of their oldest tasks beyond [`LIVE_TASKS_PER_PRODUCER`]. Before the producers
//! start, `--subscribers` (default 100) subscriptions open with `follow` from the end of the log,
//! spread round-robin over the 3 members, their filters cycling through [`Filter::ALL`] (no
//! filter; detail type TASK; `lastStatus` RUNNING; task detail-type with a `family:` group prefix).
//!
//! Measures, printed as one line
//! `BENCH events.fanout subscribers=N events_per_sec=E p99_delivery_ms=L …`:
//! * `events_per_sec`: the index range appended to the log while the producers ran, divided by
//!   their run time;
//! * delivery latency, per (subscriber, task) for every task-creation event (`detail.version` 1,
//!   `lastStatus` PENDING) a subscriber receives: the instant it was received minus the instant
//!   the RunTask call that created the task was *sent* (not answered: the event may well arrive
//!   before the reply). Found through `startedBy`, which names the call. Subscribers filtering
//!   on `lastStatus` RUNNING never receive creation events, so they count in `delivered` and in
//!   the checks but give no latency samples.
//!
//! Checks, over the indexes of the run (the log's end when the producers stopped; the agents'
//! later reports are not checked), once every subscriber caught up to that end: every
//! subscriber's indexes strictly increase (`out_of_order`); an unfiltered one's have no gap
//! (`gaps`); a filtered one received exactly the events its filter selects, compared with the
//! same selection decided here from subscriber 0's unfiltered stream (`mismatched`, by count,
//! sum and sum of squares of the indexes). Any failure is an error after the line is printed.
//!
//! Every buffer is bounded: the log buffer per subscription is the server's, latency samples and
//! the oracle stop growing at [`MAX_LATENCY_SAMPLES`] / [`MAX_ORACLE_EVENTS`] (reported).

use crate::cluster::{ControllerCluster, build_controller, client_for};
use anyhow::{Context, Result, bail};
use berth_agent::runtime::SimulatedRuntime;
use berth_agent::{Agent, AgentConfig, PullBehavior};
use berth_proto::model::event::TASK_STATE_CHANGE;
use berth_proto::v1::{self, berth_client::BerthClient};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Members of the controller group.
const CONTROLLERS: usize = 3;
/// The fake engine's image: cached in every simulated runtime, so no pull is simulated.
const IMAGE: &str = "bench/noop:1";
/// The tiny task definition the producers run.
const TASK_DEFINITION: &str = r#"{"family": "evbench", "containerDefinitions": [
  {"name": "app", "image": "bench/noop:1", "cpu": 1, "memory": 16, "essential": true}]}"#;
/// Per instance: far more than the live tasks need (each 1 CPU unit, 16 MiB).
const INSTANCE_CPU_UNITS: i64 = 1 << 20;
const INSTANCE_MEMORY_MIB: i64 = 1 << 22;
/// RunTask's maximum count (ECS's): the most events one call can create.
const TASKS_PER_CALL: i64 = 10;
/// Tasks a producer keeps running before stopping its oldest: they live a few calls long, so
/// most reach RUNNING (the RUNNING-filtered subscribers get events) before they are stopped.
const LIVE_TASKS_PER_PRODUCER: usize = 40;
/// `startedBy` of the producers' calls: this prefix, then the call key.
const STARTED_BY_PREFIX: &str = "evbench-";
/// Timeout of one producer or setup call: slower is an error, not a sample.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed call or subscription before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Bounds on each wait of the run; a wait that hits one is an error naming it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Latency samples kept per subscriber (beyond: counted in `samples_dropped`).
const MAX_LATENCY_SAMPLES: usize = 200_000;
/// Indexes each subscriber remembers last, to take those past the checked range back out of its
/// fingerprint (they arrive in the moments the range's end is being read).
const FINGERPRINT_TAIL: usize = 4096;
/// Events the oracle (subscriber 0) keeps a filter mask for; beyond, the filtered check is off.
const MAX_ORACLE_EVENTS: usize = 4_000_000;
/// How long agents and controllers get to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The suite's settings.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub subscribers: usize,
    pub seconds: f64,
    pub producers: usize,
    pub instances: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { subscribers: 100, seconds: 10.0, producers: 4, instances: 10 }
    }
}

impl EventsConfig {
    /// From `--subscribers N --seconds S --producers N --instances N` (defaults otherwise).
    pub fn from_args(args: &[String]) -> Result<Self> {
        let d = EventsConfig::default();
        let c = EventsConfig {
            subscribers: flag(args, "--subscribers", d.subscribers)?,
            seconds: flag(args, "--seconds", d.seconds)?,
            producers: flag(args, "--producers", d.producers)?,
            instances: flag(args, "--instances", d.instances)?,
        };
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        if self.subscribers == 0 || self.producers == 0 || self.instances == 0 {
            bail!("--subscribers, --producers and --instances must be at least 1");
        }
        if !(self.seconds > 0.0 && self.seconds <= 3600.0) {
            bail!("--seconds must be in (0, 3600]");
        }
        Ok(())
    }
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow::anyhow!("{name} {v:?}: not a valid value"))
        }
    }
}

// ---- filters ---------------------------------------------------------------------------------

/// A subscriber's filter, and the same selection decided here (the oracle the server's
/// answers are checked against).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Filter {
    Everything,
    TaskType,
    Running,
    FamilyGroup,
}

impl Filter {
    const ALL: [Filter; 4] =
        [Filter::Everything, Filter::TaskType, Filter::Running, Filter::FamilyGroup];

    /// (pattern JSON, detail types) of the SubscribeEvents request.
    fn request(self) -> (&'static str, Vec<String>) {
        match self {
            Filter::Everything => ("", vec![]),
            Filter::TaskType => ("", vec!["TASK".into()]),
            Filter::Running => (r#"{"detail":{"lastStatus":["RUNNING"]}}"#, vec![]),
            Filter::FamilyGroup => (
                r#"{"detail-type":["ECS Task State Change"],"detail":{"group":[{"prefix":"family:"}]}}"#,
                vec![],
            ),
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn selects(self, detail_type: &str, d: &DetailView) -> bool {
        match self {
            Filter::Everything => true,
            Filter::TaskType => detail_type == TASK_STATE_CHANGE,
            Filter::Running => d.last_status.as_deref() == Some("RUNNING"),
            Filter::FamilyGroup => {
                detail_type == TASK_STATE_CHANGE
                    && d.group.as_deref().is_some_and(|g| g.starts_with("family:"))
            }
        }
    }
}

/// The fields of an event this suite reads (the rest is skipped without being kept).
#[derive(Deserialize)]
struct EventView<'a> {
    #[serde(borrow, default)]
    detail: DetailView<'a>,
}

#[derive(Deserialize, Default)]
struct DetailView<'a> {
    #[serde(default)]
    version: Option<u64>,
    #[serde(rename = "lastStatus", borrow, default)]
    last_status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    group: Option<Cow<'a, str>>,
    #[serde(rename = "startedBy", borrow, default)]
    started_by: Option<Cow<'a, str>>,
}

/// Count, sum and sum of squares of a set of indexes: equal sets give equal fingerprints, and a
/// missing, extra or shifted index changes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fingerprint {
    count: u64,
    sum: u128,
    squares: u128,
}

impl Fingerprint {
    fn add(&mut self, index: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(u128::from(index));
        self.squares = self.squares.wrapping_add(u128::from(index) * u128::from(index));
    }

    fn remove(&mut self, index: u64) {
        self.count -= 1;
        self.sum = self.sum.wrapping_sub(u128::from(index));
        self.squares = self.squares.wrapping_sub(u128::from(index) * u128::from(index));
    }
}

// ---- subscribers -----------------------------------------------------------------------------

/// State shared by producers, subscribers and the driver.
struct Shared {
    /// Call key → the instant its RunTask was sent.
    sent: Mutex<HashMap<u64, Instant>>,
    /// The last index the checks cover (`u64::MAX` until the producers stopped).
    limit: AtomicU64,
}

/// What the driver polls of a running subscriber.
#[derive(Default)]
struct Progress {
    ready: AtomicBool,
    last: AtomicU64,
    /// Events received in increasing index order.
    in_order: AtomicU64,
}

struct SubscriberPlan {
    endpoint: String,
    filter: Filter,
    from: u64,
    /// Keeps the filter mask of every event (subscriber 0, unfiltered).
    oracle: bool,
}

#[derive(Default)]
struct SubscriberOutcome {
    received: u64,
    gaps: u64,
    out_of_order: u64,
    reconnects: u64,
    last_error: Option<String>,
    latencies_us: Vec<u32>,
    samples_dropped: u64,
    /// Creation events whose `startedBy` names no call this run sent.
    unmatched: u64,
    parse_errors: u64,
    /// Of every index received in order up to [`Shared::limit`], and the last
    /// [`FINGERPRINT_TAIL`] of them: the limit is set while events go on arriving, so a few
    /// beyond it may be counted before it is known, and are taken back out at the end.
    fingerprint: Fingerprint,
    tail: VecDeque<u64>,
    /// Filter bits of index `from + i` (the oracle only).
    mask: Vec<u8>,
    mask_overflow: bool,
}

/// A client without a call timeout (a follow stream lives for the whole run).
fn stream_client(endpoint: &str) -> Result<BerthClient<Channel>> {
    let channel = Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let max = berth_proto::MAX_MESSAGE_BYTES;
    Ok(BerthClient::new(channel).max_decoding_message_size(max))
}

impl SubscriberOutcome {
    /// Accounts one event received at `at`; `prev` is the last index seen (from − 1 at first).
    fn observe(
        &mut self,
        plan: &SubscriberPlan,
        shared: &Shared,
        progress: &Progress,
        e: &v1::EventMessage,
        prev: u64,
        at: Instant,
    ) {
        self.received += 1;
        if e.index <= prev {
            self.out_of_order += 1;
            return;
        }
        if plan.filter == Filter::Everything && e.index != prev + 1 {
            self.gaps += e.index - prev - 1;
        }
        if e.index <= shared.limit.load(Ordering::Acquire) {
            self.fingerprint.add(e.index);
            if self.tail.len() == FINGERPRINT_TAIL {
                self.tail.pop_front();
            }
            self.tail.push_back(e.index);
        }
        progress.in_order.fetch_add(1, Ordering::Release);
        progress.last.store(e.index, Ordering::Release);
        let is_task = e.detail_type == TASK_STATE_CHANGE;
        // Only what is needed is parsed: task events (creation detection) and, for the oracle,
        // every event. The RUNNING-filtered subscribers never receive creation events.
        if !(plan.oracle || is_task && plan.filter != Filter::Running) {
            return;
        }
        let view: EventView = match serde_json::from_str(&e.json) {
            Ok(v) => v,
            Err(_) => {
                self.parse_errors += 1;
                return;
            }
        };
        if plan.oracle {
            self.record_mask(plan.from, e, &view.detail);
        }
        if is_task && view.detail.version == Some(1) {
            let key = view
                .detail
                .started_by
                .as_deref()
                .and_then(|s| s.strip_prefix(STARTED_BY_PREFIX))
                .and_then(|k| k.parse::<u64>().ok());
            let sent = key.and_then(|k| shared.sent.lock().ok()?.get(&k).copied());
            match sent {
                Some(sent) if self.latencies_us.len() < MAX_LATENCY_SAMPLES => {
                    let us = at.saturating_duration_since(sent).as_micros();
                    self.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                Some(_) => self.samples_dropped += 1,
                None => self.unmatched += 1,
            }
        }
    }

    /// The fingerprint of the indexes received up to `limit`; `None` if more than
    /// [`FINGERPRINT_TAIL`] indexes beyond it arrived (too many to take back out).
    fn fingerprint_through(&self, limit: u64) -> Option<Fingerprint> {
        let mut f = self.fingerprint;
        let beyond: Vec<u64> = self.tail.iter().copied().filter(|i| *i > limit).collect();
        if beyond.len() == FINGERPRINT_TAIL {
            return None;
        }
        beyond.into_iter().for_each(|i| f.remove(i));
        Some(f)
    }

    fn record_mask(&mut self, from: u64, e: &v1::EventMessage, d: &DetailView) {
        let Ok(offset) = usize::try_from(e.index - from) else { return };
        if offset >= MAX_ORACLE_EVENTS {
            self.mask_overflow = true;
            return;
        }
        if self.mask.len() <= offset {
            // A gap leaves zeros (it is reported as a gap, so the run fails anyway).
            self.mask.resize(offset + 1, 0);
        }
        self.mask[offset] =
            Filter::ALL.iter().filter(|f| f.selects(&e.detail_type, d)).fold(0, |m, f| m | f.bit());
    }
}

/// One subscriber: subscribes with `follow` from `plan.from`, resumes from the next index after
/// any error (as a client of the API would), until `stop` turns true.
async fn subscribe(
    plan: SubscriberPlan,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> SubscriberOutcome {
    let mut out = SubscriberOutcome::default();
    let (pattern, detail_types) = plan.filter.request();
    let mut api = match stream_client(&plan.endpoint) {
        Ok(api) => api,
        Err(e) => {
            out.last_error = Some(e.to_string());
            return out;
        }
    };
    let mut prev = plan.from - 1;
    'subscriptions: loop {
        let req = v1::SubscribeEventsRequest {
            from_index: Some(prev + 1),
            pattern: pattern.to_string(),
            detail_types: detail_types.clone(),
            follow: true,
        };
        let opened = tokio::select! {
            r = api.subscribe_events(req) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let mut stream = match opened {
            Ok(r) => r.into_inner(),
            Err(status) => {
                out.reconnects += 1;
                out.last_error = Some(format!("subscribe: {status}"));
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => continue,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        progress.ready.store(true, Ordering::Release);
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = stop.wait_for(|s| *s) => break 'subscriptions,
            };
            let at = Instant::now();
            match msg {
                Ok(Some(e)) => {
                    out.observe(&plan, &shared, &progress, &e, prev, at);
                    prev = prev.max(e.index);
                }
                Ok(None) => {
                    out.last_error = Some("the follow stream ended".into());
                    break;
                }
                Err(status) => {
                    out.last_error = Some(format!("stream: {status}"));
                    break;
                }
            }
        }
        out.reconnects += 1;
        tokio::select! {
            _ = tokio::time::sleep(RETRY_PAUSE) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    out
}

// ---- producers -------------------------------------------------------------------------------

#[derive(Default)]
struct ProducerOutcome {
    calls: u64,
    tasks: u64,
    stops: u64,
    placement_failures: u64,
    errors: u64,
    last_error: Option<String>,
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
                out.errors += 1;
                out.last_error = Some(format!("RunTask: {e}"));
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
                Err(s) => {
                    out.errors += 1;
                    out.last_error = Some(format!("StopTask: {s}"));
                }
            }
        }
    }
    out
}

// ---- simulated agents ------------------------------------------------------------------------

/// In-process agents over the fake engine, one per container instance.
struct SimulatedAgents {
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    handles: Vec<tokio::task::JoinHandle<Result<(), berth_agent::AgentError>>>,
}

impl SimulatedAgents {
    fn start(endpoints: &[String], n: usize, dir: &std::path::Path) -> Result<Self> {
        let mut agents = SimulatedAgents { stops: vec![], handles: vec![] };
        for i in 0..n {
            let runtime = SimulatedRuntime::new();
            runtime.add_cached_image(IMAGE);
            // Agent i tries member i % 3 first, so sessions spread over the group.
            let mut eps = endpoints.to_vec();
            eps.rotate_left(i % endpoints.len());
            let cfg = AgentConfig {
                endpoints: eps,
                data_dir: dir.join(format!("agent-{i}")),
                image_pull_behavior: PullBehavior::PreferCached,
                cpu_units: Some(INSTANCE_CPU_UNITS),
                memory_mib: Some(INSTANCE_MEMORY_MIB),
                hostname: Some(format!("simulated-{i}")),
                ..Default::default()
            };
            std::fs::create_dir_all(&cfg.data_dir)?;
            let agent = Agent::with_runtime(cfg, Arc::new(runtime))?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            agents.stops.push(tx);
            agents.handles.push(tokio::spawn(agent.run(async move {
                let _ = rx.await;
            })));
        }
        Ok(agents)
    }

    async fn stop(self) -> Result<()> {
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

async fn wait_instances(endpoint: &str, n: usize) -> Result<()> {
    let mut api = client_for(endpoint, CALL_TIMEOUT);
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        if let Ok(r) = api.list_container_instances(v1::ListInstancesRequest::default()).await {
            let connected = r
                .into_inner()
                .items
                .iter()
                .filter_map(|i| serde_json::from_str::<serde_json::Value>(i).ok())
                .filter(|i| i["agentConnected"] == serde_json::Value::Bool(true))
                .count();
            if connected >= n {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{n} simulated container instances did not connect within {SETUP_TIMEOUT:?}");
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

// ---- the log's end ---------------------------------------------------------------------------

/// The last index of the log, as the most advanced member holds it: a non-follow subscription
/// on each member from `from` (absent: the oldest retained). Never below `from - 1`.
async fn log_end(endpoints: &[String], from: Option<u64>) -> Result<u64> {
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

// ---- the suite -------------------------------------------------------------------------------

/// Sorted latency samples (µs) → the `p` percentile in milliseconds.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted_us[i]) / 1000.0
}

/// Prints (to stderr) how long into the suite a phase ended.
struct Phases(Instant);

impl Phases {
    fn note(&self, what: &str) {
        eprintln!("events bench: +{:.1}s {what}", self.0.elapsed().as_secs_f64());
    }
}

pub async fn run(args: &[String]) -> Result<()> {
    let cfg = EventsConfig::from_args(args)?;
    let phases = Phases(Instant::now());
    let bin = tokio::task::spawn_blocking(|| build_controller(!cfg!(debug_assertions))).await?;
    let dir = tempfile::tempdir()?;
    let cluster = {
        let dir = dir.path().join("controllers");
        tokio::task::spawn_blocking(move || {
            ControllerCluster::start_with(bin, &dir, CONTROLLERS, &[])
        })
        .await?
    };
    phases.note("controller processes started");
    let outcome = drive(&cfg, &cluster, dir.path(), &phases).await;
    if outcome.is_err() {
        eprintln!("controller logs:\n{}", cluster.log_tails(20));
    }
    // Graceful stop of every member (SIGTERM, wait for its exit), whatever the outcome.
    let stopped = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        for id in cluster.ids() {
            cluster.stop(id);
        }
    })
    .await;
    phases.note("controllers stopped");
    let report = outcome?;
    stopped.context("stopping the controllers")?;
    report.check()
}

/// The printed figures and what the checks found.
struct Report {
    problems: Vec<String>,
}

impl Report {
    fn check(self) -> Result<()> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            bail!("events bench failed: {}", self.problems.join("; "))
        }
    }
}

async fn drive(
    cfg: &EventsConfig,
    cluster: &ControllerCluster,
    dir: &std::path::Path,
    phases: &Phases,
) -> Result<Report> {
    cluster.wait_leader(SETUP_TIMEOUT).await;
    let endpoints = cluster.endpoints();
    let agents = SimulatedAgents::start(&endpoints, cfg.instances, &dir.join("agents"))?;
    wait_instances(&endpoints[0], cfg.instances).await?;
    client_for(&endpoints[0], CALL_TIMEOUT)
        .register_task_definition(v1::RegisterTaskDefinitionRequest {
            document: TASK_DEFINITION.into(),
            ..Default::default()
        })
        .await
        .context("registering the task definition")?;
    phases.note("simulated agents connected");

    // Subscribers, from the end of the log, all open before the first event is produced.
    let start = log_end(&endpoints, None).await? + 1;
    let shared =
        Arc::new(Shared { sent: Mutex::new(HashMap::new()), limit: AtomicU64::new(u64::MAX) });
    // Subscriber 0 (the oracle) stops first: its mask gives the others' expected sets.
    let (oracle_stop_tx, oracle_stop_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subs = Vec::with_capacity(cfg.subscribers);
    for i in 0..cfg.subscribers {
        let filter = Filter::ALL[i % Filter::ALL.len()];
        let plan = SubscriberPlan {
            endpoint: endpoints[i % endpoints.len()].clone(),
            filter,
            from: start,
            oracle: i == 0,
        };
        let progress = Arc::new(Progress::default());
        let stop = if i == 0 { oracle_stop_rx.clone() } else { stop_rx.clone() };
        let handle = tokio::spawn(subscribe(plan, shared.clone(), progress.clone(), stop));
        subs.push((filter, progress, handle));
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while !subs.iter().all(|(_, p, _)| p.ready.load(Ordering::Acquire)) {
        if Instant::now() > deadline {
            bail!("subscriptions did not open within {SETUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    phases.note("subscriptions open");
    // The run.
    let t0 = Instant::now();
    let producer_deadline = t0 + Duration::from_secs_f64(cfg.seconds);
    let producers: Vec<_> = (0..cfg.producers)
        .map(|p| {
            let ep = endpoints[p % endpoints.len()].clone();
            tokio::spawn(produce(p, ep, producer_deadline, shared.clone()))
        })
        .collect();
    let mut produced = ProducerOutcome::default();
    for h in producers {
        let o = h.await?;
        produced.calls += o.calls;
        produced.tasks += o.tasks;
        produced.stops += o.stops;
        produced.placement_failures += o.placement_failures;
        produced.errors += o.errors;
        produced.last_error = o.last_error.or(produced.last_error);
    }
    let run_secs = t0.elapsed().as_secs_f64();
    let oracle = subs[0].1.clone();
    let end = log_end(&endpoints, Some(oracle.last.load(Ordering::Acquire) + 1)).await?;
    phases.note("producers stopped");

    // The checked range ends where the producers stopped (the agents go on reporting: those
    // later events are not checked). Subscriber 0 (unfiltered) reaches it first, so its mask
    // gives the others' expected sets; then each other subscriber catches up to it: it either
    // received an index beyond it (indexes come in order) or all the events it should.
    shared.limit.store(end, Ordering::Release);
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    while oracle.last.load(Ordering::Acquire) < end {
        if Instant::now() > drain_deadline {
            bail!("subscriber 0 (unfiltered) did not reach index {end} within {DRAIN_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = oracle_stop_tx.send(true);
    let mut subs = subs.into_iter();
    let Some((_, _, oracle_handle)) = subs.next() else { bail!("no subscriber") };
    let oracle_out = oracle_handle.await?;
    let expected = expected_fingerprints(&oracle_out, start, end);
    let rest: Vec<_> = subs.collect();
    let caught_up = |filter: &Filter, p: &Progress| {
        p.last.load(Ordering::Acquire) > end
            || p.in_order.load(Ordering::Acquire) >= expected.get(filter).map_or(0, |f| f.count)
    };
    while !rest.iter().all(|(f, p, _)| caught_up(f, p)) && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lagging = rest.iter().filter(|(f, p, _)| !caught_up(f, p)).count();
    phases.note("every subscriber reached the end of the run");
    let later = log_end(&endpoints, Some(end + 1)).await?;
    let _ = stop_tx.send(true);
    let mut outcomes = vec![(Filter::Everything, oracle_out)];
    for (filter, _, handle) in rest {
        outcomes.push((filter, handle.await?));
    }
    phases.note("subscribers stopped");
    agents.stop().await?;
    phases.note("simulated agents stopped");
    let range = Range { start, end, later, run_secs };
    Ok(summarize(cfg, &outcomes, &expected, &produced, range, lagging))
}

/// The indexes of a run: subscriptions began at `start`; the log ended at `end` when the
/// producers stopped (the measured and checked range is `start..=end`).
struct Range {
    start: u64,
    end: u64,
    /// The log's end once every subscriber caught up (the agents' reports go on after the run).
    later: u64,
    run_secs: f64,
}

/// What each filter should have received in `start..=end`, from the oracle's mask (`None` for
/// a filter when the mask overflowed). `Everything` is the whole range.
fn expected_fingerprints(
    oracle: &SubscriberOutcome,
    start: u64,
    end: u64,
) -> HashMap<Filter, Fingerprint> {
    let mut out: HashMap<Filter, Fingerprint> = HashMap::new();
    let mut all = Fingerprint::default();
    for index in start..=end {
        all.add(index);
    }
    out.insert(Filter::Everything, all);
    if oracle.mask_overflow {
        return out;
    }
    for (offset, bits) in oracle.mask.iter().enumerate() {
        let index = start + offset as u64;
        if index > end {
            break;
        }
        for f in Filter::ALL.iter().filter(|f| **f != Filter::Everything) {
            if bits & f.bit() != 0 {
                out.entry(*f).or_default().add(index);
            }
        }
    }
    for f in Filter::ALL {
        out.entry(f).or_default();
    }
    out
}

fn summarize(
    cfg: &EventsConfig,
    outcomes: &[(Filter, SubscriberOutcome)],
    expected: &HashMap<Filter, Fingerprint>,
    produced: &ProducerOutcome,
    range: Range,
    lagging: usize,
) -> Report {
    let mut latencies: Vec<u32> =
        outcomes.iter().flat_map(|(_, o)| o.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let sum = |f: fn(&SubscriberOutcome) -> u64| outcomes.iter().map(|(_, o)| f(o)).sum::<u64>();
    let delivered = sum(|o| o.received);
    let gaps = sum(|o| o.gaps);
    let out_of_order = sum(|o| o.out_of_order);
    let reconnects = sum(|o| o.reconnects);
    let unmatched = sum(|o| o.unmatched);
    let parse_errors = sum(|o| o.parse_errors);
    let dropped = sum(|o| o.samples_dropped);
    let checked = !outcomes.first().is_some_and(|(_, o)| o.mask_overflow);
    let mismatched: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, (f, o))| {
            (checked || *f == Filter::Everything)
                && o.fingerprint_through(range.end).as_ref() != expected.get(f)
        })
        .map(|(i, _)| i)
        .collect();
    let produced_events = (range.end + 1).saturating_sub(range.start);
    let events_per_sec = produced_events as f64 / range.run_secs;
    println!(
        "BENCH events.fanout subscribers={} events_per_sec={events_per_sec:.0} p99_delivery_ms={:.2} p50_delivery_ms={:.2} max_delivery_ms={:.2} samples={} delivered={delivered} delivered_per_sec={:.0} controllers={CONTROLLERS} instances={} producers={} seconds={:.2} produced={produced_events} tasks={} gaps={gaps} out_of_order={out_of_order} mismatched={} reconnects={reconnects} unmatched={unmatched} call_errors={}",
        cfg.subscribers,
        percentile_ms(&latencies, 0.99),
        percentile_ms(&latencies, 0.5),
        latencies.last().map_or(0.0, |&us| f64::from(us) / 1000.0),
        latencies.len(),
        delivered as f64 / range.run_secs,
        cfg.instances,
        cfg.producers,
        range.run_secs,
        produced.tasks,
        mismatched.len(),
        produced.errors,
    );
    for f in Filter::ALL {
        let of: Vec<&SubscriberOutcome> =
            outcomes.iter().filter(|(g, _)| *g == f).map(|(_, o)| o).collect();
        let (pattern, types) = f.request();
        eprintln!(
            "events bench: {} subscribers with pattern {pattern:?} types {types:?}: expected {} events each in {}..={}, received {} in that range in all",
            of.len(),
            expected.get(&f).map_or(0, |e| e.count),
            range.start,
            range.end,
            of.iter()
                .filter_map(|o| o.fingerprint_through(range.end))
                .map(|f| f.count)
                .sum::<u64>(),
        );
    }
    eprintln!(
        "events bench: {} RunTask/StopTask calls, {} tasks started, {} stopped, {} placement failures; log {}..={} during the run, {} more appended by the end of the checks",
        produced.calls,
        produced.tasks,
        produced.stops,
        produced.placement_failures,
        range.start,
        range.end,
        range.later.saturating_sub(range.end),
    );
    if let Some(e) = &produced.last_error {
        eprintln!("events bench: last producer error: {e}");
    }
    for (i, (f, o)) in outcomes.iter().enumerate() {
        if let Some(e) = &o.last_error {
            eprintln!(
                "events bench: subscriber {i} ({f:?}): {} reconnects, last error: {e}",
                o.reconnects
            );
        }
    }
    let mut problems = vec![];
    if gaps > 0 {
        problems.push(format!("unfiltered subscribers missed {gaps} indexes (gaps)"));
    }
    if out_of_order > 0 {
        problems.push(format!("{out_of_order} events arrived out of order or twice"));
    }
    if !mismatched.is_empty() {
        problems.push(format!(
            "subscribers {mismatched:?} did not receive exactly the events their filter selects in {}..={}",
            range.start, range.end
        ));
    }
    if lagging > 0 {
        problems.push(format!(
            "{lagging} subscribers did not catch up to index {} within {DRAIN_TIMEOUT:?}",
            range.end
        ));
    }
    if unmatched > 0 {
        problems.push(format!("{unmatched} creation events name no RunTask call of this run"));
    }
    if parse_errors > 0 {
        problems.push(format!("{parse_errors} events were not valid JSON"));
    }
    if latencies.is_empty() {
        problems.push("no creation event was delivered".into());
    }
    if !checked {
        eprintln!("events bench: more than {MAX_ORACLE_EVENTS} events: filtered sets not checked");
    }
    if dropped > 0 {
        eprintln!(
            "events bench: {dropped} latency samples beyond {MAX_LATENCY_SAMPLES} per subscriber dropped"
        );
    }
    Report { problems }
}
