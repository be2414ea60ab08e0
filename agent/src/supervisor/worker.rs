//! One task's worker: a loop that asks the pure core ([`super::decide`]) for the next step,
//! executes it against the runtime, waits for a snapshot taken after the step, and publishes a
//! report whenever the report changes (a health verdict that changes is a changed report).
//!
//! Waiting for a snapshot *newer than the step* before deciding again is what prevents duplicate
//! containers: a decision is never made on a view that predates the last create.

use super::decide::{self, Desired, Phase, STOP_CODE_FAILED_TO_START, Step, Times, View};
use super::decide_order::{self, OrderView};
use super::observer::{ObserverHandle, Snapshot};
use super::pacing;
use super::spec::TaskPlan;
use super::{ReportBoard, awsvpc, images::ImagePreparer, reportable};
use crate::Clock;
use crate::config::PullBehavior;
use crate::runtime::pause_image::BUILTIN_PAUSE_IMAGE;
use crate::runtime::{ContainerRuntime, ContainerState, RuntimeError};
use berth_proto::model::TaskStatusReport;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Shared by all workers of one supervisor.
pub struct WorkerContext {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub observer: ObserverHandle,
    pub images: Arc<ImagePreparer>,
    /// Tasks starting now; removals wait for them (`pacing.rs`).
    pub start_gate: Arc<pacing::StartGate>,
    pub pull_behavior: PullBehavior,
    pub reports: Arc<ReportBoard>,
    pub clock: Arc<dyn Clock>,
    /// How long a task's stopped containers stay (for inspection) when the controller has not
    /// yet said desired STOPPED.
    pub task_cleanup_wait: Duration,
}

/// What the controller currently wants for the task.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredState {
    pub desired: Desired,
    /// stopCode / stoppedReason from the controller's task, used when it stops the task.
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
}

pub struct WorkerInit {
    pub task_id: String,
    pub plan: Option<TaskPlan>,
    pub phase: Phase,
    /// Orphans (tasks the controller no longer knows) are cleaned up without reports.
    pub silent: bool,
    /// The task already ended on its own (e.g. before an agent restart): its stopped containers
    /// stay for the cleanup wait, counted from now, whatever the controller's desired status.
    pub keep_stopped: bool,
}

fn failed(reason: String, reached_running: bool) -> Phase {
    Phase::Stopping {
        stop_code: Some(STOP_CODE_FAILED_TO_START.into()),
        reason: Some(reason),
        reached_running,
    }
}

/// Runs the task's state machine until its containers are stopped, reported and removed, or the
/// supervisor goes away (then containers are left as they are, for a restarted agent to adopt).
pub async fn run(
    ctx: Arc<WorkerContext>,
    init: WorkerInit,
    mut desired_rx: watch::Receiver<DesiredState>,
) {
    let WorkerInit { task_id, plan, mut phase, silent, keep_stopped } = init;
    if let Some(plan) = &plan {
        for w in &plan.warnings {
            tracing::warn!(task_id = %task_id, "{w}");
        }
    }
    let mut snap_rx = ctx.observer.subscribe();
    let Some(mut snap) = ctx.observer.fresh(&mut snap_rx).await else {
        return;
    };
    let n = plan.as_ref().map_or(0, |p| p.containers.len());
    let mut images_ready = vec![false; n];
    let mut times = Times::default();
    let mut last_report: Option<TaskStatusReport> = None;
    // The last report sent to the controller (`last_report` may be newer: see `reportable`).
    let mut last_sent: Option<TaskStatusReport> = None;
    let mut stopped_at: Option<Instant> = None;
    // Ended on its own (an essential exit, a failed start): the containers are kept for
    // `task_cleanup_wait` even if the controller then says desired STOPPED (it always does, and
    // a full assignment set after a reconnect leaves the task out).
    let mut self_stopped = keep_stopped;
    // When each container was first seen started: `startTimeout` counts from there. (After an
    // agent restart it counts from adoption: the engine's own start time is not in the view.)
    let mut started_at: Vec<Option<std::time::Instant>> = vec![None; n];
    // Non-essential containers whose start failed (ECS marks them STOPPED and goes on). Lost on
    // an agent restart: the adopting worker tries once more and remembers the failure again.
    let mut start_failed: Vec<Option<String>> = vec![None; n];
    // Held while this task starts: removals of stopped containers wait for it (`pacing.rs`).
    let mut starting: Option<pacing::Starting> = None;

    loop {
        let d = desired_rx.borrow_and_update().clone();
        let cleanup_due = stopped_at.map(|t| t + ctx.task_cleanup_wait);
        let now = Instant::now().into_std();
        if let Some(p) = &plan {
            let by_name = decide::by_container_name(snap.task(&task_id));
            for (i, c) in p.containers.iter().enumerate() {
                let started = by_name.get(c.name.as_str()).is_some_and(|info| {
                    matches!(info.state, ContainerState::Running | ContainerState::Exited)
                });
                if started && started_at[i].is_none() {
                    started_at[i] = Some(now);
                }
            }
        }
        let view = View {
            desired: d.desired,
            plan: plan.as_ref(),
            observed: snap.task(&task_id),
            images_ready: &images_ready,
            started_at: &started_at,
            start_failed: &start_failed,
            now,
            remove_when_stopped: cleanup_due.is_some_and(|t| Instant::now() >= t)
                || (!self_stopped && (d.desired == Desired::Stopped || plan.is_none())),
            controller_stop: (d.stop_code.clone(), d.stopped_reason.clone()),
        };
        let (new_phase, step) = decide::decide(&view, &phase);
        // A new phase may have a next step on this same view: decide again before waiting
        // (waits skip snapshots in which this task's containers did not move).
        let moved = new_phase.is_some();
        if let Some(p) = new_phase {
            if matches!(p, Phase::Stopped { .. }) {
                times.execution_stopped_at = Some(ctx.clock.now());
                stopped_at = Some(Instant::now());
                self_stopped |= d.desired == Desired::Running;
            }
            let (stop_code, reason) = match &p {
                Phase::Stopping { stop_code, reason, .. }
                | Phase::Stopped { stop_code, reason } => (stop_code.as_deref(), reason.as_deref()),
                _ => (None, None),
            };
            tracing::info!(
                task_id = %task_id,
                from = phase_name(&phase),
                to = phase_name(&p),
                stop_code,
                reason,
                "task transition"
            );
            phase = p;
        }
        if matches!(phase, Phase::Starting) && plan.is_some() && !silent {
            starting.get_or_insert_with(|| ctx.start_gate.starting());
        } else {
            starting = None;
        }
        let start_deadline = match (&phase, &plan) {
            (Phase::Starting, Some(p)) => {
                let by_name = decide::by_container_name(snap.task(&task_id));
                let order = OrderView::new(p, &by_name, &started_at, &start_failed, now);
                decide_order::next_deadline(&order)
            }
            _ => None,
        };
        // The STOPPED report is final: once sent, removal must not rewrite it.
        let report_final = last_report.as_ref().is_some_and(|r| r.last_status == "STOPPED");
        if !silent && !report_final {
            let r = decide::build_report(
                &task_id,
                &phase,
                plan.as_ref(),
                snap.task(&task_id),
                &start_failed,
                &times,
                last_report.as_ref(),
            );
            if last_report.as_ref() != Some(&r) {
                log_container_stops(&task_id, last_report.as_ref(), &r);
                if reportable::worth_sending(last_sent.as_ref(), &r) {
                    ctx.reports.publish(r.clone());
                    last_sent = Some(r.clone());
                } else {
                    ctx.reports.note(r.clone());
                }
                last_report = Some(r);
            }
        }
        let outcome = match step {
            Step::Finished => return,
            Step::Wait if moved => continue,
            Step::Wait => {
                let deadline = match (cleanup_due, start_deadline.map(Instant::from_std)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let timer = async {
                    match deadline {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                let mut timer = std::pin::pin!(timer);
                loop {
                    tokio::select! {
                        r = snap_rx.changed() => {
                            if r.is_err() { return; }
                            let next = snap_rx.borrow_and_update().clone();
                            // Another task's containers moved: nothing to decide here (the
                            // view, and so the decision, is the same).
                            let same = next.same_task(&snap, &task_id);
                            snap = next;
                            if same {
                                continue;
                            }
                        }
                        r = desired_rx.changed() => if r.is_err() { return; },
                        _ = &mut timer => {}
                    }
                    break;
                }
                continue;
            }
            Step::PrepareImage(i) => {
                if times.pull_started_at.is_none() {
                    times.pull_started_at = Some(ctx.clock.now());
                    continue; // report PENDING with pullStartedAt before the (slow) pull
                }
                let Some(image) =
                    plan.as_ref().and_then(|p| p.containers.get(i)).map(|c| c.spec.image.clone())
                else {
                    return;
                };
                let builtin_pause = image == BUILTIN_PAUSE_IMAGE
                    && plan
                        .as_ref()
                        .and_then(|p| p.containers.get(i))
                        .is_some_and(awsvpc::is_pause);
                let r = if builtin_pause {
                    // Berth's own pause image is built by the runtime, never pulled.
                    ctx.runtime
                        .ensure_pause_image(&image)
                        .await
                        .map_err(|e| format!("CannotPullContainerError: awsvpc pause image: {e}"))
                } else {
                    ctx.images.prepare(ctx.runtime.as_ref(), &image, ctx.pull_behavior).await
                };
                times.pull_stopped_at = Some(ctx.clock.now());
                match r {
                    Ok(()) => {
                        if let Some(p) = &plan {
                            for (j, c) in p.containers.iter().enumerate() {
                                if c.spec.image == image {
                                    images_ready[j] = true;
                                }
                            }
                        }
                    }
                    Err(reason) => phase = failed(reason, false),
                }
                continue;
            }
            Step::Create(i) => {
                let Some(spec) = plan.as_ref().and_then(|p| p.containers.get(i)).map(|c| &c.spec)
                else {
                    return;
                };
                match ctx.runtime.create(spec).await {
                    Ok(_) => Outcome::Fresh,
                    Err(RuntimeError::Conflict(e)) => {
                        // Ours (created by a step whose snapshot we have not seen yet) or a
                        // foreign container holding the name: a fresh snapshot tells which.
                        let Some(s) = ctx.observer.fresh(&mut snap_rx).await else {
                            return;
                        };
                        let name = plan
                            .as_ref()
                            .and_then(|p| p.containers.get(i))
                            .map(|c| c.name.as_str());
                        let ours = decide::by_container_name(s.task(&task_id))
                            .contains_key(name.unwrap_or(""));
                        snap = s;
                        if !ours {
                            phase = failed(format!("CannotCreateContainerError: {e}"), false);
                        }
                        continue;
                    }
                    Err(RuntimeError::Unavailable(e)) => Outcome::Retry(e),
                    Err(e) => {
                        phase = failed(format!("CannotCreateContainerError: {e}"), false);
                        Outcome::Fresh
                    }
                }
            }
            Step::Start(i, id) => match ctx.runtime.start(&id).await {
                Ok(()) => Outcome::Fresh,
                Err(RuntimeError::Unavailable(e)) => Outcome::Retry(e),
                Err(e) => {
                    let reason = format!("CannotStartContainerError: {e}");
                    let essential =
                        plan.as_ref().and_then(|p| p.containers.get(i)).is_none_or(|c| c.essential);
                    match start_failed.get_mut(i) {
                        Some(slot) if !essential => {
                            tracing::warn!(task_id = %task_id, container = i, %reason, "non-essential container failed to start; it counts as stopped");
                            *slot = Some(reason);
                        }
                        _ => phase = failed(reason, false),
                    }
                    Outcome::Fresh
                }
            },
            Step::Stop(list) => {
                let rt = &ctx.runtime;
                let results = futures::future::join_all(
                    list.iter().map(|(id, timeout)| rt.stop(id, *timeout)),
                )
                .await;
                match results.into_iter().find_map(Result::err) {
                    None => Outcome::Fresh,
                    Some(e) => Outcome::Retry(e.to_string()),
                }
            }
            Step::Remove(ids) => {
                ctx.start_gate.wait_idle(pacing::REMOVE_DEFER_MAX).await;
                let mut err = None;
                for id in &ids {
                    if let Err(e) = ctx.runtime.remove(id).await {
                        err = Some(e.to_string());
                    }
                }
                err.map_or(Outcome::Fresh, Outcome::Retry)
            }
        };
        let next: Option<Arc<Snapshot>> = match outcome {
            Outcome::Fresh => ctx.observer.fresh(&mut snap_rx).await,
            Outcome::Retry(e) => {
                tracing::warn!(task_id = %task_id, error = %e, "runtime step failed; retrying");
                ctx.observer.next_tick(&mut snap_rx).await
            }
        };
        match next {
            Some(s) => snap = s,
            None => return,
        }
    }
}

enum Outcome {
    /// Decide again on a snapshot taken after this step.
    Fresh,
    /// The step failed in a way worth retrying; wait for the next regular poll.
    Retry(String),
}

/// The worker's phase as a log field value (`STARTING`, `RUNNING`, `STOPPING`, `STOPPED`).
fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::Starting => "STARTING",
        Phase::Running => "RUNNING",
        Phase::Stopping { .. } => "STOPPING",
        Phase::Stopped { .. } => "STOPPED",
    }
}

/// One log line per container that this report shows STOPPED for the first time.
fn log_container_stops(task_id: &str, last: Option<&TaskStatusReport>, r: &TaskStatusReport) {
    for c in r.containers.iter().filter(|c| c.last_status == "STOPPED") {
        let was_stopped = last.is_some_and(|l| {
            l.containers.iter().any(|p| p.name == c.name && p.last_status == "STOPPED")
        });
        if !was_stopped {
            tracing::info!(task_id, container = %c.name, exit_code = c.exit_code, "container stopped");
        }
    }
}
