//! The answer of a placement dry run (`--dry-run` on `service create` / `task run`): where each
//! task would go and, for every instance not chosen, the filter that rejected it or its score
//! per strategy. Berth's own shape (ECS has no dry run).

use super::Failure;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlacementExplanation {
    /// The strategies applied, in order (`spread(attribute:ecs.availability-zone)`, …).
    pub strategies: Vec<String>,
    /// The constraints applied (request's and task definition's).
    pub constraints: Vec<String>,
    pub tasks: Vec<TaskExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskExplanation {
    pub task_index: usize,
    /// The instance the task would go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub candidates: Vec<CandidateExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CandidateExplanation {
    pub container_instance_id: String,
    pub chosen: bool,
    /// The failure reason of the filter that rejected the instance (`RESOURCE:MEMORY`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    /// What it lacked, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Its score per strategy, in strategy order (lower is preferred).
    #[serde(default)]
    pub scores: Vec<f64>,
}
