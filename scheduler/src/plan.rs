//! Placing a batch of tasks: filters, then strategies, then a seeded tie-break.
//!
//! This file holds the plan types, the entry points and the **reference pass** ([`run`], public
//! as [`place_reference`]): the straightforward definition of what a plan is, O(tasks ×
//! instances × filters). [`place_with`] gives exactly the same plan through the indexed pass
//! (`crate::indexed`, O(tasks × log instances) for the usual batch) and falls back to this one
//! for batches the index does not cover; the dry run ([`crate::explain`]) uses this one, since
//! it reports on every instance anyway.
//!
//! The reference pass, for each task in order:
//! 1. every instance runs through the resource filters ([`crate::filter::PIPELINE`]) and then
//!    the spec's constraints (`constraint/`); survivors are candidates;
//! 2. [`crate::strategy::narrow`] keeps the candidates with the best score under each strategy
//!    in turn;
//! 3. the remaining tie is broken by the seeded RNG (uniform over the tied instances in id
//!    order). Seeded rather than "lowest id" so that many one-task groups placed on an empty
//!    cluster do not all pile onto the same first instance;
//! 4. the choice is recorded in the working [`ClusterState`], so the next task of the batch
//!    sees the reduced resources, the newly taken ports and the new group counts.
//!
//! A task that fits nowhere becomes a [`PlacementFailure`] and reserves nothing; later tasks of
//! the batch are still tried. Failure rule: an instance is counted against the first filter it
//! fails. The failure `reason` is the **last filter in pipeline order that rejected any
//! instance** — the filter that eliminated the final candidates — which is always what the
//! `closest` instance lacks. `closest` is the instance that passed the most filters; among
//! those, the one with the smallest shortfall (fewest missing CPU units, MiB or ports), then the
//! lowest id. An empty snapshot fails with `MISSING` and no closest instance.
//!
//! The failure of a task is computed by [`explain_failure`], shared by both passes.

use std::collections::BTreeMap;

use crate::constraint::Constraint;
use crate::filter::{self, FailureReason, Filter, PIPELINE};
use crate::rng::SeededRng;
use crate::strategy::{self, Strategy};
use crate::view::{ClusterState, InstanceView, TaskRequest};

/// Task `task_index` (of the request slice) goes to `instance_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub task_index: usize,
    pub instance_id: String,
}

/// Task `task_index` fits on no instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementFailure {
    pub task_index: usize,
    /// The filter that eliminated the last candidates (see the module doc).
    pub reason: FailureReason,
    /// How many instances each filter rejected (each instance counted once, at its first failure).
    pub rejected: BTreeMap<FailureReason, u32>,
    /// The instance that came closest and what it lacked, completing
    /// "The closest matching container-instance <id> <lack>." e.g. "has insufficient CPU units available".
    pub closest: Option<(String, String)>,
}

/// The outcome of one placement pass: every task appears exactly once, in one of the two lists,
/// each list in task order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub placements: Vec<Placement>,
    pub failures: Vec<PlacementFailure>,
}

/// How to place one batch: the ranking strategies (in order, each breaking the ties of the
/// earlier ones; empty = any feasible instance, chosen by the seed) and the constraints every
/// task of the batch must satisfy (the call's and the task definition's together).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacementSpec {
    pub strategies: Vec<Strategy>,
    pub constraints: Vec<Constraint>,
}

/// Places `tasks` in order on `instances`, ranking by `strategies`, without constraints.
pub fn place(
    instances: &[InstanceView],
    tasks: &[TaskRequest],
    strategies: &[Strategy],
    seed: u64,
) -> Plan {
    let spec = PlacementSpec { strategies: strategies.to_vec(), constraints: Vec::new() };
    place_with(instances, tasks, &spec, seed)
}

/// Places `tasks` in order on `instances` under `spec`. Pure: the same inputs and `seed` give
/// the same plan, whatever the order of `instances`. Runs the indexed pass (see the module doc);
/// the plan is always the one [`place_reference`] would make.
pub fn place_with(
    instances: &[InstanceView],
    tasks: &[TaskRequest],
    spec: &PlacementSpec,
    seed: u64,
) -> Plan {
    crate::indexed::place(instances, tasks, spec, seed)
        .unwrap_or_else(|| place_reference(instances, tasks, spec, seed))
}

/// The slow reference: the same plan as [`place_with`], computed the straightforward way
/// (every filter on every instance for every task, O(tasks × instances)). It is the definition
/// the indexed pass is tested against (`tests/equivalence.rs`) and the fallback for batches the
/// index does not cover; callers should use [`place_with`].
pub fn place_reference(
    instances: &[InstanceView],
    tasks: &[TaskRequest],
    spec: &PlacementSpec,
    seed: u64,
) -> Plan {
    let mut plan = Plan::default();
    run(instances, tasks, spec, seed, |_, _, _, _, _| {}, &mut plan);
    plan
}

/// The full filter list for a spec: the resource pipeline, then the constraints in order.
pub(crate) fn with_constraints<'a>(boxed: &'a [Box<dyn Filter + 'a>]) -> Vec<&'a dyn Filter> {
    PIPELINE.iter().copied().chain(boxed.iter().map(|b| b.as_ref())).collect()
}

/// The reference pass. `observe(filters, cluster, task_index, feasible, chosen)` sees every
/// task's feasible set (empty when it failed) before the choice is recorded (the dry-run
/// explanation uses it; placement passes a no-op).
pub(crate) fn run(
    instances: &[InstanceView],
    tasks: &[TaskRequest],
    spec: &PlacementSpec,
    seed: u64,
    mut observe: impl FnMut(&[&dyn Filter], &ClusterState, usize, &[usize], Option<usize>),
    plan: &mut Plan,
) {
    let boxed: Vec<Box<dyn Filter + '_>> = spec.constraints.iter().map(|c| c.filter()).collect();
    let filters = with_constraints(&boxed);
    let mut cluster = ClusterState::new(instances.iter().cloned());
    let mut rng = SeededRng::new(seed);
    let mut candidates = Vec::with_capacity(cluster.len());
    let mut feasible = Vec::with_capacity(cluster.len());

    for (task_index, task) in tasks.iter().enumerate() {
        feasible.clear();
        feasible.extend(
            (0..cluster.len())
                .filter(|&i| filter::first_rejection(&filters, cluster.get(i), task).is_none()),
        );
        if feasible.is_empty() {
            observe(&filters, &cluster, task_index, &feasible, None);
            plan.failures.push(explain_failure(&filters, cluster.instances(), task_index, task));
            continue;
        }
        candidates.clear();
        candidates.extend_from_slice(&feasible);
        strategy::narrow(&mut candidates, &spec.strategies, |ranker, pool| {
            ranker.score_placement(&cluster, task, pool, &mut rng)
        });
        let chosen =
            candidates[if candidates.len() == 1 { 0 } else { rng.below(candidates.len()) }];
        observe(&filters, &cluster, task_index, &feasible, Some(chosen));
        cluster.add_task(chosen, task);
        plan.placements.push(Placement { task_index, instance_id: cluster.get(chosen).id.clone() });
    }
}

/// Builds the failure for a task no instance admits (see the module doc for the rule).
pub(crate) fn explain_failure(
    filters: &[&dyn Filter],
    instances: &[InstanceView],
    task_index: usize,
    task: &TaskRequest,
) -> PlacementFailure {
    let mut rejected = BTreeMap::new();
    // (filter index, shortfall, instance index) of the best instance so far.
    let mut closest: Option<(usize, i64, usize)> = None;
    for (i, inst) in instances.iter().enumerate() {
        let Some(f) = filter::first_rejection(filters, inst, task) else {
            continue;
        };
        *rejected.entry(filters[f].reason()).or_insert(0) += 1;
        let shortfall = filters[f].shortfall(inst, task);
        let better = match closest {
            None => true,
            Some((cf, cs, _)) => f > cf || (f == cf && shortfall < cs),
        };
        if better {
            closest = Some((f, shortfall, i));
        }
    }
    match closest {
        None => {
            PlacementFailure { task_index, reason: FailureReason::Missing, rejected, closest: None }
        }
        Some((f, _, i)) => PlacementFailure {
            task_index,
            reason: filters[f].reason(),
            rejected,
            closest: Some((instances[i].id.clone(), filters[f].lack(&instances[i], task))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{BinpackField, SpreadField, default_strategies};

    fn inst(id: &str, az: &str, cpu: i64, memory: i64) -> InstanceView {
        InstanceView {
            id: id.into(),
            active: true,
            agent_connected: true,
            attributes: [("ecs.availability-zone".to_owned(), az.to_owned())].into(),
            remaining_cpu: cpu,
            remaining_memory: memory,
            used_ports: [22].into(),
            tasks_by_group: BTreeMap::new(),
            ..Default::default()
        }
    }

    fn web(cpu: i64, memory: i64) -> TaskRequest {
        TaskRequest { group: "service:web".into(), cpu, memory, static_ports: vec![] }
    }

    fn counts(plan: &Plan) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for p in &plan.placements {
            *m.entry(p.instance_id.clone()).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn spread_by_az_balances_zones_before_instances() {
        // Zone a has three instances, zone b one: AZ spread must still split 2/2.
        let instances = [
            inst("a1", "a", 4096, 4096),
            inst("a2", "a", 4096, 4096),
            inst("a3", "a", 4096, 4096),
            inst("b1", "b", 4096, 4096),
        ];
        let plan = place(&instances, &vec![web(10, 10); 4], &default_strategies(), 3);
        let c = counts(&plan);
        assert_eq!(c.get("b1"), Some(&2));
        assert_eq!(c.values().sum::<usize>(), 4);
        // Inside zone a, instance spread puts the two tasks on different instances.
        assert!(c.iter().filter(|(k, _)| k.starts_with('a')).all(|(_, n)| *n == 1));
    }

    #[test]
    fn spread_counts_existing_tasks_of_the_group_only() {
        let mut busy = inst("a", "z", 4096, 4096);
        busy.tasks_by_group.insert("service:web".into(), 2);
        busy.tasks_by_group.insert("service:db".into(), 0);
        let mut other = inst("b", "z", 4096, 4096);
        other.tasks_by_group.insert("service:db".into(), 9);
        let plan = place(
            &[busy, other],
            &vec![web(1, 1); 2],
            &[Strategy::Spread(SpreadField::InstanceId)],
            0,
        );
        assert_eq!(counts(&plan).get("b"), Some(&2));
    }

    #[test]
    fn binpack_fills_the_fullest_instance_that_fits() {
        let instances = [
            inst("roomy", "z", 4096, 4096),
            inst("tight", "z", 600, 4096),
            inst("too-small", "z", 100, 4096),
        ];
        let plan =
            place(&instances, &vec![web(256, 1); 3], &[Strategy::Binpack(BinpackField::Cpu)], 9);
        let ids: Vec<&str> = plan.placements.iter().map(|p| p.instance_id.as_str()).collect();
        // 600 → 344 → 88 (too small for a third), then the roomy one.
        assert_eq!(ids, ["tight", "tight", "roomy"]);
    }

    #[test]
    fn later_strategy_breaks_ties_of_the_earlier() {
        // Both zones empty of the group: the AZ spread ties, binpack memory then picks the fuller.
        let instances = [inst("a", "1a", 1024, 8000), inst("b", "1b", 1024, 3000)];
        let strategies = [
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Strategy::Binpack(BinpackField::Memory),
        ];
        let plan = place(&instances, &[web(1, 100)], &strategies, 0);
        assert_eq!(plan.placements[0].instance_id, "b");
    }

    #[test]
    fn batch_never_double_books_a_static_port() {
        let instances = [inst("a", "z", 4096, 4096), inst("b", "z", 4096, 4096)];
        let task =
            TaskRequest { group: "service:web".into(), cpu: 1, memory: 1, static_ports: vec![80] };
        let plan = place(&instances, &vec![task; 3], &default_strategies(), 1);
        assert_eq!(plan.placements.len(), 2);
        assert_ne!(plan.placements[0].instance_id, plan.placements[1].instance_id);
        let failure = &plan.failures[0];
        assert_eq!((failure.task_index, failure.reason), (2, FailureReason::Ports));
        assert_eq!(
            failure.closest.as_ref().unwrap().1,
            "is already using a port required by your task"
        );
    }

    #[test]
    fn failure_names_last_eliminating_filter_and_closest_instance() {
        let mut drained = inst("d", "z", 9999, 9999);
        drained.active = false;
        let mut lost = inst("l", "z", 9999, 9999);
        lost.agent_connected = false;
        let small = inst("s", "z", 100, 9999);
        let smaller = inst("t", "z", 50, 9999);
        let plan =
            place(&[drained, lost, smaller, small], &[web(512, 10)], &default_strategies(), 0);
        assert!(plan.placements.is_empty());
        let f = &plan.failures[0];
        assert_eq!(f.reason, FailureReason::Cpu);
        assert_eq!(f.reason.to_string(), "RESOURCE:CPU");
        assert_eq!(
            f.rejected,
            [(FailureReason::Inactive, 1), (FailureReason::Agent, 1), (FailureReason::Cpu, 2)]
                .into()
        );
        assert_eq!(f.closest, Some(("s".into(), "has insufficient CPU units available".into())));
    }

    #[test]
    fn failure_on_memory_names_memory() {
        let plan = place(&[inst("a", "z", 4096, 100)], &[web(1, 512)], &[], 0);
        let f = &plan.failures[0];
        assert_eq!(f.reason, FailureReason::Memory);
        assert_eq!(f.closest, Some(("a".into(), "has insufficient memory available".into())));
    }

    #[test]
    fn failure_when_every_agent_is_disconnected_is_agent() {
        let mut a = inst("a", "z", 4096, 4096);
        a.agent_connected = false;
        let f = &place(&[a], &[web(1, 1)], &[], 0).failures[0];
        assert_eq!(f.reason, FailureReason::Agent);
        assert_eq!(f.closest.as_ref().unwrap().1, "doesn't have the agent connected");
    }

    #[test]
    fn empty_snapshot_fails_with_missing() {
        let plan = place(&[], &[web(1, 1)], &default_strategies(), 0);
        assert_eq!(plan.failures[0].reason, FailureReason::Missing);
        assert_eq!(plan.failures[0].closest, None);
        assert!(plan.failures[0].rejected.is_empty());
    }

    #[test]
    fn failed_task_reserves_nothing_and_later_tasks_still_place() {
        let plan = place(&[inst("a", "z", 500, 500)], &[web(1000, 1), web(500, 500)], &[], 0);
        assert_eq!(plan.failures.len(), 1);
        assert_eq!(plan.failures[0].task_index, 0);
        assert_eq!(plan.placements, [Placement { task_index: 1, instance_id: "a".into() }]);
    }

    #[test]
    fn plan_does_not_depend_on_instance_order() {
        let instances: Vec<InstanceView> = (0..8)
            .map(|i| inst(&format!("i{i}"), if i % 3 == 0 { "a" } else { "b" }, 2048, 2048))
            .collect();
        let mut reversed = instances.clone();
        reversed.reverse();
        let tasks = vec![web(100, 100); 13];
        assert_eq!(
            place(&instances, &tasks, &default_strategies(), 42),
            place(&reversed, &tasks, &default_strategies(), 42)
        );
    }
}
