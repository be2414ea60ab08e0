//! Container resource usage (a Berth extension of the ECS Container shape) and the batch an
//! agent sends each stats period.
//!
//! Units are Container Insights': CPU in CPU units (1024 = one core, so it compares directly
//! with the task definition's `cpu`), memory in MiB (as the definition's `memory` and
//! `memoryReservation`). The controller keeps the latest sample per container in the task
//! (`containers[].stats`); a stopped container keeps its last one.

use super::Timestamp;
use serde::{Deserialize, Serialize};

/// A container's latest resource usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    /// CPU used over the last stats period, in CPU units (1024 = one core). Absent until the
    /// agent has two samples of the container (CPU time is a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_utilized: Option<f64>,
    /// Memory in use without the reclaimable page cache, MiB.
    pub memory_utilized: f64,
    /// The engine's hard memory limit of the container (the host's memory when it has none),
    /// MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<f64>,
    /// When the agent took the sample.
    pub sampled_at: Timestamp,
}

/// One container's sample in a [`StatsReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsageSample {
    pub task_id: String,
    /// The container's name in the task definition.
    pub container_name: String,
    pub stats: ContainerUsage,
}

/// What an agent reports each stats period: one sample per running container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatsReport {
    pub samples: Vec<ContainerUsageSample>,
}

/// Rounds to two decimals (samples are estimates; shorter numbers read and replicate better).
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_serializes_with_container_insights_names() {
        let u = ContainerUsage {
            cpu_utilized: Some(256.5),
            memory_utilized: 3.25,
            memory_limit: Some(64.0),
            sampled_at: Timestamp(1_700_000_000_500),
        };
        let v = serde_json::to_value(&u).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cpuUtilized": 256.5, "memoryUtilized": 3.25, "memoryLimit": 64.0,
                "sampledAt": 1_700_000_000.5})
        );
        let first = ContainerUsage { cpu_utilized: None, memory_limit: None, ..u };
        let v = serde_json::to_value(&first).unwrap();
        assert!(v.get("cpuUtilized").is_none() && v.get("memoryLimit").is_none());
        assert_eq!(round2(1.23456), 1.23);
    }
}
