//! The replicated state: plain data in ordered maps, identical on every replica that applied the
//! same log prefix. Serialized whole for snapshots. Derived values (counts, remaining resources)
//! are computed by `query`, never stored, so they cannot drift.

use berth_proto::model::{ArnScope, ContainerInstance, Service, Task, TaskDefinition, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub scope: ArnScope,
    pub clusters: BTreeMap<String, ClusterRecord>,
    /// Task definition families by name.
    pub families: BTreeMap<String, Family>,
    /// Container instances by id.
    pub instances: BTreeMap<String, InstanceRecord>,
    /// Services by `cluster/name`.
    pub services: BTreeMap<String, Service>,
    /// Tasks by id.
    pub tasks: BTreeMap<String, Task>,
    /// Raft index of the last applied command.
    pub applied_index: u64,
    /// Per service (`cluster/name`): the task definition of its last COMPLETED deployment, the
    /// circuit breaker's rollback target when no older deployment is left.
    #[serde(default)]
    pub completed_taskdefs: BTreeMap<String, String>,
    /// Where the event log stands (its events live in the controller's event store, not here).
    #[serde(default)]
    pub events: super::events::EventCursor,
    /// Lookups over `tasks` (derived, not serialized; see `index.rs`). Change tasks through
    /// [`State::insert_task`], [`State::task_mut`] and [`State::retain_tasks`] to keep it current.
    #[serde(skip)]
    pub index: super::index::TaskIndex,
    /// Cluster CA, join tokens, revoked node identities (`store/security.rs`).
    #[serde(default)]
    pub security: super::security::SecurityState,
    /// API tokens (hashed) and their roles (`store/acl.rs`).
    #[serde(default)]
    pub acl: super::acl::AclState,
    /// Secrets, encrypted with the cluster key (`store/secrets.rs`).
    #[serde(default)]
    pub secrets: super::secrets::SecretState,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    pub name: String,
    pub status: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Family {
    /// Revision numbers are never reused, even after deregistration.
    pub last_revision: u32,
    /// Shared, so that cloning the state (each periodic snapshot captures a clone, see
    /// `raft/node_snapshot.rs`) copies a pointer per revision instead of the definition.
    pub revisions: BTreeMap<u32, std::sync::Arc<TaskDefinition>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    pub cluster: String,
    pub instance: ContainerInstance,
    /// The agent session that registered last (chosen by the controller that accepted it). Only
    /// that session may mark the agent disconnected: an old session ending late on another
    /// controller changes nothing.
    #[serde(default)]
    pub session: String,
    /// Attributes put through the API (ECS PutAttributes); they survive the agent's
    /// re-registration, which replaces only the attributes the agent reports.
    #[serde(default)]
    pub put_attributes: std::collections::BTreeMap<String, Option<String>>,
    /// When the agent last showed life (registration or heartbeat), as stamped by the controller
    /// whose session received it. Node liveness (`orchestrator/liveness`) reads it.
    #[serde(default)]
    pub last_heartbeat: Timestamp,
    /// When the agent was marked disconnected (its session ended, or heartbeats stopped); `None`
    /// while connected. Its tasks are lost `lost_after` later.
    #[serde(default)]
    pub disconnected_at: Option<Timestamp>,
    /// When the instance last became DRAINING (`None` while ACTIVE): drain progress counts the
    /// services that had tasks on it from then on.
    #[serde(default)]
    pub draining_since: Option<Timestamp>,
}

impl Default for State {
    fn default() -> Self {
        Self::new(ArnScope::default())
    }
}

impl State {
    /// The initial state: the `default` cluster exists from the start.
    pub fn new(scope: ArnScope) -> State {
        let mut clusters = BTreeMap::new();
        clusters.insert(
            berth_proto::model::DEFAULT_CLUSTER.to_string(),
            ClusterRecord {
                name: berth_proto::model::DEFAULT_CLUSTER.into(),
                status: "ACTIVE".into(),
                created_at: Timestamp(0),
            },
        );
        State {
            scope,
            clusters,
            families: BTreeMap::new(),
            instances: BTreeMap::new(),
            services: BTreeMap::new(),
            tasks: BTreeMap::new(),
            applied_index: 0,
            completed_taskdefs: BTreeMap::new(),
            events: Default::default(),
            index: Default::default(),
            security: Default::default(),
            acl: Default::default(),
            secrets: Default::default(),
        }
    }

    /// Rebuilds the task index from the tasks (after a restore).
    pub fn rebuild_index(&mut self) {
        let families = &self.families;
        self.index = super::index::TaskIndex::build(&self.tasks, |t| reservation_in(families, t));
    }

    /// Adds or replaces a task, keeping the index current.
    pub fn insert_task(&mut self, task: Task) {
        let id = task.id().to_string();
        if let Some(old) = self.tasks.get(&id) {
            self.index.remove(old);
        }
        self.index.insert(&task);
        let families = &self.families;
        self.index.recount(&task, || reservation_in(families, &task));
        self.tasks.insert(id, task);
    }

    /// A task to change in place. Its placement (instance, cluster, group) must not change;
    /// the instance's change counter moves, so agent sessions look at it again, and when the
    /// guard drops, the index re-counts what the task reserves (it may have stopped).
    pub fn task_mut(&mut self, id: &str) -> Option<TaskMut<'_>> {
        let task = self.tasks.get_mut(id)?;
        if let Some(i) = task.instance_id() {
            self.index.touch(i);
        }
        Some(TaskMut { task, index: &mut self.index, families: &self.families })
    }

    /// Keeps the tasks `keep` accepts, keeping the index current.
    /// Records that instance `id`'s record changed (its session, connection or identity), so
    /// its agent session looks again (`store::signals`).
    pub fn touch_instance(&mut self, id: &str) {
        self.index.touch(id);
    }

    pub fn retain_tasks(&mut self, mut keep: impl FnMut(&Task) -> bool) {
        let index = &mut self.index;
        self.tasks.retain(|_, t| {
            let k = keep(t);
            if !k {
                index.remove(t);
            }
            k
        });
    }

    pub fn service_key(cluster: &str, name: &str) -> String {
        format!("{cluster}/{name}")
    }

    /// The task definition an ARN (`…:task-definition/family:rev`) names, if it exists.
    pub fn taskdef_by_arn(&self, arn: &str) -> Option<&TaskDefinition> {
        taskdef_in(&self.families, arn)
    }

    pub fn cluster_is_active(&self, name: &str) -> bool {
        self.clusters.get(name).is_some_and(|c| c.status == "ACTIVE")
    }
}

fn taskdef_in<'a>(families: &'a BTreeMap<String, Family>, arn: &str) -> Option<&'a TaskDefinition> {
    let tail = arn.rsplit('/').next()?;
    let (family, rev) = tail.rsplit_once(':')?;
    let rev: u32 = rev.parse().ok()?;
    families.get(family)?.revisions.get(&rev).map(|d| &**d)
}

/// What `task` reserves on its instance while it holds resources (nothing when its definition
/// is unknown).
fn reservation_in(families: &BTreeMap<String, Family>, task: &Task) -> super::query::Reservation {
    taskdef_in(families, &task.task_definition_arn)
        .map(super::query::Reservation::of)
        .unwrap_or_default()
}

/// A task being changed in place ([`State::task_mut`]); dropping it re-counts the task's
/// reservation in the index.
pub struct TaskMut<'a> {
    task: &'a mut Task,
    index: &'a mut super::index::TaskIndex,
    families: &'a BTreeMap<String, Family>,
}

impl std::ops::Deref for TaskMut<'_> {
    type Target = Task;
    fn deref(&self) -> &Task {
        self.task
    }
}

impl std::ops::DerefMut for TaskMut<'_> {
    fn deref_mut(&mut self) -> &mut Task {
        self.task
    }
}

impl Drop for TaskMut<'_> {
    fn drop(&mut self) {
        let families = self.families;
        let task = &*self.task;
        self.index.recount(task, || reservation_in(families, task));
    }
}

/// The cluster name inside a cluster-scoped ARN (`…:task/CLUSTER/id`, `…:cluster/CLUSTER`).
pub fn cluster_of_arn(arn: &str) -> &str {
    let path = arn.rsplit(':').next().unwrap_or(arn);
    let mut parts = path.split('/');
    match (parts.next(), parts.next()) {
        (Some("cluster"), Some(c)) => c,
        (Some(_), Some(c)) => c,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn cluster_of_arn_reads_the_cluster_segment() {
        let s = ArnScope::default();
        assert_eq!(cluster_of_arn(&s.task("prod", "abc")), "prod");
        assert_eq!(cluster_of_arn(&s.cluster("prod")), "prod");
        assert_eq!(cluster_of_arn(&s.service("prod", "web")), "prod");
    }
}
