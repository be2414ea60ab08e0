//! Applying a command to the state: deterministic (no clock, no randomness — both come in the
//! command), all-or-nothing (a rejected command changes nothing), and every changed object's
//! `version` grows.

use super::RejectKind;
use super::Rejection;
use super::apply_services::*;
use super::command::*;
use super::query::{Reservation, reserved_ports};
use super::state::{ClusterRecord, InstanceRecord, State, cluster_of_arn};
use berth_proto::model::{
    self, Container, ContainerInstance, RUNNING, Resource, STOPPED, Task, TaskStatusReport,
    Timestamp, status_rank,
};
use serde::{Deserialize, Serialize};

/// What a successfully applied command produced, handed back to its proposer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Ids (task ids, instance id, `family:rev`, service key) of objects created or changed.
    pub ids: Vec<String>,
    /// Tasks of a StartTasks command rejected at apply time (resources taken meanwhile).
    pub rejected: Vec<String>,
}

pub type ApplyResult = Result<Applied, Rejection>;

pub fn apply(state: &mut State, cmd: Command) -> ApplyResult {
    match cmd {
        Command::CreateCluster { name, now } => create_cluster(state, name, now),
        Command::DeleteCluster { name } => delete_cluster(state, &name),
        Command::RegisterTaskDefinition { definition, now } => {
            register_taskdef(state, definition, now)
        }
        Command::DeregisterTaskDefinition { family, revision, now } => {
            let def = state
                .families
                .get_mut(&family)
                .and_then(|f| f.revisions.get_mut(&revision))
                .map(std::sync::Arc::make_mut)
                .ok_or_else(|| {
                    Rejection::client(format!(
                        "The specified task definition {family}:{revision} does not exist."
                    ))
                })?;
            if def.status.as_deref() != Some("INACTIVE") {
                def.status = Some("INACTIVE".into());
                def.deregistered_at = Some(now);
            }
            Ok(Applied { ids: vec![format!("{family}:{revision}")], ..Default::default() })
        }
        Command::RegisterInstance(r) => register_instance(state, r),
        Command::SetAgentConnected { instance_id, session, connected, now } => {
            let rec = state.instances.get_mut(&instance_id).ok_or_else(|| {
                Rejection::new(
                    RejectKind::NotFound,
                    "ClientException",
                    format!("Container instance {instance_id} not found."),
                )
            })?;
            if rec.session == session && rec.instance.agent_connected != connected {
                rec.instance.agent_connected = connected;
                rec.instance.version += 1;
                rec.disconnected_at = (!connected).then_some(now);
                state.touch_instance(&instance_id);
            }
            Ok(Applied { ids: vec![instance_id], ..Default::default() })
        }
        Command::CreateService(c) => create_service(state, c),
        Command::UpdateService(u) => update_service(state, u),
        Command::DeleteService { cluster, name, force, now } => {
            delete_service(state, &cluster, &name, force, now)
        }
        Command::StartTasks { tasks, now: _ } => start_tasks(state, tasks),
        Command::StopTasks(s) => stop_tasks(state, s),
        Command::ReportTaskStatus { instance_id, report, now } => {
            report_status(state, &instance_id, report, now)
        }
        Command::ReportTaskStatuses { reports, now } => {
            let mut out = Applied::default();
            for r in reports {
                let task_id = r.report.task_id.clone();
                match report_status(state, &r.instance_id, r.report, now) {
                    Ok(a) => out.ids.extend(a.ids),
                    Err(_) => out.rejected.push(task_id),
                }
            }
            Ok(out)
        }
        Command::ServiceProgress(p) => service_progress(state, p),
        Command::PutAttributes(p) => put_attributes(state, p),
        Command::SetInstanceStatus { instance_id, status, now } => {
            let rec = state
                .instances
                .get_mut(&instance_id)
                .ok_or_else(|| instance_not_found(&instance_id))?;
            let ci = &mut rec.instance;
            let allowed = matches!(
                (ci.status.as_str(), status.as_str()),
                ("ACTIVE" | "DRAINING", "ACTIVE" | "DRAINING")
            );
            if !allowed {
                return Err(Rejection::invalid(format!(
                    "Container instance {instance_id} is {}; only ACTIVE and DRAINING instances can be set to ACTIVE or DRAINING (not {status}).",
                    ci.status
                )));
            }
            if ci.status != status {
                rec.draining_since = if status == "DRAINING" { now } else { None };
                ci.status = status;
                ci.version += 1;
            }
            Ok(Applied { ids: vec![instance_id], ..Default::default() })
        }
        Command::DeleteAttributes { instance_id, names } => {
            delete_attributes(state, &instance_id, &names)
        }
        Command::PurgeStoppedTasks { stopped_before } => {
            let before = state.tasks.len();
            state.retain_tasks(|t| {
                !(t.is_stopped() && t.stopped_at.is_some_and(|s| s < stopped_before))
            });
            Ok(Applied {
                ids: vec![(before - state.tasks.len()).to_string()],
                ..Default::default()
            })
        }
        Command::RecordHeartbeats { beats } => super::liveness::record_heartbeats(state, beats),
        Command::MarkAgentDisconnected { instance_id, session, last_heartbeat, now } => {
            super::liveness::mark_disconnected(state, &instance_id, &session, last_heartbeat, now)
        }
        Command::MarkTasksLost(m) => super::liveness::mark_tasks_lost(state, m),
        Command::RecordContainerStats { instance_id, samples } => {
            super::stats::record_container_stats(state, &instance_id, samples)
        }
        Command::RecordContainerStatsBatch { reports } => {
            let mut out = Applied::default();
            for r in reports {
                match super::stats::record_container_stats(state, &r.instance_id, r.samples) {
                    Ok(a) => out.ids.extend(a.ids),
                    Err(_) => out.rejected.push(r.instance_id),
                }
            }
            Ok(out)
        }
        Command::TrimEvents { first_index } => {
            let cursor = &mut state.events;
            cursor.first_index = cursor.first_index.max(first_index.min(cursor.next_index));
            Ok(Applied { ids: vec![cursor.first_index.to_string()], ..Default::default() })
        }
        Command::DeregisterInstance(d) => super::deregister::apply(state, d),
        Command::Security(c) => super::security::apply(state, c),
        Command::Acl(c) => super::acl::apply(state, c),
        Command::Secret(c) => super::secrets::apply(state, c),
    }
}

pub(super) fn require_cluster(state: &State, cluster: &str) -> Result<(), Rejection> {
    if state.cluster_is_active(cluster) {
        Ok(())
    } else {
        Err(Rejection::cluster_not_found(cluster))
    }
}

fn create_cluster(state: &mut State, name: String, now: Timestamp) -> ApplyResult {
    if !model::is_valid_name(&name) {
        return Err(Rejection::invalid(format!(
            "clusterName '{name}' is invalid: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )));
    }
    // ECS CreateCluster is idempotent for an existing ACTIVE cluster.
    let rec = state.clusters.entry(name.clone()).or_insert(ClusterRecord {
        name: name.clone(),
        status: "ACTIVE".into(),
        created_at: now,
    });
    if rec.status != "ACTIVE" {
        rec.status = "ACTIVE".into();
        rec.created_at = now;
    }
    Ok(Applied { ids: vec![name], ..Default::default() })
}

fn delete_cluster(state: &mut State, name: &str) -> ApplyResult {
    require_cluster(state, name)?;
    let has_instances =
        state.instances.values().any(|r| r.cluster == name && r.instance.status != "INACTIVE");
    if has_instances {
        return Err(Rejection::new(
            RejectKind::FailedPrecondition,
            "ClusterContainsContainerInstancesException",
            format!(
                "The cluster {name} cannot be deleted while container instances are active or draining."
            ),
        ));
    }
    if state
        .services
        .values()
        .any(|s| cluster_of_arn(&s.cluster_arn) == name && s.status != "INACTIVE")
    {
        return Err(Rejection::new(
            RejectKind::FailedPrecondition,
            "ClusterContainsServicesException",
            format!("The cluster {name} cannot be deleted while services are active."),
        ));
    }
    if state.tasks.values().any(|t| cluster_of_arn(&t.cluster_arn) == name && !t.is_stopped()) {
        return Err(Rejection::new(
            RejectKind::FailedPrecondition,
            "ClusterContainsTasksException",
            format!("The cluster {name} cannot be deleted while tasks are active."),
        ));
    }
    if let Some(c) = state.clusters.get_mut(name) {
        c.status = "INACTIVE".into();
    }
    Ok(Applied { ids: vec![name.to_string()], ..Default::default() })
}

fn register_taskdef(
    state: &mut State,
    mut def: model::TaskDefinition,
    now: Timestamp,
) -> ApplyResult {
    if !model::is_valid_name(&def.family) {
        return Err(Rejection::client(format!(
            "family '{}' is invalid: up to 255 letters, numbers, hyphens, and underscores are allowed.",
            def.family
        )));
    }
    let family = state.families.entry(def.family.clone()).or_default();
    family.last_revision += 1;
    let rev = family.last_revision;
    def.revision = Some(rev);
    def.task_definition_arn = Some(state.scope.task_definition(&def.family, rev));
    def.status = Some("ACTIVE".into());
    def.registered_at = Some(now);
    def.compatibilities = Some(vec!["EC2".into(), "EXTERNAL".into()]);
    let id = def.family_revision();
    // The entry was created above; get_mut cannot miss.
    if let Some(f) = state.families.get_mut(&def.family) {
        f.revisions.insert(rev, std::sync::Arc::new(def));
    }
    Ok(Applied { ids: vec![id], ..Default::default() })
}

fn register_instance(state: &mut State, r: RegisterInstance) -> ApplyResult {
    require_cluster(state, &r.cluster)?;
    if state.security.is_revoked(super::deregister::AGENT_ROLE, &r.instance_id) {
        return Err(Rejection::new(
            RejectKind::FailedPrecondition,
            "ClientException",
            super::deregister::revoked_agent_message(&r.instance_id),
        ));
    }
    let arn = state.scope.container_instance(&r.cluster, &r.instance_id);
    let registered = vec![
        Resource::integer("CPU", r.cpu),
        Resource::integer("MEMORY", r.memory),
        Resource::string_set(
            "PORTS",
            reserved_ports(&r.reserved_ports).iter().map(|p| p.to_string()).collect(),
        ),
        Resource::string_set("PORTS_UDP", vec![]),
    ];
    match state.instances.get_mut(&r.instance_id) {
        Some(rec) if rec.cluster == r.cluster => {
            rec.session = r.session;
            rec.last_heartbeat = r.now;
            rec.disconnected_at = None;
            let ci = &mut rec.instance;
            ci.attributes = merge_attributes(r.attributes, &rec.put_attributes);
            ci.registered_resources = registered;
            ci.version_info = r.version_info;
            ci.hostname = r.hostname;
            ci.agent_endpoint = r.agent_endpoint;
            ci.agent_connected = true;
            if ci.status == "INACTIVE" {
                ci.status = "ACTIVE".into();
            }
            ci.version += 1;
            // A session replaced by this one closes.
            state.touch_instance(&r.instance_id);
        }
        Some(rec) => {
            return Err(Rejection::invalid(format!(
                "Container instance {} is registered in cluster {}, not {}.",
                r.instance_id, rec.cluster, r.cluster
            )));
        }
        None => {
            let ci = ContainerInstance {
                container_instance_arn: arn,
                ec2_instance_id: r.instance_id.clone(),
                version: 1,
                version_info: r.version_info,
                status: "ACTIVE".into(),
                agent_connected: true,
                attributes: r.attributes,
                registered_resources: registered,
                registered_at: r.now,
                hostname: r.hostname,
                agent_endpoint: r.agent_endpoint,
                ..Default::default()
            };
            state.instances.insert(
                r.instance_id.clone(),
                InstanceRecord {
                    cluster: r.cluster,
                    instance: ci,
                    session: r.session,
                    put_attributes: Default::default(),
                    last_heartbeat: r.now,
                    disconnected_at: None,
                    draining_since: None,
                },
            );
        }
    }
    Ok(Applied { ids: vec![r.instance_id], ..Default::default() })
}

fn start_tasks(state: &mut State, tasks: Vec<Task>) -> ApplyResult {
    let mut out = Applied::default();
    for task in tasks {
        let fits = task.instance_id().and_then(|id| state.instances.get(id)).is_some_and(|rec| {
            let ci = &rec.instance;
            let need: Reservation = state.task_reservation(&task);
            let rem = state.remaining(ci);
            ci.status == "ACTIVE"
                && rem.cpu >= need.cpu
                && rem.memory >= need.memory
                && need.ports.iter().all(|p| !rem.used_ports.contains(p))
        });
        let exists = state.tasks.contains_key(task.id());
        if !fits || exists || state.taskdef_by_arn(&task.task_definition_arn).is_none() {
            out.rejected.push(task.id().to_string());
            continue;
        }
        out.ids.push(task.id().to_string());
        state.insert_task(task);
    }
    Ok(out)
}

fn stop_tasks(state: &mut State, s: StopTasks) -> ApplyResult {
    if let Some(missing) = s.task_ids.iter().find(|id| !state.tasks.contains_key(*id)) {
        return Err(Rejection::new(
            RejectKind::NotFound,
            "InvalidParameterException",
            format!("The referenced task was not found: {missing}."),
        ));
    }
    let mut out = Applied::default();
    for id in &s.task_ids {
        let Some(mut task) = state.task_mut(id) else {
            continue;
        };
        if task.desired_status == STOPPED {
            continue; // already stopping: the first reason stays
        }
        task.desired_status = STOPPED.into();
        task.stop_code = Some(s.stop_code.clone());
        task.stopped_reason = Some(s.reason.clone());
        task.stopping_at = Some(s.now);
        // A task that no agent has acknowledged yet stops at once.
        if task.container_instance_arn.is_none() {
            task.last_status = STOPPED.into();
            task.stopped_at = Some(s.now);
        }
        task.version += 1;
        out.ids.push(id.clone());
    }
    Ok(out)
}

/// Fold an agent's report into the task. Statuses only move forward; a stale or repeated report
/// changes nothing (and bumps no version).
fn report_status(
    state: &mut State,
    instance_id: &str,
    report: TaskStatusReport,
    now: Timestamp,
) -> ApplyResult {
    let Some(mut task) = state.task_mut(&report.task_id) else {
        return Ok(Applied::default());
    };
    if task.instance_id() != Some(instance_id) {
        return Err(Rejection::invalid(format!(
            "Task {} is not assigned to container instance {instance_id}.",
            report.task_id
        )));
    }
    let before = task.clone();
    if status_rank(&report.last_status) >= status_rank(&task.last_status) {
        if task.last_status != report.last_status {
            match report.last_status.as_str() {
                RUNNING => task.started_at = Some(now),
                STOPPED => {
                    task.stopped_at = Some(now);
                    task.execution_stopped_at = report.execution_stopped_at.or(Some(now));
                    if task.stopping_at.is_none() {
                        task.stopping_at = Some(now);
                    }
                }
                _ => {}
            }
            task.last_status = report.last_status.clone();
        }
        if report.last_status == STOPPED {
            task.desired_status = STOPPED.into();
            if task.stop_code.is_none() {
                task.stop_code = report.stop_code.clone();
                task.stopped_reason = report.stopped_reason.clone();
            }
        }
        // awsvpc: the agent's latest view of the task's interface (PRECREATED → ATTACHED →
        // DELETED); reports without one leave it as it is.
        if !report.attachments.is_empty() {
            task.attachments = report.attachments.clone();
        }
        task.pull_started_at = task.pull_started_at.or(report.pull_started_at);
        task.pull_stopped_at = task.pull_stopped_at.or(report.pull_stopped_at);
        for cr in &report.containers {
            if let Some(c) = task.containers.iter_mut().find(|c| c.name == cr.name) {
                merge_container(c, cr);
            }
        }
        if task.last_status == STOPPED {
            // Containers that never started (or were never reported) end with their task.
            for c in task.containers.iter_mut().filter(|c| c.last_status != STOPPED) {
                c.last_status = STOPPED.into();
            }
        }
        // The agent derives it from the essential containers with a health check, which the
        // containers alone do not tell; reports without it fall back to the containers.
        task.health_status =
            report.health_status.clone().unwrap_or_else(|| task_health(&task.containers));
    }
    if *task != before {
        task.version += 1;
        return Ok(Applied { ids: vec![report.task_id], ..Default::default() });
    }
    Ok(Applied::default())
}

fn merge_container(c: &mut Container, cr: &model::ContainerReport) {
    if status_rank_container(&cr.last_status) < status_rank_container(&c.last_status) {
        return;
    }
    c.last_status = cr.last_status.clone();
    if cr.runtime_id.is_some() {
        c.runtime_id = cr.runtime_id.clone();
    }
    if cr.exit_code.is_some() {
        c.exit_code = cr.exit_code;
    }
    if cr.reason.is_some() {
        c.reason = cr.reason.clone();
    }
    if !cr.network_bindings.is_empty() {
        c.network_bindings = cr.network_bindings.clone();
    }
    if !cr.network_interfaces.is_empty() {
        c.network_interfaces = cr.network_interfaces.clone();
    }
    if let Some(h) = cr.health_status.as_ref().filter(|h| !h.is_empty()) {
        c.health_status = h.clone();
    }
}

fn status_rank_container(s: &str) -> u8 {
    match s {
        "PENDING" => 1,
        "RUNNING" => 2,
        "STOPPED" => 3,
        _ => 0,
    }
}

/// Task health from its containers (ECS-NOTES §1.4.2: essential ones; the agent reports
/// `healthStatus` only for containers with a health check).
fn task_health(containers: &[Container]) -> String {
    if containers.iter().any(|c| c.health_status == "UNHEALTHY") {
        "UNHEALTHY".into()
    } else if !containers.is_empty() && containers.iter().all(|c| c.health_status == "HEALTHY") {
        "HEALTHY".into()
    } else {
        "UNKNOWN".into()
    }
}

/// Built-in attributes (`ecs.*`, `com.amazonaws.ecs.*`) don't count toward the custom limit.
fn is_custom(name: &str) -> bool {
    !(name.starts_with("ecs.") || name.starts_with("com.amazonaws.ecs."))
}

/// The agent's attributes plus those put through the API (the API's win on a name clash).
fn merge_attributes(
    agent: Vec<model::Attribute>,
    put: &std::collections::BTreeMap<String, Option<String>>,
) -> Vec<model::Attribute> {
    let mut all: std::collections::BTreeMap<String, Option<String>> =
        agent.into_iter().map(|a| (a.name, a.value)).collect();
    all.extend(put.iter().map(|(k, v)| (k.clone(), v.clone())));
    all.into_iter().map(|(name, value)| model::Attribute { name, value }).collect()
}

fn instance_not_found(id: &str) -> Rejection {
    Rejection::new(
        RejectKind::NotFound,
        "TargetNotFoundException",
        format!(
            "The specified target {id} could not be found. Verify the container instance id and cluster."
        ),
    )
}

fn put_attributes(state: &mut State, p: PutAttributes) -> ApplyResult {
    let rec = state
        .instances
        .get_mut(&p.instance_id)
        .ok_or_else(|| instance_not_found(&p.instance_id))?;
    let mut put = rec.put_attributes.clone();
    for a in &p.attributes {
        put.insert(a.name.clone(), a.value.clone());
    }
    let merged = merge_attributes(
        rec.instance
            .attributes
            .iter()
            .filter(|a| !rec.put_attributes.contains_key(&a.name))
            .cloned()
            .collect(),
        &put,
    );
    let custom = merged.iter().filter(|a| is_custom(&a.name)).count();
    if custom > MAX_CUSTOM_ATTRIBUTES {
        return Err(Rejection::new(
            RejectKind::InvalidParameter,
            "AttributeLimitExceededException",
            format!(
                "Container instance {} would have {custom} custom attributes; at most {MAX_CUSTOM_ATTRIBUTES} are allowed.",
                p.instance_id
            ),
        ));
    }
    rec.put_attributes = put;
    rec.instance.attributes = merged;
    rec.instance.version += 1;
    Ok(Applied { ids: vec![p.instance_id], ..Default::default() })
}

fn delete_attributes(state: &mut State, instance_id: &str, names: &[String]) -> ApplyResult {
    let rec =
        state.instances.get_mut(instance_id).ok_or_else(|| instance_not_found(instance_id))?;
    if let Some(missing) = names.iter().find(|n| !rec.put_attributes.contains_key(*n)) {
        return Err(Rejection::invalid(format!(
            "attribute {missing} of container instance {instance_id} was not put through the API; attributes the agent reports can only change on the agent."
        )));
    }
    for n in names {
        rec.put_attributes.remove(n);
        rec.instance.attributes.retain(|a| &a.name != n);
    }
    rec.instance.version += 1;
    Ok(Applied { ids: vec![instance_id.to_string()], ..Default::default() })
}
