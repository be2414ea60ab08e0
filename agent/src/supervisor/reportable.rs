//! Which task transitions the agent sends to the controller: the pure rule.
//!
//! The ECS agent submits a task state change when the task's or a container's status changes
//! (`ShouldReportToBackend`: RUNNING, STOPPED; never "pulled" or "created"), with the pull times
//! and runtime ids riding along. Berth's worker builds a full report at every step (kept as the
//! task's latest, which the metadata endpoint and a reconnect use); [`worth_sending`] says when
//! one of those is news to the controller. A change of pull times or runtime ids alone while the
//! task is PENDING is not: each such report was a Raft command, a task event, a new task
//! version and an assignment echoed back to the agent (`bench -- sim`: 4 PENDING events per
//! task before its RUNNING one).

use berth_proto::model::{ContainerReport, TaskStatusReport};

/// A health that tells nothing yet (`UNKNOWN`) is no news either.
fn known(health: &Option<String>) -> Option<String> {
    health.clone().filter(|h| h != "UNKNOWN")
}

/// The report with what never warrants a report of its own blanked out.
fn news(r: &TaskStatusReport) -> TaskStatusReport {
    TaskStatusReport {
        pull_started_at: None,
        pull_stopped_at: None,
        health_status: known(&r.health_status),
        containers: r
            .containers
            .iter()
            .map(|c| ContainerReport {
                runtime_id: None,
                health_status: known(&c.health_status),
                ..c.clone()
            })
            .collect(),
        ..r.clone()
    }
}

/// What the controller already knows of a task nothing was reported of: PENDING, and each of
/// `next`'s containers PENDING with nothing observed.
fn nothing_yet(next: &TaskStatusReport) -> TaskStatusReport {
    TaskStatusReport {
        task_id: next.task_id.clone(),
        last_status: "PENDING".into(),
        containers: next
            .containers
            .iter()
            .map(|c| ContainerReport {
                name: c.name.clone(),
                last_status: "PENDING".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// True when `next` tells the controller more than `sent` (the last report sent for the task,
/// if any): a task or container status, exit code, reason, binding, interface, health, stop
/// code or attachment changed.
pub fn worth_sending(sent: Option<&TaskStatusReport>, next: &TaskStatusReport) -> bool {
    let before = match sent {
        Some(s) => news(s),
        None => news(&nothing_yet(next)),
    };
    news(next) != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::Timestamp;

    fn report(status: &str, containers: &[(&str, Option<&str>)]) -> TaskStatusReport {
        TaskStatusReport {
            task_id: "t".into(),
            last_status: status.into(),
            containers: containers
                .iter()
                .map(|(s, id)| ContainerReport {
                    name: "web".into(),
                    last_status: (*s).into(),
                    runtime_id: id.map(str::to_string),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn pulling_and_creating_are_not_sent_running_and_stopped_are() {
        let pending = report("PENDING", &[("PENDING", None)]);
        assert!(!worth_sending(None, &pending), "the controller made the task PENDING");
        let pulled = TaskStatusReport {
            pull_started_at: Some(Timestamp(1)),
            pull_stopped_at: Some(Timestamp(2)),
            ..pending.clone()
        };
        assert!(!worth_sending(None, &pulled));
        let created = TaskStatusReport {
            containers: report("PENDING", &[("PENDING", Some("abc"))]).containers,
            ..pulled.clone()
        };
        assert!(!worth_sending(None, &created));
        let running = report("RUNNING", &[("RUNNING", Some("abc"))]);
        assert!(worth_sending(None, &running));
        assert!(!worth_sending(Some(&running), &running.clone()));
        let mut stopped = report("RUNNING", &[("STOPPED", Some("abc"))]);
        stopped.containers[0].exit_code = Some(0);
        assert!(worth_sending(Some(&running), &stopped), "a container stopped");
    }

    #[test]
    fn a_container_change_inside_a_pending_task_is_sent() {
        // dependsOn: the first container runs while the task is still PENDING.
        let mut r = report("PENDING", &[("RUNNING", Some("a")), ("PENDING", None)]);
        r.containers[1].name = "app".into();
        assert!(worth_sending(None, &r));
        let mut unhealthy = r.clone();
        unhealthy.containers[0].health_status = Some("UNHEALTHY".into());
        assert!(worth_sending(Some(&r), &unhealthy));
    }

    #[test]
    fn an_unknown_health_while_pending_is_not_news() {
        let mut pending = report("PENDING", &[("PENDING", None)]);
        pending.health_status = Some("UNKNOWN".into());
        pending.containers[0].health_status = Some("UNKNOWN".into());
        assert!(!worth_sending(None, &pending));
    }

    #[test]
    fn a_failure_before_running_is_sent() {
        let mut failed = report("STOPPED", &[("STOPPED", None)]);
        failed.stop_code = Some("TaskFailedToStart".into());
        failed.containers[0].reason = Some("CannotPullContainerError: nope".into());
        assert!(worth_sending(None, &failed));
    }
}
