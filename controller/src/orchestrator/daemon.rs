//! The DAEMON service's decision core (ECS-NOTES §3.8): pure, from a state snapshot to the same
//! [`ServiceDecision`] the replica reconciler returns, so the loop in `mod.rs` carries both out
//! through the same commands (StartTasks, StopTasks, UpdateService for the count,
//! ServiceProgress).
//!
//! Per ACTIVE service, instance by instance (in id order):
//! * an instance is **eligible** when it is ACTIVE, its agent is connected and it satisfies the
//!   service's (and task definition's) memberOf constraints; `distinctInstance` holds by
//!   construction. The service's `desiredCount` is the number of eligible instances;
//! * an eligible instance without a live task of the service gets one of the PRIMARY deployment
//!   (`start_on`) once no task of the service still holds resources there: maximumPercent is
//!   100, so a replacement never starts beside the task it replaces;
//! * on an eligible instance, one PRIMARY task is kept (RUNNING and healthy first); duplicates and
//!   tasks of older deployments beside it are stopped. Without a PRIMARY task, older tasks stop
//!   while `minimumHealthyPercent` (rounded up, of the eligible count) stays healthy; unhealthy
//!   and not-yet-healthy ones may always go;
//! * a DRAINING instance, or one that no longer satisfies the constraints, has its daemon task
//!   stopped and gets none; an instance whose agent is disconnected keeps what it has (node
//!   liveness decides when those tasks are lost);
//! * failing launches are throttled and the circuit breaker trips (and rolls back) as for
//!   replicas, its threshold from the eligible count; a DRAINING (deleted) service is handled by
//!   the replica reconciler (stop everything, then INACTIVE).

use super::health::{self, HealthPolicy};
use super::placement::{self, Launch};
use super::reconciler::{
    self, IMPAIRED_AFTER_FAILURES, ServiceDecision, launch_delay_millis, prefix,
};
use crate::store::State;
use berth_proto::model::{Deployment, RUNNING, Service, Task, Timestamp};
use berth_scheduler::{Constraint, InstanceView, PlacementSpec};
use std::collections::BTreeMap;

pub fn decide(
    state: &State,
    svc: &Service,
    now: Timestamp,
    policy: &HealthPolicy,
) -> ServiceDecision {
    if svc.status != "ACTIVE" {
        return reconciler::decide(state, svc, now, policy);
    }
    let mut d = ServiceDecision::default();
    let Some(primary) = svc.deployments.iter().find(|x| x.status == "PRIMARY") else {
        return d;
    };
    if let Some(tripped) = reconciler::tripped_breaker(state, svc, primary, policy) {
        return tripped;
    }
    let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn);
    let name = svc.service_name.as_str();
    let Some(def) = state.taskdef_by_arn(&primary.task_definition) else {
        return d;
    };
    let spec = match placement::spec(&[], &svc.placement_constraints, def) {
        Ok(spec) => daemon_spec(spec),
        Err(e) => {
            d.events.push(format!("service {name} was unable to place a task. Reason: {e}"));
            return d;
        }
    };
    let views = placement::instance_views(state, cluster);
    // Every not-yet-STOPPED task of the service, by instance (tasks without one count as gone).
    let mut on: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in state.service_tasks(cluster, name) {
        on.entry(t.instance_id().unwrap_or_default()).or_default().push(t);
    }
    let healthy = |t: &Task| health::is_healthy(state, t, now, policy);
    let unhealthy = |t: &Task| health::is_unhealthy(t, svc, now);
    let live = |t: &&Task| t.desired_status == RUNNING;
    let is_new = |t: &Task| t.started_by.as_deref() == Some(primary.id.as_str()) && !unhealthy(t);

    let eligible: Vec<&InstanceView> =
        views.iter().filter(|v| v.active && v.agent_connected && satisfies(&spec, v)).collect();
    let desired = eligible.len();
    let lower = (desired as i64 * svc.deployment_configuration.minimum_healthy_percent + 99)
        .div_euclid(100)
        .max(0) as usize;
    let healthy_total = eligible
        .iter()
        .flat_map(|v| on.get(v.id.as_str()).into_iter().flatten())
        .filter(|t| live(t) && healthy(t))
        .count();
    let mut can_stop = healthy_total.saturating_sub(lower);
    let mut complete = true;

    for (instance, tasks) in &on {
        let view = views.iter().find(|v| v.id == *instance);
        let here: Vec<&Task> = tasks.iter().copied().filter(live).collect();
        match view {
            Some(v) if v.active && !v.agent_connected => continue,
            Some(v) if v.active && satisfies(&spec, v) => {}
            Some(v) if v.active => {
                for t in &here {
                    d.stop.push(t.id().to_string());
                    d.events.push(format!(
                        "{} (task {}) no longer satisfies the placement constraints on (instance {}) and was stopped.",
                        prefix(name),
                        t.id(),
                        v.id
                    ));
                }
                continue;
            }
            // DRAINING, deregistered or unknown: the daemon task goes and none is placed.
            _ => {
                d.stop.extend(here.iter().map(|t| t.id().to_string()));
                continue;
            }
        }
        let mut new: Vec<&Task> = here.iter().copied().filter(|t| is_new(t)).collect();
        // Keep the best PRIMARY task: healthy, then RUNNING, then the oldest (lowest id on ties).
        new.sort_by_key(|t| {
            (!healthy(t), t.last_status != RUNNING, t.created_at, t.id().to_string())
        });
        let old: Vec<&Task> = here.iter().copied().filter(|t| !is_new(t)).collect();
        if let Some((kept, extra)) = new.split_first() {
            d.stop.extend(extra.iter().map(|t| t.id().to_string()));
            for t in &old {
                if unhealthy(t) {
                    d.stop_unhealthy.push(t.id().to_string());
                } else {
                    d.stop.push(t.id().to_string());
                }
            }
            complete &= extra.is_empty() && old.is_empty() && healthy(kept);
            continue;
        }
        complete = false;
        for t in &old {
            if unhealthy(t) {
                d.stop_unhealthy.push(t.id().to_string());
            } else if !healthy(t) {
                d.stop.push(t.id().to_string());
            } else if can_stop > 0 {
                can_stop -= 1;
                d.stop.push(t.id().to_string());
            }
        }
    }
    // Eligible instances holding no task of the service get one.
    let mut unplaced = None;
    for v in &eligible {
        if on.get(v.id.as_str()).is_some_and(|ts| !ts.is_empty()) {
            continue;
        }
        complete = false;
        match fits(state, cluster, def, name, v, &spec) {
            None => d.start_on.push(v.id.clone()),
            Some(detail) => {
                unplaced.get_or_insert(detail);
            }
        }
    }
    if let Some(detail) = unplaced {
        d.events.push(
            format!("service {name} was unable to place a task because no container instance met all of its requirements. {detail}")
                .trim_end()
                .to_string(),
        );
    }
    if primary.rollout_state.as_deref() == Some("FAILED") {
        // The breaker tripped without a rollback: no new task for this deployment.
        d.start_on.clear();
    }
    if !d.start_on.is_empty() {
        throttle(state, cluster, name, primary, now, &mut d);
    }
    if svc.desired_count != desired as i64 {
        d.desired_count = Some(desired as i64);
    }
    d.drained_deployments = reconciler::drained_deployments(state, svc);
    let settled = complete
        && d.stop.is_empty()
        && d.stop_unhealthy.is_empty()
        && on.values().flatten().all(|t| t.desired_status == RUNNING && is_new(t));
    if settled && primary.rollout_state.as_deref() == Some("IN_PROGRESS") {
        d.complete_primary = true;
        d.events.extend(reconciler::completion_events(name, &primary.id));
    }
    d
}

/// The spec a daemon task is checked against: its memberOf constraints only
/// (`distinctInstance` holds by construction; strategies do not apply to one instance).
fn daemon_spec(spec: PlacementSpec) -> PlacementSpec {
    let constraints =
        spec.constraints.into_iter().filter(|c| matches!(c, Constraint::MemberOf(_))).collect();
    PlacementSpec { strategies: vec![], constraints }
}

fn satisfies(spec: &PlacementSpec, view: &InstanceView) -> bool {
    spec.constraints.iter().all(|c| match c {
        Constraint::MemberOf(expr) => expr.eval(view),
        _ => true,
    })
}

/// `None` when a task of `def` fits on `view` now; else ECS's sentence saying why not.
fn fits(
    state: &State,
    cluster: &str,
    def: &berth_proto::model::TaskDefinition,
    name: &str,
    view: &InstanceView,
    spec: &PlacementSpec,
) -> Option<String> {
    let request = placement::TaskShape::of(def, format!("service:{name}")).request();
    let one = std::slice::from_ref(view);
    let plan = berth_scheduler::place_with(one, &[request], spec, 0);
    if plan.failures.is_empty() {
        return None;
    }
    let failures = placement::failures(state, cluster, one, &plan);
    Some(failures.first().and_then(|(_, f)| f.detail.clone()).unwrap_or_default())
}

/// Failing launches wait as for replicas (ECS-NOTES §3.6).
fn throttle(
    state: &State,
    cluster: &str,
    name: &str,
    primary: &Deployment,
    now: Timestamp,
    d: &mut ServiceDecision,
) {
    let (failures, last_stop) = state.launch_failures(cluster, name, &primary.id);
    let until = last_stop.map(|t| t.plus_millis(launch_delay_millis(failures)));
    if let Some(until) = until.filter(|u| *u > now) {
        d.start_on.clear();
        d.throttled_until = Some(until);
    }
    if failures >= IMPAIRED_AFTER_FAILURES {
        d.events
            .push(format!("{} is unable to consistently start tasks successfully.", prefix(name)));
    }
}

/// The PENDING tasks of the PRIMARY deployment to start, one on each of `instances`.
pub fn new_tasks(
    state: &State,
    svc: &Service,
    instances: &[String],
    now: Timestamp,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<Task> {
    let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn);
    let Some(primary) = svc.deployments.iter().find(|x| x.status == "PRIMARY") else {
        return vec![];
    };
    let Some(def) = state.taskdef_by_arn(&primary.task_definition) else {
        return vec![];
    };
    let launch = Launch {
        cluster,
        def,
        count: 1,
        group: format!("service:{}", svc.service_name),
        started_by: Some(primary.id.clone()),
    };
    instances.iter().map(|i| placement::new_task(state, &launch, i, &new_id(), now)).collect()
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
