//! # supervisor — one state machine per task
//!
//! Data flow: the session hands [`Supervisor::apply`] the controller's `Assignments`; each task
//! gets a worker (`worker.rs`) fed by a watch channel of its desired status. Workers read a
//! shared, numbered snapshot of this instance's containers from the observer (`observer.rs`,
//! polling the runtime), ask the pure core (`decide.rs`) for the next step, execute it, and
//! publish reports to the [`ReportBoard`], which keeps the latest report per task (re-sent after
//! a reconnect) and streams changes to the session.
//!
//! * `spec.rs`   — assignment JSON → container specs (names, labels, resources, ports). Pure.
//! * `decide.rs` — phase + observed containers → next step; report building, with container
//!   and task `healthStatus` from the engine's health checks. Pure.
//! * `decide_order.rs` — container ordering: `dependsOn` / `links` start gates, `startTimeout`,
//!   reverse-order shutdown. Pure (time is an input).
//! * `awsvpc.rs` — awsvpc tasks: the pause container in the plan, the ENI-shaped attachment and
//!   `networkInterfaces` in the report. Pure.
//! * `metadata_view.rs` — the task metadata endpoint's read-only view of the tasks, and the
//!   env var / token injection into new plans (only while the endpoint is on).
//! * `images.rs` — pull behaviours (default / always / once / prefer-cached); one pull per image
//!   at a time, shared by the tasks that ask meanwhile.
//! * `pacing.rs` — removals of stopped containers wait while tasks are starting (bounded).
//! * `secrets.rs` — the assignment's secret values → the containers' `secret_env` (memory only,
//!   redacted `Debug`). Pure.
//! * `reportable.rs` — which of a worker's reports the controller hears of (status changes, as
//!   the ECS agent reports; pull times and runtime ids ride along). Pure.
//!
//! Adoption needs nothing special: a worker's first decision is made on a snapshot that already
//! shows the containers a previous agent process created (same labels, same names), so it starts
//! what is created, keeps what runs, and creates only what is missing. Containers of this
//! instance that belong to no assigned task are stopped and removed once a full assignment set
//! has arrived. The supervisor never touches containers labelled with another instance id.

pub mod awsvpc;
pub mod decide;
pub mod decide_order;
pub mod images;
pub mod metadata_view;
pub mod observer;
pub mod pacing;
pub mod reportable;
pub mod secrets;
pub mod spec;
mod worker;

#[cfg(test)]
mod tests;

use crate::Clock;
use crate::config::PullBehavior;
use crate::runtime::{ContainerRuntime, ContainerState};
use berth_proto::model::{STOPPED, TaskStatusReport};
use berth_proto::v1::Assignment;
use decide::{Desired, Phase, STOP_CODE_FAILED_TO_START};
use spec::Placement;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use worker::{DesiredState, WorkerContext, WorkerInit};

/// How long `apply` waits for a fresh container snapshot before sweeping orphans; if the engine
/// does not answer in time the sweep is skipped until the next full assignment set.
const ORPHAN_SWEEP_SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub instance_id: String,
    pub cluster: String,
    pub pull_behavior: PullBehavior,
    pub poll_interval: Duration,
    pub task_cleanup_wait: Duration,
    /// How awsvpc tasks get their network namespace (`awsvpc.rs`).
    pub awsvpc: awsvpc::AwsvpcSettings,
}

/// Reports waiting for the session, at most this many. While the controller is unreachable the
/// session does not read, so every transition waits here in order and is delivered on reconnect
/// (ECS agents buffer state changes the same way). Past the bound the newest transitions are not
/// queued: the latest report of every task is then re-sent instead, so the final state is never
/// lost, only intermediate history.
pub const REPORT_QUEUE_BOUND: usize = 4096;

/// Latest report per task, plus a bounded, ordered queue of every new one.
pub struct ReportBoard {
    latest: Mutex<HashMap<String, TaskStatusReport>>,
    tx: mpsc::UnboundedSender<TaskStatusReport>,
    queued: AtomicUsize,
    overflowed: AtomicBool,
}

impl ReportBoard {
    fn new(tx: mpsc::UnboundedSender<TaskStatusReport>) -> ReportBoard {
        ReportBoard {
            latest: Mutex::new(HashMap::new()),
            tx,
            queued: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        }
    }

    pub fn publish(&self, report: TaskStatusReport) {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(report.task_id.clone(), report.clone());
        if self.queued.load(Ordering::SeqCst) >= REPORT_QUEUE_BOUND {
            if !self.overflowed.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    bound = REPORT_QUEUE_BOUND,
                    "report queue full (controller unreachable?): intermediate transitions are \
                     dropped; the latest state of every task is re-sent"
                );
            }
            return;
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        // The receiver is gone only while the agent shuts down; the latest map still has it.
        if self.tx.send(report).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Keeps `report` as the task's latest without sending it (a change the controller need
    /// not hear of alone: `reportable`); a reconnect re-sends it, the next sent report carries it.
    pub fn note(&self, report: TaskStatusReport) {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(report.task_id.clone(), report);
    }

    pub fn latest(&self) -> Vec<TaskStatusReport> {
        let mut v: Vec<_> =
            self.latest.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        v
    }

    pub fn get(&self, task_id: &str) -> Option<TaskStatusReport> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).get(task_id).cloned()
    }

    fn forget(&self, task_id: &str) {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).remove(task_id);
    }
}

/// The session's end of the report queue.
pub struct ReportStream {
    rx: mpsc::UnboundedReceiver<TaskStatusReport>,
    board: Arc<ReportBoard>,
}

impl ReportStream {
    /// The next report, in publication order; then, if the queue overflowed since the last
    /// call, the latest report of every task (the caller sends them all).
    pub async fn recv(&mut self) -> Option<Vec<TaskStatusReport>> {
        let r = self.rx.recv().await?;
        self.board.queued.fetch_sub(1, Ordering::SeqCst);
        let mut out = vec![r];
        if self.board.overflowed.swap(false, Ordering::SeqCst) {
            out.extend(self.board.latest());
        }
        Some(out)
    }

    /// Everything to send after (re)registering: the queued reports in order (transitions made
    /// while disconnected), then the latest report of every task whose last queued report is not
    /// its latest (all tasks after an overflow; tasks with nothing queued, e.g. after a new
    /// controller leader, are re-sent too — the controller ignores what it already has).
    pub fn drain_for_reconnect(&mut self) -> Vec<TaskStatusReport> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            self.board.queued.fetch_sub(1, Ordering::SeqCst);
            out.push(r);
        }
        let overflowed = self.board.overflowed.swap(false, Ordering::SeqCst);
        let last: HashMap<&str, &TaskStatusReport> =
            out.iter().map(|r| (r.task_id.as_str(), r)).collect();
        let extra: Vec<TaskStatusReport> = self
            .board
            .latest()
            .into_iter()
            .filter(|l| overflowed || last.get(l.task_id.as_str()).is_none_or(|q| *q != l))
            .collect();
        out.extend(extra);
        out
    }
}

struct TaskEntry {
    version: u64,
    desired_tx: watch::Sender<DesiredState>,
    handle: JoinHandle<()>,
}

/// Owns the task workers and the observer of one agent instance.
pub struct Supervisor {
    cfg: SupervisorConfig,
    ctx: Arc<WorkerContext>,
    tasks: HashMap<String, TaskEntry>,
    observer_handle: JoinHandle<()>,
    /// Set while the task metadata endpoint is on (`metadata_view.rs`).
    metadata: Option<metadata_view::MetadataHooks>,
}

impl Supervisor {
    /// Starts the observer; reports stream out of the returned receiver.
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        cfg: SupervisorConfig,
        clock: Arc<dyn Clock>,
    ) -> (Supervisor, ReportStream) {
        let (observer, observer_handle) =
            observer::spawn(runtime.clone(), cfg.instance_id.clone(), cfg.poll_interval);
        let (tx, rx) = mpsc::unbounded_channel();
        let board = Arc::new(ReportBoard::new(tx));
        let ctx = Arc::new(WorkerContext {
            runtime,
            observer,
            images: Arc::new(images::ImagePreparer::default()),
            start_gate: Arc::default(),
            pull_behavior: cfg.pull_behavior,
            reports: board.clone(),
            clock,
            task_cleanup_wait: cfg.task_cleanup_wait,
        });
        (
            Supervisor { cfg, ctx, tasks: HashMap::new(), observer_handle, metadata: None },
            ReportStream { rx, board },
        )
    }

    pub fn instance_id(&self) -> &str {
        &self.cfg.instance_id
    }

    /// The latest report of every task (re-sent after a reconnect).
    pub fn latest_reports(&self) -> Vec<TaskStatusReport> {
        self.ctx.reports.latest()
    }

    /// The latest report of one task.
    pub fn report(&self, task_id: &str) -> Option<TaskStatusReport> {
        self.ctx.reports.get(task_id)
    }

    /// Applies assignments. With `full`, tasks absent from the set are stopped and removed, and
    /// so are containers of this instance that belong to no assigned task.
    pub async fn apply(&mut self, full: bool, assignments: &[Assignment]) {
        for a in assignments {
            self.apply_one(a);
        }
        if !full {
            return;
        }
        let assigned: HashSet<&str> = assignments.iter().map(|a| a.task_id.as_str()).collect();
        let mut forget = Vec::new();
        for (id, entry) in &self.tasks {
            if assigned.contains(id.as_str()) {
                continue;
            }
            if entry.handle.is_finished() {
                forget.push(id.clone());
            } else {
                entry.desired_tx.send_modify(|d| d.desired = Desired::Stopped);
            }
        }
        for id in forget {
            self.tasks.remove(&id);
            self.ctx.reports.forget(&id);
            if let Some(m) = &self.metadata {
                m.forget(&id);
            }
        }
        self.sweep_orphans().await;
    }

    fn apply_one(&mut self, a: &Assignment) {
        let desired = match a.desired_status.as_str() {
            "RUNNING" => Desired::Running,
            STOPPED => Desired::Stopped,
            other => {
                tracing::warn!(task_id = %a.task_id, desired = other, "assignment with unknown desired status; ignored");
                return;
            }
        };
        if a.task_id.is_empty() {
            tracing::warn!("assignment without a task id; ignored");
            return;
        }
        let parsed = spec::parse_assignment(&a.task_json, &a.task_definition_json);
        let (stop_code, stopped_reason) = match &parsed {
            Ok((task, _)) => (task.stop_code.clone(), task.stopped_reason.clone()),
            Err(_) => (None, None),
        };
        // A task the controller already saw running is never started again: a fresh worker
        // (e.g. after an agent restart) adopts its containers, and a container that is gone
        // counts as an essential container that exited (ECS never re-runs a task's containers).
        let already_ran = parsed.as_ref().is_ok_and(|(task, _)| task.last_status == "RUNNING");
        let state = DesiredState { desired, stop_code, stopped_reason };
        if let (Some(m), Ok((task, def))) = (&self.metadata, &parsed) {
            m.note(a, self.tasks.get(&a.task_id).map(|e| e.version), task, def);
        }
        if let Some(entry) = self.tasks.get_mut(&a.task_id) {
            if a.version < entry.version {
                tracing::debug!(task_id = %a.task_id, version = a.version, have = entry.version, "stale assignment ignored");
                return;
            }
            entry.version = a.version;
            entry.desired_tx.send_if_modified(|d| {
                let changed = *d != state;
                *d = state;
                changed
            });
            return;
        }
        let placement = Placement {
            instance_id: self.cfg.instance_id.clone(),
            cluster: self.cfg.cluster.clone(),
        };
        let (plan, phase) = match parsed.and_then(|(_, def)| {
            spec::plan_task_with(&a.task_id, a.version, &def, &placement, &self.cfg.awsvpc)
                .map(|mut plan| {
                    if let Some(m) = &self.metadata {
                        m.inject(&def, &mut plan);
                    }
                    plan
                })
                .map_err(|e| format!("CannotCreateContainerError: {e}"))
                .and_then(|mut plan| {
                    let starting = !already_ran && desired == Desired::Running;
                    secrets::inject(&mut plan, &def, &a.secrets, starting).map(|()| plan)
                })
        }) {
            Ok(plan) if already_ran => (Some(plan), Phase::Running),
            Ok(plan) => (Some(plan), Phase::Starting),
            Err(reason) => {
                tracing::warn!(task_id = %a.task_id, %reason, "cannot run assignment");
                let reason = if reason.starts_with("Cannot")
                    || reason.starts_with("ResourceInitializationError")
                {
                    reason
                } else {
                    format!("invalid assignment: {reason}")
                };
                (
                    None,
                    Phase::Stopping {
                        stop_code: Some(STOP_CODE_FAILED_TO_START.into()),
                        reason: Some(reason),
                        reached_running: false,
                    },
                )
            }
        };
        let init = WorkerInit {
            task_id: a.task_id.clone(),
            plan,
            phase,
            silent: false,
            keep_stopped: false,
        };
        self.spawn_worker(init, a.version, state);
    }

    fn spawn_worker(&mut self, init: WorkerInit, version: u64, state: DesiredState) {
        let task_id = init.task_id.clone();
        let (desired_tx, desired_rx) = watch::channel(state);
        let handle = tokio::spawn(worker::run(self.ctx.clone(), init, desired_rx));
        self.tasks.insert(task_id, TaskEntry { version, desired_tx, handle });
    }

    async fn sweep_orphans(&mut self) {
        let mut rx = self.ctx.observer.subscribe();
        let snap = match tokio::time::timeout(
            ORPHAN_SWEEP_SNAPSHOT_WAIT,
            self.ctx.observer.fresh(&mut rx),
        )
        .await
        {
            Ok(Some(s)) => s,
            _ => {
                tracing::warn!("no container snapshot in time; orphan sweep skipped");
                return;
            }
        };
        let orphans: Vec<(String, bool)> = snap
            .by_task
            .iter()
            .filter(|(id, _)| !self.tasks.contains_key(*id))
            .map(|(id, cs)| (id.clone(), cs.iter().all(|c| c.state == ContainerState::Exited)))
            .collect();
        for (id, ended) in orphans {
            // A task whose containers all exited ended on its own (the controller has it
            // STOPPED): keep them for the cleanup wait, as before the restart. Anything still
            // running was stopped by the controller meanwhile: stop and remove it now.
            if ended {
                tracing::info!(task_id = %id, wait = ?self.cfg.task_cleanup_wait,
                    "keeping the exited containers of a stopped task for the cleanup wait");
            } else {
                tracing::info!(task_id = %id, "stopping and removing containers of an unassigned task");
            }
            let init = WorkerInit {
                task_id: id,
                plan: None,
                phase: Phase::Starting,
                silent: true,
                keep_stopped: ended,
            };
            let state =
                DesiredState { desired: Desired::Stopped, stop_code: None, stopped_reason: None };
            self.spawn_worker(init, 0, state);
        }
    }

    /// Stops the workers and the observer, leaving containers as they are.
    pub fn shutdown(&mut self) {
        for entry in self.tasks.values() {
            entry.handle.abort();
        }
        self.observer_handle.abort();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
