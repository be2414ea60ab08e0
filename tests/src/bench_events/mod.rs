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
//! then StopTask of their oldest tasks beyond
//! [`LIVE_TASKS_PER_PRODUCER`](setup::LIVE_TASKS_PER_PRODUCER). Before the producers start,
//! `--subscribers` (default 100) subscriptions open with `follow` from the end of the log,
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
//!
//! Modules, in the order a run goes through them:
//! * this one: the settings ([`EventsConfig`]), the entry point [`run`] (controllers up and
//!   down), the driver that sequences the phases, and the `BENCH` line with its checks;
//! * [`setup`]: what acts on the cluster besides the subscribers — the simulated agents, the
//!   producers' RunTask/StopTask loop, and reading the log's end;
//! * [`subscribers`]: the filters and the same selection decided here, the follow
//!   subscriptions and what each observed, and the sets the checks expect.
//!
//! Nothing here is used outside the bench binary; the suite touches the cluster only through
//! its gRPC API.

mod setup;
mod subscribers;

use crate::cluster::{ControllerCluster, build_controller, client_for};
use anyhow::{Context, Result, bail};
use berth_proto::v1;
use setup::{ProducerOutcome, SimulatedAgents, log_end, produce_all, wait_instances};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subscribers::{Filter, Fingerprint, SubscriberOutcome, expected_fingerprints};
use subscribers::{Progress, spawn_subscribers};

/// Members of the controller group.
const CONTROLLERS: usize = 3;
/// The tiny task definition the producers run (its image is present on every simulated node,
/// as every image is, so no pull is simulated).
const TASK_DEFINITION: &str = r#"{"family": "evbench", "containerDefinitions": [
  {"name": "app", "image": "bench/noop:1", "cpu": 1, "memory": 16, "essential": true}]}"#;
/// `startedBy` of the producers' calls: this prefix, then the call key.
const STARTED_BY_PREFIX: &str = "evbench-";
/// Timeout of one producer or setup call: slower is an error, not a sample.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed call or subscription before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Pause between two looks at the subscribers' progress while waiting on it.
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// Bounds on each wait of the run; a wait that hits one is an error naming it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Latency samples kept per subscriber (beyond: counted in `samples_dropped`).
const MAX_LATENCY_SAMPLES: usize = 200_000;
/// Events the oracle (subscriber 0) keeps a filter mask for; beyond, the filtered check is off.
const MAX_ORACLE_EVENTS: usize = 4_000_000;

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

/// State shared by producers, subscribers and the driver.
struct Shared {
    /// Call key → the instant its RunTask was sent.
    sent: Mutex<HashMap<u64, Instant>>,
    /// The last index the checks cover (`u64::MAX` until the producers stopped).
    limit: AtomicU64,
}

/// The member the `i`-th producer or subscriber talks to: round-robin over the group.
fn member(endpoints: &[String], i: usize) -> String {
    endpoints[i % endpoints.len()].clone()
}

/// Evaluates `done` every `pause` until it holds (true) or `deadline` has passed (false).
async fn poll_until(
    deadline: Instant,
    pause: Duration,
    mut done: impl AsyncFnMut() -> bool,
) -> bool {
    loop {
        if done().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
    }
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
    let subs = spawn_subscribers(&endpoints, cfg.subscribers, start, &shared);
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let all_ready = async || subs.all.iter().all(|s| s.progress.ready.load(Ordering::Acquire));
    if !poll_until(deadline, POLL_PAUSE, all_ready).await {
        bail!("subscriptions did not open within {SETUP_TIMEOUT:?}");
    }

    phases.note("subscriptions open");
    // The run.
    let t0 = Instant::now();
    let producer_deadline = t0 + Duration::from_secs_f64(cfg.seconds);
    let produced = produce_all(cfg.producers, &endpoints, producer_deadline, &shared).await?;
    let run_secs = t0.elapsed().as_secs_f64();
    let oracle = subs.all[0].progress.clone();
    let end = log_end(&endpoints, Some(oracle.last.load(Ordering::Acquire) + 1)).await?;
    phases.note("producers stopped");

    // The checked range ends where the producers stopped (the agents go on reporting: those
    // later events are not checked). Subscriber 0 (unfiltered) reaches it first, so its mask
    // gives the others' expected sets; then each other subscriber catches up to it: it either
    // received an index beyond it (indexes come in order) or all the events it should.
    shared.limit.store(end, Ordering::Release);
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    let oracle_reached = async || oracle.last.load(Ordering::Acquire) >= end;
    if !poll_until(drain_deadline, POLL_PAUSE, oracle_reached).await {
        bail!("subscriber 0 (unfiltered) did not reach index {end} within {DRAIN_TIMEOUT:?}");
    }
    let _ = subs.oracle_stop.send(true);
    let mut rest = subs.all.into_iter();
    let Some(oracle_sub) = rest.next() else { bail!("no subscriber") };
    let oracle_out = oracle_sub.handle.await?;
    let expected = expected_fingerprints(&oracle_out, start, end);
    let rest: Vec<_> = rest.collect();
    let caught_up = |filter: &Filter, p: &Progress| {
        p.last.load(Ordering::Acquire) > end
            || p.in_order.load(Ordering::Acquire) >= expected.get(filter).map_or(0, |f| f.count)
    };
    let all_caught_up = async || rest.iter().all(|s| caught_up(&s.filter, &s.progress));
    poll_until(drain_deadline, POLL_PAUSE, all_caught_up).await;
    let lagging = rest.iter().filter(|s| !caught_up(&s.filter, &s.progress)).count();
    phases.note("every subscriber reached the end of the run");
    let later = log_end(&endpoints, Some(end + 1)).await?;
    let _ = subs.stop.send(true);
    let mut outcomes = vec![(Filter::Everything, oracle_out)];
    for s in rest {
        outcomes.push((s.filter, s.handle.await?));
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
