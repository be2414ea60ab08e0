//! [`TaskIndex`]: lookup tables over `State::tasks` — task ids by container instance and by
//! service, a change counter per instance, and what the tasks holding resources reserve on each
//! instance — so that the per-instance and per-service queries (placement views, remaining
//! resources, assignments, the reconciler) cost the tasks they return, or nothing, instead of
//! a scan of every task.
//!
//! Derived data: never serialized (a snapshot holds the tasks only), rebuilt on restore
//! ([`TaskIndex::build`]), kept current by the `State` task methods that apply uses
//! (`insert_task`, `task_mut` — whose guard re-counts the task's reservation when the change
//! ends — and `retain_tasks`). It is a pure function of the tasks (and their immutable task
//! definitions), so
//! replicas that applied the same log have the same index; it never drives iteration order
//! (the id sets are ordered like `tasks`). State built by hand without those methods (tests)
//! leaves the index short of tasks; [`TaskIndex::covers`] notices that and the queries fall
//! back to a scan.

use super::query::Reservation;
use berth_proto::model::Task;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the tasks holding resources on one instance reserve, summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reserved {
    pub cpu: i64,
    pub memory: i64,
    /// Static host ports, with how many tasks hold each.
    pub ports: BTreeMap<u16, u32>,
}

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
    /// Instance id → what its tasks that hold resources reserve.
    reserved: HashMap<String, Reserved>,
    /// Task id → (instance id, reservation) of each task summed in `reserved`.
    holding: HashMap<String, (String, Reservation)>,
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
    /// The index of `tasks`; `reservation` tells what a task reserves (from its definition).
    pub fn build(
        tasks: &BTreeMap<String, Task>,
        reservation: impl Fn(&Task) -> Reservation,
    ) -> TaskIndex {
        let mut ix = TaskIndex::default();
        for t in tasks.values() {
            ix.insert(t);
            ix.recount(t, || reservation(t));
        }
        ix
    }

    /// Counts `t`'s reservation on its instance while it holds resources, and not once it does
    /// not (`reservation` is asked only when the task starts to count).
    pub fn recount(&mut self, t: &Task, reservation: impl FnOnce() -> Reservation) {
        let id = t.id();
        let holds = t.holds_resources() && t.instance_id().is_some();
        match (holds, self.holding.contains_key(id)) {
            (true, false) => {
                let instance = t.instance_id().unwrap_or_default().to_string();
                let r = reservation();
                let sum = self.reserved.entry(instance.clone()).or_default();
                sum.cpu += r.cpu;
                sum.memory += r.memory;
                for p in &r.ports {
                    *sum.ports.entry(*p).or_default() += 1;
                }
                self.holding.insert(id.to_string(), (instance, r));
            }
            (false, true) => self.release(id),
            _ => {}
        }
    }

    /// Stops counting task `id`'s reservation.
    fn release(&mut self, id: &str) {
        let Some((instance, r)) = self.holding.remove(id) else { return };
        if let Some(sum) = self.reserved.get_mut(&instance) {
            sum.cpu -= r.cpu;
            sum.memory -= r.memory;
            for p in &r.ports {
                if let Some(n) = sum.ports.get_mut(p) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        sum.ports.remove(p);
                    }
                }
            }
            if self.reserved.get(&instance).is_some_and(|s| *s == Reserved::default()) {
                self.reserved.remove(&instance);
            }
        }
    }

    /// What the tasks holding resources on an instance reserve (`None`: nothing).
    pub fn reserved_on(&self, instance_id: &str) -> Option<&Reserved> {
        self.reserved.get(instance_id)
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
        self.release(id);
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
        let mut ix = TaskIndex::build(&tasks, |_| Reservation::default());
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

    #[test]
    fn reservations_are_summed_per_instance_while_tasks_hold_resources() {
        let r = |cpu, ports: &[u16]| Reservation { cpu, memory: cpu * 2, ports: ports.to_vec() };
        let mut tasks = BTreeMap::new();
        for id in ["a", "b", "c"] {
            tasks.insert(id.to_string(), task(id, if id == "c" { "i2" } else { "i1" }, None));
        }
        let by_id = |t: &Task| match t.id() {
            "a" => r(100, &[80]),
            "b" => r(50, &[80, 443]),
            _ => r(10, &[]),
        };
        let mut ix = TaskIndex::build(&tasks, by_id);
        let i1 = ix.reserved_on("i1").cloned().expect("i1 holds");
        assert_eq!((i1.cpu, i1.memory), (150, 300));
        assert_eq!(i1.ports, BTreeMap::from([(80, 2), (443, 1)]));
        // b stops: its reservation goes; recounting again changes nothing.
        let mut b = tasks["b"].clone();
        b.last_status = "STOPPED".into();
        ix.recount(&b, || panic!("a stopped task is not asked for"));
        ix.recount(&b, || panic!("a stopped task is not asked for"));
        let i1 = ix.reserved_on("i1").cloned().expect("i1 holds");
        assert_eq!((i1.cpu, i1.ports.clone()), (100, BTreeMap::from([(80, 1)])));
        // Removing the last holder of i2 leaves nothing reserved there.
        ix.remove(&tasks["c"]);
        assert_eq!(ix.reserved_on("i2"), None);
    }
}
