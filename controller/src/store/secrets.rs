//! Per-task secrets, encrypted with the cluster key before they are proposed.
//!
//! Stub created by the coordinator: the owner of this module replaces it whole.

use super::apply::ApplyResult;
use super::state::State;
use serde::{Deserialize, Serialize};

/// Replicated secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretState {}

/// Commands on secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum SecretCommand {}

pub fn apply(_state: &mut State, cmd: SecretCommand) -> ApplyResult {
    match cmd {}
}
