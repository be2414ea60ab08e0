//! How a strategy list becomes sort keys for the indexed pass.
//!
//! [`strategy::narrow`](crate::strategy) keeps, strategy after strategy, the candidates with the
//! lowest score; the survivors are exactly the candidates whose score *vector* (one score per
//! strategy, in list order) is lexicographically smallest. So the indexed pass keeps candidates
//! sorted by that vector, a [`Key`], and reads the winners off the front.
//!
//! Scores come in two kinds ([`Rank`]):
//! * **cell scores** — `spread(attribute:NAME)`: the same for every instance sharing the value
//!   of NAME, and changed by a placement on *any* of them. Kept per cell (`cells.rs`), never per
//!   instance;
//! * **local scores** — `spread(instanceId)`, `binpack(cpu|memory)`: a function of the instance's
//!   own state, changed only by a placement on that instance.
//!
//! `random` draws one number per candidate in the pool it sees, so only the strategies before
//! the first `random` become keys ([`KeyPlan::random_at`]); from there on the pass hands the
//! (id-ordered) tied pool to the ordinary `narrow`, exactly as the reference pass does.
//!
//! The scores are computed by the strategies' own functions (`spread::placement_score`,
//! `spread::instance_load`, `BinpackField::placement_score`): one definition of each rule.

use crate::strategy::spread;
use crate::strategy::{BinpackField, MAX_STRATEGIES, SpreadField, Strategy};
use crate::view::{InstanceView, TaskRequest};

/// Keys hold at most this many scores: ECS's strategy limit.
pub(crate) const MAX_KEYS: usize = MAX_STRATEGIES;

/// A score vector, compared lexicographically; unused trailing slots stay 0.
pub(crate) type Key = [i64; MAX_KEYS];

/// What one strategy of the key prefix contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rank {
    /// `spread(attribute:…)`: the load of the cell's value of attribute number `.0` of
    /// [`KeyPlan::attributes`].
    Cell(usize),
    /// `spread(instanceId)`: the instance's own tasks of the group.
    InstanceSpread,
    /// `binpack(…)`: what the instance has left of the resource after the task.
    Binpack(BinpackField),
}

/// The strategies before the first `random`, as key positions.
#[derive(Debug, Clone)]
pub(crate) struct KeyPlan {
    pub(crate) ranks: Vec<Rank>,
    /// Distinct attribute names of the `Cell` ranks, in first-use order.
    pub(crate) attributes: Vec<String>,
    /// Index in the strategy list of the first `random`, if any.
    pub(crate) random_at: Option<usize>,
}

impl KeyPlan {
    /// `None` when the prefix has more than [`MAX_KEYS`] strategies (callers that skip
    /// validation); the reference pass handles those.
    pub(crate) fn new(strategies: &[Strategy]) -> Option<KeyPlan> {
        let random_at = strategies.iter().position(|s| *s == Strategy::Random);
        let prefix = &strategies[..random_at.unwrap_or(strategies.len())];
        if prefix.len() > MAX_KEYS {
            return None;
        }
        let mut attributes: Vec<String> = Vec::new();
        let ranks = prefix
            .iter()
            .map(|s| match s {
                Strategy::Spread(SpreadField::InstanceId) => Rank::InstanceSpread,
                Strategy::Spread(SpreadField::Attribute(name)) => {
                    Rank::Cell(match attributes.iter().position(|a| a == name) {
                        Some(k) => k,
                        None => {
                            attributes.push(name.clone());
                            attributes.len() - 1
                        }
                    })
                }
                Strategy::Binpack(field) => Rank::Binpack(*field),
                Strategy::Random => unreachable!("the prefix ends before the first random"),
            })
            .collect();
        Some(KeyPlan { ranks, attributes, random_at })
    }

    /// The local scores of `inst` for `task`, in rank order, packed at the front of the key.
    /// Inside one cell the cell scores are constants, so this orders a cell's candidates the
    /// way the full key orders them.
    pub(crate) fn local_key(&self, inst: &InstanceView, task: &TaskRequest) -> Key {
        let mut key = [0; MAX_KEYS];
        let mut slot = 0;
        for rank in &self.ranks {
            let score = match rank {
                Rank::Cell(_) => continue,
                Rank::InstanceSpread => {
                    spread::placement_score(Some(spread::instance_load(inst, &task.group)))
                }
                Rank::Binpack(field) => field.placement_score(inst, task),
            };
            key[slot] = score;
            slot += 1;
        }
        key
    }

    /// The full score vector of a candidate with local key `local` in a cell whose load for
    /// attribute `a` is `load(a)` (`None`: the cell lacks the attribute).
    pub(crate) fn full_key(&self, local: &Key, load: impl Fn(usize) -> Option<i64>) -> Key {
        let mut key = [0; MAX_KEYS];
        let mut slot = 0;
        for (k, rank) in self.ranks.iter().enumerate() {
            key[k] = match rank {
                Rank::Cell(a) => spread::placement_score(load(*a)),
                _ => {
                    slot += 1;
                    local[slot - 1]
                }
            };
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategies(text: &[&str]) -> Vec<Strategy> {
        text.iter().map(|t| Strategy::parse(t).unwrap()).collect()
    }

    #[test]
    fn key_plan_stops_at_the_first_random_and_dedups_attributes() {
        let plan = KeyPlan::new(&strategies(&[
            "spread(attribute:az)",
            "binpack(memory)",
            "spread(attribute:az)",
            "random",
            "spread(instanceId)",
        ]))
        .unwrap();
        assert_eq!(plan.ranks, [Rank::Cell(0), Rank::Binpack(BinpackField::Memory), Rank::Cell(0)]);
        assert_eq!(plan.attributes, ["az"]);
        assert_eq!(plan.random_at, Some(3));
        assert!(KeyPlan::new(&strategies(&["binpack(cpu)"; 6])).is_none());
        assert!(KeyPlan::new(&strategies(&["random"; 6])).is_some());
    }

    #[test]
    fn full_key_interleaves_cell_and_local_scores_in_strategy_order() {
        let plan = KeyPlan::new(&strategies(&[
            "binpack(cpu)",
            "spread(attribute:az)",
            "spread(instanceId)",
            "spread(attribute:rack)",
        ]))
        .unwrap();
        let inst = InstanceView {
            remaining_cpu: 1000,
            tasks_by_group: [("g".to_owned(), 3)].into(),
            ..Default::default()
        };
        let task = TaskRequest { group: "g".into(), cpu: 100, ..Default::default() };
        let local = plan.local_key(&inst, &task);
        assert_eq!(local, [900, 3, 0, 0, 0]);
        let full = plan.full_key(&local, |a| (a == 0).then_some(7));
        assert_eq!(full, [900, 7, 3, i64::MAX, 0]);
    }
}
