//! Evaluating an [`Expr`] against one [`InstanceView`].
//!
//! Rules, one place for all callers (placement, `instance list --filter`, validation):
//! * A negated operator is exactly the negation of its positive form, for every subject:
//!   `!=` is `not ==`, `!in` is `not in`, `!~` is `not =~`, `!exists` is `not exists`. So
//!   `attribute:stack != prod` holds on an instance without a `stack` attribute, and
//!   `task:group != database` holds on an instance running no `database` task (anti-affinity).
//! * `attribute:NAME`: a missing attribute makes `==`, `in`, `=~`, `exists` and every ordering
//!   false. Orderings compare numerically when both sides are numbers, else as text (bytes).
//! * `agentVersion` compares versions (`literal.rs`); an unparsable instance version makes every
//!   comparison but `!=` false.
//! * `registeredAt` compares the instance's epoch millis with the literal's span
//!   (`== d`: inside it; `< d`: before it starts; `<= d`: before it ends; `>`/`>=` mirror).
//! * `task:group` holds when the instance runs ≥ 1 task of a group that equals / is in / matches.
//! * `=~` matches the whole value.

use std::cmp::Ordering;

use super::ast::{Expr, Operator, Subject, Term, Typed};
use super::literal::Version;
use crate::view::InstanceView;

impl Expr {
    /// Whether `instance` satisfies the expression.
    pub fn eval(&self, instance: &InstanceView) -> bool {
        match self {
            Expr::Term(t) => t.eval(instance),
            Expr::Not(e) => !e.eval(instance),
            Expr::And(l, r) => l.eval(instance) && r.eval(instance),
            Expr::Or(l, r) => l.eval(instance) || r.eval(instance),
        }
    }

    /// True when no term depends on what a batch places (`runningTasksCount`, `task:group`),
    /// so the result for an instance is fixed for a whole placement call.
    pub fn is_static(&self) -> bool {
        match self {
            Expr::Term(t) => !t.subject.depends_on_placements(),
            Expr::Not(e) => e.is_static(),
            Expr::And(l, r) | Expr::Or(l, r) => l.is_static() && r.is_static(),
        }
    }
}

impl Term {
    fn eval(&self, inst: &InstanceView) -> bool {
        match self.operator.negates() {
            Some(positive) => !self.positive(positive, inst),
            None => self.positive(self.operator, inst),
        }
    }

    /// `op` is never a negated operator here.
    fn positive(&self, op: Operator, inst: &InstanceView) -> bool {
        if op == Operator::Matches {
            let re = self.pattern.as_ref().expect("the parser compiles every =~ pattern");
            return match &self.subject {
                Subject::TaskGroup => {
                    inst.tasks_by_group.iter().any(|(g, n)| *n > 0 && re.is_match(g))
                }
                Subject::Attribute(name) => {
                    inst.attributes.get(name).is_some_and(|v| re.is_match(v))
                }
                Subject::InstanceId => re.is_match(&inst.id),
                Subject::AgentConnected => {
                    re.is_match(if inst.agent_connected { "true" } else { "false" })
                }
                Subject::AgentVersion => re.is_match(&inst.agent_version),
                Subject::RegisteredAt => re.is_match(&inst.registered_at_millis.to_string()),
                Subject::RunningTasksCount => re.is_match(&inst.running_tasks_count.to_string()),
            };
        }
        if op == Operator::Exists {
            return match &self.subject {
                Subject::Attribute(name) => inst.attributes.contains_key(name),
                _ => true,
            };
        }
        if op == Operator::In {
            (0..self.values.len()).any(|k| self.compare(Operator::Eq, k, inst))
        } else {
            self.compare(op, 0, inst)
        }
    }

    /// `op` (`==` or an ordering) against value `k`.
    fn compare(&self, op: Operator, k: usize, inst: &InstanceView) -> bool {
        let value = &self.values[k];
        let ordering: Option<Ordering> = match (&self.subject, &self.typed[k]) {
            (Subject::TaskGroup, _) => return inst.group_count(value) > 0,
            (Subject::Attribute(name), Typed::Text(number)) => {
                let actual = inst.attributes.get(name);
                actual.map(|a| match (number, a.parse::<f64>()) {
                    (Some(n), Ok(a)) if a.is_finite() => a.total_cmp(n),
                    _ => a.as_str().cmp(value.as_str()),
                })
            }
            (Subject::InstanceId, _) => Some(inst.id.as_str().cmp(value.as_str())),
            (Subject::AgentConnected, Typed::Bool(b)) => Some(inst.agent_connected.cmp(b)),
            (Subject::AgentVersion, Typed::Version(v)) => {
                Version::parse(&inst.agent_version).map(|actual| actual.cmp(v))
            }
            (Subject::RunningTasksCount, Typed::Count(n)) => {
                Some(i64::from(inst.running_tasks_count).cmp(n))
            }
            (Subject::RegisteredAt, Typed::Date(range)) => {
                let at = inst.registered_at_millis;
                return match op {
                    Operator::Eq => range.start <= at && at < range.end,
                    Operator::Lt => at < range.start,
                    Operator::Le => at < range.end,
                    Operator::Gt => at >= range.end,
                    Operator::Ge => at >= range.start,
                    _ => false,
                };
            }
            _ => None,
        };
        let Some(ordering) = ordering else {
            return false;
        };
        match op {
            Operator::Eq => ordering.is_eq(),
            Operator::Gt => ordering.is_gt(),
            Operator::Ge => ordering.is_ge(),
            Operator::Lt => ordering.is_lt(),
            Operator::Le => ordering.is_le(),
            _ => false,
        }
    }
}
