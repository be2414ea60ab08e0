//! `spread(instanceId)` and `spread(attribute:<name>)`: even distribution of a task group.
//!
//! The load of a candidate is the number of non-stopped tasks of the task's group on its
//! instance (`instanceId`) or on all instances of the snapshot sharing its attribute value
//! (`attribute:`) — including instances that cannot take the task, since they still hold part of
//! the distribution. Placement prefers the lowest load; scale-in stops from the highest.
//!
//! Instances lacking the attribute have no value to balance: they are the last choice for
//! placement (used only when no candidate has the attribute) and the first choice for scale-in.

use crate::rng::SeededRng;
use crate::strategy::{RankStrategy, SpreadField, Victim};
use crate::view::{ClusterState, InstanceView, TaskRequest};

/// The placement score of a candidate whose instance (`spread(instanceId)`) or attribute value
/// (`spread(attribute:…)`) holds `load` tasks of the group; `None` (no such attribute) ranks
/// last. The one definition, used by [`RankStrategy::score_placement`] and the indexed pass.
pub(crate) fn placement_score(load: Option<i64>) -> i64 {
    load.unwrap_or(i64::MAX)
}

/// `spread(instanceId)`'s load of one instance: its tasks of `group`.
pub(crate) fn instance_load(inst: &InstanceView, group: &str) -> i64 {
    i64::from(inst.group_count(group))
}

impl SpreadField {
    /// Tasks of `group` counted against each instance in `indices`; `None` where an instance has
    /// no value for the field.
    fn loads(&self, cluster: &ClusterState, group: &str, indices: &[usize]) -> Vec<Option<i64>> {
        match self {
            SpreadField::InstanceId => {
                indices.iter().map(|&i| Some(instance_load(cluster.get(i), group))).collect()
            }
            SpreadField::Attribute(name) => cluster.attribute_loads(name, group, indices),
        }
    }
}

impl RankStrategy for SpreadField {
    fn score_placement(
        &self,
        cluster: &ClusterState,
        task: &TaskRequest,
        candidates: &[usize],
        _: &mut SeededRng,
    ) -> Vec<i64> {
        let loads = self.loads(cluster, &task.group, candidates);
        loads.into_iter().map(placement_score).collect()
    }

    fn score_victims(
        &self,
        cluster: &ClusterState,
        victims: &[Victim<'_>],
        _: &mut SeededRng,
    ) -> Vec<i64> {
        // Victims may mix groups, so each is looked up on its own.
        victims
            .iter()
            .map(|v| self.loads(cluster, v.group, &[v.instance])[0].map_or(i64::MIN, |n| -n))
            .collect()
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
        v.tasks_by_group.insert("service:web".into(), web);
        v.tasks_by_group.insert("service:other".into(), 100);
        v
    }

    #[test]
    fn spread_counts_only_the_tasks_group() {
        let c = ClusterState::new([
            inst("a", Some("1a"), 2),
            inst("b", Some("1b"), 0),
            inst("c", None, 1),
        ]);
        let task = TaskRequest { group: "service:web".into(), ..Default::default() };
        let mut rng = SeededRng::new(0);
        let by_host = SpreadField::InstanceId.score_placement(&c, &task, &[0, 1, 2], &mut rng);
        assert_eq!(by_host, [2, 0, 1]);
        let by_az =
            SpreadField::Attribute("az".into()).score_placement(&c, &task, &[0, 1, 2], &mut rng);
        assert_eq!(by_az, [2, 0, i64::MAX]);
    }

    #[test]
    fn spread_victims_prefer_most_loaded_value_and_missing_attribute() {
        let c = ClusterState::new([
            inst("a", Some("1a"), 2),
            inst("b", Some("1b"), 1),
            inst("c", None, 1),
        ]);
        let v = |instance| Victim { instance, group: "service:web", cpu: 0, memory: 0 };
        let mut rng = SeededRng::new(0);
        let scores =
            SpreadField::Attribute("az".into()).score_victims(&c, &[v(0), v(1), v(2)], &mut rng);
        assert_eq!(scores, [-2, -1, i64::MIN]);
    }
}
