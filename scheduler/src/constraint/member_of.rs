//! `memberOf(expression)`: only instances for which the cluster query expression holds.
//!
//! The expression is evaluated by `crate::query` (the one evaluator). A static expression (no
//! `task:group`, no `runningTasksCount`) gives the same answer for the whole call, so the
//! indexed pass evaluates it once per instance; a dynamic one reads only the instance's own
//! tasks, so it is re-evaluated on the instance a task went to (and may turn true again as the
//! batch places tasks).

use crate::filter::{FailureReason, Filter};
use crate::query::Expr;
use crate::view::{InstanceView, TaskRequest};

pub(crate) struct MemberOf<'a>(pub(crate) &'a Expr);

impl Filter for MemberOf<'_> {
    fn reason(&self) -> FailureReason {
        FailureReason::Attribute
    }
    fn admits(&self, inst: &InstanceView, _: &TaskRequest) -> bool {
        self.0.eval(inst)
    }
    fn shortfall(&self, _: &InstanceView, _: &TaskRequest) -> i64 {
        1
    }
    fn lack(&self, _: &InstanceView, _: &TaskRequest) -> String {
        format!("does not match the memberOf expression {}", self.0)
    }
    fn is_static(&self) -> bool {
        self.0.is_static()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_of_admits_matching_instances_and_names_the_expression() {
        let expr = Expr::parse("attribute:ecs.instance-type =~ m5.*").unwrap();
        let filter = MemberOf(&expr);
        let mut inst = InstanceView::default();
        inst.attributes.insert("ecs.instance-type".into(), "m5.large".into());
        let task = TaskRequest::default();
        assert!(filter.admits(&inst, &task));
        inst.attributes.insert("ecs.instance-type".into(), "c5.large".into());
        assert!(!filter.admits(&inst, &task));
        assert_eq!(
            filter.lack(&inst, &task),
            "does not match the memberOf expression attribute:ecs.instance-type =~ m5.*"
        );
        assert!(filter.is_static());
        assert!(!MemberOf(&Expr::parse("task:group == x").unwrap()).is_static());
    }
}
