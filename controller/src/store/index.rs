//! [`TaskIndex`]: lookup tables over `State::tasks` — task ids by container instance and by
//! service, and a change counter per instance — so that the per-instance and per-service
//! queries (placement views, assignments, the reconciler) cost the tasks they return instead of
//! a scan of every task.
//!
//! Derived data: never serialized (a snapshot holds the tasks only), rebuilt on restore
//! ([`TaskIndex::build`]), kept current by the `State` task methods that apply uses
//! (`insert_task`, `task_mut`, `retain_tasks`). It is a pure function of the tasks, so
//! replicas that applied the same log have the same index; it never drives iteration order
//! (the id sets are ordered like `tasks`). State built by hand without those methods (tests)
//! leaves the index short of tasks; [`TaskIndex::covers`] notices that and the queries fall
//! back to a scan.

use berth_proto::model::Task;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Default)]
pub struct TaskIndex {
    /// Instance id → ids of every task placed on it (stopped ones included until purged).
    by_instance: HashMap<String, BTreeSet<String>>,
    /// `cluster/name` → ids of every task of the service (stopped ones included).
    by_service: HashMap<String, BTreeSet<String>>,
    /// Instance id → how many times a task on it was added or handed out for change.
    instance_changes: HashMap<String, u64>,
    /// Instances touched since the last [`TaskIndex::take_touched`] (repeats possible): the
    /// state machine signals their sessions after each apply (`store::signals`).
    touched: Vec<String>,
    /// Tasks indexed.
    len: usize,
}

/// Derived from the tasks; two states with equal tasks have equal indexes.
impl PartialEq for TaskIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The `by_service` key of a task, when it belongs to a service.
fn service_key(t: &Task) -> Option<String> {
    let name = t.service_name()?;
    Some(super::State::service_key(super::state::cluster_of_arn(&t.cluster_arn), name))
}

impl TaskIndex {
    /// The index of `tasks`.
    pub fn build(tasks: &BTreeMap<String, Task>) -> TaskIndex {
        let mut ix = TaskIndex::default();
        for t in tasks.values() {
            ix.insert(t);
        }
        ix
    }

    /// True when every one of `tasks_len` tasks is indexed (the index can answer).
    pub fn covers(&self, tasks_len: usize) -> bool {
        self.len == tasks_len
    }

    /// Adds a task not indexed yet.
    pub fn insert(&mut self, t: &Task) {
        let id = t.id().to_string();
        if let Some(i) = t.instance_id() {
            self.by_instance.entry(i.to_string()).or_default().insert(id.clone());
            self.touch(i);
        }
        if let Some(k) = service_key(t) {
            self.by_service.entry(k).or_default().insert(id);
        }
        self.len += 1;
    }

    /// Removes an indexed task.
    pub fn remove(&mut self, t: &Task) {
        let id = t.id();
        if let Some(i) = t.instance_id() {
            if let Some(set) = self.by_instance.get_mut(i) {
                set.remove(id);
                if set.is_empty() {
                    self.by_instance.remove(i);
                }
            }
            self.touch(i);
        }
        if let Some(k) = service_key(t)
            && let Some(set) = self.by_service.get_mut(&k)
        {
            set.remove(id);
            if set.is_empty() {
                self.by_service.remove(&k);
            }
        }
        self.len = self.len.saturating_sub(1);
    }

    /// Records that a task on instance `instance_id` (may have) changed.
    pub fn touch(&mut self, instance_id: &str) {
        match self.instance_changes.get_mut(instance_id) {
            Some(n) => *n += 1,
            None => {
                self.instance_changes.insert(instance_id.to_string(), 1);
            }
        }
        if self.touched.last().map(String::as_str) != Some(instance_id) {
            self.touched.push(instance_id.to_string());
        }
    }

    /// The instances touched since the last call, each once, in first-touch order.
    pub fn take_touched(&mut self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = std::mem::take(&mut self.touched);
        out.retain(|id| seen.insert(id.clone()));
        out
    }

    /// The change counter of an instance: equal values mean no task on it changed in between.
    pub fn instance_changes(&self, instance_id: &str) -> u64 {
        self.instance_changes.get(instance_id).copied().unwrap_or(0)
    }

    /// Ids of the tasks on an instance, in id order.
    pub fn on_instance(&self, instance_id: &str) -> impl Iterator<Item = &String> + '_ {
        self.by_instance.get(instance_id).into_iter().flatten()
    }

    /// Ids of the tasks of a service (`cluster/name`), in id order.
    pub fn of_service(&self, key: &str) -> impl Iterator<Item = &String> + '_ {
        self.by_service.get(key).into_iter().flatten()
    }

    /// How many tasks service `name` in `cluster` has (stopped ones included).
    pub fn of_service_len(&self, cluster: &str, name: &str) -> usize {
        self.by_service.get(&super::State::service_key(cluster, name)).map_or(0, |s| s.len())
    }

    /// [`TaskIndex::of_service`] of service `name` in `cluster`.
    pub fn of_service_tasks(
        &self,
        cluster: &str,
        name: &str,
    ) -> impl Iterator<Item = &String> + '_ {
        self.by_service.get(&super::State::service_key(cluster, name)).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::ArnScope;

    fn task(id: &str, instance: &str, service: Option<&str>) -> Task {
        let scope = ArnScope::default();
        Task {
            task_arn: scope.task("default", id),
            cluster_arn: scope.cluster("default"),
            container_instance_arn: Some(scope.container_instance("default", instance)),
            group: service.map(|s| format!("service:{s}")),
            ..Default::default()
        }
    }

    #[test]
    fn lookups_follow_inserts_and_removes() {
        let mut tasks = BTreeMap::new();
        for (id, i, s) in [("b", "i1", Some("web")), ("a", "i1", None), ("c", "i2", Some("web"))] {
            tasks.insert(id.to_string(), task(id, i, s));
        }
        let mut ix = TaskIndex::build(&tasks);
        assert!(ix.covers(3));
        assert_eq!(ix.on_instance("i1").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(ix.of_service("default/web").collect::<Vec<_>>(), ["b", "c"]);
        let before = ix.instance_changes("i2");
        ix.remove(&tasks["c"]);
        assert_eq!(ix.of_service("default/web").collect::<Vec<_>>(), ["b"]);
        assert_eq!(ix.on_instance("i2").count(), 0);
        assert!(ix.instance_changes("i2") > before);
        assert!(!ix.covers(3));
    }
}
