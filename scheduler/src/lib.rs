//! Berth's scheduler: a pure function from a cluster snapshot to a placement plan.
//!
//! No I/O, no clock, no global randomness: every entry point takes the snapshot and a `seed`,
//! and the same inputs always give the same answer, so the controller can replay and property
//! tests can explore. The controller builds the inputs from its store, calls in, and commits the
//! returned plan through Raft itself (re-checking versions); nothing here touches tokio, tonic
//! or sled.
//!
//! Data flow of [`place_with`] (and [`place`], the same without constraints):
//!
//! ```text
//!   &[InstanceView] ──► view::ClusterState (id-sorted working copy, updated per placement)
//!                           │
//!   each TaskRequest ──► filter::PIPELINE      INACTIVE → AGENT → RESOURCE:CPU → :MEMORY → :PORTS
//!                        + constraint/         → ATTRIBUTE (memberOf) / DISTINCT_INSTANCE
//!                           │ candidates                 (none left → plan::PlacementFailure)
//!                           ▼
//!                       strategy::narrow        Strategy list in order, each breaking earlier ties
//!                           │                   (spread.rs, binpack.rs, random.rs)
//!                           ▼
//!                       seeded tie-break ──► Placement, recorded in ClusterState
//! ```
//!
//! [`choose_victims`] (scale-in, `victims.rs`) runs the same strategies in reverse: unstarted
//! tasks first, then whatever keeps the remaining distribution balanced.
//!
//! Modules: `view` (inputs, working copy), `filter` (feasibility, failure reasons), `strategy/`
//! (ranking, parsing), `plan` (placement pass), `victims` (scale-in), `rng` (SplitMix64),
//! `error` (the crate's error enum), `constraint/` (memberOf, distinctInstance as filters),
//! `query/` (the cluster query language: lexer, parser, AST, evaluator), `explain` (dry runs).

mod constraint;
mod error;
mod explain;
mod filter;
mod plan;
pub mod query;
mod rng;
mod strategy;
mod victims;
mod view;

pub use constraint::{Constraint, MAX_CONSTRAINTS, validate_constraints};
pub use error::SchedulerError;
pub use explain::{CandidateExplanation, Explanation, TaskExplanation, explain};
pub use filter::{FailureReason, MAX_RESERVED_PORTS};
pub use plan::{Placement, PlacementFailure, PlacementSpec, Plan, place, place_with};
pub use strategy::{
    AVAILABILITY_ZONE_ATTRIBUTE, BinpackField, MAX_STRATEGIES, SpreadField, Strategy,
    default_strategies, validate_strategies,
};
pub use victims::{VictimCandidate, choose_victims};
pub use view::{InstanceView, TaskRequest};
