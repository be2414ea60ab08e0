//! Task health as the service scheduler counts it (ECS-NOTES §1.4.2, §3.2, §3.3), and the
//! deployment circuit breaker's threshold. Pure functions of the state and `now`.
//!
//! * A RUNNING task is **healthy** when its essential containers report HEALTHY, or — when none
//!   of them has a health check — once it has been RUNNING for the settle time (ECS: 40 s).
//! * It is **unhealthy** when it reports UNHEALTHY after the service's
//!   `healthCheckGracePeriodSeconds` since it started.
//! * The breaker trips after `clamp(ceil(0.5 × desired), 3, 200)` consecutive failures of the
//!   PRIMARY deployment; **better than ECS**, a task that reaches RUNNING and then exits or turns
//!   unhealthy within the monitor window counts as a failure too.

use crate::store::State;
use berth_proto::model::{RUNNING, Service, Task, TaskDefinition, Timestamp};

/// The reconciler's health and breaker settings (from `OrchestratorConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// How long a task without health checks must run before it counts as healthy (ECS: 40 s).
    pub settle_millis: i64,
    /// A task failing within this long of reaching RUNNING counts toward the circuit breaker.
    pub monitor_millis: i64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy { settle_millis: 40_000, monitor_millis: 60_000 }
    }
}

pub use crate::store::query::UNHEALTHY_STOP_REASON;

/// True when an essential container of the definition declares a health check.
pub fn has_health_check(def: &TaskDefinition) -> bool {
    def.container_definitions.iter().filter(|c| c.is_essential()).any(|c| {
        c.health_check
            .as_ref()
            .is_some_and(|h| h.command.first().map(String::as_str) != Some("NONE"))
    })
}

pub fn is_healthy(state: &State, task: &Task, now: Timestamp, policy: &HealthPolicy) -> bool {
    if task.last_status != RUNNING {
        return false;
    }
    match task.health_status.as_str() {
        "HEALTHY" => true,
        "UNHEALTHY" => false,
        _ => {
            let checked =
                state.taskdef_by_arn(&task.task_definition_arn).is_some_and(has_health_check);
            !checked && task.started_at.is_some_and(|s| s.plus_millis(policy.settle_millis) <= now)
        }
    }
}

pub fn is_unhealthy(task: &Task, svc: &Service, now: Timestamp) -> bool {
    let grace = svc.health_check_grace_period_seconds.unwrap_or(0).max(0).saturating_mul(1000);
    task.last_status == RUNNING
        && task.health_status == "UNHEALTHY"
        && task.started_at.is_none_or(|s| s.plus_millis(grace) <= now)
}

/// ECS: `clamp(ceil(0.5 × desiredCount), 3, 200)`.
pub fn breaker_threshold(desired: i64) -> u32 {
    let half = (desired.max(0) + 1) / 2;
    half.clamp(3, 200) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_threshold_follows_ecs() {
        assert_eq!(breaker_threshold(1), 3);
        assert_eq!(breaker_threshold(25), 13);
        assert_eq!(breaker_threshold(400), 200);
        assert_eq!(breaker_threshold(800), 200);
    }
}
