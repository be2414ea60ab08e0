//! The pure core of a task's state machine: given the desired status, the current phase, the
//! plan and what the runtime shows, decide the next phase and the next single step. Also builds
//! the `TaskStatusReport` for a phase, with container and task `healthStatus` (the task's from
//! its essential containers that have a health check, ECS-NOTES §1.4.2). No I/O, no clock:
//! the worker passes `now` in. Container ordering (`dependsOn`, `links`, `startTimeout`,
//! reverse-order shutdown) is decided with the helpers of `decide_order.rs`.

use super::awsvpc;
use super::decide_order::{self, Gate, OrderView};
use super::spec::{DEFAULT_STOP_TIMEOUT, TaskPlan};
use crate::runtime::{ContainerInfo, ContainerState, LABEL_CONTAINER_NAME, LABEL_STOP_TIMEOUT};
use berth_proto::model::{ContainerReport, NetworkBinding, TaskStatusReport, Timestamp};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const STOP_CODE_ESSENTIAL_EXITED: &str = "EssentialContainerExited";
pub const STOP_CODE_FAILED_TO_START: &str = "TaskFailedToStart";
pub const REASON_ESSENTIAL_EXITED: &str = "Essential container in task exited";
/// awsvpc: the pause container (which holds the task's network namespace) exited. ECS stops
/// the task then too, with `EssentialContainerExited` (the pause container is an internal
/// essential container); the reason names it, since no listed container failed.
pub const REASON_PAUSE_EXITED: &str = "Task network namespace (pause container) exited";

/// ECS `healthStatus` values (containers and tasks).
pub const HEALTHY: &str = "HEALTHY";
pub const UNHEALTHY: &str = "UNHEALTHY";
pub const UNKNOWN: &str = "UNKNOWN";

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
    /// Per plan container: when the worker first saw it started (for `startTimeout`).
    pub started_at: &'a [Option<Instant>],
    /// Per plan container: why its start failed, for a non-essential container whose start the
    /// worker gave up on (it counts as stopped and is never started again).
    pub start_failed: &'a [Option<String>],
    pub now: Instant,
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

/// The stoppedReason when an essential container has exited (or, with `require_present`, is
/// gone); the pause container's exit is named as such.
fn essential_exited(
    plan: &TaskPlan,
    by_name: &HashMap<&str, &ContainerInfo>,
    require_present: bool,
) -> Option<&'static str> {
    let exited = |c: &&super::spec::PlannedContainer| match by_name.get(c.name.as_str()) {
        Some(info) => info.state == ContainerState::Exited,
        None => require_present,
    };
    let mut gone = plan.containers.iter().filter(|c| c.essential).filter(exited).peekable();
    gone.peek()?;
    // A listed container's exit is the cause when there is one (it may have taken the pause
    // container's namespace down with it, never the other way round).
    if gone.all(awsvpc::is_pause) {
        Some(REASON_PAUSE_EXITED)
    } else {
        Some(REASON_ESSENTIAL_EXITED)
    }
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
            if let Some(why) = essential_exited(plan, &by_name, false) {
                return Next::Phase(Phase::Stopping {
                    stop_code: Some(STOP_CODE_ESSENTIAL_EXITED.into()),
                    reason: Some(why.into()),
                    reached_running,
                });
            }
            let order = OrderView::new(plan, &by_name, v.started_at, v.start_failed, v.now);
            if let Some(reason) = decide_order::blocked(&order) {
                return Next::Phase(Phase::Stopping {
                    stop_code: Some(STOP_CODE_FAILED_TO_START.into()),
                    reason: Some(reason),
                    reached_running,
                });
            }
            // Pulls need no ordering: every image is made available before the first create.
            for (i, info) in order.observed.iter().enumerate() {
                if info.is_none() && !v.images_ready.get(i).copied().unwrap_or(false) {
                    return Next::Step(Step::PrepareImage(i));
                }
            }
            for (i, info) in order.observed.iter().enumerate() {
                match info {
                    None if decide_order::gate(&order, i, false) == Gate::Open => {
                        return Next::Step(Step::Create(i));
                    }
                    Some(info)
                        if order.state(i) == Some(ContainerState::Created)
                            && decide_order::gate(&order, i, true) == Gate::Open =>
                    {
                        return Next::Step(Step::Start(i, info.id.clone()));
                    }
                    _ => {}
                }
            }
            let all_started = (0..plan.containers.len()).all(|i| order.has_started(i));
            let all_essential_run = plan.containers.iter().filter(|c| c.essential).all(|c| {
                by_name.get(c.name.as_str()).is_some_and(|i| i.state == ContainerState::Running)
            });
            if all_started && all_essential_run {
                Next::Phase(Phase::Running)
            } else {
                Next::Step(Step::Wait)
            }
        }
        Phase::Running => match v.plan.and_then(|p| essential_exited(p, &by_name, true)) {
            Some(why) => Next::Phase(Phase::Stopping {
                stop_code: Some(STOP_CODE_ESSENTIAL_EXITED.into()),
                reason: Some(why.into()),
                reached_running: true,
            }),
            None => Next::Step(Step::Wait),
        },
        Phase::Stopping { stop_code, reason, .. } => {
            let live: Vec<&ContainerInfo> = v
                .observed
                .iter()
                .filter(|c| matches!(c.state, ContainerState::Running | ContainerState::Other))
                .collect();
            if live.is_empty() {
                return Next::Phase(Phase::Stopped {
                    stop_code: stop_code.clone(),
                    reason: reason.clone(),
                });
            }
            // Reverse start order: a container stops once its dependents have stopped.
            let order =
                v.plan.map(|p| OrderView::new(p, &by_name, v.started_at, v.start_failed, v.now));
            let may_stop = |c: &ContainerInfo| {
                let Some(order) = &order else { return true };
                let name = c.label(LABEL_CONTAINER_NAME).unwrap_or("");
                match order.plan.containers.iter().position(|p| p.name == name) {
                    Some(i) => decide_order::stoppable(order, i),
                    None => true,
                }
            };
            let mut batch: Vec<&ContainerInfo> =
                live.iter().copied().filter(|c| may_stop(c)).collect();
            if batch.is_empty() {
                batch = live; // only a dependency cycle could get here; never hang on it
            }
            Next::Step(Step::Stop(
                batch.into_iter().map(|c| (c.id.clone(), stop_timeout_of(c))).collect(),
            ))
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

/// ECS task `healthStatus` from the `healthStatus` of its essential containers that have a
/// health check: any UNHEALTHY ⇒ UNHEALTHY; all HEALTHY ⇒ HEALTHY; otherwise (or when there are
/// none) UNKNOWN.
pub fn task_health<'a>(checked_essential: impl IntoIterator<Item = &'a str>) -> &'static str {
    let mut any = false;
    let mut all_healthy = true;
    for h in checked_essential {
        if h == UNHEALTHY {
            return UNHEALTHY;
        }
        any = true;
        all_healthy &= h == HEALTHY;
    }
    if any && all_healthy { HEALTHY } else { UNKNOWN }
}

/// Container `healthStatus` for a container with a health check. A running one reports the
/// engine's verdict; one that is not running keeps its last reported status (as ECS does),
/// since the engine has no verdict for it.
fn container_health(info: Option<&ContainerInfo>, last: Option<&str>) -> String {
    match info {
        Some(i) if i.state == ContainerState::Running => {
            i.health.map_or(UNKNOWN, |h| h.ecs_status()).to_string()
        }
        _ => last.unwrap_or(UNKNOWN).to_string(),
    }
}

/// Host mode: the engine has no port map (the container binds the host's ports itself), so a
/// created container's bindings come from its spec, as ECS reports them: every address,
/// `hostPort` = `containerPort`.
fn host_mode_bindings(c: &super::spec::PlannedContainer) -> Vec<NetworkBinding> {
    if c.spec.network_mode != "host" {
        return Vec::new();
    }
    c.spec
        .port_mappings
        .iter()
        .map(|p| NetworkBinding {
            bind_ip: Some("0.0.0.0".to_string()),
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(p.container_port),
            protocol: p.protocol.clone(),
        })
        .collect()
}

/// Builds the report for `phase` from what the runtime shows. `previous` is the last report
/// published for the task (health of containers that no longer run carries over from it).
/// `start_failed` (per plan container, as in [`View`]) reports a container whose start failed
/// as STOPPED with that reason.
pub fn build_report(
    task_id: &str,
    phase: &Phase,
    plan: Option<&TaskPlan>,
    observed: &[ContainerInfo],
    start_failed: &[Option<String>],
    times: &Times,
    previous: Option<&TaskStatusReport>,
) -> TaskStatusReport {
    let by_name = by_container_name(observed);
    let stopped = matches!(phase, Phase::Stopped { .. });
    // awsvpc: the pause container is never a container of the report; it gives the task's
    // attachment and every container's interface.
    let pause = observed.iter().find(|c| awsvpc::is_pause_info(c));
    let interfaces: Vec<_> =
        pause.and_then(|p| awsvpc::network_interface(task_id, p)).into_iter().collect();
    let last_health =
        |name: &str| previous?.containers.iter().find(|c| c.name == name)?.health_status.as_deref();
    let report_of = |name: &str, checked: bool, info: Option<&ContainerInfo>| -> ContainerReport {
        ContainerReport {
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
            health_status: checked.then(|| container_health(info, last_health(name))),
            network_interfaces: interfaces.clone(),
        }
    };
    let (containers, health): (Vec<ContainerReport>, &str) = match plan {
        Some(plan) => {
            let containers: Vec<ContainerReport> = plan
                .containers
                .iter()
                .enumerate()
                .filter(|(_, c)| !awsvpc::is_pause(c))
                .map(|(i, c)| {
                    let checked = c.spec.health_check.is_some();
                    let info = by_name.get(c.name.as_str()).copied();
                    let mut r = report_of(&c.name, checked, info);
                    if info.is_some() && r.network_bindings.is_empty() {
                        r.network_bindings = host_mode_bindings(c);
                    }
                    if let Some(why) = start_failed.get(i).and_then(Option::as_deref) {
                        r.last_status = "STOPPED".to_string();
                        r.reason = Some(why.to_string());
                    }
                    r
                })
                .collect();
            let checked_essential = plan
                .containers
                .iter()
                .filter(|c| !awsvpc::is_pause(c))
                .zip(&containers)
                .filter(|(c, _)| c.essential)
                .filter_map(|(_, r)| r.health_status.as_deref());
            let health = task_health(checked_essential);
            (containers, health)
        }
        // Without the definition nothing is known to have a health check.
        None => (
            by_name
                .iter()
                .filter(|(_, info)| !awsvpc::is_pause_info(info))
                .map(|(name, info)| report_of(name, false, Some(info)))
                .collect(),
            UNKNOWN,
        ),
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
        health_status: Some(health.to_string()),
        attachments: pause
            .and_then(|p| awsvpc::attachment(task_id, p, stopped))
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerHealth, ContainerSpec, HealthCheckSpec};
    use crate::supervisor::spec::PlannedContainer;

    fn check() -> Option<HealthCheckSpec> {
        Some(HealthCheckSpec {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            retries: 3,
            start_period: Duration::ZERO,
        })
    }

    /// (name, essential, has a health check)
    fn plan(containers: &[(&str, bool, bool)]) -> TaskPlan {
        TaskPlan {
            task_id: "t".into(),
            containers: containers
                .iter()
                .map(|(name, essential, checked)| PlannedContainer {
                    name: name.to_string(),
                    essential: *essential,
                    spec: ContainerSpec {
                        name: format!("berth-x-{name}"),
                        health_check: if *checked { check() } else { None },
                        ..Default::default()
                    },
                    depends_on: Vec::new(),
                    start_timeout: None,
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    fn info(name: &str, state: ContainerState, health: Option<ContainerHealth>) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{name}"),
            name: format!("berth-x-{name}"),
            image: "img".into(),
            labels: [(LABEL_CONTAINER_NAME.to_string(), name.to_string())].into_iter().collect(),
            state,
            exit_code: (state == ContainerState::Exited).then_some(0),
            ports: Vec::new(),
            error: None,
            health,
        }
    }

    fn report(plan: &TaskPlan, observed: &[ContainerInfo]) -> TaskStatusReport {
        build_report("t", &Phase::Running, Some(plan), observed, &[], &Times::default(), None)
    }

    fn health_of<'a>(r: &'a TaskStatusReport, name: &str) -> Option<&'a str> {
        r.containers.iter().find(|c| c.name == name).and_then(|c| c.health_status.as_deref())
    }

    #[test]
    fn task_health_is_unhealthy_if_any_healthy_if_all_else_unknown() {
        assert_eq!(task_health([]), UNKNOWN, "no checked essential container");
        assert_eq!(task_health([HEALTHY]), HEALTHY);
        assert_eq!(task_health([HEALTHY, HEALTHY]), HEALTHY);
        assert_eq!(task_health([HEALTHY, UNKNOWN]), UNKNOWN);
        assert_eq!(task_health([UNKNOWN, UNKNOWN]), UNKNOWN);
        assert_eq!(task_health([HEALTHY, UNHEALTHY]), UNHEALTHY);
        assert_eq!(task_health([UNKNOWN, UNHEALTHY, HEALTHY]), UNHEALTHY);
    }

    #[test]
    fn task_health_counts_only_essential_containers_with_a_check() {
        let p = plan(&[("web", true, true), ("side", false, true), ("log", true, false)]);
        let r = report(
            &p,
            &[
                info("web", ContainerState::Running, Some(ContainerHealth::Healthy)),
                info("side", ContainerState::Running, Some(ContainerHealth::Unhealthy)),
                info("log", ContainerState::Running, None),
            ],
        );
        assert_eq!(health_of(&r, "web"), Some(HEALTHY));
        assert_eq!(health_of(&r, "side"), Some(UNHEALTHY), "non-essential, reported as is");
        assert_eq!(health_of(&r, "log"), None, "no health check, no container healthStatus");
        assert_eq!(r.health_status.as_deref(), Some(HEALTHY), "side and log do not count");
    }

    #[test]
    fn unhealthy_essential_container_makes_the_task_unhealthy() {
        let p = plan(&[("web", true, true), ("api", true, true)]);
        let r = report(
            &p,
            &[
                info("web", ContainerState::Running, Some(ContainerHealth::Healthy)),
                info("api", ContainerState::Running, Some(ContainerHealth::Unhealthy)),
            ],
        );
        assert_eq!(health_of(&r, "api"), Some(UNHEALTHY));
        assert_eq!(r.health_status.as_deref(), Some(UNHEALTHY));
    }

    #[test]
    fn starting_check_is_unknown_for_container_and_task() {
        let p = plan(&[("web", true, true), ("api", true, true)]);
        let r = report(
            &p,
            &[
                info("web", ContainerState::Running, Some(ContainerHealth::Healthy)),
                info("api", ContainerState::Running, Some(ContainerHealth::Starting)),
            ],
        );
        assert_eq!(health_of(&r, "api"), Some(UNKNOWN));
        assert_eq!(r.health_status.as_deref(), Some(UNKNOWN));
    }

    #[test]
    fn task_without_checked_essential_containers_stays_unknown() {
        let p = plan(&[("web", true, false), ("side", false, true)]);
        let r = report(
            &p,
            &[
                info("web", ContainerState::Running, None),
                info("side", ContainerState::Running, Some(ContainerHealth::Healthy)),
            ],
        );
        assert_eq!(health_of(&r, "web"), None);
        assert_eq!(r.health_status.as_deref(), Some(UNKNOWN));
        let orphan = build_report("t", &Phase::Running, None, &[], &[], &Times::default(), None);
        assert_eq!(orphan.health_status.as_deref(), Some(UNKNOWN));
    }

    #[test]
    fn stopped_container_keeps_its_last_reported_health() {
        let p = plan(&[("web", true, true)]);
        let running = [info("web", ContainerState::Running, Some(ContainerHealth::Unhealthy))];
        let before = report(&p, &running);
        // Docker says "unhealthy" for every stopped container with a check; that is no verdict,
        // so a stopped container carries the last one over, or UNKNOWN when there was none.
        let exited = [info("web", ContainerState::Exited, Some(ContainerHealth::Healthy))];
        let phase = Phase::Stopped { stop_code: None, reason: None };
        let times = Times::default();
        let after = build_report("t", &phase, Some(&p), &exited, &[], &times, Some(&before));
        assert_eq!(health_of(&after, "web"), Some(UNHEALTHY));
        assert_eq!(after.health_status.as_deref(), Some(UNHEALTHY));
        let fresh = build_report("t", &phase, Some(&p), &exited, &[], &times, None);
        assert_eq!(health_of(&fresh, "web"), Some(UNKNOWN));
    }

    #[test]
    fn a_health_change_changes_the_report() {
        let p = plan(&[("web", true, true)]);
        let healthy =
            report(&p, &[info("web", ContainerState::Running, Some(ContainerHealth::Healthy))]);
        let same =
            report(&p, &[info("web", ContainerState::Running, Some(ContainerHealth::Healthy))]);
        let unhealthy =
            report(&p, &[info("web", ContainerState::Running, Some(ContainerHealth::Unhealthy))]);
        assert_eq!(healthy, same, "no change, no new report");
        assert_ne!(healthy, unhealthy, "the report board publishes the change");
    }

    fn view<'a>(p: &'a TaskPlan, observed: &'a [ContainerInfo]) -> View<'a> {
        View {
            desired: Desired::Running,
            plan: Some(p),
            observed,
            images_ready: &[],
            started_at: &[],
            start_failed: &[],
            now: Instant::now(),
            remove_when_stopped: false,
            controller_stop: (None, None),
        }
    }

    fn with_pause(mut p: TaskPlan) -> TaskPlan {
        p.containers.push(PlannedContainer {
            name: awsvpc::PAUSE_CONTAINER_NAME.into(),
            essential: true,
            spec: ContainerSpec {
                task_network: Some(crate::runtime::task_network::TaskNetworkSpec {
                    network: "berth-awsvpc".into(),
                    subnet: crate::runtime::task_network::Ipv4Subnet::parse("10.213.0.0/16")
                        .expect("subnet"),
                    dns_domain: "local.compute.internal".into(),
                    seed: 1,
                }),
                ..Default::default()
            },
            depends_on: Vec::new(),
            start_timeout: None,
        });
        p
    }

    fn stop_reason(p: &TaskPlan, observed: &[ContainerInfo]) -> Option<(String, String)> {
        match decide(&view(p, observed), &Phase::Running).0 {
            Some(
                Phase::Stopping { stop_code, reason, .. } | Phase::Stopped { stop_code, reason },
            ) => stop_code.zip(reason),
            _ => None,
        }
    }

    #[test]
    fn a_dead_pause_container_stops_the_task_naming_the_task_network() {
        let p = with_pause(plan(&[("app", true, false)]));
        let pause = || {
            let mut i = info("pause", ContainerState::Exited, None);
            i.labels.insert(LABEL_CONTAINER_NAME.into(), awsvpc::PAUSE_CONTAINER_NAME.into());
            i.exit_code = Some(137);
            i
        };
        let running = [info("app", ContainerState::Running, None), pause()];
        assert_eq!(
            stop_reason(&p, &running),
            Some((STOP_CODE_ESSENTIAL_EXITED.into(), REASON_PAUSE_EXITED.into()))
        );
        // When a listed essential container exited too, it is the cause.
        let both = [info("app", ContainerState::Exited, None), pause()];
        assert_eq!(
            stop_reason(&p, &both),
            Some((STOP_CODE_ESSENTIAL_EXITED.into(), REASON_ESSENTIAL_EXITED.into()))
        );
        let app_only = [info("app", ContainerState::Exited, None)];
        let plain = plan(&[("app", true, false)]);
        assert_eq!(
            stop_reason(&plain, &app_only),
            Some((STOP_CODE_ESSENTIAL_EXITED.into(), REASON_ESSENTIAL_EXITED.into()))
        );
    }

    #[test]
    fn host_mode_port_mappings_are_reported_as_bindings_on_every_address() {
        let mut p = plan(&[("web", true, false), ("br", true, false)]);
        let ports = vec![
            crate::runtime::PortMappingSpec {
                container_port: 8080,
                host_port: None,
                protocol: "tcp".into(),
            },
            crate::runtime::PortMappingSpec {
                container_port: 53,
                host_port: Some(53),
                protocol: "udp".into(),
            },
        ];
        p.containers[0].spec.network_mode = "host".into();
        p.containers[0].spec.port_mappings = ports.clone();
        // A bridge container with the same spec but no engine port map reports none.
        p.containers[1].spec.network_mode = "bridge".into();
        p.containers[1].spec.port_mappings = ports;
        let r = report(
            &p,
            &[
                info("web", ContainerState::Running, None),
                info("br", ContainerState::Running, None),
            ],
        );
        assert_eq!(
            r.containers[0].network_bindings,
            vec![
                NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    container_port: 8080,
                    host_port: 8080,
                    protocol: "tcp".into(),
                },
                NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    container_port: 53,
                    host_port: 53,
                    protocol: "udp".into(),
                },
            ]
        );
        assert!(r.containers[1].network_bindings.is_empty());
        // Not created yet: nothing bound.
        let r = report(&p, &[]);
        assert!(r.containers[0].network_bindings.is_empty());
    }
}
