//! The service reconciler's decision core: pure, from a state snapshot to a decision. The loop in
//! `mod.rs` carries the decision out (placing, stopping, recording events) through Raft.
//!
//! Per service (ECS-NOTES §3.2, §3.5):
//! * tasks of the PRIMARY deployment are kept at `desiredCount`: a stopped one is replaced,
//!   surplus ones are stopped;
//! * while older deployments still have tasks, new tasks start only within `maximumPercent`
//!   (rounded down) and old tasks stop only while `minimumHealthyPercent` (rounded up) of the
//!   desired count stays RUNNING; when neither can move, the ECS "unable to stop or start tasks"
//!   event is recorded instead of hanging silently;
//! * a DRAINING (deleted) service has all its tasks stopped and then becomes INACTIVE;
//! * reaching steady state completes the PRIMARY deployment and records the ECS events.

use super::health::{self, HealthPolicy};
use crate::store::State;
use crate::store::command::Rollback;
use berth_proto::model::{Deployment, PENDING, RUNNING, Service, Task, Timestamp};

/// Longest delay between launches of a service whose tasks keep failing (ECS: 15 minutes).
pub const MAX_LAUNCH_DELAY_MILLIS: i64 = 15 * 60 * 1000;

/// ECS-style throttling of failing launches (ECS-NOTES §3.6): after `failures` consecutive
/// failed launches the next one waits 0 s (first failure), then 1 s, 2 s, 4 s … up to 15 min.
pub fn launch_delay_millis(failures: u32) -> i64 {
    if failures < 2 {
        return 0;
    }
    1000i64.saturating_mul(1i64 << (failures - 2).min(20)).min(MAX_LAUNCH_DELAY_MILLIS)
}

/// From this many consecutive failed launches on, the service records ECS's
/// "is unable to consistently start tasks successfully." event.
pub const IMPAIRED_AFTER_FAILURES: u32 = 3;

/// What to do for one service.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServiceDecision {
    /// How many new PRIMARY tasks to start.
    pub start: usize,
    /// Tasks to stop now, and how to choose more surplus PRIMARY tasks (`stop_surplus`).
    pub stop: Vec<String>,
    /// Surplus PRIMARY tasks to stop; the loop lets the scheduler choose which.
    pub stop_surplus: usize,
    /// Events to record (messages).
    pub events: Vec<String>,
    /// The PRIMARY deployment just completed.
    pub complete_primary: bool,
    /// Older deployments with no task left.
    pub drained_deployments: Vec<String>,
    /// A DRAINING service with no task left.
    pub deactivate: bool,
    /// Launches are held back until this time (failing launches are throttled).
    pub throttled_until: Option<Timestamp>,
    /// Unhealthy tasks to stop (their replacements are up, or cannot start first).
    pub stop_unhealthy: Vec<String>,
    /// The circuit breaker tripped: the PRIMARY deployment FAILED with this reason.
    pub fail_primary: Option<String>,
    /// … and rolls back here (a `Rollback::New` has its deployment id filled by the loop).
    pub rollback: Option<Rollback>,
    /// DAEMON services: instances that get a new PRIMARY task each (see `daemon`).
    pub start_on: Vec<String>,
    /// DAEMON services: the desired count (the eligible instances) changed to this.
    pub desired_count: Option<i64>,
}

/// ECS's events when a deployment reaches steady state.
pub(super) fn completion_events(name: &str, deployment: &str) -> [String; 2] {
    [
        format!("{} (deployment {deployment}) deployment completed.", prefix(name)),
        steady_message(name),
    ]
}

/// The event prefix ECS uses: `(service NAME)`.
pub fn prefix(name: &str) -> String {
    format!("(service {name})")
}

pub fn decide(
    state: &State,
    svc: &Service,
    now: Timestamp,
    policy: &HealthPolicy,
) -> ServiceDecision {
    let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn);
    let name = svc.service_name.as_str();
    // One walk over the service's tasks (tens of thousands at scale), under the state's lock.
    let every: Vec<&Task> = state.service_tasks_with_stopped(cluster, name).collect();
    let all: Vec<&Task> = every.iter().copied().filter(|t| !t.is_stopped()).collect();
    let live: Vec<&Task> = all.iter().copied().filter(|t| t.desired_status == RUNNING).collect();
    let mut d = ServiceDecision::default();

    if svc.status == "DRAINING" {
        d.stop = live.iter().map(|t| t.id().to_string()).collect();
        d.deactivate = all.is_empty();
        return d;
    }
    if svc.status != "ACTIVE" {
        return d;
    }
    let Some(primary) = svc.deployments.iter().find(|x| x.status == "PRIMARY") else {
        return d;
    };
    let healthy = |t: &Task| health::is_healthy(state, t, now, policy);
    let unhealthy = |t: &Task| health::is_unhealthy(t, svc, now);
    // A task is "new" when it belongs to the PRIMARY deployment, runs on an ACTIVE instance and
    // is not unhealthy; tasks of older deployments, tasks on DRAINING instances and unhealthy
    // tasks are replaced within the bounds.
    let on_active = |t: &Task| {
        t.instance_id()
            .and_then(|id| state.instances.get(id))
            .is_some_and(|rec| rec.instance.status == "ACTIVE")
    };
    let is_new = |t: &Task| {
        t.started_by.as_deref() == Some(primary.id.as_str()) && on_active(t) && !unhealthy(t)
    };
    let (new, old): (Vec<&Task>, Vec<&Task>) = live.iter().copied().partition(|t| is_new(t));
    let desired = svc.desired_count.max(0) as usize;
    let cfg = &svc.deployment_configuration;
    let upper = (desired as i64 * cfg.maximum_percent).div_euclid(100).max(0) as usize;
    let lower = (desired as i64 * cfg.minimum_healthy_percent + 99).div_euclid(100).max(0) as usize;
    let failed = primary.rollout_state.as_deref() == Some("FAILED");
    // maximumPercent bounds the tasks that are RUNNING or PENDING, which includes tasks asked to
    // stop that have not stopped yet (a container may take its whole stopTimeout).
    let occupied = all.len();

    if let Some(tripped) = tripped_breaker(state, svc, primary, policy) {
        return tripped;
    }

    if new.len() < desired && !failed {
        let missing = desired - new.len();
        d.start = missing.min(upper.max(desired).saturating_sub(occupied));
    } else if new.len() > desired {
        d.stop_surplus = new.len() - desired;
    }
    if d.start > 0 {
        let (failures, last_stop) = State::failures_among(
            every.iter().copied(),
            &primary.id,
            crate::store::query::QUICK_EXIT_MILLIS,
        );
        let until = last_stop.map(|t| t.plus_millis(launch_delay_millis(failures)));
        if let Some(until) = until.filter(|u| *u > now) {
            d.start = 0;
            d.throttled_until = Some(until);
        }
        if failures >= IMPAIRED_AFTER_FAILURES {
            d.events.push(format!(
                "{} is unable to consistently start tasks successfully.",
                prefix(name)
            ));
        }
    }
    if !old.is_empty() && !failed {
        // Replacements are up (or cannot be started first): unhealthy, unsettled and pending old
        // tasks may go; healthy ones only while the healthy minimum holds.
        let replaced = new.len() >= desired || upper <= occupied;
        // An old task still inside its settle time may well be healthy a moment later: it goes
        // only once the new deployment runs `desired` healthy tasks. (Stopping it merely because
        // no more tasks fit would leave nothing to roll back to if the new revision fails.)
        let replaced_by_healthy = new.iter().filter(|t| healthy(t)).count() >= desired;
        let healthy_total = live.iter().filter(|t| healthy(t)).count();
        let mut can_stop = healthy_total.saturating_sub(lower);
        for t in &old {
            if t.last_status != RUNNING {
                d.stop.push(t.id().to_string());
            } else if unhealthy(t) {
                if replaced {
                    d.stop_unhealthy.push(t.id().to_string());
                }
            } else if healthy(t) {
                if can_stop > 0 {
                    can_stop -= 1;
                    d.stop.push(t.id().to_string());
                }
            } else if replaced_by_healthy {
                d.stop.push(t.id().to_string());
            }
        }
        // Something is moving on its own: a task starting, settling, or stopping. The bounds
        // will allow the next step once it has; only a standstill is the configuration's fault.
        let pending = live.iter().any(|t| t.last_status == PENDING)
            || live.iter().any(|t| t.last_status == RUNNING && !healthy(t) && !unhealthy(t))
            || occupied > live.len();
        if d.start == 0
            && d.stop.is_empty()
            && d.stop_unhealthy.is_empty()
            && !pending
            && new.len() < desired
            && d.throttled_until.is_none()
        {
            d.events.push(format!(
                "{} was unable to stop or start tasks during a deployment because of the service deployment configuration. Update the minimumHealthyPercent or maximumPercent value and try again.",
                prefix(name)
            ));
        }
    }
    d.drained_deployments = drained_deployments(state, svc);
    let steady = old.is_empty()
        && new.len() == desired
        && new.iter().all(|t| healthy(t))
        && d.start == 0
        && d.stop_surplus == 0
        && all.iter().all(|t| t.desired_status == RUNNING);
    if steady && primary.rollout_state.as_deref() == Some("IN_PROGRESS") {
        d.complete_primary = true;
        d.events.extend(completion_events(name, &primary.id));
    } else if steady && svc.events.last().is_some_and(|e| e.message != steady_message(name)) {
        // Back at steady state after a scale or a replaced task: ECS says so again.
        d.events.push(steady_message(name));
    }
    d
}

/// ECS's steady-state service event.
fn steady_message(name: &str) -> String {
    format!("{} has reached a steady state.", prefix(name))
}

/// The circuit breaker (consecutive failures of the PRIMARY deployment while it rolls out): when
/// it trips, the whole decision — FAILED, its event and the rollback target; no task changes.
pub fn tripped_breaker(
    state: &State,
    svc: &Service,
    primary: &Deployment,
    policy: &HealthPolicy,
) -> Option<ServiceDecision> {
    let b =
        svc.deployment_configuration.deployment_circuit_breaker.as_ref().filter(|b| b.enable)?;
    if primary.rollout_state.as_deref() != Some("IN_PROGRESS") {
        return None;
    }
    let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn);
    let name = svc.service_name.as_str();
    let (failures, _) = state.failures_within(cluster, name, &primary.id, policy.monitor_millis);
    if failures < health::breaker_threshold(svc.desired_count) {
        return None;
    }
    Some(ServiceDecision {
        fail_primary: Some(format!(
            "ECS deployment circuit breaker: {failures} tasks failed to start or stay healthy."
        )),
        events: vec![format!(
            "{} (deployment {}) deployment failed: tasks failed to start.",
            prefix(name),
            primary.id
        )],
        rollback: if b.rollback { rollback_target(state, svc, primary.id.as_str()) } else { None },
        ..Default::default()
    })
}

/// Older (non-PRIMARY) deployments with no task left, ready to become INACTIVE.
pub fn drained_deployments(state: &State, svc: &Service) -> Vec<String> {
    let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn);
    let name = svc.service_name.as_str();
    svc.deployments
        .iter()
        .filter(|dep| {
            dep.status != "PRIMARY"
                && !state
                    .service_tasks(cluster, name)
                    .any(|t| t.started_by.as_deref() == Some(dep.id.as_str()))
        })
        .map(|dep| dep.id.clone())
        .collect()
}

/// The circuit breaker's rollback target: the newest older deployment that COMPLETED and still
/// holds tasks (promoted, so its healthy tasks are kept), else a new deployment on the last
/// completed task definition. Better than ECS (which then has nothing to roll back to): when no
/// deployment ever completed — the service was updated before its first rollout settled — the
/// newest older deployment that still has tasks is promoted, so those tasks keep running.
fn rollback_target(state: &State, svc: &Service, failed: &str) -> Option<Rollback> {
    let keep = svc
        .deployments
        .iter()
        .filter(|d| d.id != failed && d.rollout_state.as_deref() == Some("COMPLETED"))
        .max_by_key(|d| d.created_at);
    if let Some(d) = keep {
        return Some(Rollback::Promote { deployment_id: d.id.clone() });
    }
    let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn);
    let key = State::service_key(cluster, &svc.service_name);
    if let Some(arn) = state.completed_taskdefs.get(&key).filter(|arn| **arn != svc.task_definition)
    {
        return Some(Rollback::New {
            deployment_id: String::new(),
            task_definition_arn: arn.clone(),
        });
    }
    svc.deployments
        .iter()
        .filter(|d| d.id != failed)
        .filter(|d| {
            state
                .service_tasks(cluster, &svc.service_name)
                .any(|t| t.started_by.as_deref() == Some(d.id.as_str()))
        })
        .max_by_key(|d| d.created_at)
        .map(|d| Rollback::Promote { deployment_id: d.id.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::testkit::{create_service, register_instance, register_taskdef};
    use crate::store::Command;
    use crate::store::apply::apply;
    use crate::store::command::*;
    use berth_proto::model::*;

    /// No settle time: a RUNNING task without health checks is healthy at once.
    const POLICY: HealthPolicy = HealthPolicy { settle_millis: 0, monitor_millis: 60_000 };

    /// A state with one big instance, a service of `desired` on web:1 whose tasks are RUNNING,
    /// and web:2 registered.
    fn setup(desired: i64, running: usize) -> State {
        let mut st = State::default();
        register_taskdef(&mut st, "web");
        register_taskdef(&mut st, "web");
        register_instance(&mut st, "i1");
        create_service(&mut st, "web", "web:1", desired, "d1");
        add_tasks(&mut st, "d1", "web:1", running, RUNNING);
        st
    }

    fn add_tasks(st: &mut State, deployment: &str, td: &str, n: usize, status: &str) {
        let def = st.resolve_taskdef(td).unwrap().clone();
        let base = st.tasks.len();
        let mut tasks = vec![];
        for i in 0..n {
            let launch = crate::orchestrator::placement::Launch {
                cluster: "default",
                def: &def,
                count: 1,
                group: "service:web".into(),
                started_by: Some(deployment.into()),
            };
            let id = format!("{:032x}", base + i + 1);
            let mut t =
                crate::orchestrator::placement::new_task(st, &launch, "i1", &id, Timestamp(3));
            t.last_status = status.into();
            if status == RUNNING {
                t.started_at = Some(Timestamp(3));
            }
            tasks.push(t);
        }
        apply(st, Command::StartTasks { tasks, now: Timestamp(3) }).unwrap();
    }

    fn svc(st: &State) -> Service {
        st.services["default/web"].clone()
    }

    fn new_revision(st: &mut State, min: i64, max: i64) {
        let arn2 = st.resolve_taskdef("web:2").unwrap().task_definition_arn.clone().unwrap();
        let s = st.services.get_mut("default/web").unwrap();
        s.deployment_configuration.minimum_healthy_percent = min;
        s.deployment_configuration.maximum_percent = max;
        apply(
            st,
            Command::UpdateService(UpdateService {
                placement: None,
                deployment_configuration: None,
                health_check_grace_period_seconds: None,
                force_new_deployment: false,
                cluster: "default".into(),
                name: "web".into(),
                desired_count: None,
                task_definition_arn: Some(arn2),
                deployment_id: "d2".into(),
                now: Timestamp(4),
            }),
        )
        .unwrap();
    }

    #[test]
    fn replaces_missing_tasks_and_stops_surplus() {
        let st = setup(3, 1);
        assert_eq!(decide(&st, &svc(&st), Timestamp(10), &POLICY).start, 2);
        let st = setup(1, 3);
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert_eq!((d.start, d.stop_surplus), (0, 2));
    }

    #[test]
    fn steady_state_completes_the_primary_deployment_once() {
        let st = setup(2, 2);
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert!(d.complete_primary);
        assert!(
            d.events.iter().any(|e| e == "(service web) has reached a steady state."),
            "{:?}",
            d.events
        );
    }

    #[test]
    fn steady_state_is_said_again_after_a_scale_but_not_twice_in_a_row() {
        let mut st = setup(2, 2);
        let key = State::service_key("default", "web");
        let dep = st.services[&key].deployments[0].id.clone();
        let done = berth_proto::model::Deployment {
            rollout_state: Some("COMPLETED".into()),
            ..st.services[&key].deployments[0].clone()
        };
        let s = st.services.get_mut(&key).unwrap();
        s.deployments[0] = done;
        let event = |m: &str| berth_proto::model::ServiceEvent {
            id: "e".into(),
            created_at: Timestamp(1),
            message: m.into(),
        };
        s.events = vec![event("(service web) has started 1 tasks: (task x).")];
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert!(!d.complete_primary, "{dep} is already COMPLETED");
        assert_eq!(d.events, ["(service web) has reached a steady state."]);
        st.services.get_mut(&key).unwrap().events =
            vec![event("(service web) has reached a steady state.")];
        assert!(decide(&st, &svc(&st), Timestamp(10), &POLICY).events.is_empty());
    }

    #[test]
    fn rolling_update_respects_maximum_percent_rounded_down() {
        // desired 4, max 200 → up to 8 tasks: 4 new may start before any old stops.
        let mut st = setup(4, 4);
        new_revision(&mut st, 100, 200);
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert_eq!(d.start, 4);
        assert!(d.stop.is_empty(), "min 100: no old task may stop before new ones run");
        // desired 3, max 125 → floor(3.75) = 3: no extra task can start.
        let mut st = setup(3, 3);
        new_revision(&mut st, 50, 125);
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert_eq!(d.start, 0);
        // min 50 → ceil(1.5) = 2 must stay running: one old task may stop.
        assert_eq!(d.stop.len(), 1);
    }

    #[test]
    fn min_100_max_100_records_the_ecs_deployment_configuration_event() {
        let mut st = setup(1, 1);
        new_revision(&mut st, 100, 100);
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert_eq!((d.start, d.stop.len()), (0, 0));
        assert!(d.events.iter().any(|e| e.contains("was unable to stop or start tasks during a deployment because of the service deployment configuration")), "{:?}", d.events);
    }

    #[test]
    fn old_running_tasks_stop_as_new_ones_run() {
        let mut st = setup(2, 2);
        new_revision(&mut st, 100, 200);
        add_tasks(&mut st, "d2", "web:2", 2, RUNNING);
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert_eq!(d.stop.len(), 2, "4 running, lower bound 2: both old tasks may stop");
        assert_eq!(d.start, 0);
    }

    #[test]
    fn failing_launches_are_throttled_with_growing_delay() {
        assert_eq!(launch_delay_millis(1), 0);
        assert_eq!(launch_delay_millis(2), 1000);
        assert_eq!(launch_delay_millis(5), 8000);
        assert_eq!(launch_delay_millis(40), MAX_LAUNCH_DELAY_MILLIS);
        let mut st = setup(1, 0);
        add_tasks(&mut st, "d1", "web:1", 4, STOPPED);
        for (i, t) in st.tasks.values_mut().enumerate() {
            t.stop_code = Some("EssentialContainerExited".into());
            t.stopped_at = Some(Timestamp(1000 * (i as i64 + 1)));
        }
        // 4 quick failures, the newest at t=4 s: the next launch waits 4 s, until t=8 s.
        let d = decide(&st, &svc(&st), Timestamp(5000), &POLICY);
        assert_eq!(d.start, 0);
        assert_eq!(d.throttled_until, Some(Timestamp(8000)));
        assert!(
            d.events
                .iter()
                .any(|e| e == "(service web) is unable to consistently start tasks successfully.")
        );
        assert_eq!(st.service_view("default", "web").unwrap().deployments[0].failed_tasks, 4);
        assert_eq!(decide(&st, &svc(&st), Timestamp(8000), &POLICY).start, 1);
        // A task stopped by the scheduler ends the streak.
        let newest = st.tasks.values_mut().max_by_key(|t| t.stopped_at).unwrap();
        newest.stop_code = Some("ServiceSchedulerInitiated".into());
        assert_eq!(decide(&st, &svc(&st), Timestamp(5000), &POLICY).start, 1);
    }

    #[test]
    fn tasks_on_a_draining_instance_are_replaced_within_the_bounds() {
        let mut st = setup(2, 2);
        apply(
            &mut st,
            Command::SetInstanceStatus {
                instance_id: "i1".into(),
                status: "DRAINING".into(),
                now: None,
            },
        )
        .unwrap();
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        // max 200: both replacements may start; min 100: none of the drained tasks stops yet.
        assert_eq!((d.start, d.stop.len()), (2, 0));
    }

    #[test]
    fn draining_service_stops_everything_then_deactivates() {
        let mut st = setup(2, 2);
        apply(
            &mut st,
            Command::DeleteService {
                cluster: "default".into(),
                name: "web".into(),
                force: true,
                now: Timestamp(5),
            },
        )
        .unwrap();
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert_eq!(d.stop.len(), 2);
        assert!(!d.deactivate);
        for t in st.tasks.values_mut() {
            t.last_status = STOPPED.into();
        }
        assert!(decide(&st, &svc(&st), Timestamp(10), &POLICY).deactivate);
    }

    fn complete(st: &mut State, deployment: &str) {
        apply(
            st,
            Command::ServiceProgress(ServiceProgress {
                cluster: "default".into(),
                name: "web".into(),
                events: vec![],
                rollouts: vec![(deployment.into(), "COMPLETED".into(), "done".into())],
                drained_deployments: vec![],
                deactivate: false,
                rollback: None,
                now: Timestamp(4),
            }),
        )
        .unwrap();
    }

    fn enable_breaker(st: &mut State, rollback: bool) {
        let s = st.services.get_mut("default/web").unwrap();
        s.deployment_configuration.deployment_circuit_breaker =
            Some(DeploymentCircuitBreaker { enable: true, rollback });
    }

    /// `n` tasks of `deployment` that reached RUNNING at t=5 s and exited at t=6 s.
    fn add_quick_failures(st: &mut State, deployment: &str, td: &str, n: usize) {
        let before: std::collections::BTreeSet<String> = st.tasks.keys().cloned().collect();
        add_tasks(st, deployment, td, n, STOPPED);
        for t in st.tasks.values_mut().filter(|t| !before.contains(t.id())) {
            t.stop_code = Some("EssentialContainerExited".into());
            t.started_at = Some(Timestamp(5_000));
            t.stopped_at = Some(Timestamp(6_000));
        }
    }

    #[test]
    fn breaker_threshold_is_half_desired_clamped_to_3_and_200() {
        assert_eq!(health::breaker_threshold(1), 3);
        assert_eq!(health::breaker_threshold(7), 4);
        assert_eq!(health::breaker_threshold(1000), 200);
    }

    #[test]
    fn breaker_trips_and_rolls_back_keeping_the_old_healthy_tasks() {
        let mut st = setup(2, 2);
        complete(&mut st, "d1");
        enable_breaker(&mut st, true);
        new_revision(&mut st, 100, 200);
        // Two quick failures: under the threshold (3), the rollout goes on.
        add_quick_failures(&mut st, "d2", "web:2", 2);
        let d = decide(&st, &svc(&st), Timestamp(7_000), &POLICY);
        assert_eq!(d.fail_primary, None);
        assert!(d.stop.is_empty(), "the old healthy tasks are kept while new ones fail");
        // A third one — a task that RAN and then exited within the monitor window (Better than
        // ECS: counted too) — trips it.
        add_quick_failures(&mut st, "d2", "web:2", 1);
        let d = decide(&st, &svc(&st), Timestamp(7_000), &POLICY);
        assert!(d.fail_primary.as_deref().unwrap_or("").contains("circuit breaker"), "{d:?}");
        assert_eq!(d.rollback, Some(Rollback::Promote { deployment_id: "d1".into() }));
        assert!(d.stop.is_empty() && d.start == 0, "a tripping decision changes no task");
        // Applying it: d1 is PRIMARY again with its two tasks; nothing old is replaced.
        apply(
            &mut st,
            Command::ServiceProgress(ServiceProgress {
                cluster: "default".into(),
                name: "web".into(),
                events: vec![],
                rollouts: vec![("d2".into(), "FAILED".into(), d.fail_primary.clone().unwrap())],
                drained_deployments: vec![],
                deactivate: false,
                rollback: d.rollback.clone(),
                now: Timestamp(7_000),
            }),
        )
        .unwrap();
        let s = svc(&st);
        let primary = s.deployments.iter().find(|x| x.status == "PRIMARY").unwrap();
        assert_eq!(primary.id, "d1");
        assert!(s.task_definition.ends_with("web:1"), "{}", s.task_definition);
        let failed = s.deployments.iter().find(|x| x.id == "d2").unwrap();
        assert_eq!(failed.rollout_state.as_deref(), Some("FAILED"));
        let d = decide(&st, &svc(&st), Timestamp(8_000), &POLICY);
        assert_eq!((d.start, d.stop.len(), d.stop_surplus), (0, 0, 0), "{d:?}");
        assert!(d.complete_primary, "the two old tasks are the steady state");
    }

    #[test]
    fn an_update_before_the_old_tasks_settle_keeps_them_and_rolls_back_to_them() {
        // Old tasks started at t=3 ms; the settle time is 40 s; the update comes at once.
        let settle = HealthPolicy { settle_millis: 40_000, monitor_millis: 60_000 };
        let mut st = setup(2, 2);
        enable_breaker(&mut st, true);
        new_revision(&mut st, 100, 200);
        add_tasks(&mut st, "d2", "web:2", 2, RUNNING);
        // 4 tasks = maximumPercent: the two unsettled old ones still stay.
        let d = decide(&st, &svc(&st), Timestamp(1_000), &settle);
        assert!(
            d.stop.is_empty(),
            "unsettled old tasks stopped before a healthy replacement: {d:?}"
        );
        // The new revision fails: the breaker promotes d1 (never COMPLETED) and keeps its tasks.
        for t in st.tasks.values_mut().filter(|t| t.started_by.as_deref() == Some("d2")) {
            t.last_status = STOPPED.into();
            t.desired_status = STOPPED.into();
            t.stop_code = Some("EssentialContainerExited".into());
            t.started_at = Some(Timestamp(500));
            t.stopped_at = Some(Timestamp(900));
        }
        add_quick_failures(&mut st, "d2", "web:2", 1);
        let d = decide(&st, &svc(&st), Timestamp(7_000), &settle);
        assert!(d.fail_primary.is_some(), "{d:?}");
        assert_eq!(d.rollback, Some(Rollback::Promote { deployment_id: "d1".into() }));
    }

    #[test]
    fn tasks_still_stopping_count_toward_maximum_percent() {
        let mut st = setup(2, 2);
        new_revision(&mut st, 0, 100);
        let d = decide(&st, &svc(&st), Timestamp(10), &POLICY);
        assert_eq!((d.stop.len(), d.start), (2, 0), "{d:?}");
        // Asked to stop, containers not yet exited: nothing new may start at max 100 %.
        for id in &d.stop {
            st.tasks.get_mut(id).unwrap().desired_status = STOPPED.into();
        }
        let d = decide(&st, &svc(&st), Timestamp(20), &POLICY);
        assert_eq!(d.start, 0, "2 tasks still RUNNING of desired 2 at max 100 %: {d:?}");
        assert!(d.events.is_empty(), "stopping tasks are progress, not a deadlock: {d:?}");
        for t in st.tasks.values_mut() {
            t.last_status = STOPPED.into();
        }
        assert_eq!(decide(&st, &svc(&st), Timestamp(30), &POLICY).start, 2);
    }

    #[test]
    fn no_deadlock_event_while_new_tasks_settle() {
        // desired 4, min 75 / max 125 (lower 3, upper 5), mid-rollout: 3 old healthy tasks and
        // 2 new ones still inside their settle time. Nothing may move until they settle, which
        // is progress on its way, not the configuration's fault.
        let settle = HealthPolicy { settle_millis: 40_000, monitor_millis: 60_000 };
        let mut st = setup(3, 3);
        st.services.get_mut("default/web").unwrap().desired_count = 4;
        new_revision(&mut st, 75, 125);
        add_tasks(&mut st, "d2", "web:2", 2, RUNNING);
        for t in st.tasks.values_mut().filter(|t| t.started_by.as_deref() == Some("d2")) {
            t.started_at = Some(Timestamp(45_000));
        }
        let d = decide(&st, &svc(&st), Timestamp(50_000), &settle);
        assert_eq!((d.start, d.stop.len()), (0, 0), "{d:?}");
        assert!(
            !d.events.iter().any(|e| e.contains("unable to stop or start")),
            "settling tasks are progress: {d:?}"
        );
        // Once they are healthy (5 healthy, minimum 3), two old tasks may stop.
        let d = decide(&st, &svc(&st), Timestamp(90_000), &settle);
        assert_eq!(d.stop.len(), 2, "{d:?}");
    }

    #[test]
    fn breaker_without_rollback_fails_and_stops_launching() {
        let mut st = setup(1, 1);
        complete(&mut st, "d1");
        enable_breaker(&mut st, false);
        new_revision(&mut st, 100, 200);
        add_quick_failures(&mut st, "d2", "web:2", 3);
        let d = decide(&st, &svc(&st), Timestamp(7_000), &POLICY);
        assert!(d.fail_primary.is_some());
        assert_eq!(d.rollback, None);
        // Failures outside the monitor window don't count.
        let late = HealthPolicy { settle_millis: 0, monitor_millis: 500 };
        assert_eq!(decide(&st, &svc(&st), Timestamp(7_000), &late).fail_primary, None);
    }

    #[test]
    fn rollback_without_old_tasks_starts_a_deployment_on_the_last_completed_revision() {
        let mut st = setup(1, 1);
        complete(&mut st, "d1");
        enable_breaker(&mut st, true);
        new_revision(&mut st, 100, 200);
        for t in st.tasks.values_mut() {
            t.last_status = STOPPED.into();
            t.desired_status = STOPPED.into();
            t.stop_code = Some("ServiceSchedulerInitiated".into());
        }
        let s = st.services.get_mut("default/web").unwrap();
        s.deployments.retain(|d| d.id != "d1");
        add_quick_failures(&mut st, "d2", "web:2", 3);
        let d = decide(&st, &svc(&st), Timestamp(7_000), &POLICY);
        match d.rollback {
            Some(Rollback::New { task_definition_arn, .. }) => {
                assert!(task_definition_arn.ends_with("web:1"), "{task_definition_arn}")
            }
            other => panic!("expected a new deployment on web:1, got {other:?}"),
        }
    }

    #[test]
    fn unhealthy_tasks_are_replaced_start_first_and_not_counted_healthy() {
        let mut st = setup(2, 2);
        complete(&mut st, "d1");
        let victim = st.tasks.keys().next().unwrap().clone();
        st.tasks.get_mut(&victim).unwrap().health_status = "UNHEALTHY".into();
        let d = decide(&st, &svc(&st), Timestamp(10_000), &POLICY);
        // max 200 allows starting the replacement first; the unhealthy task waits for it.
        assert_eq!(d.start, 1);
        assert!(d.stop_unhealthy.is_empty());
        // Once the replacement runs, the unhealthy task is stopped.
        add_tasks(&mut st, "d1", "web:1", 1, RUNNING);
        let d = decide(&st, &svc(&st), Timestamp(10_000), &POLICY);
        assert_eq!(d.stop_unhealthy, vec![victim.clone()]);
        // Within the grace period it is not unhealthy yet.
        st.services.get_mut("default/web").unwrap().health_check_grace_period_seconds = Some(60);
        let d = decide(&st, &svc(&st), Timestamp(10_000), &POLICY);
        assert!(d.stop_unhealthy.is_empty() && d.start == 0, "{d:?}");
    }

    #[test]
    fn tasks_without_health_checks_count_healthy_only_after_the_settle_time() {
        let st = setup(1, 1);
        let settle = HealthPolicy { settle_millis: 40_000, monitor_millis: 60_000 };
        // Started at t=3 ms: not settled at 10 s, settled at 41 s.
        assert!(!decide(&st, &svc(&st), Timestamp(10_000), &settle).complete_primary);
        assert!(decide(&st, &svc(&st), Timestamp(41_000), &settle).complete_primary);
    }
}
