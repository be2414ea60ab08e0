//! The ECS cluster query language (ECS-NOTES §2.5): one lexer, one parser, one AST, one
//! evaluator, used by `memberOf` placement constraints, by `berth instance list --filter` and by
//! create-time validation.
//!
//! ```text
//!   &str ──► parser.rs (reads tokens from lexer.rs on demand, checks each term,
//!            │           pre-parses values with literal.rs, compiles =~ patterns)
//!            ▼
//!          ast.rs  Expr / Term / Subject / Operator   ──Display──► canonical text (round-trips)
//!            │
//!            ▼
//!          eval.rs  Expr::eval(&InstanceView) -> bool
//! ```
//!
//! Errors carry the byte offset of the offending token ([`ParseError`], `at 23: …`). Regular
//! expressions (`=~`, `!~`) use the `regex` crate and match the whole value; ECS documents Java
//! regexes, and the common subset — classes, quantifiers, alternation, groups, anchors — means
//! the same, while backreferences and lookaround are rejected at parse time.
//! Nothing here knows about placement; the scheduler's `memberOf` constraint wraps an [`Expr`].

mod ast;
mod eval;
mod lexer;
mod literal;
mod parser;

use thiserror::Error;

pub use ast::{Expr, Operator, Subject, Term};
pub use parser::MAX_NESTING;

/// ECS's limit on a cluster query expression, in characters.
pub const MAX_EXPRESSION_LENGTH: usize = 2000;

/// Why an expression did not parse: the byte offset in the input and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at {position}: {message}")]
pub struct ParseError {
    /// Byte offset of the offending token in the input (the input's length at its end).
    pub position: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: String) -> Self {
        Self { position, message }
    }
}

impl Expr {
    /// Parses a cluster query expression (at most [`MAX_EXPRESSION_LENGTH`] characters).
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        parser::parse(text)
    }
}

impl std::str::FromStr for Expr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Expr::parse(s)
    }
}

#[cfg(test)]
mod tests;
