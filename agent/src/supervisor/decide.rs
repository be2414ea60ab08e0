//! The pure core of a task's state machine: given the desired status, the current phase, the
//! plan and what the runtime shows, decide the next phase and the next single step. Also builds
//! the `TaskStatusReport` for a phase. No I/O, no clock.

use super::spec::{DEFAULT_STOP_TIMEOUT, TaskPlan};
use crate::runtime::{ContainerInfo, ContainerState, LABEL_CONTAINER_NAME, LABEL_STOP_TIMEOUT};
use berth_proto::model::{ContainerReport, NetworkBinding, TaskStatusReport, Timestamp};
use std::collections::HashMap;
use std::time::Duration;

pub const STOP_CODE_ESSENTIAL_EXITED: &str = "EssentialContainerExited";
pub const STOP_CODE_FAILED_TO_START: &str = "TaskFailedToStart";
pub const REASON_ESSENTIAL_EXITED: &str = "Essential container in task exited";

/// What the controller wants for the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    Running,
    /// Stop, report STOPPED, remove the containers.
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Pulling images, creating and starting containers.
    Starting,
    /// All essential containers run.
    Running,
    /// Stopping every container; `reached_running` keeps the reported status honest.
    Stopping { stop_code: Option<String>, reason: Option<String>, reached_running: bool },
    /// Every container stopped; the STOPPED report is final.
    Stopped { stop_code: Option<String>, reason: Option<String> },
}

/// One step for the worker to execute.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Make the image of container `i` available (per the pull behaviour).
    PrepareImage(usize),
    /// Create container `i` of the plan.
    Create(usize),
    /// Start an existing container of the plan (container `i`, runtime id).
    Start(usize, String),
    /// Stop these containers (runtime id, SIGTERM→SIGKILL grace).
    Stop(Vec<(String, Duration)>),
    /// Remove these containers.
    Remove(Vec<String>),
    /// Nothing to do until the runtime or the desired status changes.
    Wait,
    /// Stopped, reported and removed: the worker can end.
    Finished,
}

pub struct View<'a> {
    pub desired: Desired,
    /// `None` for a task whose assignment could not be read, or an orphan: only stop/remove.
    pub plan: Option<&'a TaskPlan>,
    /// This task's containers on this instance.
    pub observed: &'a [ContainerInfo],
    /// Per plan container: image available.
    pub images_ready: &'a [bool],
    /// Remove containers once stopped (desired STOPPED, unassigned, or cleanup wait over).
    pub remove_when_stopped: bool,
    /// stopCode / stoppedReason the controller gave when it set desired STOPPED.
    pub controller_stop: (Option<String>, Option<String>),
}

/// The observed container for each plan container (by the `berth.container-name` label).
pub fn by_container_name(observed: &[ContainerInfo]) -> HashMap<&str, &ContainerInfo> {
    let mut map: HashMap<&str, &ContainerInfo> = HashMap::new();
    for c in observed {
        let Some(name) = c.label(LABEL_CONTAINER_NAME) else {
            continue;
        };
        // Should two exist (never by this agent), prefer the running one.
        match map.get(name) {
            Some(prev) if prev.state == ContainerState::Running => {}
            _ => {
                map.insert(name, c);
            }
        }
    }
    map
}

fn stop_timeout_of(c: &ContainerInfo) -> Duration {
    c.label(LABEL_STOP_TIMEOUT)
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_STOP_TIMEOUT)
}

/// Decides the next phase (if it changes) and step.
pub fn decide(v: &View<'_>, phase: &Phase) -> (Option<Phase>, Step) {
    let mut current = phase.clone();
    let mut changed = false;
    // A phase change can make another one due at once (e.g. Starting → Stopping → Stopped);
    // there are at most three transitions, so the loop ends.
    for _ in 0..4 {
        match next(v, &current) {
            Next::Phase(p) => {
                current = p;
                changed = true;
            }
            Next::Step(step) => return (changed.then_some(current), step),
        }
    }
    (changed.then_some(current), Step::Wait)
}

enum Next {
    Phase(Phase),
    Step(Step),
}

fn essential_exited(
    plan: &TaskPlan,
    by_name: &HashMap<&str, &ContainerInfo>,
    require_present: bool,
) -> bool {
    plan.containers.iter().filter(|c| c.essential).any(|c| match by_name.get(c.name.as_str()) {
        Some(info) => info.state == ContainerState::Exited,
        None => require_present,
    })
}

fn next(v: &View<'_>, phase: &Phase) -> Next {
    let by_name = by_container_name(v.observed);
    let reached_running = matches!(phase, Phase::Running);
    match phase {
        Phase::Starting | Phase::Running if v.desired == Desired::Stopped => {
            Next::Phase(Phase::Stopping {
                stop_code: v.controller_stop.0.clone(),
                reason: v.controller_stop.1.clone(),
                reached_running,
            })
        }
        Phase::Starting => {
            let Some(plan) = v.plan else {
                return Next::Phase(Phase::Stopping {
                    stop_code: None,
                    reason: None,
                    reached_running,
                });
            };
            if essential_exited(plan, &by_name, false) {
                return Next::Phase(Phase::Stopping {
                    stop_code: Some(STOP_CODE_ESSENTIAL_EXITED.into()),
                    reason: Some(REASON_ESSENTIAL_EXITED.into()),
                    reached_running,
                });
            }
            for (i, c) in plan.containers.iter().enumerate() {
                match by_name.get(c.name.as_str()) {
                    None if !v.images_ready.get(i).copied().unwrap_or(false) => {
                        return Next::Step(Step::PrepareImage(i));
                    }
                    None => return Next::Step(Step::Create(i)),
                    Some(info) if info.state == ContainerState::Created => {
                        return Next::Step(Step::Start(i, info.id.clone()));
                    }
                    Some(info) if info.state == ContainerState::Other => {
                        return Next::Step(Step::Wait);
                    }
                    Some(_) => {}
                }
            }
            let all_essential_run = plan.containers.iter().filter(|c| c.essential).all(|c| {
                by_name.get(c.name.as_str()).is_some_and(|i| i.state == ContainerState::Running)
            });
            if all_essential_run { Next::Phase(Phase::Running) } else { Next::Step(Step::Wait) }
        }
        Phase::Running => match v.plan {
            Some(plan) if essential_exited(plan, &by_name, true) => Next::Phase(Phase::Stopping {
                stop_code: Some(STOP_CODE_ESSENTIAL_EXITED.into()),
                reason: Some(REASON_ESSENTIAL_EXITED.into()),
                reached_running: true,
            }),
            _ => Next::Step(Step::Wait),
        },
        Phase::Stopping { stop_code, reason, .. } => {
            let running: Vec<(String, Duration)> = v
                .observed
                .iter()
                .filter(|c| matches!(c.state, ContainerState::Running | ContainerState::Other))
                .map(|c| (c.id.clone(), stop_timeout_of(c)))
                .collect();
            if running.is_empty() {
                Next::Phase(Phase::Stopped { stop_code: stop_code.clone(), reason: reason.clone() })
            } else {
                Next::Step(Step::Stop(running))
            }
        }
        Phase::Stopped { .. } => {
            if !v.remove_when_stopped {
                Next::Step(Step::Wait)
            } else if v.observed.is_empty() {
                Next::Step(Step::Finished)
            } else {
                Next::Step(Step::Remove(v.observed.iter().map(|c| c.id.clone()).collect()))
            }
        }
    }
}

/// Timestamps the worker records (from its clock) for the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Times {
    pub pull_started_at: Option<Timestamp>,
    pub pull_stopped_at: Option<Timestamp>,
    pub execution_stopped_at: Option<Timestamp>,
}

/// The ECS `lastStatus` for a phase.
pub fn last_status(phase: &Phase) -> &'static str {
    match phase {
        Phase::Starting => "PENDING",
        Phase::Running => "RUNNING",
        Phase::Stopping { reached_running: true, .. } => "RUNNING",
        Phase::Stopping { .. } => "PENDING",
        Phase::Stopped { .. } => "STOPPED",
    }
}

/// Builds the report for `phase` from what the runtime shows.
pub fn build_report(
    task_id: &str,
    phase: &Phase,
    plan: Option<&TaskPlan>,
    observed: &[ContainerInfo],
    times: &Times,
) -> TaskStatusReport {
    let by_name = by_container_name(observed);
    let stopped = matches!(phase, Phase::Stopped { .. });
    let report_of = |name: &str, info: Option<&ContainerInfo>| ContainerReport {
        name: name.to_string(),
        runtime_id: info.map(|i| i.id.clone()),
        last_status: match info {
            Some(i) => i.state.ecs_status().to_string(),
            None if stopped => "STOPPED".to_string(),
            None => "PENDING".to_string(),
        },
        exit_code: info.and_then(|i| i.exit_code),
        reason: info.and_then(|i| i.error.clone()),
        network_bindings: info
            .map(|i| {
                i.ports
                    .iter()
                    .map(|p| NetworkBinding {
                        bind_ip: Some(p.host_ip.clone()),
                        container_port: p.container_port,
                        host_port: p.host_port,
                        protocol: p.protocol.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        health_status: None,
    };
    let containers = match plan {
        Some(plan) => plan
            .containers
            .iter()
            .map(|c| report_of(&c.name, by_name.get(c.name.as_str()).copied()))
            .collect(),
        None => by_name.iter().map(|(name, info)| report_of(name, Some(info))).collect(),
    };
    let (stop_code, stopped_reason) = match phase {
        Phase::Stopped { stop_code, reason } => (stop_code.clone(), reason.clone()),
        _ => (None, None),
    };
    TaskStatusReport {
        task_id: task_id.to_string(),
        last_status: last_status(phase).to_string(),
        containers,
        stop_code,
        stopped_reason,
        pull_started_at: times.pull_started_at,
        pull_stopped_at: times.pull_stopped_at,
        execution_stopped_at: times.execution_stopped_at,
    }
}
