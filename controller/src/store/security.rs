//! Cluster CA, node certificates, join tokens and revoked node identities.
//!
//! Stub created by the coordinator: the owner of this module replaces it whole.

use super::apply::ApplyResult;
use super::state::State;
use serde::{Deserialize, Serialize};

/// Replicated security state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecurityState {}

/// Commands on security state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum SecurityCommand {}

pub fn apply(_state: &mut State, cmd: SecurityCommand) -> ApplyResult {
    match cmd {}
}
