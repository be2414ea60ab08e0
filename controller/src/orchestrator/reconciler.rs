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

use crate::store::State;
use berth_proto::model::{Service, Task, PENDING, RUNNING};

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
}

/// The event prefix ECS uses: `(service NAME)`.
pub fn prefix(name: &str) -> String {
    format!("(service {name})")
}

pub fn decide(state: &State, svc: &Service) -> ServiceDecision {
    let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn);
    let name = svc.service_name.as_str();
    let live: Vec<&Task> = state.service_tasks(cluster, name).filter(|t| t.desired_status == RUNNING).collect();
    let mut d = ServiceDecision::default();

    if svc.status == "DRAINING" {
        d.stop = live.iter().map(|t| t.id().to_string()).collect();
        d.deactivate = state.service_tasks(cluster, name).next().is_none();
        return d;
    }
    if svc.status != "ACTIVE" {
        return d;
    }
    let Some(primary) = svc.deployments.iter().find(|x| x.status == "PRIMARY") else { return d };
    let is_primary = |t: &&Task| -> bool { t.started_by.as_deref() == Some(primary.id.as_str()) };
    let (new, old): (Vec<&Task>, Vec<&Task>) = live.iter().copied().partition(|t| is_primary(&t));
    let desired = svc.desired_count.max(0) as usize;
    let cfg = &svc.deployment_configuration;
    let upper = (desired as i64 * cfg.maximum_percent).div_euclid(100).max(0) as usize;
    let lower = (desired as i64 * cfg.minimum_healthy_percent + 99).div_euclid(100).max(0) as usize;
    let running = live.iter().filter(|t| t.last_status == RUNNING).count();

    if new.len() < desired {
        let missing = desired - new.len();
        d.start = if old.is_empty() { missing } else { missing.min(upper.saturating_sub(live.len())) };
    } else if new.len() > desired {
        d.stop_surplus = new.len() - desired;
    }
    if !old.is_empty() {
        // Old tasks that never ran can go at once; running ones only above the healthy minimum.
        d.stop.extend(old.iter().filter(|t| t.last_status != RUNNING).map(|t| t.id().to_string()));
        let can_stop = running.saturating_sub(lower);
        d.stop.extend(old.iter().filter(|t| t.last_status == RUNNING).take(can_stop).map(|t| t.id().to_string()));
        let pending = live.iter().any(|t| t.last_status == PENDING);
        if d.start == 0 && d.stop.is_empty() && !pending && new.len() < desired {
            d.events.push(format!(
                "{} was unable to stop or start tasks during a deployment because of the service deployment configuration. Update the minimumHealthyPercent or maximumPercent value and try again.",
                prefix(name)
            ));
        }
    }
    for dep in &svc.deployments {
        if dep.status != "PRIMARY" && !state.service_tasks(cluster, name).any(|t| t.started_by.as_deref() == Some(dep.id.as_str())) {
            d.drained_deployments.push(dep.id.clone());
        }
    }
    let steady = old.is_empty()
        && new.len() == desired
        && new.iter().all(|t| t.last_status == RUNNING)
        && d.start == 0
        && d.stop_surplus == 0
        && state.service_tasks(cluster, name).all(|t| t.desired_status == RUNNING);
    if steady && primary.rollout_state.as_deref() == Some("IN_PROGRESS") {
        d.complete_primary = true;
        d.events.push(format!("{} (deployment {}) deployment completed.", prefix(name), primary.id));
        d.events.push(format!("{} has reached a steady state.", prefix(name)));
    }
    d
}
