//! The crate's one error enum.
//!
//! Placement itself never fails as a call: a task that fits nowhere becomes a
//! [`crate::PlacementFailure`] inside the plan. Errors here come from turning user input into
//! scheduler values — today, parsing and validating placement strategies. Every variant carries
//! the offending input so the controller can name the field and the rule in its API error.

use thiserror::Error;

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
}
