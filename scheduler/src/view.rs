//! What the scheduler sees: the caller's snapshot types and the working copy a pass mutates.
//!
//! * [`InstanceView`] / [`TaskRequest`] are the inputs the controller builds from its store.
//! * [`ClusterState`] is a private, id-sorted copy of the snapshot. A pass (placement or victim
//!   choice) records each decision in it (`add_task` / `remove_task`), so later decisions of
//!   the same batch see earlier ones: spread counts them, binpack sees the smaller remainder,
//!   and the ports filter sees the newly reserved host ports.
//! * For `spread(attribute:…)`, each attribute's values are interned once per pass and the task
//!   counts per (attribute, group, value) computed once, then kept up to date incrementally, so a
//!   batch costs O(tasks × instances) with array lookups, not O(tasks × instances²).
//!
//! Nothing here decides anything; filters and strategies read from it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One container instance as the scheduler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceView {
    /// Container instance id (unique in a snapshot; the plan refers to it).
    pub id: String,
    /// Status is ACTIVE. DRAINING and INACTIVE instances are `false` and get no new tasks.
    pub active: bool,
    /// The agent holds a live session with the controller.
    pub agent_connected: bool,
    /// Built-in and custom attributes (`ecs.availability-zone`, …); value-less ones map to "".
    pub attributes: BTreeMap<String, String>,
    /// CPU units still unreserved.
    pub remaining_cpu: i64,
    /// MiB still unreserved.
    pub remaining_memory: i64,
    /// Host ports taken: the agent's reserved ports plus static host ports of tasks on it.
    pub used_ports: BTreeSet<u16>,
    /// Non-stopped tasks per task group (`service:web`, `family:nginx`).
    pub tasks_by_group: BTreeMap<String, u32>,
    /// When the instance registered, Unix epoch milliseconds (UTC): the `registeredAt` subject.
    pub registered_at_millis: i64,
    /// Non-stopped tasks on the instance, all groups: the `runningTasksCount` subject.
    /// Placing a task of the batch adds one.
    pub running_tasks_count: u32,
    /// The agent's version (`1.14.5`; an empty or unparsable one matches no version comparison):
    /// the `agentVersion` subject.
    pub agent_version: String,
}

impl InstanceView {
    /// Non-stopped tasks of `group` on this instance.
    pub fn group_count(&self, group: &str) -> u32 {
        self.tasks_by_group.get(group).copied().unwrap_or(0)
    }
}

/// One task to place. `cpu` and `memory` are what placement reserves (memory is the task's
/// `memoryReservation` if set, else `memory` — ECS-NOTES §2.7; the controller computes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskRequest {
    /// Task group: `service:<name>` or `family:<family>` or a RunTask `group`.
    pub group: String,
    pub cpu: i64,
    pub memory: i64,
    /// Static host ports the task binds (dynamic ports are not listed).
    pub static_ports: Vec<u16>,
}

/// One attribute's values, interned per pass, with per-group task counts by value.
#[derive(Debug)]
struct AttributeIndex {
    /// For each instance (same order as `ClusterState::instances`), its value's id.
    value_of: Vec<Option<usize>>,
    /// group → value id → tasks of the group on instances with that value.
    by_group: HashMap<String, Vec<i64>>,
    values: usize,
}

/// The working copy of a snapshot during one pass. Instances are sorted by id, so a plan depends
/// on the *set* of instances, not on the order the caller listed them in.
#[derive(Debug)]
pub(crate) struct ClusterState {
    instances: Vec<InstanceView>,
    /// attribute name → its index; built on first use, then updated by `add_task`/`remove_task`.
    attribute_indexes: RefCell<HashMap<String, AttributeIndex>>,
}

impl ClusterState {
    pub(crate) fn new(instances: impl IntoIterator<Item = InstanceView>) -> Self {
        let mut instances: Vec<InstanceView> = instances.into_iter().collect();
        // Stable: duplicate ids (a caller bug) keep their relative order and are treated as
        // separate instances rather than panicking.
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Self { instances, attribute_indexes: RefCell::new(HashMap::new()) }
    }

    pub(crate) fn len(&self) -> usize {
        self.instances.len()
    }

    pub(crate) fn get(&self, i: usize) -> &InstanceView {
        &self.instances[i]
    }

    pub(crate) fn instances(&self) -> &[InstanceView] {
        &self.instances
    }

    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.instances.binary_search_by(|inst| inst.id.as_str().cmp(id)).ok()
    }

    /// For each instance in `indices`: tasks of `group` on all instances sharing its value of
    /// attribute `name`, or `None` when it lacks the attribute. Runs for every candidate of every
    /// task, so the hot path is two vector lookups per instance (no hashing of values).
    pub(crate) fn attribute_loads(
        &self,
        name: &str,
        group: &str,
        indices: &[usize],
    ) -> Vec<Option<i64>> {
        let mut indexes = self.attribute_indexes.borrow_mut();
        if !indexes.contains_key(name) {
            indexes.insert(name.to_owned(), self.index_attribute(name));
        }
        let index = indexes.get_mut(name).expect("inserted above");
        if !index.by_group.contains_key(group) {
            let mut counts = vec![0; index.values];
            for (inst, value) in self.instances.iter().zip(&index.value_of) {
                if let Some(v) = value {
                    counts[*v] += i64::from(inst.group_count(group));
                }
            }
            index.by_group.insert(group.to_owned(), counts);
        }
        let counts = &index.by_group[group];
        indices.iter().map(|&i| index.value_of[i].map(|v| counts[v])).collect()
    }

    fn index_attribute(&self, name: &str) -> AttributeIndex {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let value_of = self
            .instances
            .iter()
            .map(|inst| {
                let value = inst.attributes.get(name)?;
                let next = ids.len();
                Some(*ids.entry(value.as_str()).or_insert(next))
            })
            .collect();
        AttributeIndex { value_of, by_group: HashMap::new(), values: ids.len() }
    }

    /// Record that `task` now runs on instance `i`.
    pub(crate) fn add_task(&mut self, i: usize, task: &TaskRequest) {
        let inst = &mut self.instances[i];
        inst.remaining_cpu = inst.remaining_cpu.saturating_sub(task.cpu);
        inst.remaining_memory = inst.remaining_memory.saturating_sub(task.memory);
        inst.used_ports.extend(task.static_ports.iter().copied());
        *inst.tasks_by_group.entry(task.group.clone()).or_insert(0) += 1;
        inst.running_tasks_count = inst.running_tasks_count.saturating_add(1);
        self.shift_value_counts(i, &task.group, 1);
    }

    /// Record that a task of `group` holding `cpu`/`memory` no longer runs on instance `i`.
    /// (Its host ports are not released: victim choice never needs them.)
    pub(crate) fn remove_task(&mut self, i: usize, group: &str, cpu: i64, memory: i64) {
        let inst = &mut self.instances[i];
        inst.remaining_cpu = inst.remaining_cpu.saturating_add(cpu);
        inst.remaining_memory = inst.remaining_memory.saturating_add(memory);
        if let Some(n) = inst.tasks_by_group.get_mut(group) {
            *n = n.saturating_sub(1);
        }
        inst.running_tasks_count = inst.running_tasks_count.saturating_sub(1);
        self.shift_value_counts(i, group, -1);
    }

    /// Make sure instance `i` counts at least `n` tasks of `group` (the victim pass uses this
    /// when the caller's counts lag behind the candidate list).
    pub(crate) fn ensure_group_count(&mut self, i: usize, group: &str, n: u32) {
        let entry = self.instances[i].tasks_by_group.entry(group.to_owned()).or_insert(0);
        *entry = (*entry).max(n);
        // Counts changed outside add/remove: drop cached aggregates for this group.
        for index in self.attribute_indexes.get_mut().values_mut() {
            index.by_group.remove(group);
        }
    }

    fn shift_value_counts(&mut self, i: usize, group: &str, delta: i64) {
        for index in self.attribute_indexes.get_mut().values_mut() {
            if let (Some(v), Some(counts)) = (index.value_of[i], index.by_group.get_mut(group)) {
                counts[v] += delta;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, az: Option<&str>, web: u32) -> InstanceView {
        let mut v = InstanceView {
            id: id.into(),
            active: true,
            agent_connected: true,
            ..Default::default()
        };
        if let Some(az) = az {
            v.attributes.insert("az".into(), az.into());
        }
        if web > 0 {
            v.tasks_by_group.insert("service:web".into(), web);
        }
        v
    }

    #[test]
    fn cluster_state_sorts_instances_by_id() {
        let c = ClusterState::new([inst("b", None, 0), inst("a", None, 0)]);
        assert_eq!(c.get(0).id, "a");
        assert_eq!(c.position("b"), Some(1));
        assert_eq!(c.position("zz"), None);
    }

    #[test]
    fn attribute_load_tracks_added_and_removed_tasks() {
        let mut c = ClusterState::new([
            inst("a", Some("1a"), 2),
            inst("b", Some("1a"), 1),
            inst("c", None, 5),
        ]);
        assert_eq!(c.attribute_loads("az", "service:web", &[0, 2]), [Some(3), None]);
        let task = TaskRequest { group: "service:web".into(), ..Default::default() };
        c.add_task(1, &task);
        assert_eq!(c.attribute_loads("az", "service:web", &[0]), [Some(4)]);
        c.remove_task(0, "service:web", 0, 0);
        c.remove_task(0, "service:web", 0, 0);
        assert_eq!(c.attribute_loads("az", "service:web", &[1]), [Some(2)]);
        assert_eq!(c.get(0).group_count("service:web"), 0);
    }

    #[test]
    fn add_task_reserves_resources_and_ports() {
        let mut a = inst("a", None, 0);
        a.remaining_cpu = 1024;
        a.remaining_memory = 2048;
        let mut c = ClusterState::new([a]);
        let task = TaskRequest { group: "g".into(), cpu: 256, memory: 512, static_ports: vec![80] };
        c.add_task(0, &task);
        let a = c.get(0);
        assert_eq!((a.remaining_cpu, a.remaining_memory), (768, 1536));
        assert!(a.used_ports.contains(&80));
        assert_eq!(a.group_count("g"), 1);
    }
}
