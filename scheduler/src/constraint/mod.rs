//! Placement constraints: the binding filters that run after the resource filters
//! (ECS-NOTES §2.3; pipeline order in `filter.rs`).
//!
//! * [`Constraint`] is the user-facing value: parsed from `distinctInstance` / `memberOf(EXPR)`
//!   text or from the ECS wire pair `{type, expression}`, printed back the same way.
//! * Each constraint is one file implementing the crate's `Filter` trait: `distinct_instance.rs`
//!   (`DISTINCT_INSTANCE`) and `member_of.rs` (`ATTRIBUTE`). [`Constraint::filter`] is the one
//!   explicit list. Adding a constraint = a new file, a variant, and one arm each in `filter`,
//!   `from_parts` and `Display`.
//!
//! Constraints apply to every task of a placement call (`PlacementSpec::constraints`).

mod distinct_instance;
mod member_of;

use std::fmt;

use crate::error::SchedulerError;
use crate::filter::Filter;
use crate::query::Expr;

pub(crate) use distinct_instance::DistinctInstance;
pub(crate) use member_of::MemberOf;

/// ECS allows at most ten placement constraints per task (task definition and call together).
pub const MAX_CONSTRAINTS: usize = 10;

/// One placement constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// No two tasks of the same group on one instance (counting tasks already there).
    DistinctInstance,
    /// Only instances for which the cluster query expression holds.
    MemberOf(Expr),
}

/// Checks a constraint list against ECS limits (at most [`MAX_CONSTRAINTS`]).
pub fn validate_constraints(constraints: &[Constraint]) -> Result<(), SchedulerError> {
    if constraints.len() > MAX_CONSTRAINTS {
        return Err(SchedulerError::TooManyConstraints {
            got: constraints.len(),
            max: MAX_CONSTRAINTS,
        });
    }
    Ok(())
}

impl Constraint {
    /// Parses `distinctInstance` or `memberOf(EXPRESSION)`. Type names are case-insensitive;
    /// surrounding spaces are ignored. An expression error's position is a byte offset into
    /// `text` (not into the expression).
    pub fn parse(text: &str) -> Result<Self, SchedulerError> {
        let malformed = || SchedulerError::MalformedConstraint { input: text.to_owned() };
        let leading = text.len() - text.trim_start().len();
        let trimmed = text.trim();
        let Some(open) = trimmed.find('(') else {
            if trimmed.contains(')') {
                return Err(malformed());
            }
            return Self::from_parts(trimmed, None);
        };
        let kind = trimmed[..open].trim();
        let inner = trimmed[open + 1..].strip_suffix(')').ok_or_else(malformed)?;
        if !kind.eq_ignore_ascii_case("memberOf") {
            return Self::from_parts(kind, Some(inner));
        }
        if inner.trim().is_empty() {
            return Err(SchedulerError::MissingConstraintExpression);
        }
        let offset = leading + open + 1;
        Expr::parse(inner).map(Constraint::MemberOf).map_err(|mut e| {
            e.position += offset;
            SchedulerError::InvalidExpression(e)
        })
    }

    /// Builds a constraint from the ECS wire pair (`PlacementConstraint.type`, `.expression`).
    /// An absent or blank expression is treated the same.
    pub fn from_parts(kind: &str, expression: Option<&str>) -> Result<Self, SchedulerError> {
        let expression = expression.filter(|e| !e.trim().is_empty());
        if kind.eq_ignore_ascii_case("distinctInstance") {
            return match expression {
                None => Ok(Constraint::DistinctInstance),
                Some(e) => {
                    Err(SchedulerError::UnexpectedConstraintExpression { expression: e.to_owned() })
                }
            };
        }
        if kind.eq_ignore_ascii_case("memberOf") {
            let expression = expression.ok_or(SchedulerError::MissingConstraintExpression)?;
            return Ok(Constraint::MemberOf(Expr::parse(expression)?));
        }
        if kind.is_empty() {
            return Err(SchedulerError::MalformedConstraint { input: kind.to_owned() });
        }
        Err(SchedulerError::UnknownConstraintType { kind: kind.to_owned() })
    }

    /// The ECS `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Constraint::DistinctInstance => "distinctInstance",
            Constraint::MemberOf(_) => "memberOf",
        }
    }

    /// The ECS `expression` string (canonical form), if the type takes one.
    pub fn expression(&self) -> Option<String> {
        match self {
            Constraint::DistinctInstance => None,
            Constraint::MemberOf(e) => Some(e.to_string()),
        }
    }

    /// The filter implementing this constraint. The one explicit list of constraints.
    pub(crate) fn filter(&self) -> Box<dyn Filter + '_> {
        match self {
            Constraint::DistinctInstance => Box::new(DistinctInstance),
            Constraint::MemberOf(expr) => Box::new(MemberOf(expr)),
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::DistinctInstance => f.write_str("distinctInstance"),
            Constraint::MemberOf(e) => write!(f, "memberOf({e})"),
        }
    }
}

impl std::str::FromStr for Constraint {
    type Err = SchedulerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Constraint::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trips_both_types() {
        for text in [
            "distinctInstance",
            "memberOf(attribute:ecs.instance-type =~ m5.*)",
            "memberOf(not (task:group == service:db or runningTasksCount > 3))",
        ] {
            let c = Constraint::parse(text).unwrap();
            assert_eq!(c.to_string(), text);
            assert_eq!(Constraint::parse(&c.to_string()).unwrap(), c);
        }
        assert_eq!(Constraint::parse(" DISTINCTINSTANCE ").unwrap(), Constraint::DistinctInstance);
        assert_eq!(
            Constraint::parse("memberof( attribute:a exists )").unwrap().to_string(),
            "memberOf(attribute:a exists)"
        );
    }

    #[test]
    fn from_parts_takes_the_ecs_wire_shape() {
        let c = Constraint::from_parts("memberOf", Some("attribute:stack == prod")).unwrap();
        assert_eq!(
            (c.type_name(), c.expression().as_deref()),
            ("memberOf", Some("attribute:stack == prod"))
        );
        assert_eq!(
            Constraint::from_parts("distinctInstance", Some("")).unwrap(),
            Constraint::DistinctInstance
        );
        assert_eq!(Constraint::DistinctInstance.expression(), None);
    }

    #[test]
    fn bad_constraints_get_specific_errors() {
        assert!(matches!(
            Constraint::parse("memberOf()"),
            Err(SchedulerError::MissingConstraintExpression)
        ));
        assert!(matches!(
            Constraint::from_parts("memberOf", None),
            Err(SchedulerError::MissingConstraintExpression)
        ));
        assert!(matches!(
            Constraint::parse("distinctInstance(x)"),
            Err(SchedulerError::UnexpectedConstraintExpression { .. })
        ));
        assert!(matches!(
            Constraint::parse("sameZone"),
            Err(SchedulerError::UnknownConstraintType { .. })
        ));
        assert!(matches!(
            Constraint::parse("memberOf(a"),
            Err(SchedulerError::MalformedConstraint { .. })
        ));
        assert!(matches!(Constraint::parse(""), Err(SchedulerError::MalformedConstraint { .. })));
        // Positions point into the whole constraint text.
        let err = Constraint::parse("  memberOf(attribute:x is y)").unwrap_err();
        let SchedulerError::InvalidExpression(e) = &err else { panic!("{err:?}") };
        assert_eq!(e.position, 23);
        assert_eq!(
            err.to_string(),
            "invalid cluster query expression at 23: expected an operator after 'attribute:x', found 'is'"
        );
    }

    #[test]
    fn validate_constraints_caps_the_list_at_ten() {
        assert!(validate_constraints(&vec![Constraint::DistinctInstance; 10]).is_ok());
        assert_eq!(
            validate_constraints(&vec![Constraint::DistinctInstance; 11]),
            Err(SchedulerError::TooManyConstraints { got: 11, max: 10 })
        );
    }
}
