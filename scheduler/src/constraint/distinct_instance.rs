//! `distinctInstance`: every task of a group on a different instance.
//!
//! An instance is rejected when it already runs a task of the task's group — tasks that were
//! there before the call and tasks placed earlier in the same batch alike (the working
//! `ClusterState` counts both). Rejection is monotone: placing more tasks never lifts it.

use crate::filter::{FailureReason, Filter};
use crate::view::{InstanceView, TaskRequest};

pub(crate) struct DistinctInstance;

impl Filter for DistinctInstance {
    fn reason(&self) -> FailureReason {
        FailureReason::DistinctInstance
    }
    fn admits(&self, inst: &InstanceView, task: &TaskRequest) -> bool {
        inst.group_count(&task.group) == 0
    }
    fn shortfall(&self, inst: &InstanceView, task: &TaskRequest) -> i64 {
        i64::from(inst.group_count(&task.group))
    }
    fn lack(&self, _: &InstanceView, task: &TaskRequest) -> String {
        format!("already runs a task of group {}", task.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_instances_already_running_the_group() {
        let mut inst = InstanceView::default();
        let task = TaskRequest { group: "service:web".into(), ..Default::default() };
        assert!(DistinctInstance.admits(&inst, &task));
        inst.tasks_by_group.insert("service:db".into(), 3);
        inst.tasks_by_group.insert("service:web".into(), 0);
        assert!(DistinctInstance.admits(&inst, &task));
        inst.tasks_by_group.insert("service:web".into(), 1);
        assert!(!DistinctInstance.admits(&inst, &task));
        assert_eq!(DistinctInstance.lack(&inst, &task), "already runs a task of group service:web");
    }
}
