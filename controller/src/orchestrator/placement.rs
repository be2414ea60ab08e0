//! Building new tasks and placing them: turns the state into scheduler views, asks the pure
//! scheduler for a plan, and forms the Task objects a `StartTasks` command carries. Used by
//! RunTask and by the service reconciler, so both place by the same rules.

use crate::store::State;
use berth_proto::model::{
    Container, Failure, PENDING, RUNNING, Task, TaskDefinition, TaskOverride, Timestamp,
};
use berth_proto::model::{PlacementConstraint, PlacementStrategy};
use berth_scheduler::{Constraint, InstanceView, PlacementSpec, Strategy, TaskRequest};
use std::collections::{BTreeMap, BTreeSet};

/// Scheduler views of a cluster's instances.
pub fn instance_views(state: &State, cluster: &str) -> Vec<InstanceView> {
    state
        .instances_in(cluster)
        .map(|ci| {
            let rem = state.remaining(ci);
            let mut tasks_by_group: BTreeMap<String, u32> = BTreeMap::new();
            for t in state.tasks_on_instance(ci.id()) {
                if let Some(g) = &t.group {
                    *tasks_by_group.entry(g.clone()).or_default() += 1;
                }
            }
            InstanceView {
                registered_at_millis: ci.registered_at.millis(),
                running_tasks_count: state
                    .tasks_on_instance(ci.id())
                    .filter(|t| t.last_status == berth_proto::model::RUNNING)
                    .count() as u32,
                agent_version: ci.version_info.agent_version.clone().unwrap_or_default(),
                id: ci.id().to_string(),
                active: ci.status == "ACTIVE",
                agent_connected: ci.agent_connected,
                attributes: ci
                    .attributes
                    .iter()
                    .map(|a| (a.name.clone(), a.value.clone().unwrap_or_default()))
                    .collect(),
                remaining_cpu: rem.cpu,
                remaining_memory: rem.memory,
                used_ports: rem.used_ports.into_iter().collect::<BTreeSet<u16>>(),
                tasks_by_group,
            }
        })
        .collect()
}

/// What to launch: `count` copies of `def` in `cluster`, in task group `group`.
pub struct Launch<'a> {
    pub cluster: &'a str,
    pub def: &'a TaskDefinition,
    pub count: usize,
    pub group: String,
    pub started_by: Option<String>,
}

/// Result of planning a launch: tasks ready for `StartTasks`, and a failure per unplaced task.
pub struct LaunchPlan {
    pub tasks: Vec<Task>,
    pub failures: Vec<Failure>,
    /// The ECS service-event sentence for the first failure, e.g. "… has insufficient CPU units available."
    pub failure_detail: Option<String>,
}

/// Plan a launch. `new_id` supplies task ids (random in production, fixed in tests); `seed` feeds
/// the scheduler's tie-breaking.
pub fn plan_launch(
    state: &State,
    launch: &Launch<'_>,
    spec: &PlacementSpec,
    now: Timestamp,
    seed: u64,
    new_id: &mut dyn FnMut() -> String,
) -> LaunchPlan {
    let views = instance_views(state, launch.cluster);
    let plan = place(&views, launch, spec, seed);
    finish_plan(state, launch, &views, &plan, now, new_id)
}

/// The scheduler's part of [`plan_launch`]: a pure function of the views, which a caller may
/// run without holding the state's lock (the reconciler does; `StartTasks` checks again that
/// every task still fits when it applies).
pub fn place(
    views: &[InstanceView],
    launch: &Launch<'_>,
    spec: &PlacementSpec,
    seed: u64,
) -> berth_scheduler::Plan {
    let request = TaskShape::of(launch.def, launch.group.clone()).request();
    let requests = vec![request; launch.count];
    berth_scheduler::place_with(views, &requests, spec, seed)
}

/// The last part of [`plan_launch`]: the tasks and failures of `plan`, placed on `views`.
pub fn finish_plan(
    state: &State,
    launch: &Launch<'_>,
    views: &[InstanceView],
    plan: &berth_scheduler::Plan,
    now: Timestamp,
    new_id: &mut dyn FnMut() -> String,
) -> LaunchPlan {
    let tasks = plan
        .placements
        .iter()
        .map(|p| new_task(state, launch, &p.instance_id, &new_id(), now))
        .collect();
    let failures: Vec<Failure> =
        failures(state, launch.cluster, views, plan).into_iter().map(|(_, f)| f).collect();
    let failure_detail = failures.first().and_then(|f| f.detail.clone());
    LaunchPlan { tasks, failures, failure_detail }
}

/// What one task of a definition asks of an instance.
pub struct TaskShape {
    group: String,
    cpu: i64,
    memory: i64,
    static_ports: Vec<u16>,
}

impl TaskShape {
    pub fn of(def: &TaskDefinition, group: String) -> Self {
        Self {
            group,
            cpu: def.reserved_cpu(),
            memory: def.reserved_memory(),
            static_ports: def.static_host_ports(),
        }
    }

    pub fn request(self) -> TaskRequest {
        TaskRequest {
            group: self.group,
            cpu: self.cpu,
            memory: self.memory,
            static_ports: self.static_ports,
        }
    }
}

/// The plan's failures in ECS shape, with their task index: `arn` names the closest container
/// instance, `detail` completes ECS's service-event sentence.
pub fn failures(
    state: &State,
    cluster: &str,
    views: &[InstanceView],
    plan: &berth_scheduler::Plan,
) -> Vec<(usize, Failure)> {
    plan.failures
        .iter()
        .map(|f| {
            let detail = match &f.closest {
                Some((id, lacked)) => {
                    format!("The closest matching container-instance {id} {lacked}.")
                }
                None if views.is_empty() => {
                    "No container instances were found in your cluster.".to_string()
                }
                None => "No container instance met all of its requirements.".to_string(),
            };
            let arn = f.closest.as_ref().map(|(id, _)| state.scope.container_instance(cluster, id));
            (f.task_index, Failure { arn, reason: f.reason.to_string(), detail: Some(detail) })
        })
        .collect()
}

/// A new task, PENDING on `instance_id`, with one PENDING container per container definition.
pub fn new_task(
    state: &State,
    launch: &Launch<'_>,
    instance_id: &str,
    id: &str,
    now: Timestamp,
) -> Task {
    let scope = &state.scope;
    let task_arn = scope.task(launch.cluster, id);
    let def = launch.def;
    let containers = def
        .container_definitions
        .iter()
        .map(|c| Container {
            container_arn: scope.container(launch.cluster, id, &c.name),
            task_arn: task_arn.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            last_status: PENDING.into(),
            cpu: Some(c.cpu.unwrap_or(0).to_string()),
            memory: c.memory.map(|m| m.to_string()),
            memory_reservation: c.memory_reservation.map(|m| m.to_string()),
            health_status: "UNKNOWN".into(),
            ..Default::default()
        })
        .collect();
    let az = state
        .instances
        .get(instance_id)
        .and_then(|r| r.instance.attribute("ecs.availability-zone").map(str::to_string));
    Task {
        task_arn,
        cluster_arn: scope.cluster(launch.cluster),
        task_definition_arn: def.task_definition_arn.clone().unwrap_or_default(),
        container_instance_arn: Some(scope.container_instance(launch.cluster, instance_id)),
        last_status: PENDING.into(),
        desired_status: RUNNING.into(),
        health_status: "UNKNOWN".into(),
        cpu: def.cpu.clone().or_else(|| Some(def.reserved_cpu().to_string())),
        memory: def.memory.clone().or_else(|| Some(def.reserved_memory().to_string())),
        containers,
        started_by: launch.started_by.clone(),
        group: Some(launch.group.clone()),
        launch_type: "EC2".into(),
        availability_zone: az,
        version: 1,
        created_at: now,
        overrides: TaskOverride::default(),
        ..Default::default()
    }
}

use berth_scheduler::MAX_CONSTRAINTS;

/// The scheduler spec for launching `def` with a stored placement: its strategies (the default
/// spread when none), its constraints plus the task definition's memberOf constraints. Errors
/// name the field and the rule.
pub fn spec(
    strategy: &[PlacementStrategy],
    constraints: &[PlacementConstraint],
    def: &TaskDefinition,
) -> Result<PlacementSpec, String> {
    let mut strategies = strategy
        .iter()
        .map(|s| {
            Strategy::from_parts(&s.kind, s.field.as_deref())
                .map_err(|e| format!("placementStrategy: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if strategies.is_empty() {
        strategies = berth_scheduler::default_strategies();
    }
    let parsed = constraints
        .iter()
        .chain(def.placement_constraints.iter().flatten())
        .map(|c| {
            Constraint::from_parts(&c.kind, c.expression.as_deref())
                .map_err(|e| format!("placementConstraints: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.len() > MAX_CONSTRAINTS {
        return Err(format!(
            "placementConstraints: the task definition and the request give {} constraints together; at most {MAX_CONSTRAINTS} are allowed.",
            parsed.len()
        ));
    }
    Ok(PlacementSpec { strategies, constraints: parsed })
}
