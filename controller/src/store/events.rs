//! Events derived from a command's effect, in the ECS EventBridge shapes (ECS-NOTES §5).
//!
//! Part of apply, so deterministic: [`Before::of`] notes what a command may touch (the versions of
//! its tasks and container instances, the deployments of its service, its service messages); after
//! the command applied, [`derive`] compares and builds one event per changed object, numbered
//! from the state's [`EventCursor`]. An event exists exactly when its change does: both come from
//! applying the same log entry, on every replica alike.
//!
//! * `ECS Task State Change` — a task whose `version` grew (detail: the task, ISO times,
//!   `updatedAt`).
//! * `ECS Container Instance State Change` — an instance whose `version` grew; a task placed on
//!   it or stopped off it changes its remaining resources, which grows its version too (ECS does
//!   the same).
//! * `ECS Deployment State Change` — a deployment whose rollout state changed, or which became
//!   PRIMARY again (a rollback).
//! * `ECS Service Action` — the service messages ECS also sends as actions (steady state,
//!   placement failure, start impaired, tasks stopped).

use super::command::Command;
use super::state::{State, cluster_of_arn};
use berth_proto::model::event::{self, ClusterEvent};
use berth_proto::model::{Service, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Where the event log stands, replicated with the state (and kept in snapshots): the log holds
/// indexes `first_index..next_index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCursor {
    /// The index the next event gets (the first event is 1).
    pub next_index: u64,
    /// The oldest index retention keeps (`TrimEvents` moves it).
    pub first_index: u64,
    /// The time of the latest stamped command: the time of events from commands without one.
    pub last_time: Timestamp,
    /// This log's identity, fixed by the first command ever applied (a hash of its bytes, which
    /// hold a time and random ids): event ids differ between clusters and data dirs.
    #[serde(default)]
    pub log_id: String,
}

impl Default for EventCursor {
    fn default() -> Self {
        EventCursor {
            next_index: 1,
            first_index: 1,
            last_time: Timestamp(0),
            log_id: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct TaskMark {
    version: u64,
    holds: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct DeploymentMark {
    id: String,
    status: String,
    rollout: Option<String>,
}

/// What a command may change, noted before it applies.
#[derive(Debug, Default)]
pub struct Before {
    tasks: Vec<(String, Option<TaskMark>)>,
    instances: Vec<(String, Option<u64>)>,
    service: Option<(String, Vec<DeploymentMark>)>,
    messages: Vec<String>,
    time: Option<Timestamp>,
}

impl Before {
    pub fn of(state: &State, cmd: &Command) -> Before {
        let mut b = Before { time: cmd.time(), ..Before::default() };
        let note_tasks = |b: &mut Before, ids: &mut dyn Iterator<Item = &str>| {
            for id in ids {
                let mark = state
                    .tasks
                    .get(id)
                    .map(|t| TaskMark { version: t.version, holds: t.holds_resources() });
                b.tasks.push((id.to_string(), mark));
            }
        };
        let note_instance = |b: &mut Before, id: &str| {
            let version = state.instances.get(id).map(|r| r.instance.version);
            b.instances.push((id.to_string(), version));
        };
        let note_service = |b: &mut Before, cluster: &str, name: &str| {
            let key = State::service_key(cluster, name);
            let marks = state.services.get(&key).map(deployment_marks).unwrap_or_default();
            b.service = Some((key, marks));
        };
        match cmd {
            Command::StartTasks { tasks, .. } => {
                note_tasks(&mut b, &mut tasks.iter().map(|t| t.id()))
            }
            Command::StopTasks(s) => note_tasks(&mut b, &mut s.task_ids.iter().map(String::as_str)),
            Command::ReportTaskStatus { report, .. } => {
                note_tasks(&mut b, &mut std::iter::once(report.task_id.as_str()))
            }
            Command::ReportTaskStatuses { reports, .. } => {
                // A task reported twice in one batch gets one event, of its final state.
                let mut seen = std::collections::HashSet::new();
                let ids = reports.iter().map(|r| r.report.task_id.as_str());
                note_tasks(&mut b, &mut ids.filter(|id| seen.insert(*id)))
            }
            Command::MarkTasksLost(m) => {
                note_tasks(&mut b, &mut m.task_ids.iter().map(String::as_str));
                note_instance(&mut b, &m.instance_id);
            }
            Command::DeregisterInstance(d) => {
                let ids: Vec<String> = state
                    .tasks_on_instance(&d.instance_id)
                    .map(|t| t.id().to_string())
                    .collect();
                note_tasks(&mut b, &mut ids.iter().map(String::as_str));
                note_instance(&mut b, &d.instance_id);
            }
            Command::RegisterInstance(r) => note_instance(&mut b, &r.instance_id),
            Command::SetAgentConnected { instance_id, .. }
            | Command::SetInstanceStatus { instance_id, .. }
            | Command::DeleteAttributes { instance_id, .. }
            | Command::MarkAgentDisconnected { instance_id, .. } => {
                note_instance(&mut b, instance_id)
            }
            Command::PutAttributes(p) => note_instance(&mut b, &p.instance_id),
            Command::CreateService(c) => note_service(&mut b, &c.cluster, &c.name),
            Command::UpdateService(u) => note_service(&mut b, &u.cluster, &u.name),
            Command::DeleteService { cluster, name, .. } => note_service(&mut b, cluster, name),
            Command::ServiceProgress(p) => {
                note_service(&mut b, &p.cluster, &p.name);
                b.messages = p.events.iter().map(|(_, m)| m.clone()).collect();
            }
            Command::CreateCluster { .. }
            | Command::DeleteCluster { .. }
            | Command::RegisterTaskDefinition { .. }
            | Command::DeregisterTaskDefinition { .. }
            | Command::PurgeStoppedTasks { .. }
            | Command::RecordHeartbeats { .. }
            | Command::TrimEvents { .. }
            // Security objects make no ECS events (and must never carry secret material into one).
            | Command::Security(_)
            | Command::Acl(_)
            | Command::Secret(_)
            // Telemetry: no version moves, so no event (`store/stats.rs`).
            | Command::RecordContainerStats { .. }
            | Command::RecordContainerStatsBatch { .. } => {}
        }
        b
    }
}

fn deployment_marks(svc: &Service) -> Vec<DeploymentMark> {
    svc.deployments
        .iter()
        .map(|d| DeploymentMark {
            id: d.id.clone(),
            status: d.status.clone(),
            rollout: d.rollout_state.clone(),
        })
        .collect()
}

/// What an event's `detail` is made from: a copy of the changed object, rendered to JSON later
/// ([`EventBatch::render`], off the state's lock), or a detail already built.
#[derive(Debug, Clone)]
pub enum Draft {
    /// `ECS Task State Change`: the task as applied.
    Task(Box<berth_proto::model::Task>),
    /// `ECS Container Instance State Change`: the instance as DescribeContainerInstances shows
    /// it, and its cluster's ARN.
    Instance(Box<berth_proto::model::ContainerInstance>, String),
    /// A small detail built at once (deployments, service actions).
    Ready(Value),
}

/// The events of one applied command, numbered and stamped while the state is locked; their
/// JSON is built by [`EventBatch::render`], a pure function of the batch (so every replica
/// renders the same events), wherever the caller likes — `events::EventLog` does it on its
/// writer thread, not on the Raft loop.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    /// `scope prefix/log id`: event ids are UUIDs (v5) of it and the index.
    id_scope: String,
    account: String,
    region: String,
    time: Timestamp,
    /// `(index, detail-type, resources, detail)`, in index order.
    drafts: Vec<(u64, String, Vec<String>, Draft)>,
}

impl EventBatch {
    pub fn is_empty(&self) -> bool {
        self.drafts.is_empty()
    }

    pub fn len(&self) -> usize {
        self.drafts.len()
    }

    /// The events, in index order.
    pub fn render(self) -> Vec<ClusterEvent> {
        let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, self.id_scope.as_bytes());
        let time = self.time;
        let envelope_time = event::iso8601_seconds(time);
        self.drafts
            .into_iter()
            .map(|(index, detail_type, resources, draft)| {
                let detail = match draft {
                    Draft::Task(task) => task_detail(&task, time),
                    Draft::Instance(view, cluster_arn) => instance_detail(&view, cluster_arn, time),
                    Draft::Ready(v) => v,
                };
                ClusterEvent {
                    version: "0".into(),
                    id: uuid::Uuid::new_v5(&namespace, &index.to_be_bytes()).to_string(),
                    detail_type,
                    source: "aws.ecs".into(),
                    account: self.account.clone(),
                    time: envelope_time.clone(),
                    region: self.region.clone(),
                    resources,
                    detail,
                    index,
                }
            })
            .collect()
    }
}

/// What the event log needs to know about a task event without parsing its JSON (metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFacts {
    pub task_arn: String,
    pub version: u64,
    pub last_status: String,
}

/// One event as [`EventBatch::render_json`] gives it: the JSON text the log stores and serves.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedEvent {
    pub index: u64,
    pub detail_type: String,
    pub json: String,
    /// For `ECS Task State Change` events.
    pub task: Option<TaskFacts>,
}

/// The envelope in [`ClusterEvent`]'s field order, borrowing; `detail` serialized in place.
#[derive(Serialize)]
struct Envelope<'a> {
    version: &'a str,
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    source: &'a str,
    account: &'a str,
    time: &'a str,
    region: &'a str,
    resources: &'a [String],
    detail: DetailOut<'a>,
    index: u64,
}

/// A task event's detail: the task with ISO times, then `updatedAt` (as [`task_detail`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskDetailOut<'a> {
    #[serde(flatten)]
    task: berth_proto::model::time::IsoTimes<'a, berth_proto::model::Task>,
    updated_at: &'a str,
}

/// An instance event's detail (as [`instance_detail`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceDetailOut<'a> {
    #[serde(flatten)]
    instance: berth_proto::model::time::IsoTimes<'a, berth_proto::model::ContainerInstance>,
    cluster_arn: &'a str,
    updated_at: &'a str,
}

impl EventBatch {
    /// The events as JSON text, the same text as `serde_json::to_string` of each of
    /// [`EventBatch::render`]'s events, written straight from the drafts (no `Value` tree built
    /// and dropped per event: the event log's writer spent most of its time there).
    pub fn render_json(self) -> Vec<RenderedEvent> {
        let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, self.id_scope.as_bytes());
        let envelope_time = event::iso8601_seconds(self.time);
        let updated_at = event::iso8601_millis(self.time);
        let mut out = Vec::with_capacity(self.drafts.len());
        for (index, detail_type, resources, draft) in &self.drafts {
            let envelope = |detail| Envelope {
                version: "0",
                id: uuid::Uuid::new_v5(&namespace, &index.to_be_bytes()).to_string(),
                detail_type,
                source: "aws.ecs",
                account: &self.account,
                time: &envelope_time,
                region: &self.region,
                resources,
                detail,
                index: *index,
            };
            let (json, task) = match draft {
                Draft::Task(task) => {
                    let detail = DetailOut::Task(TaskDetailOut {
                        task: berth_proto::model::time::IsoTimes(task),
                        updated_at: &updated_at,
                    });
                    let facts = TaskFacts {
                        task_arn: task.task_arn.clone(),
                        version: task.version,
                        last_status: task.last_status.clone(),
                    };
                    (serde_json::to_string(&envelope(detail)), Some(facts))
                }
                Draft::Instance(view, cluster_arn) => {
                    let detail = DetailOut::Instance(InstanceDetailOut {
                        instance: berth_proto::model::time::IsoTimes(view),
                        cluster_arn,
                        updated_at: &updated_at,
                    });
                    (serde_json::to_string(&envelope(detail)), None)
                }
                Draft::Ready(v) => (serde_json::to_string(&envelope(DetailOut::Ready(v))), None),
            };
            out.push(RenderedEvent {
                index: *index,
                detail_type: detail_type.clone(),
                json: json.unwrap_or_default(),
                task,
            });
        }
        out
    }
}

/// The three kinds of detail, serialized as the one they hold.
#[derive(Serialize)]
#[serde(untagged)]
enum DetailOut<'a> {
    Task(TaskDetailOut<'a>),
    Instance(InstanceDetailOut<'a>),
    Ready(&'a Value),
}

/// The events of an applied command (in order: tasks, instances, deployments, service actions),
/// numbered from `state.events`, which moves past them. Grows the version of each instance whose
/// remaining resources changed.
pub fn derive(state: &mut State, before: Before) -> Vec<ClusterEvent> {
    derive_batch(state, before).render()
}

/// [`derive`], leaving the JSON to [`EventBatch::render`]: all that needs the state is done here.
pub fn derive_batch(state: &mut State, before: Before) -> EventBatch {
    let time = before.time.unwrap_or(state.events.last_time).max(state.events.last_time);
    state.events.last_time = time;
    let mut out: Vec<(String, Vec<String>, Draft)> = Vec::new();

    let mut resources_changed: BTreeSet<String> = BTreeSet::new();
    for (id, mark) in &before.tasks {
        let Some(task) = state.tasks.get(id) else { continue };
        if mark.is_some_and(|m| m.version == task.version) {
            continue;
        }
        if mark.is_some_and(|m| m.holds) != task.holds_resources()
            && let Some(instance) = task.instance_id()
        {
            resources_changed.insert(instance.to_string());
        }
        out.push((
            event::TASK_STATE_CHANGE.into(),
            vec![task.task_arn.clone()],
            Draft::Task(Box::new(task.clone())),
        ));
    }

    let mut instances: Vec<(String, Option<u64>)> = before.instances.clone();
    for id in &resources_changed {
        if !instances.iter().any(|(i, _)| i == id) {
            let version = state.instances.get(id).map(|r| r.instance.version);
            instances.push((id.clone(), version));
        }
    }
    for (id, version) in &instances {
        let Some(rec) = state.instances.get_mut(id) else { continue };
        if *version == Some(rec.instance.version) {
            // Unchanged by the command itself: a change of remaining resources still is one.
            if !resources_changed.contains(id) {
                continue;
            }
            rec.instance.version += 1;
        }
        let Some(view) = state.instance_view(id) else { continue };
        let cluster_arn = state.scope.cluster(cluster_of_arn(&view.container_instance_arn));
        out.push((
            event::INSTANCE_STATE_CHANGE.into(),
            vec![view.container_instance_arn.clone()],
            Draft::Instance(Box::new(view), cluster_arn),
        ));
    }

    if let Some((key, marks)) = &before.service
        && let Some(svc) = state.services.get(key)
    {
        for d in &svc.deployments {
            let was = marks.iter().find(|m| m.id == d.id);
            let rollout_changed = was.is_none_or(|m| m.rollout != d.rollout_state);
            let became_primary =
                was.is_some_and(|m| m.status != "PRIMARY") && d.status == "PRIMARY";
            let Some(rollout) = d.rollout_state.as_deref() else { continue };
            if !(rollout_changed || became_primary && rollout == "IN_PROGRESS") {
                continue;
            }
            let (event_type, event_name) = match rollout {
                "COMPLETED" => ("INFO", "SERVICE_DEPLOYMENT_COMPLETED"),
                "FAILED" => ("ERROR", "SERVICE_DEPLOYMENT_FAILED"),
                _ => ("INFO", "SERVICE_DEPLOYMENT_IN_PROGRESS"),
            };
            let reason = d
                .rollout_state_reason
                .clone()
                .unwrap_or_else(|| format!("ECS deployment {} {}.", d.id, rollout.to_lowercase()));
            out.push((
                event::DEPLOYMENT_STATE_CHANGE.into(),
                vec![svc.service_arn.clone()],
                Draft::Ready(json!({
                    "eventType": event_type,
                    "eventName": event_name,
                    "deploymentId": d.id,
                    "clusterArn": svc.cluster_arn,
                    "updatedAt": event::iso8601_millis(time),
                    "reason": reason,
                })),
            ));
        }
        for message in &before.messages {
            if let Some(detail) = service_action(state, svc, message, time) {
                let resources = vec![svc.service_arn.clone()];
                out.push((event::SERVICE_ACTION.into(), resources, Draft::Ready(detail)));
            }
        }
    }

    let drafts = out
        .into_iter()
        .map(|(detail_type, resources, draft)| {
            let index = state.events.next_index;
            state.events.next_index += 1;
            (index, detail_type, resources, draft)
        })
        .collect();
    EventBatch {
        id_scope: format!("{}/{}", state.scope.prefix(), state.events.log_id),
        account: state.scope.account.clone(),
        region: state.scope.region.clone(),
        time,
        drafts,
    }
}

/// Fixes the log's identity from the first command applied (see [`EventCursor::log_id`]).
pub fn identify_log(state: &mut State, command: &[u8]) {
    if state.events.log_id.is_empty() {
        state.events.log_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, command).to_string();
    }
}

// Event ids: a UUID (v5) fixed by the log's identity, the scope and the event's index — the
// same on every replica, different in another cluster (`EventBatch::render`).

/// The DescribeTasks task with ISO-8601 times, `updatedAt` and (already there) `version`.
fn task_detail(task: &berth_proto::model::Task, time: Timestamp) -> Value {
    let mut detail = timestamps_to_iso(serde_json::to_value(task).unwrap_or_default());
    detail["updatedAt"] = json!(event::iso8601_millis(time));
    detail
}

/// The DescribeContainerInstances instance with ISO-8601 times, its cluster and `updatedAt`.
fn instance_detail(
    view: &berth_proto::model::ContainerInstance,
    cluster_arn: String,
    time: Timestamp,
) -> Value {
    let mut detail = timestamps_to_iso(serde_json::to_value(view).unwrap_or_default());
    detail["clusterArn"] = json!(cluster_arn);
    detail["updatedAt"] = json!(event::iso8601_millis(time));
    detail
}

/// Top-level `…At` fields (epoch seconds in the API shape) as ISO-8601 strings, as events show.
fn timestamps_to_iso(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        for (key, value) in map.iter_mut() {
            if key.ends_with("At")
                && let Some(secs) = value.as_f64()
            {
                *value = json!(event::iso8601_millis(Timestamp((secs * 1000.0).round() as i64)));
            }
        }
    }
    v
}

/// The `ECS Service Action` a service message stands for, if ECS sends one for it.
fn service_action(state: &State, svc: &Service, message: &str, time: Timestamp) -> Option<Value> {
    let (event_type, event_name) = if message.ends_with("has reached a steady state.") {
        ("INFO", "SERVICE_STEADY_STATE")
    } else if message.contains("was unable to place a task") {
        ("ERROR", "SERVICE_TASK_PLACEMENT_FAILURE")
    } else if message.ends_with("is unable to consistently start tasks successfully.") {
        ("WARN", "SERVICE_TASK_START_IMPAIRED")
    } else if message.contains(" has stopped ") && message.contains(" running tasks") {
        ("INFO", "TASKS_STOPPED")
    } else {
        return None;
    };
    let mut detail = json!({
        "eventType": event_type,
        "eventName": event_name,
        "clusterArn": svc.cluster_arn,
        "createdAt": event::iso8601_millis(time),
    });
    if event_name == "SERVICE_TASK_PLACEMENT_FAILURE" {
        detail["reason"] = json!(placement_reason(message));
        if let Some(id) = message
            .split("closest matching container-instance ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            let cluster = cluster_of_arn(&svc.cluster_arn);
            detail["containerInstanceArns"] = json!([state.scope.container_instance(cluster, id)]);
        }
        detail["capacityProviderArns"] = json!([]);
    }
    Some(detail)
}

/// ECS's short reason for a placement failure (`RESOURCE:CPU`, …), read back from the sentence
/// the scheduler's closest instance completes (`berth_scheduler::filter`'s wording).
fn placement_reason(message: &str) -> &'static str {
    const BY_WORDING: [(&str, &str); 6] = [
        ("insufficient CPU", "RESOURCE:CPU"),
        ("insufficient memory", "RESOURCE:MEMORY"),
        ("port", "RESOURCE:PORTS"),
        ("is not ACTIVE", "INACTIVE"),
        ("agent connected", "AGENT"),
        ("No container instances were found", "No Container Instances were found in your cluster."),
    ];
    BY_WORDING.iter().find(|(w, _)| message.contains(w)).map(|(_, r)| *r).unwrap_or("ATTRIBUTE")
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
