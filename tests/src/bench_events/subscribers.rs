//! Subscribers of the `events` suite and the sets their checks expect.
//!
//! ```text
//!  spawn_subscribers ──► subscribe ×N (follow, resume after errors) ──observe──► SubscriberOutcome
//!                                 │ Progress (ready, last, in_order) ──► the driver's waits
//!  subscriber 0's mask ──► expected_fingerprints ──► compared with each outcome's Fingerprint
//! ```
//!
//! [`Filter`] names both what a subscription asks the server for and the same selection decided
//! here; subscriber 0 (unfiltered, the oracle) records every event's [`Filter::bit`]s, from which
//! the other filters' expected sets are derived. It reads only the API's event stream.

use super::{
    MAX_LATENCY_SAMPLES, MAX_ORACLE_EVENTS, RETRY_PAUSE, STARTED_BY_PREFIX, Shared, member,
};
use anyhow::Result;
use berth_proto::model::event::TASK_STATE_CHANGE;
use berth_proto::v1::{self, berth_client::BerthClient};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Indexes each subscriber remembers last, to take those past the checked range back out of its
/// fingerprint (they arrive in the moments the range's end is being read).
const FINGERPRINT_TAIL: usize = 4096;

// ---- filters ---------------------------------------------------------------------------------

/// A subscriber's filter, and the same selection decided here (the oracle the server's
/// answers are checked against).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Filter {
    Everything,
    TaskType,
    Running,
    FamilyGroup,
}

impl Filter {
    pub(super) const ALL: [Filter; 4] =
        [Filter::Everything, Filter::TaskType, Filter::Running, Filter::FamilyGroup];

    /// (pattern JSON, detail types) of the SubscribeEvents request.
    pub(super) fn request(self) -> (&'static str, Vec<String>) {
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
pub(super) struct Fingerprint {
    pub(super) count: u64,
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

/// What the driver polls of a running subscriber.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) ready: AtomicBool,
    pub(super) last: AtomicU64,
    /// Events received in increasing index order.
    pub(super) in_order: AtomicU64,
}

struct SubscriberPlan {
    endpoint: String,
    filter: Filter,
    from: u64,
    /// Keeps the filter mask of every event (subscriber 0, unfiltered).
    oracle: bool,
}

#[derive(Default)]
pub(super) struct SubscriberOutcome {
    pub(super) received: u64,
    pub(super) gaps: u64,
    pub(super) out_of_order: u64,
    pub(super) reconnects: u64,
    pub(super) last_error: Option<String>,
    pub(super) latencies_us: Vec<u32>,
    pub(super) samples_dropped: u64,
    /// Creation events whose `startedBy` names no call this run sent.
    pub(super) unmatched: u64,
    pub(super) parse_errors: u64,
    /// Of every index received in order up to [`Shared::limit`], and the last
    /// [`FINGERPRINT_TAIL`] of them: the limit is set while events go on arriving, so a few
    /// beyond it may be counted before it is known, and are taken back out at the end.
    fingerprint: Fingerprint,
    tail: VecDeque<u64>,
    /// Filter bits of index `from + i` (the oracle only).
    mask: Vec<u8>,
    pub(super) mask_overflow: bool,
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
    pub(super) fn fingerprint_through(&self, limit: u64) -> Option<Fingerprint> {
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

/// A spawned subscriber, as the driver holds it.
pub(super) struct RunningSubscriber {
    pub(super) filter: Filter,
    pub(super) progress: Arc<Progress>,
    pub(super) handle: tokio::task::JoinHandle<SubscriberOutcome>,
}

/// Every subscriber, subscriber 0 (the oracle) first, and their stop signals: the oracle stops
/// first, its mask giving the others' expected sets.
pub(super) struct Subscribers {
    pub(super) all: Vec<RunningSubscriber>,
    pub(super) oracle_stop: watch::Sender<bool>,
    pub(super) stop: watch::Sender<bool>,
}

/// Spawns `n` subscribers following from `from`, round-robin over the members, their filters
/// cycling through [`Filter::ALL`] (subscriber 0: unfiltered, the oracle).
pub(super) fn spawn_subscribers(
    endpoints: &[String],
    n: usize,
    from: u64,
    shared: &Arc<Shared>,
) -> Subscribers {
    let (oracle_stop, oracle_stop_rx) = watch::channel(false);
    let (stop, stop_rx) = watch::channel(false);
    let all = (0..n)
        .map(|i| {
            let filter = Filter::ALL[i % Filter::ALL.len()];
            let plan =
                SubscriberPlan { endpoint: member(endpoints, i), filter, from, oracle: i == 0 };
            let progress = Arc::new(Progress::default());
            let stop = if i == 0 { oracle_stop_rx.clone() } else { stop_rx.clone() };
            let handle = tokio::spawn(subscribe(plan, shared.clone(), progress.clone(), stop));
            RunningSubscriber { filter, progress, handle }
        })
        .collect();
    Subscribers { all, oracle_stop, stop }
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
        match opened {
            Err(status) => out.last_error = Some(format!("subscribe: {status}")),
            Ok(r) => {
                let mut stream = r.into_inner();
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
            }
        }
        // The subscription failed to open or its stream ended: resume after a pause.
        out.reconnects += 1;
        tokio::select! {
            _ = tokio::time::sleep(RETRY_PAUSE) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    out
}

/// What each filter should have received in `start..=end`, from the oracle's mask (`None` for
/// a filter when the mask overflowed). `Everything` is the whole range.
pub(super) fn expected_fingerprints(
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
