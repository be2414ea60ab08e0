//! RunTask, StopTask, DescribeTasks, ListTasks.

use super::{Api, cluster_name, object};
use crate::clock::new_id;
use crate::error::{Error, Result};
use crate::orchestrator::placement::{Launch, TaskShape, instance_views, plan_launch};
use crate::store::command::Placement;
use crate::store::command::StopTasks;
use crate::store::{Command, RejectKind, Rejection};
use berth_proto::model::{
    CandidateExplanation, Failure, PlacementExplanation, RUNNING, RunTaskResponse, STOPPED, Task,
    TaskDefinition, TaskExplanation, arn_tail,
};
use berth_proto::v1;
use tonic::Response;

/// ECS RunTask launches at most 10 tasks per call.
const MAX_RUN_TASK_COUNT: i64 = 10;

pub async fn run(api: &Api, r: v1::RunTaskRequest) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let count = if r.count == 0 { 1 } else { r.count };
    if !(1..=MAX_RUN_TASK_COUNT).contains(&count) {
        return Err(Error::invalid(format!(
            "count {count} is invalid: it must be between 1 and {MAX_RUN_TASK_COUNT}."
        )));
    }
    if r.started_by.len() > 128 {
        return Err(Error::invalid(
            "startedBy is invalid: up to 128 letters, numbers, hyphens, slashes and underscores are allowed.",
        ));
    }
    let placement =
        super::placement::from_request(&r.placement_strategy, &r.placement_constraints)?;
    let now = api.clock.now();
    let plan = {
        let st = api.shared.read();
        let def = st.resolve_taskdef(&r.task_definition)?.clone();
        if def.status.as_deref() != Some("ACTIVE") {
            return Err(Rejection::client(format!(
                "TaskDefinition is inactive: {}.",
                r.task_definition
            ))
            .into());
        }
        let group =
            if r.group.is_empty() { format!("family:{}", def.family) } else { r.group.clone() };
        let spec = super::placement::spec(&placement, &def)?;
        if r.dry_run {
            drop(st);
            return explain(api, &cluster, &def, &placement, count as usize, group);
        }
        let started_by = (!r.started_by.is_empty()).then(|| r.started_by.clone());
        let launch =
            Launch { cluster: &cluster, def: &def, count: count as usize, group, started_by };
        let started = std::time::Instant::now();
        let plan = plan_launch(&st, &launch, &spec, now, rand::random(), &mut new_id);
        let reasons = plan.failures.iter().map(|f| f.reason.as_str());
        api.metrics.placed(plan.tasks.len(), reasons, started.elapsed());
        plan
    };
    let mut failures = plan.failures;
    let mut tasks: Vec<Task> = vec![];
    if !plan.tasks.is_empty() {
        let applied = api.proposer.propose(&Command::StartTasks { tasks: plan.tasks, now }).await?;
        let st = api.shared.read();
        tasks = applied.ids.iter().filter_map(|id| st.tasks.get(id).cloned()).collect();
        failures.extend(applied.rejected.iter().map(|_| Failure {
            arn: None,
            reason: "RESOURCE:CONFLICT".into(),
            detail: Some(
                "The chosen container instance was taken by a concurrent placement; retry.".into(),
            ),
        }));
    }
    object(&RunTaskResponse { tasks, failures }, vec![])
}

/// A placement dry run: where `count` tasks of `def` would go under `placement`, and why every
/// other instance was not chosen. Changes nothing.
pub fn explain(
    api: &Api,
    cluster: &str,
    def: &TaskDefinition,
    placement: &Placement,
    count: usize,
    group: String,
) -> Result<Response<v1::ObjectReply>> {
    let spec = super::placement::spec(placement, def)?;
    let st = api.shared.read();
    let views = instance_views(&st, cluster);
    let request = TaskShape::of(def, group).request();
    let e = berth_scheduler::explain(&views, &vec![request; count], &spec, rand::random());
    let failures = crate::orchestrator::placement::failures(&st, cluster, &views, &e.plan);
    let out = PlacementExplanation {
        strategies: spec.strategies.iter().map(ToString::to_string).collect(),
        constraints: spec.constraints.iter().map(ToString::to_string).collect(),
        tasks: e
            .tasks
            .into_iter()
            .map(|t| TaskExplanation {
                task_index: t.task_index,
                container_instance_id: t.chosen,
                failure: failures.iter().find(|(i, _)| *i == t.task_index).map(|(_, f)| f.clone()),
                candidates: t
                    .candidates
                    .into_iter()
                    .map(|c| CandidateExplanation {
                        container_instance_id: c.instance_id,
                        chosen: c.chosen,
                        rejected_by: c.rejected_by.as_ref().map(|(r, _)| r.to_string()),
                        detail: c.rejected_by.map(|(_, lack)| lack),
                        scores: c.scores.into_iter().map(|s| s as f64).collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    object(&out, vec![])
}

fn find_task(api: &Api, cluster: &str, task: &str) -> Result<Task> {
    let id = arn_tail(task);
    api.shared
        .read()
        .tasks
        .get(id)
        .filter(|t| crate::store::state::cluster_of_arn(&t.cluster_arn) == cluster)
        .cloned()
        .ok_or_else(|| {
            Rejection::new(
                RejectKind::NotFound,
                "InvalidParameterException",
                format!("The referenced task was not found: {id}."),
            )
            .into()
        })
}

pub async fn stop(api: &Api, r: v1::StopTaskRequest) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let task = find_task(api, &cluster, &r.task)?;
    if r.reason.len() > 1024 {
        return Err(Error::invalid("reason is invalid: up to 1024 characters are allowed."));
    }
    let reason = if r.reason.is_empty() { "Task stopped by user".to_string() } else { r.reason };
    api.proposer
        .propose(&Command::StopTasks(StopTasks {
            task_ids: vec![task.id().to_string()],
            stop_code: "UserInitiated".into(),
            reason,
            now: api.clock.now(),
        }))
        .await?;
    object(&find_task(api, &cluster, &r.task)?, vec![])
}

pub fn describe(api: &Api, r: v1::TaskRef) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    object(&find_task(api, &cluster, &r.task)?, vec![])
}

pub fn list(api: &Api, r: v1::ListTasksRequest) -> Result<Response<v1::ListReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let desired = if r.desired_status.is_empty() {
        RUNNING.to_string()
    } else {
        r.desired_status.to_uppercase()
    };
    if desired != RUNNING && desired != STOPPED && desired != "PENDING" {
        return Err(Error::invalid(format!(
            "desiredStatus '{}' is invalid: expected RUNNING, PENDING or STOPPED.",
            r.desired_status
        )));
    }
    use super::page::{DEFAULT_RESULTS, ListKind, Page, time_key};
    let page = Page::from_request(ListKind::Tasks, r.max_results, &r.next_token, DEFAULT_RESULTS)?;
    let st = api.shared.read();
    if !r.service_name.is_empty()
        && !st
            .services
            .contains_key(&crate::store::State::service_key(&cluster, arn_tail(&r.service_name)))
    {
        return Err(Rejection::service_not_found(arn_tail(&r.service_name)).into());
    }
    let instance = arn_tail(&r.container_instance);
    let mut tasks: Vec<&Task> = st
        .tasks
        .values()
        .filter(|t| crate::store::state::cluster_of_arn(&t.cluster_arn) == cluster)
        .filter(|t| t.desired_status == desired)
        .filter(|t| {
            r.service_name.is_empty() || t.service_name() == Some(arn_tail(&r.service_name))
        })
        .filter(|t| {
            r.family.is_empty()
                || st.taskdef_by_arn(&t.task_definition_arn).is_some_and(|d| d.family == r.family)
        })
        .filter(|t| instance.is_empty() || t.instance_id() == Some(instance))
        .collect();
    tasks.sort_by_key(|t| (t.created_at, t.task_arn.clone()));
    let keyed =
        tasks.into_iter().map(|t| (format!("{}/{}", time_key(t.created_at.0), t.task_arn), t));
    super::page_reply(keyed.collect(), &page)
}
