//! The store's refusal of a command: a kind (mapped to a gRPC code and an ECS error type in one
//! place, `crate::error`) and a one-line message naming the object and the rule.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectKind {
    /// ECS `ClientException` / `InvalidParameterException`.
    InvalidParameter,
    /// ECS `ClusterNotFoundException`, `ServiceNotFoundException`, `ClientException` (missing taskdef).
    ClusterNotFound,
    ServiceNotFound,
    NotFound,
    /// e.g. creating a service whose name is taken.
    AlreadyExists,
    /// e.g. `ServiceNotActiveException`, `ClusterContains*Exception`.
    FailedPrecondition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub kind: RejectKind,
    /// The ECS error type (`ClientException`, `ServiceNotFoundException`, …).
    pub ecs_type: String,
    pub message: String,
}

impl Rejection {
    pub fn new(kind: RejectKind, ecs_type: &str, message: impl Into<String>) -> Self {
        Rejection { kind, ecs_type: ecs_type.into(), message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(RejectKind::InvalidParameter, "InvalidParameterException", message)
    }
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(RejectKind::InvalidParameter, "ClientException", message)
    }
    pub fn cluster_not_found(name: &str) -> Self {
        Self::new(
            RejectKind::ClusterNotFound,
            "ClusterNotFoundException",
            format!("Cluster not found: {name}."),
        )
    }
    pub fn service_not_found(name: &str) -> Self {
        Self::new(
            RejectKind::ServiceNotFound,
            "ServiceNotFoundException",
            format!("Service not found: {name}."),
        )
    }
}
