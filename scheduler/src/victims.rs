//! Scale-in: which running tasks to stop (ECS-NOTES §2.2, "scale-in victim choice").
//!
//! Each of the `count` rounds picks one task:
//! 1. the pool is the not-yet-chosen candidates that have **not started** (still PENDING); only
//!    when none is left do started tasks enter the pool;
//! 2. [`crate::strategy::narrow`] keeps the best victims under each strategy in turn (spread:
//!    the instance / attribute value holding the most tasks of the group; binpack: the instance
//!    left with the most free resource; random: seeded);
//! 3. a remaining tie goes to the lowest (instance id, task id) — deterministic and easy to
//!    reason about in tests and event logs;
//! 4. the choice is removed from the working [`ClusterState`], so the next round sees the
//!    distribution without it and keeps it balanced.
//!
//! Group counts come from the instances' `tasks_by_group`, raised to at least the number of
//! candidates on that instance, so stale counts never make a loaded instance look empty.
//! Candidates on instances missing from the snapshot are kept, on a synthetic inactive instance
//! with no attributes (so attribute spread stops them first).

use crate::rng::SeededRng;
use crate::strategy::{self, Strategy, Victim};
use crate::view::{ClusterState, InstanceView};

/// A task that may be stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VictimCandidate {
    pub task_id: String,
    pub instance_id: String,
    pub group: String,
    /// The task has left PENDING. Unstarted tasks are always stopped first.
    pub started: bool,
    /// CPU units the task reserves (binpack scale-in needs the amount it frees).
    pub cpu: i64,
    /// MiB the task reserves.
    pub memory: i64,
}

/// Chooses up to `count` task ids to stop from `candidates`, in the order chosen. Asking for more
/// than there are candidates returns them all. Pure: the same inputs and `seed` give the same
/// answer (the seed matters only to the `random` strategy).
pub fn choose_victims(
    instances: &[InstanceView],
    candidates: &[VictimCandidate],
    count: usize,
    strategies: &[Strategy],
    seed: u64,
) -> Vec<String> {
    let mut cluster = cluster_for(instances, candidates);
    let instance_of: Vec<usize> = candidates
        .iter()
        .map(|c| {
            cluster.position(&c.instance_id).expect("cluster_for adds every candidate's instance")
        })
        .collect();
    let mut rng = SeededRng::new(seed);
    let mut left: Vec<usize> = (0..candidates.len()).collect();
    let mut chosen = Vec::with_capacity(count.min(candidates.len()));

    while chosen.len() < count && !left.is_empty() {
        let any_pending = left.iter().any(|&c| !candidates[c].started);
        let mut pool: Vec<usize> =
            left.iter().copied().filter(|&c| !candidates[c].started || !any_pending).collect();
        strategy::narrow(&mut pool, strategies, |ranker, pool| {
            let victims: Vec<Victim<'_>> = pool
                .iter()
                .map(|&c| Victim {
                    instance: instance_of[c],
                    group: &candidates[c].group,
                    cpu: candidates[c].cpu,
                    memory: candidates[c].memory,
                })
                .collect();
            ranker.score_victims(&cluster, &victims, &mut rng)
        });
        let pick = pool
            .into_iter()
            .min_by(|&a, &b| {
                (instance_of[a], &candidates[a].task_id)
                    .cmp(&(instance_of[b], &candidates[b].task_id))
            })
            .expect("pool holds at least one candidate");
        let c = &candidates[pick];
        cluster.remove_task(instance_of[pick], &c.group, c.cpu, c.memory);
        left.retain(|&x| x != pick);
        chosen.push(c.task_id.clone());
    }
    chosen
}

/// The working snapshot for victim choice: `instances` plus a synthetic entry for every
/// candidate instance the snapshot lacks, with group counts no lower than the candidates on them.
fn cluster_for(instances: &[InstanceView], candidates: &[VictimCandidate]) -> ClusterState {
    let mut all: Vec<InstanceView> = instances.to_vec();
    let mut known: std::collections::BTreeSet<&str> =
        instances.iter().map(|i| i.id.as_str()).collect();
    for c in candidates {
        if known.insert(&c.instance_id) {
            all.push(InstanceView { id: c.instance_id.clone(), ..Default::default() });
        }
    }
    let mut cluster = ClusterState::new(all);
    let mut per_instance_group: std::collections::BTreeMap<(usize, &str), u32> = Default::default();
    for c in candidates {
        let i = cluster.position(&c.instance_id).expect("added above");
        *per_instance_group.entry((i, &c.group)).or_insert(0) += 1;
    }
    for ((i, group), n) in per_instance_group {
        if cluster.get(i).group_count(group) < n {
            cluster.ensure_group_count(i, group, n);
        }
    }
    cluster
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{BinpackField, SpreadField, default_strategies};
    use std::collections::BTreeMap;

    fn inst(id: &str, az: &str, web: u32) -> InstanceView {
        InstanceView {
            id: id.into(),
            active: true,
            agent_connected: true,
            attributes: [("ecs.availability-zone".to_owned(), az.to_owned())].into(),
            remaining_cpu: 1000,
            remaining_memory: 1000,
            tasks_by_group: [("service:web".to_owned(), web)].into(),
            ..Default::default()
        }
    }

    /// `n` started web tasks on `instance`, ids `<instance>-<k>`.
    fn tasks_on(instance: &str, n: u32) -> Vec<VictimCandidate> {
        (0..n)
            .map(|k| VictimCandidate {
                task_id: format!("{instance}-{k}"),
                instance_id: instance.into(),
                group: "service:web".into(),
                started: true,
                cpu: 100,
                memory: 100,
            })
            .collect()
    }

    fn remaining_per_az(
        instances: &[InstanceView],
        candidates: &[VictimCandidate],
        stopped: &[String],
    ) -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for c in candidates.iter().filter(|c| !stopped.contains(&c.task_id)) {
            let az = &instances.iter().find(|i| i.id == c.instance_id).unwrap().attributes["ecs.availability-zone"];
            *m.entry(az.clone()).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn victims_prefer_pending_tasks_first() {
        let instances = [inst("a", "1a", 3), inst("b", "1b", 1)];
        let mut candidates = tasks_on("a", 3);
        candidates.extend(tasks_on("b", 1));
        candidates[3].started = false; // the lone task on b is still PENDING
        let victims = choose_victims(&instances, &candidates, 2, &default_strategies(), 0);
        assert_eq!(victims, ["b-0", "a-0"]);
    }

    #[test]
    fn victims_keep_azs_balanced() {
        let instances =
            [inst("a1", "1a", 3), inst("a2", "1a", 2), inst("b1", "1b", 1), inst("c1", "1c", 2)];
        let candidates: Vec<_> = [("a1", 3), ("a2", 2), ("b1", 1), ("c1", 2)]
            .iter()
            .flat_map(|(i, n)| tasks_on(i, *n))
            .collect();
        let victims = choose_victims(&instances, &candidates, 4, &default_strategies(), 0);
        // 5/1/2 → 4 tasks left, balanced as 2/1/1 or better.
        let left = remaining_per_az(&instances, &candidates, &victims);
        let max = left.values().max().unwrap();
        let min = [left.get("1a"), left.get("1b"), left.get("1c")]
            .iter()
            .map(|n| n.copied().unwrap_or(0))
            .min()
            .unwrap();
        assert!(max - min <= 1, "{left:?}");
        // Inside zone 1a the busier instance a1 gave up a task first.
        assert_eq!(victims[0], "a1-0");
    }

    #[test]
    fn victims_binpack_empties_the_least_packed_instance() {
        let mut roomy = inst("roomy", "z", 1);
        roomy.remaining_cpu = 3000;
        let packed = inst("packed", "z", 1);
        let mut candidates = tasks_on("roomy", 1);
        candidates.extend(tasks_on("packed", 1));
        let victims = choose_victims(
            &[roomy, packed],
            &candidates,
            1,
            &[Strategy::Binpack(BinpackField::Cpu)],
            0,
        );
        assert_eq!(victims, ["roomy-0"]);
    }

    #[test]
    fn victims_returns_all_when_count_exceeds_candidates() {
        let candidates = tasks_on("a", 2);
        let victims =
            choose_victims(&[inst("a", "z", 2)], &candidates, 10, &default_strategies(), 0);
        assert_eq!(victims.len(), 2);
    }

    #[test]
    fn victims_on_unknown_instances_go_first_under_attribute_spread() {
        let mut candidates = tasks_on("a", 2);
        candidates.extend(tasks_on("gone", 1));
        let spread_az = [Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))];
        let victims = choose_victims(&[inst("a", "z", 2)], &candidates, 1, &spread_az, 0);
        assert_eq!(victims, ["gone-0"]);
    }

    #[test]
    fn victims_trust_candidates_over_stale_counts() {
        // Snapshot says a has 0 web tasks, but three candidates run there.
        let instances = [inst("a", "z", 0), inst("b", "z", 1)];
        let mut candidates = tasks_on("a", 3);
        candidates.extend(tasks_on("b", 1));
        let victims = choose_victims(
            &instances,
            &candidates,
            2,
            &[Strategy::Spread(SpreadField::InstanceId)],
            0,
        );
        assert_eq!(victims, ["a-0", "a-1"]);
    }
}
