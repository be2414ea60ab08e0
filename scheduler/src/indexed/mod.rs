//! The indexed placement pass: the same plan as the reference pass (`plan::place_reference`),
//! without scanning every instance for every task.
//!
//! ```text
//!   tasks ──► shapes (group, cpu, memory, static ports)   ≤ MAX_SHAPES, else reference pass
//!   strategies ──► ranking::KeyPlan (score vector up to the first `random`)
//!   instances ──► ClusterState + cells::Cells (one cell per spread-attribute value tuple)
//!                        │
//!   each task ──► shape::ShapeIndex (built on the shape's first task) ──► tied winners
//!                        │   one → chosen; several → rng.below(count) in id order
//!                        │   (or the tied pool, id-ordered, to `narrow` from `random` on)
//!                        ▼
//!   ClusterState::add_task, then every built ShapeIndex re-checks and re-ranks that instance
//! ```
//!
//! Why it is the same plan: the reference keeps, strategy by strategy, the lowest-scoring
//! feasible instances, i.e. those with the lexicographically smallest score vector, then draws
//! `below(len)` over them in id order. Each shape index holds exactly the feasible instances
//! sorted by that vector (see `shape.rs` for why only the chosen instance and the cells sharing
//! its values can change), so its front is the reference's survivor set, in id order; the RNG is
//! drawn at the same moments with the same arguments. Failures are built by the reference's own
//! `plan::explain_failure` over the same `ClusterState`. The property test
//! `tests/equivalence.rs` checks plan equality on random clusters, tasks, strategies and
//! constraints.
//!
//! Cost for a batch of t tasks in s shapes on n instances in c cells:
//! * setup: O(n log n) (sorting the snapshot) + O(s · (n · filters + n log n)) (indexes);
//! * per placed task: O(log c + tied cells) to find the winners, then per shape
//!   O(dynamic filters + log n + affected cells · log c) to update, plus a memmove within the
//!   tie classes the chosen instance leaves and joins (a class is a cell's instances tied on
//!   every local score: small once binpack has made instances differ, up to n words for a
//!   uniform cluster under `spread(instanceId)` alone — still a memmove, not a scan);
//! * per failed task: O(n · filters) for the explanation, once per shape between placements;
//! * with `random` in the list: O(tied pool) per task, as it draws one number per candidate.
//!
//! For the usual `spread(attribute:…)` + `binpack(…)` batch that is O(t · log n) overall
//! (c = zones, one shape). Placement-dependent constraints (`distinctInstance`, `memberOf` on
//! `task:group` / `runningTasksCount`) are re-checked only on the instance a task went to, which
//! is exact because they read nothing but that instance's own state.
//!
//! Nothing here defines a placement rule: verdicts come from the `Filter`s (`filter.rs`,
//! `constraint/`), scores from the strategies' own functions, `random` and the strategies after
//! it from `strategy::narrow`, failures from `plan::explain_failure`. A new constraint works
//! here unchanged as long as it reads only the instance's own state (every `Filter` does); a new
//! strategy needs an arm in `KeyPlan::new` (the match is exhaustive), returning `None` — the
//! reference pass — if its score is neither a cell score nor a local score.

mod cells;
mod ranking;
mod shape;

use std::collections::HashMap;

use self::cells::Cells;
use self::ranking::KeyPlan;
use self::shape::{FilterSet, ShapeIndex};
use crate::filter::Filter;
use crate::plan::{self, Placement, PlacementFailure, PlacementSpec, Plan};
use crate::rng::SeededRng;
use crate::strategy;
use crate::view::{ClusterState, InstanceView, TaskRequest};

/// Most distinct task shapes one indexed pass keeps indexes for. Every placement updates every
/// shape's index, so past a few dozen shapes (a batch whose tasks are all different) the
/// reference pass's single scan per task is as cheap; a service's or a RunTask call's tasks are
/// normally one shape.
pub(crate) const MAX_SHAPES: usize = 32;

/// What filters and strategies read of a task.
type ShapeKey<'t> = (&'t str, i64, i64, &'t [u16]);

/// Places `tasks` like the reference pass, or `None` when the batch is outside what the indexed
/// pass handles (more than [`MAX_SHAPES`] shapes, or more than `MAX_KEYS` strategies before a
/// `random`), in which case the caller runs the reference pass.
pub(crate) fn place(
    instances: &[InstanceView],
    tasks: &[TaskRequest],
    spec: &PlacementSpec,
    seed: u64,
) -> Option<Plan> {
    let keys = KeyPlan::new(&spec.strategies)?;
    let mut shape_ids: HashMap<ShapeKey<'_>, usize> = HashMap::new();
    let mut shape_of = Vec::with_capacity(tasks.len());
    for task in tasks {
        let key = (task.group.as_str(), task.cpu, task.memory, task.static_ports.as_slice());
        let next = shape_ids.len();
        shape_of.push(*shape_ids.entry(key).or_insert(next));
        if shape_ids.len() > MAX_SHAPES {
            return None;
        }
    }

    let boxed: Vec<Box<dyn Filter + '_>> = spec.constraints.iter().map(|c| c.filter()).collect();
    let filters = FilterSet::new(plan::with_constraints(&boxed));
    let mut cluster = ClusterState::new(instances.iter().cloned());
    let cells = Cells::new(&keys.attributes, &cluster);
    let mut indexes: Vec<Option<ShapeIndex>> = (0..shape_ids.len()).map(|_| None).collect();
    let mut rng = SeededRng::new(seed);
    let mut out = Plan::default();

    for (task_index, task) in tasks.iter().enumerate() {
        let index = indexes[shape_of[task_index]]
            .get_or_insert_with(|| ShapeIndex::build(task, &keys, &cells, &cluster, &filters));
        let Some(chosen) = choose(index, &cluster, task, spec, &keys, &mut rng) else {
            let placed = out.placements.len();
            let failure = match &index.failure {
                Some((at, failure)) if *at == placed => {
                    PlacementFailure { task_index, ..failure.clone() }
                }
                _ => plan::explain_failure(&filters.all, cluster.instances(), task_index, task),
            };
            index.failure = Some((placed, failure.clone()));
            out.failures.push(failure);
            continue;
        };
        cluster.add_task(chosen, task);
        for index in indexes.iter_mut().flatten() {
            index.placed(chosen, task, &keys, &cells, &cluster, &filters);
        }
        out.placements.push(Placement { task_index, instance_id: cluster.get(chosen).id.clone() });
    }
    Some(out)
}

/// The instance the reference pass would choose for `task`, drawing from `rng` exactly as it
/// does; `None` when no instance admits the task.
fn choose(
    index: &ShapeIndex,
    cluster: &ClusterState,
    task: &TaskRequest,
    spec: &PlacementSpec,
    keys: &KeyPlan,
    rng: &mut SeededRng,
) -> Option<usize> {
    let tied = index.tied();
    let total: usize = tied.iter().map(|class| class.len()).sum();
    if total <= 1 {
        return tied.iter().find_map(|class| class.first().copied());
    }
    let Some(random_at) = keys.random_at else {
        return Some(nth_in_union(&tied, rng.below(total)));
    };
    let mut pool: Vec<usize> = tied.concat();
    pool.sort_unstable();
    strategy::narrow(&mut pool, &spec.strategies[random_at..], |ranker, pool| {
        ranker.score_placement(cluster, task, pool, rng)
    });
    Some(pool[if pool.len() == 1 { 0 } else { rng.below(pool.len()) }])
}

/// The `k`-th smallest element of the union of disjoint ascending lists (`k` < their total).
/// O(lists · log² n) by bisecting on the value; a single list is indexed directly.
fn nth_in_union(lists: &[&[usize]], k: usize) -> usize {
    if let [only] = lists {
        return only[k];
    }
    let at_most =
        |x: usize| -> usize { lists.iter().map(|l| l.partition_point(|&y| y <= x)).sum() };
    // Smallest x with more than k elements ≤ x; it is an element of some list.
    let (mut lo, mut hi) =
        (0usize, lists.iter().filter_map(|l| l.last()).copied().max().unwrap_or(0));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at_most(mid) > k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Strategy;

    fn instance(id: &str) -> InstanceView {
        InstanceView {
            id: id.into(),
            active: true,
            agent_connected: true,
            remaining_cpu: 1 << 20,
            remaining_memory: 1 << 20,
            ..Default::default()
        }
    }

    #[test]
    fn batches_outside_the_index_go_to_the_reference_pass() {
        let instances = [instance("a"), instance("b")];
        let shapes: Vec<TaskRequest> = (0..=MAX_SHAPES as i64)
            .map(|cpu| TaskRequest { group: "g".into(), cpu, ..Default::default() })
            .collect();
        let spec = PlacementSpec::default();
        assert!(place(&instances, &shapes[..MAX_SHAPES], &spec, 0).is_some());
        assert!(place(&instances, &shapes, &spec, 0).is_none());
        // The public entry point still places every task, via the reference pass.
        assert_eq!(plan::place_with(&instances, &shapes, &spec, 0).placements.len(), shapes.len());
        let long = PlacementSpec { strategies: vec![Strategy::Random; 9], ..Default::default() };
        assert!(place(&instances, &shapes[..1], &long, 0).is_some());
        let strategies = vec![Strategy::parse("binpack(cpu)").unwrap(); 6];
        let long = PlacementSpec { strategies, ..Default::default() };
        assert!(place(&instances, &shapes[..1], &long, 0).is_none());
    }

    #[test]
    fn a_failing_shape_reuses_its_explanation_until_something_is_placed() {
        let instances = [instance("a")];
        let big = TaskRequest { group: "g".into(), cpu: 1 << 21, ..Default::default() };
        let small = TaskRequest { group: "g".into(), cpu: 1, ..Default::default() };
        let tasks = [big.clone(), big.clone(), small, big];
        let plan = place(&instances, &tasks, &PlacementSpec::default(), 0).unwrap();
        let indices: Vec<usize> = plan.failures.iter().map(|f| f.task_index).collect();
        assert_eq!(indices, [0, 1, 3]);
        assert_eq!(
            plan.failures[1],
            PlacementFailure { task_index: 1, ..plan.failures[0].clone() }
        );
        assert_eq!(plan.failures[0].closest.as_ref().map(|c| c.0.as_str()), Some("a"));
        assert_eq!(plan, plan::place_reference(&instances, &tasks, &PlacementSpec::default(), 0));
    }

    #[test]
    fn nth_in_union_walks_the_lists_in_merged_order() {
        let lists: [&[usize]; 3] = [&[1, 5, 9], &[0, 6], &[2, 3, 10]];
        let merged: Vec<usize> = (0..8).map(|k| nth_in_union(&lists, k)).collect();
        assert_eq!(merged, [0, 1, 2, 3, 5, 6, 9, 10]);
        assert_eq!(nth_in_union(&[&[4, 7]], 1), 7);
    }
}
