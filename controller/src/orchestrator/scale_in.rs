//! Scale-in: which surplus PRIMARY tasks of a service to stop (ECS-NOTES §2.2, issue 5).
//!
//! Tasks that serve nobody go first: tasks whose health check reports UNHEALTHY (even inside the
//! grace period — ECS: "if the service is above desired count, unhealthy tasks in grace may still
//! be stopped"), in task id order; then the pure scheduler's `choose_victims` picks the rest,
//! PENDING tasks first and then by the service's placement strategies (the default spread when it
//! has none), so what stays is balanced.

use super::placement;
use crate::store::State;
use berth_proto::model::{RUNNING, Task};
use berth_scheduler::Strategy;

/// Pick `count` surplus tasks of the PRIMARY deployment to stop, in the order chosen.
pub fn choose_surplus(
    st: &State,
    cluster: &str,
    name: &str,
    primary: Option<&str>,
    count: usize,
) -> Vec<String> {
    let tasks: Vec<&Task> = st
        .service_tasks(cluster, name)
        .filter(|t| t.desired_status == RUNNING && t.started_by.as_deref() == primary)
        .collect();
    let mut chosen: Vec<String> = tasks
        .iter()
        .filter(|t| t.last_status == RUNNING && t.health_status == "UNHEALTHY")
        .map(|t| t.id().to_string())
        .take(count)
        .collect();
    let candidates: Vec<berth_scheduler::VictimCandidate> = tasks
        .iter()
        .filter(|t| !chosen.iter().any(|c| c == t.id()))
        .map(|t| {
            let r = st.task_reservation(t);
            berth_scheduler::VictimCandidate {
                task_id: t.id().to_string(),
                cpu: r.cpu,
                memory: r.memory,
                instance_id: t.instance_id().unwrap_or_default().to_string(),
                group: t.group.clone().unwrap_or_default(),
                started: t.last_status == RUNNING,
            }
        })
        .collect();
    let rest = count - chosen.len();
    if rest > 0 {
        let views = placement::instance_views(st, cluster);
        chosen.extend(berth_scheduler::choose_victims(
            &views,
            &candidates,
            rest,
            &strategies(st, cluster, name),
            0,
        ));
    }
    chosen
}

/// The service's placement strategies (validated when stored), else the default spread.
fn strategies(st: &State, cluster: &str, name: &str) -> Vec<Strategy> {
    let given: Vec<Strategy> = st
        .services
        .get(&State::service_key(cluster, name))
        .map(|s| &s.placement_strategy[..])
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Strategy::from_parts(&s.kind, s.field.as_deref()).ok())
        .collect();
    if given.is_empty() { berth_scheduler::default_strategies() } else { given }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use crate::store::apply::apply;
    use crate::store::command::*;
    use berth_proto::model::*;

    /// Service `web` (desired 4) with four RUNNING tasks of deployment d1 on one instance.
    fn four_running() -> (State, Vec<String>) {
        let mut st = State::default();
        let def = TaskDefinition {
            family: "web".into(),
            container_definitions: vec![ContainerDefinition {
                name: "c".into(),
                image: "i".into(),
                memory: Some(1),
                ..Default::default()
            }],
            ..Default::default()
        };
        apply(&mut st, Command::RegisterTaskDefinition { definition: def, now: Timestamp(1) })
            .unwrap();
        apply(
            &mut st,
            Command::RegisterInstance(RegisterInstance {
                session: "s".into(),
                cluster: "default".into(),
                instance_id: "i1".into(),
                attributes: vec![],
                cpu: 10_000,
                memory: 10_000,
                reserved_ports: vec![],
                version_info: VersionInfo::default(),
                hostname: None,
                agent_endpoint: None,
                now: Timestamp(1),
            }),
        )
        .unwrap();
        let def = st.resolve_taskdef("web:1").unwrap().clone();
        let launch = crate::orchestrator::placement::Launch {
            cluster: "default",
            def: &def,
            count: 1,
            group: "service:web".into(),
            started_by: Some("d1".into()),
        };
        let ids: Vec<String> = (1..=4).map(|i| format!("{i:032x}")).collect();
        let tasks = ids
            .iter()
            .map(|id| {
                let mut t =
                    crate::orchestrator::placement::new_task(&st, &launch, "i1", id, Timestamp(2));
                t.last_status = RUNNING.into();
                t.health_status = "HEALTHY".into();
                t
            })
            .collect();
        apply(&mut st, Command::StartTasks { tasks, now: Timestamp(2) }).unwrap();
        (st, ids)
    }

    #[test]
    fn scale_in_stops_unhealthy_then_pending_tasks_first() {
        let (mut st, ids) = four_running();
        st.tasks.get_mut(&ids[2]).unwrap().health_status = "UNHEALTHY".into();
        st.tasks.get_mut(&ids[3]).unwrap().last_status = PENDING.into();
        let chosen = choose_surplus(&st, "default", "web", Some("d1"), 2);
        assert_eq!(chosen, vec![ids[2].clone(), ids[3].clone()]);
        // Asking for one: only the unhealthy task.
        assert_eq!(choose_surplus(&st, "default", "web", Some("d1"), 1), vec![ids[2].clone()]);
        // All healthy and RUNNING: the scheduler's deterministic choice (lowest id on one instance).
        let (st, ids) = four_running();
        assert_eq!(choose_surplus(&st, "default", "web", Some("d1"), 1), vec![ids[0].clone()]);
    }
}
