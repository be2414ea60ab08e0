//! `binpack(cpu)` / `binpack(memory)`: use as few instances as possible.
//!
//! Placement prefers the candidate with the least of the resource left after the task is placed
//! (all candidates already fit). Scale-in stops the task whose instance will have the most of the
//! resource free afterwards, emptying the least-packed instances first (ECS-NOTES §2.2).

use crate::rng::SeededRng;
use crate::strategy::{BinpackField, RankStrategy, Victim};
use crate::view::{ClusterState, InstanceView, TaskRequest};

impl BinpackField {
    fn remaining(self, inst: &InstanceView) -> i64 {
        match self {
            BinpackField::Cpu => inst.remaining_cpu,
            BinpackField::Memory => inst.remaining_memory,
        }
    }

    fn amount(self, cpu: i64, memory: i64) -> i64 {
        match self {
            BinpackField::Cpu => cpu,
            BinpackField::Memory => memory,
        }
    }

    /// The placement score of one candidate: what is left of the resource after `task`.
    /// The one definition, used by [`RankStrategy::score_placement`] and the indexed pass.
    pub(crate) fn placement_score(self, inst: &InstanceView, task: &TaskRequest) -> i64 {
        self.remaining(inst).saturating_sub(self.amount(task.cpu, task.memory))
    }
}

impl RankStrategy for BinpackField {
    fn score_placement(
        &self,
        cluster: &ClusterState,
        task: &TaskRequest,
        candidates: &[usize],
        _: &mut SeededRng,
    ) -> Vec<i64> {
        candidates.iter().map(|&i| self.placement_score(cluster.get(i), task)).collect()
    }

    fn score_victims(
        &self,
        cluster: &ClusterState,
        victims: &[Victim<'_>],
        _: &mut SeededRng,
    ) -> Vec<i64> {
        victims
            .iter()
            .map(|v| {
                let after = self
                    .remaining(cluster.get(v.instance))
                    .saturating_add(self.amount(v.cpu, v.memory));
                after.saturating_neg()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, cpu: i64, memory: i64) -> InstanceView {
        InstanceView {
            id: id.into(),
            remaining_cpu: cpu,
            remaining_memory: memory,
            ..Default::default()
        }
    }

    #[test]
    fn binpack_scores_remaining_after_placement() {
        let c = ClusterState::new([inst("a", 1000, 10), inst("b", 300, 5000)]);
        let task = TaskRequest { cpu: 200, memory: 5, ..Default::default() };
        let mut rng = SeededRng::new(0);
        assert_eq!(BinpackField::Cpu.score_placement(&c, &task, &[0, 1], &mut rng), [800, 100]);
        assert_eq!(BinpackField::Memory.score_placement(&c, &task, &[0, 1], &mut rng), [5, 4995]);
    }

    #[test]
    fn binpack_victims_prefer_instance_left_most_free() {
        let c = ClusterState::new([inst("a", 1000, 0), inst("b", 300, 0)]);
        let v = |instance| Victim { instance, group: "g", cpu: 100, memory: 0 };
        let mut rng = SeededRng::new(0);
        assert_eq!(BinpackField::Cpu.score_victims(&c, &[v(0), v(1)], &mut rng), [-1100, -400]);
    }
}
