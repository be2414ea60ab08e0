//! ECS DeregisterContainerInstance, applied: the instance becomes INACTIVE and its node identity
//! is revoked (`SecurityState::revoked_identities`), so its agent can neither register again
//! (plaintext: by instance id) nor connect (TLS: by the identity in its certificate).
//!
//! * Without `force`, an instance with a task that still holds resources (not yet STOPPED) is
//!   refused with ECS's message, `Found running tasks on the instance.`
//! * With `force`, those tasks become STOPPED in the store (stop code `UserInitiated`, a reason
//!   naming the deregistration), so services replace them elsewhere (ECS: orphaned tasks). A
//!   connected agent gets the stops as its session's last assignments before the session closes.
//!
//! Deterministic like all of `apply`: the time is in the command; the check is made again here, so
//! a task placed between the API's check and the commit is not silently orphaned.

use super::Rejection;
use super::apply::{Applied, ApplyResult};
use super::state::State;
use berth_proto::model::{STOPPED, Timestamp};
use serde::{Deserialize, Serialize};

/// The role of an agent's identity (`RevokedIdentity::role`).
pub const AGENT_ROLE: &str = "agent";
/// The role of a controller's identity.
pub const CONTROLLER_ROLE: &str = "controller";
/// ECS's refusal of a deregistration without `force` while tasks run on the instance.
pub const RUNNING_TASKS_MESSAGE: &str = "Found running tasks on the instance.";
/// The stop code of the tasks a forced deregistration stops (the operator asked for it).
pub const DEREGISTER_STOP_CODE: &str = "UserInitiated";

/// `Command::DeregisterInstance`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterInstance {
    pub cluster: String,
    pub instance_id: String,
    pub force: bool,
    pub now: Timestamp,
}

/// A node identity that may no longer register or connect (kept forever: identities are ids
/// that are never reused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevokedIdentity {
    /// `agent` or `controller`.
    pub role: String,
    /// Container instance id (agents) or node id (controllers).
    pub id: String,
    pub revoked_at: Timestamp,
    pub reason: String,
}

/// The key of an identity in `SecurityState::revoked_identities`: `role/id`.
pub fn identity_key(role: &str, id: &str) -> String {
    format!("{role}/{id}")
}

impl super::security::SecurityState {
    /// Whether the node identity `role`/`id` was revoked (deregistered).
    pub fn is_revoked(&self, role: &str, id: &str) -> bool {
        self.revoked_identities.contains_key(&identity_key(role, id))
    }
}

/// The message an agent of a deregistered instance gets when it tries to register.
pub fn revoked_agent_message(instance_id: &str) -> String {
    format!(
        "container instance {instance_id} was deregistered and its identity revoked: it cannot register again. To rejoin, start the agent with a fresh data dir (a new instance id)."
    )
}

/// The stopped reason of a task stopped by a forced deregistration.
pub fn deregistered_reason(instance_id: &str) -> String {
    format!("Container instance {instance_id} was deregistered (force).")
}

pub fn apply(state: &mut State, d: DeregisterInstance) -> ApplyResult {
    let rec = state.instances.get(&d.instance_id).filter(|r| r.cluster == d.cluster).ok_or_else(
        || {
            Rejection::new(
                super::RejectKind::NotFound,
                "InvalidParameterException",
                format!("The referenced container instance was not found: {}.", d.instance_id),
            )
        },
    )?;
    let already = rec.instance.status == "INACTIVE";
    let live: Vec<String> =
        state.tasks_on_instance(&d.instance_id).map(|t| t.id().to_string()).collect();
    if !live.is_empty() && !d.force {
        return Err(Rejection::invalid(RUNNING_TASKS_MESSAGE));
    }
    let mut out = Applied::default();
    for id in &live {
        let Some(mut task) = state.task_mut(id) else {
            continue;
        };
        if task.desired_status != STOPPED {
            task.desired_status = STOPPED.into();
            task.stop_code = Some(DEREGISTER_STOP_CODE.into());
            task.stopped_reason = Some(deregistered_reason(&d.instance_id));
        }
        task.stopping_at = task.stopping_at.or(Some(d.now));
        task.stopped_at = Some(d.now);
        task.last_status = STOPPED.into();
        for c in task.containers.iter_mut().filter(|c| c.last_status != STOPPED) {
            c.last_status = STOPPED.into();
        }
        task.health_status = "UNKNOWN".into();
        task.version += 1;
        out.ids.push(id.clone());
    }
    if let Some(rec) = state.instances.get_mut(&d.instance_id)
        && !already
    {
        rec.instance.status = "INACTIVE".into();
        rec.instance.agent_connected = false;
        rec.instance.version += 1;
        rec.draining_since = None;
        rec.disconnected_at = rec.disconnected_at.or(Some(d.now));
    }
    // Its session closes: revoked identity (and maybe disconnected).
    state.touch_instance(&d.instance_id);
    let key = identity_key(AGENT_ROLE, &d.instance_id);
    state.security.revoked_identities.entry(key).or_insert_with(|| RevokedIdentity {
        role: AGENT_ROLE.into(),
        id: d.instance_id.clone(),
        revoked_at: d.now,
        reason: "container instance deregistered".into(),
    });
    out.ids.insert(0, d.instance_id);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use crate::store::apply::apply as apply_cmd;
    use berth_proto::model::*;

    fn register_cmd(id: &str, session: &str) -> Command {
        Command::RegisterInstance(crate::store::command::RegisterInstance {
            session: session.into(),
            cluster: "default".into(),
            instance_id: id.into(),
            attributes: vec![],
            cpu: 1024,
            memory: 1024,
            reserved_ports: vec![],
            version_info: VersionInfo::default(),
            hostname: None,
            agent_endpoint: None,
            now: Timestamp(1),
        })
    }

    fn state_with_instance() -> (State, String) {
        let mut st = State::default();
        apply_cmd(&mut st, register_cmd("i1", "s1")).unwrap();
        (st, "i1".to_string())
    }

    fn state_with_running_task() -> (State, String, String) {
        let (mut st, instance) = state_with_instance();
        let definition = TaskDefinition {
            family: "web".into(),
            container_definitions: vec![ContainerDefinition {
                name: "web".into(),
                image: "berth/httpd:1".into(),
                memory: Some(64),
                ..Default::default()
            }],
            ..Default::default()
        };
        apply_cmd(&mut st, Command::RegisterTaskDefinition { definition, now: Timestamp(2) })
            .unwrap();
        let def = st.resolve_taskdef("web").unwrap().clone();
        let launch = crate::orchestrator::placement::Launch {
            cluster: "default",
            def: &def,
            count: 1,
            group: "family:web".into(),
            started_by: None,
        };
        let task =
            crate::orchestrator::placement::new_task(&st, &launch, &instance, "t1", Timestamp(3));
        let applied =
            apply_cmd(&mut st, Command::StartTasks { tasks: vec![task], now: Timestamp(3) })
                .unwrap();
        assert_eq!(applied.ids, vec!["t1".to_string()]);
        (st, instance, "t1".to_string())
    }

    #[test]
    fn deregister_without_force_is_refused_while_a_task_runs_and_force_stops_it_and_revokes() {
        let (mut st, instance, task) = state_with_running_task();
        let cmd = |force| {
            Command::DeregisterInstance(DeregisterInstance {
                cluster: "default".into(),
                instance_id: instance.clone(),
                force,
                now: Timestamp(5_000),
            })
        };
        let before = st.clone();
        let e = apply_cmd(&mut st, cmd(false)).unwrap_err();
        assert_eq!(e.message, RUNNING_TASKS_MESSAGE);
        assert_eq!(e.ecs_type, "InvalidParameterException");
        assert_eq!(st, before, "a refused deregistration changes nothing");

        let applied = apply_cmd(&mut st, cmd(true)).unwrap();
        assert_eq!(applied.ids, vec![instance.clone(), task.clone()]);
        let ci = &st.instances[&instance].instance;
        assert_eq!((ci.status.as_str(), ci.agent_connected), ("INACTIVE", false));
        let t = &st.tasks[&task];
        assert_eq!((t.last_status.as_str(), t.desired_status.as_str()), (STOPPED, STOPPED));
        assert_eq!(t.stop_code.as_deref(), Some(DEREGISTER_STOP_CODE));
        assert_eq!(t.stopped_reason, Some(deregistered_reason(&instance)));
        assert!(st.security.is_revoked(AGENT_ROLE, &instance));
        assert!(!st.security.is_revoked(CONTROLLER_ROLE, &instance));

        // Registering again under the revoked id is refused in apply as well.
        let e = apply_cmd(&mut st, register_cmd(&instance, "s2")).unwrap_err();
        assert_eq!(e.message, revoked_agent_message(&instance));
        assert_eq!(st.instances[&instance].instance.status, "INACTIVE");
    }

    #[test]
    fn deregistering_an_idle_instance_needs_no_force_and_a_second_time_changes_nothing() {
        let (mut st, instance) = state_with_instance();
        let cmd = Command::DeregisterInstance(DeregisterInstance {
            cluster: "default".into(),
            instance_id: instance.clone(),
            force: false,
            now: Timestamp(5_000),
        });
        apply_cmd(&mut st, cmd.clone()).unwrap();
        let version = st.instances[&instance].instance.version;
        let after_first = st.clone();
        apply_cmd(&mut st, cmd).unwrap();
        assert_eq!(st.instances[&instance].instance.version, version);
        assert_eq!(st, after_first);
        let wrong_cluster = Command::DeregisterInstance(DeregisterInstance {
            cluster: "other".into(),
            instance_id: instance.clone(),
            force: true,
            now: Timestamp(6_000),
        });
        let e = apply_cmd(&mut st, wrong_cluster).unwrap_err();
        assert!(e.message.contains("was not found"), "{}", e.message);
    }
}
