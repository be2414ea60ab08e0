//! Turning a user's ECS RegisterTaskDefinition document into a validated `TaskDefinition`.
//!
//! [`parse_registration`] is the only entry point (the controller's RegisterTaskDefinition and
//! the CLI's `register` both call it). Data flow:
//!
//! 1. `parse`     — text → JSON (errors keep line/column) → one of three accepted shapes
//!    (RegisterTaskDefinition input; DescribeTaskDefinition output, unwrapped; a bare
//!    Terraform `containerDefinitions` array, which needs `--family`) → read-only describe fields
//!    dropped → typed read; type mismatches and unknown fields name their path, worded as the
//!    aws CLI words them.
//! 2. `validate`  — task cpu/memory normalised (`normalize`), then every ECS rule Berth enforces:
//!    task-level and cross-container rules in `validate`, single-container rules in
//!    `containers`. All violations are collected into one [`TaskDefError::Invalid`].
//! 3. `warnings`  — what Berth accepts but cannot honour as ECS would (Fargate, awsvpc, IAM
//!    roles, non-json-file log drivers, secrets, …), one line each.
//! 4. the compact definition must fit in 64 KiB.
//!
//! The result is the *input* part of a task definition: no ARN, revision, status or timestamps
//! (the store assigns those). This module does no I/O and never panics on user input.

mod containers;
pub(crate) mod error;
mod normalize;
pub(crate) mod parse;
mod runtime_options;
mod validate;
mod warnings;

#[cfg(test)]
mod tests;

pub use error::{TaskDefError, Violation};
pub use warnings::RESERVED_LABEL_PREFIX;

use crate::model::TaskDefinition;

/// ECS's limit on a task definition's JSON (we measure the compact form of what we store).
pub const MAX_DEFINITION_BYTES: usize = 64 * 1024;

/// A definition ready to store, and what the user should be told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub definition: TaskDefinition,
    /// One line each; never empty strings.
    pub warnings: Vec<String>,
}

/// Parses and validates a RegisterTaskDefinition document.
///
/// `family_override` (the CLI's `--family`) names the family of a bare containerDefinitions
/// array, and replaces (with a warning) the family of a full document.
pub fn parse_registration(
    document: &str,
    family_override: Option<&str>,
) -> Result<Registration, TaskDefError> {
    let mut warnings = Vec::new();
    let mut definition = parse::parse_document(document, family_override, &mut warnings)?;
    let violations = validate::validate(&mut definition, &mut warnings);
    if !violations.is_empty() {
        return Err(TaskDefError::Invalid(violations));
    }
    warnings.extend(warnings::unsupported(&definition));
    let bytes = serde_json::to_vec(&definition).map(|v| v.len()).unwrap_or(usize::MAX);
    if bytes > MAX_DEFINITION_BYTES {
        return Err(TaskDefError::TooLarge { bytes, limit: MAX_DEFINITION_BYTES });
    }
    Ok(Registration { definition, warnings })
}
