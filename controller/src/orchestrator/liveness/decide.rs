//! The pure liveness decision: state + `now` + when this controller became leader → the commands
//! to propose. No clock, no I/O; every time in a command is `now` or comes from the state.
//!
//! Per container instance (not INACTIVE):
//! * connected, and no heartbeat for `heartbeat_grace` → [`Command::MarkAgentDisconnected`];
//! * disconnected for `lost_after` (since `disconnected_at`, or since its last heartbeat when
//!   that is unknown) with tasks not yet STOPPED → [`Command::MarkTasksLost`] for those tasks;
//!   once applied, [`service_events`] records ECS's "has stopped N running tasks" per service.
//!
//! Nothing at all is decided until `heartbeat_grace` has passed since `leader_since`: the store's
//! heartbeats stood still while there was no leader, and agents of a dead leader need time to
//! reconnect elsewhere, so an election must not mass-disconnect (SwarmKit's dispatcher likewise
//! moves every node to "unknown" on a leadership change and gives each a fresh grace period).

use crate::store::Command;
use crate::store::command::{MarkTasksLost, ServiceProgress};
use crate::store::state::State;
use berth_proto::model::Timestamp;
use std::collections::BTreeMap;

/// The stop code of a lost task. ECS has no code for it (ECS leaves the tasks of a disconnected
/// agent RUNNING); the service scheduler declared the task stopped, so we follow the code ECS
/// uses for the scheduler's own stops (scaling, failed health checks). Not `TaskFailedToStart`
/// or `EssentialContainerExited`: the task did neither, and those count toward the deployment
/// circuit breaker, which a lost node must not trip.
pub const LOST_STOP_CODE: &str = "ServiceSchedulerInitiated";

/// The liveness thresholds in milliseconds (from `LivenessConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessPolicy {
    /// No heartbeat for this long → disconnected.
    pub heartbeat_grace_millis: i64,
    /// Disconnected for this long → its tasks are lost.
    pub lost_after_millis: i64,
}

/// The stopped reason of a lost task. ECS has no message for this (it never declares tasks
/// lost); the sentence names the cause and the instance the way ECS's scheduler reasons name
/// theirs (`Task failed ELB health checks in (target-group …)`), plus how long it was silent.
pub fn lost_reason(instance_id: &str, silent_millis: i64) -> String {
    format!(
        "Task stopped because its container instance {instance_id} was lost (no heartbeat for {} s)",
        silent_millis.max(0) / 1000
    )
}

/// The commands node liveness proposes at `now`, in instance-id order.
pub fn decide(
    state: &State,
    now: Timestamp,
    leader_since: Timestamp,
    policy: &LivenessPolicy,
) -> Vec<Command> {
    if now < leader_since.plus_millis(policy.heartbeat_grace_millis) {
        return vec![];
    }
    let mut out = vec![];
    for (id, rec) in &state.instances {
        if rec.instance.status == "INACTIVE" {
            continue;
        }
        if rec.instance.agent_connected {
            if now >= rec.last_heartbeat.plus_millis(policy.heartbeat_grace_millis) {
                out.push(Command::MarkAgentDisconnected {
                    instance_id: id.clone(),
                    session: rec.session.clone(),
                    last_heartbeat: rec.last_heartbeat,
                    now,
                });
            }
            continue;
        }
        let since = rec.disconnected_at.unwrap_or(rec.last_heartbeat);
        if now < since.plus_millis(policy.lost_after_millis) {
            continue;
        }
        // Only a lost instance's tasks are looked at (the index, in id order): a check does not
        // scan every task of the cluster under the state's lock.
        let task_ids: Vec<String> = state
            .tasks_placed_on(id)
            .filter(|t| !t.is_stopped())
            .map(|t| t.id().to_string())
            .collect();
        if task_ids.is_empty() {
            continue;
        }
        out.push(Command::MarkTasksLost(MarkTasksLost {
            instance_id: id.clone(),
            session: rec.session.clone(),
            task_ids,
            stop_code: LOST_STOP_CODE.into(),
            reason: lost_reason(id, now.millis() - rec.last_heartbeat.millis()),
            now,
        }));
    }
    out
}

/// ECS's "tasks stopped" service event (ECS-NOTES §3.7) for the lost tasks `task_ids`, one
/// `ServiceProgress` per service, in service order; standalone tasks get none.
pub fn service_events(
    state: &State,
    task_ids: &[String],
    now: Timestamp,
    new_id: &mut impl FnMut() -> String,
) -> Vec<Command> {
    let mut by_service: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for t in task_ids.iter().filter_map(|id| state.tasks.get(id)) {
        if let Some(name) = t.service_name() {
            let cluster = crate::store::state::cluster_of_arn(&t.cluster_arn).to_string();
            by_service.entry((cluster, name.to_string())).or_default().push(t.id());
        }
    }
    by_service
        .into_iter()
        .map(|((cluster, name), ids)| {
            let list: Vec<String> = ids.iter().map(|id| format!("(task {id})")).collect();
            let message = format!(
                "{} has stopped {} running tasks: {}.",
                super::super::reconciler::prefix(&name),
                ids.len(),
                list.join(" ")
            );
            Command::ServiceProgress(ServiceProgress {
                cluster,
                name,
                events: vec![(new_id(), message)],
                rollouts: vec![],
                drained_deployments: vec![],
                deactivate: false,
                rollback: None,
                now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::command::{HeartbeatSeen, RegisterInstance};
    use crate::store::{Command, apply::apply};
    use berth_proto::model::{RUNNING, STOPPED, Task, VersionInfo};

    const POLICY: LivenessPolicy =
        LivenessPolicy { heartbeat_grace_millis: 15_000, lost_after_millis: 60_000 };
    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    /// Registration time of both instances, and the term start of the leader in most tests.
    const T0: Timestamp = Timestamp(1_000_000);

    fn at(secs: i64) -> Timestamp {
        T0.plus_millis(secs * 1000)
    }

    fn register(st: &mut State, id: &str, session: &str, now: Timestamp) {
        let cmd = Command::RegisterInstance(RegisterInstance {
            cluster: "default".into(),
            instance_id: id.into(),
            session: session.into(),
            attributes: vec![],
            cpu: 2048,
            memory: 4096,
            reserved_ports: vec![],
            version_info: VersionInfo::default(),
            hostname: None,
            agent_endpoint: None,
            now,
        });
        apply(st, cmd).expect("register");
    }

    fn add_task(st: &mut State, id: &str, instance: &str, last: &str) {
        let task = Task {
            task_arn: st.scope.task("default", id),
            container_instance_arn: Some(st.scope.container_instance("default", instance)),
            last_status: last.into(),
            desired_status: if last == STOPPED { STOPPED } else { RUNNING }.into(),
            ..Default::default()
        };
        st.tasks.insert(id.into(), task);
    }

    /// A connected to session sa and B to sb, both registered at T0; B runs t1 (RUNNING) and
    /// t2 (PENDING), A runs t3, and t4 on B is long STOPPED.
    fn two_instances() -> State {
        let mut st = State::default();
        register(&mut st, A, "sa", T0);
        register(&mut st, B, "sb", T0);
        add_task(&mut st, "t1", B, RUNNING);
        add_task(&mut st, "t2", B, "PENDING");
        add_task(&mut st, "t3", A, RUNNING);
        add_task(&mut st, "t4", B, STOPPED);
        st
    }

    fn heartbeat(st: &mut State, id: &str, session: &str, now: Timestamp) {
        let beat = HeartbeatSeen { instance_id: id.into(), session: session.into(), at: now };
        apply(st, Command::RecordHeartbeats { beats: vec![beat] }).expect("heartbeat");
    }

    fn disconnected(id: &str, session: &str, last: Timestamp, now: Timestamp) -> Command {
        Command::MarkAgentDisconnected {
            instance_id: id.into(),
            session: session.into(),
            last_heartbeat: last,
            now,
        }
    }

    #[test]
    fn silent_agent_is_disconnected_exactly_at_the_grace() {
        let mut st = two_instances();
        heartbeat(&mut st, A, "sa", at(10));
        // B's last sign of life is its registration at T0.
        assert_eq!(decide(&st, at(15).plus_millis(-1), T0, &POLICY), vec![]);
        assert_eq!(decide(&st, at(15), T0, &POLICY), vec![disconnected(B, "sb", T0, at(15))]);
        assert_eq!(
            decide(&st, at(25), T0, &POLICY),
            vec![disconnected(A, "sa", at(10), at(25)), disconnected(B, "sb", T0, at(25))]
        );
    }

    #[test]
    fn disconnected_agent_tasks_are_lost_after_lost_after_with_the_silence_in_the_reason() {
        let mut st = two_instances();
        heartbeat(&mut st, A, "sa", at(70));
        apply(&mut st, disconnected(B, "sb", T0, at(15))).expect("disconnect");
        let rec = &st.instances[B];
        assert!(!rec.instance.agent_connected);
        assert_eq!(rec.instance.status, "ACTIVE", "a disconnected instance stays ACTIVE");
        assert_eq!(rec.disconnected_at, Some(at(15)));
        assert_eq!(decide(&st, at(75).plus_millis(-1), T0, &POLICY), vec![]);
        let lost = Command::MarkTasksLost(MarkTasksLost {
            instance_id: B.into(),
            session: "sb".into(),
            task_ids: vec!["t1".into(), "t2".into()],
            stop_code: "ServiceSchedulerInitiated".into(),
            reason: format!(
                "Task stopped because its container instance {B} was lost (no heartbeat for 75 s)"
            ),
            now: at(75),
        });
        assert_eq!(decide(&st, at(75), T0, &POLICY), vec![lost.clone()]);

        apply(&mut st, lost).expect("lost");
        for id in ["t1", "t2"] {
            let t = &st.tasks[id];
            assert_eq!((t.last_status.as_str(), t.desired_status.as_str()), (STOPPED, STOPPED));
            assert_eq!(t.stopped_at, Some(at(75)));
            assert_eq!(t.stop_code.as_deref(), Some("ServiceSchedulerInitiated"));
        }
        assert_eq!(st.tasks["t3"].last_status, RUNNING, "A's task is untouched");
        assert_eq!(decide(&st, at(80), T0, &POLICY), vec![], "nothing left to lose");
    }

    #[test]
    fn closed_stream_counts_lost_after_from_the_disconnection() {
        let mut st = two_instances();
        heartbeat(&mut st, A, "sa", at(150));
        heartbeat(&mut st, B, "sb", at(95));
        let closed = Command::SetAgentConnected {
            instance_id: B.into(),
            session: "sb".into(),
            connected: false,
            now: at(98),
        };
        apply(&mut st, closed).expect("session end");
        assert_eq!(decide(&st, at(158).plus_millis(-1), T0, &POLICY), vec![]);
        let cmds = decide(&st, at(158), T0, &POLICY);
        let [Command::MarkTasksLost(m)] = cmds.as_slice() else { panic!("{cmds:?}") };
        assert_eq!(m.task_ids, vec!["t1".to_string(), "t2".to_string()]);
        assert!(m.reason.ends_with("(no heartbeat for 63 s)"), "{}", m.reason);
    }

    #[test]
    fn a_new_leader_waits_one_grace_before_deciding_anything() {
        let mut st = two_instances();
        apply(&mut st, disconnected(B, "sb", T0, at(15))).expect("disconnect");
        // A's heartbeats stood still during the election; B has been disconnected for ages.
        let elected = at(500);
        assert_eq!(decide(&st, at(515).plus_millis(-1), elected, &POLICY), vec![]);
        let cmds = decide(&st, at(515), elected, &POLICY);
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        assert_eq!(cmds[0], disconnected(A, "sa", T0, at(515)));
        assert!(matches!(&cmds[1], Command::MarkTasksLost(m) if m.instance_id == B));
    }

    #[test]
    fn stale_decisions_change_nothing_once_the_agent_is_back() {
        let mut st = two_instances();
        heartbeat(&mut st, A, "sa", at(80));
        let stale_disconnect = disconnected(A, "sa", at(10), at(80));
        let applied = apply(&mut st, stale_disconnect).expect("apply");
        assert!(applied.ids.is_empty(), "a newer heartbeat was recorded");
        assert!(st.instances[A].instance.agent_connected);

        apply(&mut st, disconnected(B, "sb", T0, at(15))).expect("disconnect");
        let cmds = decide(&st, at(80), T0, &POLICY);
        let [Command::MarkTasksLost(_)] = cmds.as_slice() else { panic!("{cmds:?}") };
        register(&mut st, B, "sb2", at(79));
        let applied = apply(&mut st, cmds[0].clone()).expect("apply");
        assert!(applied.ids.is_empty(), "B re-registered under a new session");
        assert_eq!(st.tasks["t1"].last_status, RUNNING);
        assert!(st.instances[B].disconnected_at.is_none());
        // A heartbeat of the old session no longer counts for B.
        heartbeat(&mut st, B, "sb", at(90));
        assert_eq!(st.instances[B].last_heartbeat, at(79));
    }

    #[test]
    fn lost_service_tasks_get_ecs_stopped_event_per_service() {
        let mut st = two_instances();
        for (id, group) in [("t1", Some("service:web")), ("t2", None), ("t3", Some("service:web"))]
        {
            if let Some(t) = st.tasks.get_mut(id) {
                t.group = group.map(str::to_string);
                t.cluster_arn = st.scope.cluster("default");
            }
        }
        let ids: Vec<String> = ["t1", "t2", "t3"].map(String::from).to_vec();
        let mut n = 0;
        let events = service_events(&st, &ids, at(75), &mut || {
            n += 1;
            format!("e{n}")
        });
        let [Command::ServiceProgress(p)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!((p.cluster.as_str(), p.name.as_str(), p.now), ("default", "web", at(75)));
        assert_eq!(
            p.events,
            vec![(
                "e1".to_string(),
                "(service web) has stopped 2 running tasks: (task t1) (task t3).".to_string()
            )]
        );
    }

    #[test]
    fn a_task_already_stopping_keeps_its_first_reason() {
        let mut st = two_instances();
        if let Some(t) = st.tasks.get_mut("t1") {
            t.desired_status = STOPPED.into();
            t.stop_code = Some("UserInitiated".into());
            t.stopped_reason = Some("bye".into());
        }
        apply(&mut st, disconnected(B, "sb", T0, at(15))).expect("disconnect");
        let cmds = decide(&st, at(75), T0, &POLICY);
        for c in cmds {
            apply(&mut st, c).expect("apply");
        }
        let t = &st.tasks["t1"];
        assert_eq!(t.last_status, STOPPED);
        assert_eq!(t.stopped_reason.as_deref(), Some("bye"));
        assert_eq!(t.stop_code.as_deref(), Some("UserInitiated"));
    }
}
