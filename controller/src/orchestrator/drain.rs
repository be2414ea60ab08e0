//! Drain progress of a container instance: a pure function of the state, `now` and the health
//! policy, read by DescribeContainerInstances (and so by `berth instance drain --wait`).
//!
//! "Drained" is stricter than "no task left" (better than peers): every service task placed on
//! the instance has reached STOPPED **and** every REPLICA service that had a task there has
//! `desiredCount` tasks elsewhere that the scheduler counts as healthy (`health::is_healthy`:
//! HEALTHY, or RUNNING for the settle time when it has no health check). DAEMON services have no
//! replacement to wait for: their task on a draining instance just stops.

use super::health::{self, HealthPolicy};
use crate::store::State;
use berth_proto::model::{DrainProgress, DrainService, RUNNING, Timestamp};
use std::collections::BTreeMap;

pub fn drain_progress(
    state: &State,
    instance_id: &str,
    now: Timestamp,
    policy: &HealthPolicy,
) -> DrainProgress {
    let here: Vec<_> =
        state.tasks.values().filter(|t| t.instance_id() == Some(instance_id)).collect();
    let remaining = here.iter().filter(|t| t.service_name().is_some() && !t.is_stopped()).count();
    let mut services: BTreeMap<(String, String), DrainService> = BTreeMap::new();
    for t in &here {
        let Some(name) = t.service_name() else { continue };
        let cluster = crate::store::state::cluster_of_arn(&t.cluster_arn).to_string();
        let key = State::service_key(&cluster, name);
        let Some(svc) = state.services.get(&key) else { continue };
        if svc.status != "ACTIVE" || svc.scheduling_strategy == "DAEMON" {
            continue;
        }
        services.entry((cluster, name.to_string())).or_insert_with(|| DrainService {
            service_name: name.to_string(),
            desired_count: svc.desired_count,
            healthy_elsewhere: 0,
        });
    }
    for ((cluster, name), entry) in services.iter_mut() {
        entry.healthy_elsewhere = state
            .service_tasks(cluster, name)
            .filter(|t| t.instance_id() != Some(instance_id) && t.desired_status == RUNNING)
            .filter(|t| health::is_healthy(state, t, now, policy))
            .count() as i64;
    }
    let services: Vec<DrainService> = services.into_values().collect();
    let complete = remaining == 0 && services.iter().all(|s| s.healthy_elsewhere >= s.desired_count);
    DrainProgress { service_tasks_remaining: remaining as i64, services, complete }
}
