//! API (ACL) tokens: hashed secrets with roles.
//!
//! Stub created by the coordinator: the owner of this module replaces it whole.

use super::apply::ApplyResult;
use super::state::State;
use serde::{Deserialize, Serialize};

/// Replicated ACL state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AclState {}

/// Commands on ACL state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum AclCommand {}

pub fn apply(_state: &mut State, cmd: AclCommand) -> ApplyResult {
    match cmd {}
}
