//! # metrics — the controller's Prometheus series (`GET /metrics` on the HTTP port)
//!
//! The names, types and labels are a contract: `charts/berth/METRICS.md` (the Grafana dashboard
//! and `tests/tests/helm_chart.rs` depend on them). One [`Metrics`] per controller, each with its
//! own [`Registry`] (tests run several controllers in one process), created in
//! `Controller::start` and handed to the parts that observe:
//!
//! * `raft.rs`  — [`RaftMetrics`], carried in `RaftConfig` into the Ready loop and `RaftHandle`
//!   (term, leader changes, commit/applied index, log entries, proposal latency, snapshots);
//! * `api.rs`   — [`ApiMetricsLayer`], a tower layer on the tonic server (requests by method and
//!   code, latency);
//! * here       — scheduler placements (RunTask and the reconciler call [`Metrics::placed`]),
//!   tasks started/stopped (counted from the events this member appends while it leads:
//!   [`Metrics::observe_events`]), and, at scrape time ([`Metrics::render`]), deployments by
//!   rollout state and the event stream's subscribers and lag.
//!
//! Must not touch: the state machine (observations never change state).

mod api;
mod raft;

pub use api::{ApiMetricsLayer, ApiMetricsService};
pub use raft::RaftMetrics;

use crate::events::log::{EventLog, StoredEvent};
use crate::store::SharedState;
use berth_proto::model::STOPPED;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Media type of the text exposition format served on `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rollout states of `berth_deployments` (each always exposed, 0 when none).
pub const ROLLOUT_STATES: [&str; 3] = ["IN_PROGRESS", "COMPLETED", "FAILED"];

/// Task ARNs remembered as already counted STOPPED: a stopped task's later events (a late
/// container report grows its version again) must not count it twice. Such events follow the
/// stop closely, so a window of recent stops is enough.
const RECENT_STOPS: usize = 8192;

/// The controller's metrics; cheap to clone (one shared registry).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    raft: RaftMetrics,
    api_requests: IntCounterVec,
    api_duration: HistogramVec,
    placements: IntCounter,
    placement_failures: IntCounterVec,
    placement_duration: Histogram,
    tasks_started: IntCounter,
    tasks_stopped: IntCounter,
    deployments: IntGaugeVec,
    events_subscribers: IntGauge,
    events_appended: IntCounter,
    events_lag: IntGauge,
    /// This member leads: tasks started/stopped are counted on the leader only, so a sum over
    /// the group counts each task once.
    leader: AtomicBool,
    recent_stops: Mutex<RecentStops>,
}

#[derive(Default)]
struct RecentStops {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentStops {
    /// True the first time `arn` is seen (within the window).
    fn first(&mut self, arn: &str) -> bool {
        if self.set.contains(arn) {
            return false;
        }
        self.set.insert(arn.to_string());
        self.order.push_back(arn.to_string());
        if self.order.len() > RECENT_STOPS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(name, help)).expect("valid metric name")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid metric name")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric")
}

/// Registers `c` in `r`. Names are fixed and distinct, so this cannot fail in practice; if it
/// did, the series would be missing from the scrape rather than the controller failing.
pub(crate) fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: &C) {
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "metric not registered");
    }
}

impl Metrics {
    /// A fresh registry with every controller series registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let raft = RaftMetrics::default();
        raft.register(&registry);
        let api_requests = IntCounterVec::new(
            Opts::new("berth_api_requests_total", "Client API requests answered."),
            &["method", "code"],
        )
        .expect("valid metric");
        let api_duration = HistogramVec::new(
            HistogramOpts::new(
                "berth_api_request_duration_seconds",
                "Time to answer one client API request.",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("buckets")),
            &["method"],
        )
        .expect("valid metric");
        let placement_failures = IntCounterVec::new(
            Opts::new(
                "berth_scheduler_placement_failures_total",
                "Tasks that could not be placed, by the reason reported to the caller.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let deployments = IntGaugeVec::new(
            Opts::new("berth_deployments", "Service deployments by rollout state."),
            &["rollout_state"],
        )
        .expect("valid metric");
        let inner = Inner {
            raft,
            api_requests,
            api_duration,
            placements: counter(
                "berth_scheduler_placements_total",
                "Tasks placed on a container instance.",
            ),
            placement_failures,
            placement_duration: histogram(
                "berth_scheduler_placement_duration_seconds",
                "Time of one placement decision (a RunTask's or a reconciler round's).",
                prometheus::exponential_buckets(0.00005, 2.0, 16).expect("buckets"),
            ),
            tasks_started: counter(
                "berth_tasks_started_total",
                "Tasks created (RunTask, StartTask, service reconciler), counted on the leader.",
            ),
            tasks_stopped: counter(
                "berth_tasks_stopped_total",
                "Tasks that reached STOPPED, counted on the leader.",
            ),
            deployments,
            events_subscribers: gauge(
                "berth_events_subscribers",
                "Open event subscriptions (gRPC SubscribeEvents and HTTP /v1/events).",
            ),
            events_appended: counter(
                "berth_events_appended_total",
                "Events appended to this member's event log.",
            ),
            events_lag: gauge(
                "berth_events_subscriber_lag",
                "Events the furthest-behind subscriber has yet to receive.",
            ),
            leader: AtomicBool::new(false),
            recent_stops: Mutex::new(RecentStops::default()),
            registry,
        };
        let r = &inner.registry;
        register(r, &inner.api_requests);
        register(r, &inner.api_duration);
        register(r, &inner.placements);
        register(r, &inner.placement_failures);
        register(r, &inner.placement_duration);
        register(r, &inner.tasks_started);
        register(r, &inner.tasks_stopped);
        register(r, &inner.deployments);
        register(r, &inner.events_subscribers);
        register(r, &inner.events_appended);
        register(r, &inner.events_lag);
        for state in ROLLOUT_STATES {
            inner.deployments.with_label_values(&[state]).set(0);
        }
        Metrics { inner: Arc::new(inner) }
    }

    /// The Raft series, for `RaftConfig::metrics`.
    pub fn raft(&self) -> &RaftMetrics {
        &self.inner.raft
    }

    /// The tower layer that counts client API requests.
    pub fn api_layer(&self) -> ApiMetricsLayer {
        ApiMetricsLayer::new(self.clone())
    }

    /// Whether this member leads (set by `Controller::start` from the Raft role).
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.store(leader, Ordering::Relaxed);
    }

    /// One answered client API request.
    pub fn api_request(&self, method: &str, code: &str, elapsed: Duration) {
        self.inner.api_requests.with_label_values(&[method, code]).inc();
        self.inner.api_duration.with_label_values(&[method]).observe(elapsed.as_secs_f64());
    }

    /// One placement decision: `placed` tasks found an instance; each of `failures` (ECS reason
    /// tokens, e.g. `RESOURCE:CPU`) did not.
    pub fn placed<'a>(
        &self,
        placed: usize,
        failures: impl IntoIterator<Item = &'a str>,
        elapsed: Duration,
    ) {
        self.inner.placements.inc_by(placed as u64);
        for reason in failures {
            self.inner.placement_failures.with_label_values(&[reason]).inc();
        }
        self.inner.placement_duration.observe(elapsed.as_secs_f64());
    }

    /// Events this member's log appended (called by `EventLog::append`): counts them, and on
    /// the leader the tasks they show created (a task event at version 1) or STOPPED.
    pub fn observe_events(&self, events: &[Arc<StoredEvent>]) {
        self.inner.events_appended.inc_by(events.len() as u64);
        if !self.inner.leader.load(Ordering::Relaxed) {
            return;
        }
        for task in events.iter().filter_map(|e| e.task.as_ref()) {
            if task.version == 1 {
                self.inner.tasks_started.inc();
            }
            if task.last_status == STOPPED {
                let arn = task.task_arn.as_str();
                let mut recent = self.inner.recent_stops.lock().unwrap_or_else(|p| p.into_inner());
                if recent.first(arn) {
                    self.inner.tasks_stopped.inc();
                }
            }
        }
    }

    /// The text exposition, after refreshing the series computed from state: deployments by
    /// rollout state, the event stream's subscribers and lag.
    pub fn render(&self, shared: &SharedState, events: &EventLog) -> String {
        let mut counts = [0i64; ROLLOUT_STATES.len()];
        {
            let st = shared.read();
            for svc in st.services.values() {
                for d in &svc.deployments {
                    let state = d.rollout_state.as_deref().unwrap_or_default();
                    if let Some(i) = ROLLOUT_STATES.iter().position(|s| *s == state) {
                        counts[i] += 1;
                    }
                }
            }
        }
        for (state, n) in ROLLOUT_STATES.iter().zip(counts) {
            self.inner.deployments.with_label_values(&[*state]).set(n);
        }
        let subs = events.subscriber_positions();
        self.inner.events_subscribers.set(subs.count as i64);
        let lag = subs.slowest.map(|pos| events.tip().next.saturating_sub(pos)).unwrap_or(0);
        self.inner.events_lag.set(lag as i64);
        self.encode()
    }

    /// The text exposition of the registry as it stands.
    pub fn encode(&self) -> String {
        let families = self.inner.registry.gather();
        prometheus::TextEncoder::new().encode_to_string(&families).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "encoding metrics failed");
            String::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_series_is_exposed() {
        let m = Metrics::new();
        m.api_request("RunTask", "OK", Duration::from_millis(3));
        m.placed(2, ["RESOURCE:CPU"], Duration::from_micros(80));
        m.raft().proposal_duration.observe(0.001);
        let text = m.encode();
        for name in [
            "berth_raft_term",
            "berth_raft_leader_changes_total",
            "berth_raft_commit_index",
            "berth_raft_applied_index",
            "berth_raft_proposal_duration_seconds_bucket",
            "berth_raft_log_entries",
            "berth_raft_snapshots_total",
            "berth_raft_snapshot_duration_seconds_count",
            "berth_api_requests_total{code=\"OK\",method=\"RunTask\"} 1",
            "berth_api_request_duration_seconds_bucket{method=\"RunTask\"",
            "berth_scheduler_placements_total 2",
            "berth_scheduler_placement_failures_total{reason=\"RESOURCE:CPU\"} 1",
            "berth_scheduler_placement_duration_seconds_count 1",
            "berth_tasks_started_total 0",
            "berth_tasks_stopped_total 0",
            "berth_deployments{rollout_state=\"IN_PROGRESS\"} 0",
            "berth_events_subscribers 0",
            "berth_events_appended_total 0",
            "berth_events_subscriber_lag 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn stopped_tasks_count_once_and_only_on_the_leader() {
        let m = Metrics::new();
        let task = |version: u64, status: &str| {
            let json = serde_json::json!({
                "index": version, "detail-type": berth_proto::model::event::TASK_STATE_CHANGE,
                "detail": {"taskArn": "arn:t/1", "version": version, "lastStatus": status},
            });
            Arc::new(StoredEvent::parse(json.to_string()).expect("event"))
        };
        m.observe_events(&[task(1, "PENDING")]);
        assert_eq!(m.inner.tasks_started.get(), 0, "a follower counts no tasks");
        assert_eq!(m.inner.events_appended.get(), 1);
        m.set_leader(true);
        m.observe_events(&[task(1, "PENDING"), task(2, "RUNNING")]);
        m.observe_events(&[task(3, STOPPED), task(4, STOPPED)]);
        assert_eq!(m.inner.tasks_started.get(), 1);
        assert_eq!(m.inner.tasks_stopped.get(), 1, "a stopped task's later event is not a stop");
        assert_eq!(m.inner.events_appended.get(), 5);
    }
}
