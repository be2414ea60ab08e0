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
    // The tasks placed here that concern this drain: not stopped yet, or stopped since it began
    // (a service whose tasks left long before is not waited for).
    let since = state.instances.get(instance_id).and_then(|r| r.draining_since);
    let here: Vec<_> = state
        .tasks
        .values()
        .filter(|t| t.instance_id() == Some(instance_id))
        .filter(|t| !t.is_stopped() || since.is_none_or(|s| t.stopped_at.is_none_or(|at| at >= s)))
        .collect();
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
    let complete =
        remaining == 0 && services.iter().all(|s| s.healthy_elsewhere >= s.desired_count);
    DrainProgress { service_tasks_remaining: remaining as i64, services, complete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::testkit::*;
    use berth_proto::model::STOPPED;

    const SETTLE: HealthPolicy = HealthPolicy { settle_millis: 3_000, monitor_millis: 60_000 };

    fn slot(instance: &str) -> Slot<'_> {
        Slot { service: "web", deployment: "d1", taskdef: "web:1", instance }
    }

    /// Instances a (draining) and b, service web (desired 2) with its 2 tasks on a.
    fn setup() -> (State, Vec<String>) {
        let mut st = State::default();
        register_taskdef(&mut st, "web");
        register_instance(&mut st, "a");
        register_instance(&mut st, "b");
        create_service(&mut st, "web", "web", 2, "d1");
        let on_a = add_tasks(&mut st, &slot("a"), 2, RUNNING, Timestamp(10));
        st.instances.get_mut("a").unwrap().instance.status = "DRAINING".into();
        (st, on_a)
    }

    #[test]
    fn not_complete_while_service_tasks_remain_on_the_instance() {
        let (st, _) = setup();
        let p = drain_progress(&st, "a", Timestamp(100_000), &SETTLE);
        assert_eq!(p.service_tasks_remaining, 2);
        assert_eq!(
            p.services,
            vec![DrainService {
                service_name: "web".into(),
                desired_count: 2,
                healthy_elsewhere: 0
            }]
        );
        assert!(!p.complete);
    }

    #[test]
    fn complete_only_once_the_replacements_are_healthy() {
        let (mut st, on_a) = setup();
        for id in &on_a {
            let t = st.tasks.get_mut(id).unwrap();
            t.desired_status = STOPPED.into();
            t.last_status = STOPPED.into();
        }
        add_tasks(&mut st, &slot("b"), 2, RUNNING, Timestamp(20_000));
        // Replacements RUNNING for 2 s of a 3 s settle time: not healthy yet.
        let p = drain_progress(&st, "a", Timestamp(22_000), &SETTLE);
        assert_eq!((p.service_tasks_remaining, p.services[0].healthy_elsewhere), (0, 0));
        assert!(!p.complete);
        // At 3 s they count; the drain is complete.
        let p = drain_progress(&st, "a", Timestamp(23_000), &SETTLE);
        assert_eq!(p.services[0].healthy_elsewhere, 2);
        assert!(p.complete);
    }

    #[test]
    fn services_whose_tasks_left_before_the_drain_began_are_not_waited_for() {
        let (mut st, on_a) = setup();
        // web's tasks on a stopped at t=5 s; the drain began at t=8 s.
        for id in &on_a {
            let t = st.tasks.get_mut(id).unwrap();
            t.desired_status = STOPPED.into();
            t.last_status = STOPPED.into();
            t.stopped_at = Some(Timestamp(5_000));
        }
        st.instances.get_mut("a").unwrap().draining_since = Some(Timestamp(8_000));
        let p = drain_progress(&st, "a", Timestamp(100_000), &SETTLE);
        assert_eq!((p.service_tasks_remaining, p.services.len(), p.complete), (0, 0, true));
        // Stopped after the drain began: web is affected and must be healthy elsewhere.
        for id in &on_a {
            st.tasks.get_mut(id).unwrap().stopped_at = Some(Timestamp(9_000));
        }
        let p = drain_progress(&st, "a", Timestamp(100_000), &SETTLE);
        assert_eq!((p.services.len(), p.complete), (1, false));
    }

    #[test]
    fn a_stopping_task_still_counts_as_remaining_and_standalone_tasks_do_not() {
        let (mut st, on_a) = setup();
        // Asked to stop but its container has not exited yet.
        st.tasks.get_mut(&on_a[0]).unwrap().desired_status = STOPPED.into();
        let p = drain_progress(&st, "a", Timestamp(100_000), &SETTLE);
        assert_eq!(p.service_tasks_remaining, 2);
        let mut st = State::default();
        register_taskdef(&mut st, "web");
        register_instance(&mut st, "a");
        let def = st.resolve_taskdef("web").unwrap().clone();
        let launch = crate::orchestrator::placement::Launch {
            cluster: "default",
            def: &def,
            count: 1,
            group: "family:web".into(),
            started_by: None,
        };
        let t = crate::orchestrator::placement::new_task(&st, &launch, "a", "t1", Timestamp(3));
        crate::store::apply::apply(
            &mut st,
            crate::store::Command::StartTasks { tasks: vec![t], now: Timestamp(3) },
        )
        .unwrap();
        let p = drain_progress(&st, "a", Timestamp(100_000), &SETTLE);
        assert_eq!((p.service_tasks_remaining, p.services.len(), p.complete), (0, 0, true));
    }
}
