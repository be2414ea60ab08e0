//! Dry-run explanations: where each task of a batch would go and why the other instances were
//! not chosen.
//!
//! [`explain`] runs the reference pass (`plan::run`, the definition [`crate::place_with`]'s
//! indexed pass is tested against: same filters, strategies and seed, so the chosen instances
//! are exactly the ones a real placement would pick) and, at each task, records for every
//! instance either the filter that rejected it (with what it lacked) or its score under each
//! strategy over the whole feasible set (lower is preferred; a strategy only decides among the
//! instances tied on the earlier ones). Scores come from a separate RNG stream, so explaining
//! never changes the plan. It costs O(tasks × instances), like the report it builds.

use crate::filter::{FailureReason, Filter, first_rejection};
use crate::plan::{self, PlacementFailure, PlacementSpec, Plan};
use crate::rng::SeededRng;
use crate::view::{ClusterState, InstanceView, TaskRequest};

/// The whole batch: the plan a real placement would make, and one explanation per task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    pub plan: Plan,
    pub tasks: Vec<TaskExplanation>,
}

/// One task: its instance (or failure) and every instance's verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskExplanation {
    pub task_index: usize,
    pub chosen: Option<String>,
    pub failure: Option<PlacementFailure>,
    /// Every instance of the snapshot, in id order.
    pub candidates: Vec<CandidateExplanation>,
}

/// One instance's verdict for one task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidateExplanation {
    pub instance_id: String,
    pub chosen: bool,
    /// The first filter that rejected it and what it lacked.
    pub rejected_by: Option<(FailureReason, String)>,
    /// Feasible instances: one score per strategy, in strategy order (lower is preferred).
    pub scores: Vec<i64>,
}

/// Explains the placement of `tasks` under `spec` with `seed` (see the module doc).
pub fn explain(
    instances: &[InstanceView],
    tasks: &[TaskRequest],
    spec: &PlacementSpec,
    seed: u64,
) -> Explanation {
    let mut out = Explanation::default();
    let mut score_rng = SeededRng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut observe = |filters: &[&dyn Filter],
                       cluster: &ClusterState,
                       task_index: usize,
                       feasible: &[usize],
                       chosen: Option<usize>| {
        let task = &tasks[task_index];
        let per_strategy: Vec<Vec<i64>> = spec
            .strategies
            .iter()
            .map(|s| {
                if feasible.is_empty() {
                    Vec::new()
                } else {
                    s.ranker().score_placement(cluster, task, feasible, &mut score_rng)
                }
            })
            .collect();
        let candidates = (0..cluster.len())
            .map(|i| {
                let inst = cluster.get(i);
                let mut c = CandidateExplanation {
                    instance_id: inst.id.clone(),
                    chosen: chosen == Some(i),
                    ..Default::default()
                };
                match feasible.binary_search(&i) {
                    Ok(pos) => c.scores = per_strategy.iter().map(|s| s[pos]).collect(),
                    Err(_) => {
                        c.rejected_by = first_rejection(filters, inst, task)
                            .map(|f| (filters[f].reason(), filters[f].lack(inst, task)));
                    }
                }
                c
            })
            .collect();
        out.tasks.push(TaskExplanation {
            task_index,
            chosen: chosen.map(|i| cluster.get(i).id.clone()),
            failure: None,
            candidates,
        });
    };
    let mut plan = Plan::default();
    plan::run(instances, tasks, spec, seed, &mut observe, &mut plan);
    for failure in &plan.failures {
        if let Some(t) = out.tasks.iter_mut().find(|t| t.task_index == failure.task_index) {
            t.failure = Some(failure.clone());
        }
    }
    out.plan = plan;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constraint::Constraint;
    use crate::strategy::{BinpackField, Strategy};

    fn inst(id: &str, memory: i64, kind: &str) -> InstanceView {
        InstanceView {
            id: id.into(),
            active: true,
            agent_connected: true,
            attributes: [("ecs.instance-type".to_owned(), kind.to_owned())].into(),
            remaining_cpu: 1024,
            remaining_memory: memory,
            ..Default::default()
        }
    }

    #[test]
    fn explanation_matches_the_plan_and_names_rejections_and_scores() {
        let instances =
            [inst("a", 4096, "m5.large"), inst("b", 1024, "m5.large"), inst("c", 8192, "c5.large")];
        let spec = PlacementSpec {
            strategies: vec![Strategy::Binpack(BinpackField::Memory)],
            constraints: vec![
                Constraint::parse("memberOf(attribute:ecs.instance-type =~ m5.*)").unwrap(),
            ],
        };
        let task =
            TaskRequest { group: "service:web".into(), cpu: 1, memory: 512, ..Default::default() };
        let tasks = vec![task; 2];
        let e = explain(&instances, &tasks, &spec, 7);
        assert_eq!(e.plan, plan::place_with(&instances, &tasks, &spec, 7));
        let first = &e.tasks[0];
        assert_eq!(first.chosen.as_deref(), Some("b"));
        let by_id = |id: &str| first.candidates.iter().find(|c| c.instance_id == id).unwrap();
        // binpack scores the memory left after placing the task.
        assert_eq!(by_id("a").scores, [3584]);
        assert_eq!(by_id("b").scores, [512]);
        assert!(by_id("b").chosen);
        let (reason, lack) = by_id("c").rejected_by.clone().unwrap();
        assert_eq!(reason, FailureReason::Attribute);
        assert!(lack.contains("memberOf"), "{lack}");
        // The second task sees the first one's reservation: b has 512 left, still the fullest.
        assert_eq!(e.tasks[1].chosen.as_deref(), Some("b"));
    }

    #[test]
    fn failed_tasks_carry_the_failure_and_every_rejection() {
        let instances = [inst("a", 256, "m5.large")];
        let task = TaskRequest { group: "g".into(), cpu: 1, memory: 512, ..Default::default() };
        let e = explain(&instances, &[task], &PlacementSpec::default(), 0);
        let t = &e.tasks[0];
        assert_eq!(t.chosen, None);
        assert_eq!(t.failure.as_ref().map(|f| f.reason), Some(FailureReason::Memory));
        assert_eq!(t.candidates[0].rejected_by.as_ref().map(|r| r.0), Some(FailureReason::Memory));
    }
}
