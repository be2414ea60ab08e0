//! Applying an agent's stats period ([`Command::RecordContainerStats`]): each sample becomes the
//! container's `stats` in its task (a Berth extension, Container Insights units; see
//! `berth_proto::model::stats`).
//!
//! Telemetry, not a state change: no `version` moves, so `events::derive` finds nothing to
//! report and the dispatcher sends no assignment for it. A sample applies only to a task placed
//! on the reporting instance, to a container that is not STOPPED (a stopped container keeps its
//! last sample) and when it is newer than the one stored; anything else is skipped, never
//! rejected, so one stale entry does not lose the rest of the batch.
//!
//! [`Command::RecordContainerStats`]: super::Command::RecordContainerStats

use super::apply::{Applied, ApplyResult};
use super::state::State;
use berth_proto::model::{ContainerUsageSample, STOPPED, StatsReport};

/// At most this many samples in one stats report: far more containers than one instance runs, and
/// a bound on the Raft entry one agent can cause.
pub const MAX_STATS_SAMPLES: usize = 4096;

/// Checks an agent's stats report; the error names the field and the rule.
pub fn check_report(r: &StatsReport) -> Result<(), String> {
    if r.samples.len() > MAX_STATS_SAMPLES {
        return Err(format!("samples: {} entries (at most {MAX_STATS_SAMPLES})", r.samples.len()));
    }
    for s in &r.samples {
        let u = &s.stats;
        let numbers = [Some(u.memory_utilized), u.cpu_utilized, u.memory_limit];
        if numbers.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(format!(
                "samples[{}/{}].stats: cpuUtilized, memoryUtilized and memoryLimit must be finite and not negative",
                s.task_id, s.container_name
            ));
        }
        if s.task_id.is_empty() || s.container_name.is_empty() {
            return Err("samples[].taskId and containerName must not be empty".into());
        }
    }
    Ok(())
}

pub fn record_container_stats(
    state: &mut State,
    instance_id: &str,
    samples: Vec<ContainerUsageSample>,
) -> ApplyResult {
    let mut out = Applied::default();
    for s in samples {
        // Straight into the map, not through `State::task_mut`: a sample changes neither the
        // index keys (instance, service) nor anything an agent's assignment depends on, so no
        // instance's change counter should move (no assignment pass for telemetry).
        let Some(task) = state.tasks.get_mut(&s.task_id) else { continue };
        if task.instance_id() != Some(instance_id) {
            continue;
        }
        let Some(c) = task.containers.iter_mut().find(|c| c.name == s.container_name) else {
            continue;
        };
        let newer = c.stats.as_ref().is_none_or(|old| s.stats.sampled_at > old.sampled_at);
        if c.last_status == STOPPED || !newer {
            continue;
        }
        c.stats = Some(s.stats);
        if out.ids.last() != Some(&s.task_id) {
            out.ids.push(s.task_id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::super::events::{Before, derive};
    use super::*;
    use berth_proto::model::{Container, ContainerUsage, RUNNING, Task, Timestamp};

    fn state() -> State {
        let mut st = State::default();
        let scope = st.scope.clone();
        for (id, instance, status) in
            [("t1", "i1", RUNNING), ("t2", "i2", RUNNING), ("t3", "i1", STOPPED)]
        {
            st.tasks.insert(
                id.into(),
                Task {
                    task_arn: scope.task("default", id),
                    container_instance_arn: Some(scope.container_instance("default", instance)),
                    last_status: status.into(),
                    version: 7,
                    containers: vec![Container {
                        name: "app".into(),
                        last_status: status.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            );
        }
        st
    }

    fn sample(task: &str, at: i64, cpu: f64) -> ContainerUsageSample {
        ContainerUsageSample {
            task_id: task.into(),
            container_name: "app".into(),
            stats: ContainerUsage {
                cpu_utilized: Some(cpu),
                memory_utilized: 12.5,
                memory_limit: Some(128.0),
                sampled_at: Timestamp(at),
            },
        }
    }

    #[test]
    fn stats_are_recorded_without_version_bump_or_event() {
        let mut st = state();
        let cmd = Command::RecordContainerStats {
            instance_id: "i1".into(),
            samples: vec![
                sample("t1", 1_000, 256.0),
                sample("t2", 1_000, 1.0),
                sample("t3", 1_000, 2.0),
            ],
        };
        let before = Before::of(&st, &cmd);
        let events_before = st.events.clone();
        let r = super::super::apply::apply(&mut st, cmd).expect("applies");
        assert_eq!(r.ids, vec!["t1".to_string()]);
        assert!(derive(&mut st, before).is_empty());
        assert_eq!(st.events.next_index, events_before.next_index);
        let t1 = &st.tasks["t1"];
        assert_eq!(t1.version, 7);
        assert_eq!(t1.containers[0].stats.as_ref().and_then(|s| s.cpu_utilized), Some(256.0));
        // Another instance's task and a stopped container are left alone.
        assert!(st.tasks["t2"].containers[0].stats.is_none());
        assert!(st.tasks["t3"].containers[0].stats.is_none());
    }

    #[test]
    fn a_batch_records_each_instance_s_own_tasks_only() {
        let mut st = state();
        let cmd = Command::RecordContainerStatsBatch {
            reports: vec![
                crate::store::command::InstanceStats {
                    instance_id: "gone".into(),
                    samples: vec![sample("t1", 1_000, 9.0)],
                },
                crate::store::command::InstanceStats {
                    instance_id: "i1".into(),
                    samples: vec![sample("t1", 1_000, 256.0)],
                },
            ],
        };
        let before = Before::of(&st, &cmd);
        let r = super::super::apply::apply(&mut st, cmd).expect("applies");
        // "gone" does not run t1: its sample is ignored, i1's is recorded.
        assert_eq!(r.ids, vec!["t1".to_string()]);
        assert!(r.rejected.is_empty());
        assert!(derive(&mut st, before).is_empty(), "telemetry makes no event");
        let cpu = st.tasks["t1"].containers[0].stats.as_ref().and_then(|s| s.cpu_utilized);
        assert_eq!(cpu, Some(256.0));
    }

    #[test]
    fn a_report_with_bad_numbers_or_names_is_refused_naming_the_field() {
        let ok = StatsReport { samples: vec![sample("t1", 1, 2.0)] };
        assert_eq!(check_report(&ok), Ok(()));
        let mut negative = ok.clone();
        negative.samples[0].stats.memory_utilized = -1.0;
        let e = check_report(&negative).expect_err("negative memory");
        assert!(e.contains("samples[t1/app].stats") && e.contains("memoryUtilized"), "{e}");
        let mut nameless = ok.clone();
        nameless.samples[0].container_name.clear();
        assert!(check_report(&nameless).is_err());
        let many = StatsReport { samples: vec![sample("t1", 1, 2.0); MAX_STATS_SAMPLES + 1] };
        assert!(check_report(&many).expect_err("too many").starts_with("samples:"));
    }

    #[test]
    fn an_older_sample_does_not_replace_a_newer_one_and_stopped_keeps_the_last() {
        let mut st = state();
        record_container_stats(&mut st, "i1", vec![sample("t1", 2_000, 100.0)]).expect("ok");
        record_container_stats(&mut st, "i1", vec![sample("t1", 1_000, 900.0)]).expect("ok");
        let cpu =
            |st: &State| st.tasks["t1"].containers[0].stats.as_ref().and_then(|s| s.cpu_utilized);
        assert_eq!(cpu(&st), Some(100.0));
        if let Some(t) = st.tasks.get_mut("t1") {
            t.containers[0].last_status = STOPPED.into();
        }
        record_container_stats(&mut st, "i1", vec![sample("t1", 3_000, 5.0)]).expect("ok");
        assert_eq!(cpu(&st), Some(100.0));
    }
}
