//! Turning a user's ECS CreateService document (`aws ecs create-service --cli-input-json`) into a
//! [`ServiceInput`]: the fields Berth acts on, plus one warning per field it accepts but cannot
//! honour.
//!
//! [`parse_create_service`] is the only entry point (the CLI's `service create --from-json`).
//! Data flow:
//!
//! 1. text → JSON (syntax errors keep line/column; leading whitespace is fine) → must be an
//!    object;
//! 2. typed read with `serde_path_to_error` into the CreateService request shape (`document`):
//!    unknown fields (with a suggestion), missing required members and type mismatches name
//!    their path, worded as the aws CLI words them — the same wording as task definitions, from
//!    `taskdef::error`;
//! 3. enum values Berth must understand to map the document (`launchType`,
//!    `deploymentController.type`) are checked here; every other rule on values (name syntax,
//!    percent ranges, DAEMON rules) is the controller's, checked once for every client;
//! 4. `warnings` — what Berth accepts but does not act on (FARGATE, capacity providers, load
//!    balancers, awsvpc, service registries, tags, …), one line each, never silently dropped.
//!
//! Fragments are fine: every field is optional here, since the command line completes the
//! document (name, cluster, task definition). This module does no I/O and never panics on user
//! input.

mod document;
mod warnings;

#[cfg(test)]
mod tests;

use crate::model::{DeploymentCircuitBreaker, PlacementConstraint, PlacementStrategy};
use crate::taskdef::{TaskDefError, Violation, error as taskdef_error, parse::invalid_json};
use document::Document;
use serde_json::Value;

/// Documents above this many bytes are refused before parsing (a CreateService request is a few
/// KiB at most; this only keeps a wrong file from being read whole into JSON).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The CreateService fields Berth acts on. `None` / empty: the document does not give it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceInput {
    pub service_name: Option<String>,
    pub cluster: Option<String>,
    pub task_definition: Option<String>,
    pub desired_count: Option<i64>,
    /// As written (`REPLICA` / `DAEMON`); the controller checks the value.
    pub scheduling_strategy: Option<String>,
    pub minimum_healthy_percent: Option<i64>,
    pub maximum_percent: Option<i64>,
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
    pub health_check_grace_period_seconds: Option<i64>,
    pub placement_strategy: Vec<PlacementStrategy>,
    pub placement_constraints: Vec<PlacementConstraint>,
}

/// A parsed document and what the user should be told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDocument {
    pub input: ServiceInput,
    /// One line each, naming the field; never empty strings.
    pub warnings: Vec<String>,
}

/// Every way a CreateService document can be refused, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceInputError {
    /// Larger than [`MAX_DOCUMENT_BYTES`].
    #[error("the service document is {bytes} bytes; the limit is {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    /// Empty, or JSON that is not an object.
    #[error("{0}")]
    Shape(String),
    /// Bad JSON, an unknown field, a missing required member or a type mismatch, worded as the
    /// aws CLI words them (the task definition parser's errors, reused).
    #[error(transparent)]
    Parameter(TaskDefError),
    /// Parsed, but a value Berth must understand is not one ECS allows. Joined with "; ".
    #[error("{}", .0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Violation>),
}

impl ServiceInputError {
    /// The ECS error type (`__type`) this error corresponds to.
    pub fn ecs_error_type(&self) -> &'static str {
        match self {
            ServiceInputError::Parameter(e) => e.ecs_error_type(),
            _ => "InvalidParameterException",
        }
    }
}

/// Parses a CreateService `--cli-input-json` document (or a fragment of one).
pub fn parse_create_service(document: &str) -> Result<ServiceDocument, ServiceInputError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(ServiceInputError::TooLarge {
            bytes: document.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    // A byte order mark (Windows editors) is not JSON; skip it.
    let document = document.strip_prefix('\u{feff}').unwrap_or(document);
    if document.trim().is_empty() {
        return Err(ServiceInputError::Shape("the service document is empty".to_string()));
    }
    let value: Value = serde_json::from_str(document)
        .map_err(|e| ServiceInputError::Parameter(invalid_json(&e)))?;
    if !value.is_object() {
        return Err(ServiceInputError::Shape(format!(
            "expected a JSON object (CreateService input), found {}",
            taskdef_error::python_type(&value)
        )));
    }
    let doc: Document = serde_path_to_error::deserialize(&value)
        .map_err(|e| ServiceInputError::Parameter(taskdef_error::from_serde(&value, &e)))?;
    let violations = document::check_enums(&doc);
    if !violations.is_empty() {
        return Err(ServiceInputError::Invalid(violations));
    }
    let warnings = warnings::unsupported(&doc);
    Ok(ServiceDocument { input: doc.into_input(), warnings })
}
