//! Berth's scheduler: a pure function from a cluster snapshot to a placement plan.
//!
//! No I/O, no clock, no global randomness: every entry point takes the snapshot and a `seed`,
//! and the same inputs always give the same answer, so the controller can replay and property
//! tests can explore. The controller builds the inputs from its store, calls in, and commits the
//! returned plan through Raft itself (re-checking versions); nothing here touches tokio, tonic
//! or sled.
//!
//! What a placement pass decides, as the reference pass computes it ([`place_with`] and
//! [`place`], the same without constraints, make the same plan faster; see below):
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
//! That is the definition — `plan::place_reference`, O(tasks × instances). [`place_with`] makes
//! the very same plan through `indexed/`: tasks grouped by shape, each shape's feasible
//! instances kept sorted by their score vector (per spread-attribute cell, then by the local
//! scores), and only the chosen instance re-checked after each placement — O(tasks × log
//! instances) for the usual spread + binpack batch. `tests/equivalence.rs` checks that both
//! give equal plans.
//!
//! [`choose_victims`] (scale-in, `victims.rs`) runs the same strategies in reverse: unstarted
//! tasks first, then whatever keeps the remaining distribution balanced.
//!
//! Modules: `view` (inputs, working copy), `filter` (feasibility, failure reasons), `strategy/`
//! (ranking, parsing), `plan` (plan types, entry points, reference pass), `indexed/` (the fast
//! pass: `ranking` keys, `cells`, per-shape `shape` indexes), `victims` (scale-in), `rng`
//! (SplitMix64), `error` (the crate's error enum), `constraint/` (memberOf, distinctInstance as
//! filters), `query/` (the cluster query language: lexer, parser, AST, evaluator), `explain`
//! (dry runs, on the reference pass).

mod constraint;
mod error;
mod explain;
mod filter;
mod indexed;
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
pub use plan::{
    Placement, PlacementFailure, PlacementSpec, Plan, place, place_reference, place_with,
};
pub use strategy::{
    AVAILABILITY_ZONE_ATTRIBUTE, BinpackField, MAX_STRATEGIES, SpreadField, Strategy,
    default_strategies, validate_strategies,
};
pub use victims::{VictimCandidate, choose_victims};
pub use view::{InstanceView, TaskRequest};
