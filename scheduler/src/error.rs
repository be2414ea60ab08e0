//! The crate's one error enum.
//!
//! Placement itself never fails as a call: a task that fits nowhere becomes a
//! [`crate::PlacementFailure`] inside the plan. Errors here come from turning user input into
//! scheduler values — parsing and validating placement strategies, constraints and cluster query
//! expressions. Every variant carries the offending input so the controller can name the field
//! and the rule in its API error.

use thiserror::Error;

use crate::query::ParseError;

/// Everything that can go wrong when building scheduler inputs from user text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The text is not of the form `type` or `type(field)`.
    #[error(
        "placement strategy {input:?} is malformed: expected `type` or `type(field)`, e.g. `spread(attribute:ecs.availability-zone)`"
    )]
    MalformedStrategy { input: String },

    /// The strategy type is not one Berth knows.
    #[error("unknown placement strategy type {kind:?}: expected one of binpack, random, spread")]
    UnknownStrategyType { kind: String },

    /// The strategy type needs a field and none was given.
    #[error("placement strategy {kind} needs a field: {expected}")]
    MissingStrategyField { kind: &'static str, expected: &'static str },

    /// The field is not valid for this strategy type.
    #[error("placement strategy {kind} does not accept field {field:?}: expected {expected}")]
    InvalidStrategyField { kind: &'static str, field: String, expected: &'static str },

    /// More strategies than ECS allows on one service or RunTask call.
    #[error("at most {max} placement strategies are allowed, got {got}")]
    TooManyStrategies { got: usize, max: usize },

    /// The text is not `distinctInstance` or `memberOf(expression)`.
    #[error(
        "placement constraint {input:?} is malformed: expected `distinctInstance` or `memberOf(expression)`"
    )]
    MalformedConstraint { input: String },

    /// The constraint type is not one Berth knows.
    #[error("unknown placement constraint type {kind:?}: expected distinctInstance or memberOf")]
    UnknownConstraintType { kind: String },

    /// `memberOf` without an expression.
    #[error("placement constraint memberOf needs an expression")]
    MissingConstraintExpression,

    /// `distinctInstance` with an expression (ECS: "must be absent").
    #[error("placement constraint distinctInstance takes no expression, got {expression:?}")]
    UnexpectedConstraintExpression { expression: String },

    /// A cluster query expression did not parse. `position` is a byte offset into the text the
    /// caller passed (for `Constraint::parse`, the whole `memberOf(…)` text).
    #[error("invalid cluster query expression {0}")]
    InvalidExpression(#[from] ParseError),

    /// More constraints than ECS allows on one task (definition and call together).
    #[error("at most {max} placement constraints are allowed, got {got}")]
    TooManyConstraints { got: usize, max: usize },
}
