//! Applying the node-liveness commands: recorded heartbeats, an agent declared disconnected, the
//! tasks of a lost instance marked STOPPED. Like the rest of `apply`: deterministic (every time is
//! in the command) and re-checked against the current state, so a decision taken on a stale view
//! (the agent came back meanwhile) changes nothing.

use super::Rejection;
use super::apply::{Applied, ApplyResult};
use super::command::{HeartbeatSeen, MarkTasksLost};
use super::state::State;
use berth_proto::model::{STOPPED, Timestamp};

fn instance_not_found(id: &str) -> Rejection {
    Rejection::new(
        super::RejectKind::NotFound,
        "ClientException",
        format!("Container instance {id} not found."),
    )
}

/// Heartbeats move `last_heartbeat` forward for the session that sent them; a beat from a session
/// that is no longer the instance's, or older than what is recorded, changes nothing. No version
/// bump: a heartbeat is not an ECS state change (no event).
pub fn record_heartbeats(state: &mut State, beats: Vec<HeartbeatSeen>) -> ApplyResult {
    let mut out = Applied::default();
    for b in beats {
        let Some(rec) = state.instances.get_mut(&b.instance_id) else {
            continue;
        };
        if rec.session == b.session && b.at > rec.last_heartbeat {
            rec.last_heartbeat = b.at;
            out.ids.push(b.instance_id);
        }
    }
    Ok(out)
}

/// The leader saw no heartbeat within the grace: `agentConnected` = false (the status stays).
pub fn mark_disconnected(
    state: &mut State,
    instance_id: &str,
    session: &str,
    last_heartbeat: Timestamp,
    now: Timestamp,
) -> ApplyResult {
    let rec =
        state.instances.get_mut(instance_id).ok_or_else(|| instance_not_found(instance_id))?;
    let current = rec.session == session
        && rec.instance.agent_connected
        && rec.last_heartbeat <= last_heartbeat;
    if !current {
        return Ok(Applied::default());
    }
    rec.instance.agent_connected = false;
    rec.instance.version += 1;
    rec.disconnected_at = Some(now);
    state.touch_instance(instance_id);
    Ok(Applied { ids: vec![instance_id.to_string()], ..Default::default() })
}

/// The named tasks of a lost instance become STOPPED: desired and last status, with the stop code
/// and reason of the command (a task already asked to stop keeps its first reason, as StopTask
/// does). Nothing changes unless the instance is still disconnected under the same session.
pub fn mark_tasks_lost(state: &mut State, m: MarkTasksLost) -> ApplyResult {
    let rec =
        state.instances.get(&m.instance_id).ok_or_else(|| instance_not_found(&m.instance_id))?;
    if rec.session != m.session || rec.instance.agent_connected {
        return Ok(Applied::default());
    }
    let mut out = Applied::default();
    for id in &m.task_ids {
        let Some(mut task) = state.task_mut(id) else {
            continue;
        };
        if task.instance_id() != Some(m.instance_id.as_str()) || task.is_stopped() {
            continue;
        }
        if task.desired_status != STOPPED {
            task.desired_status = STOPPED.into();
            task.stop_code = Some(m.stop_code.clone());
            task.stopped_reason = Some(m.reason.clone());
        }
        task.stopping_at = task.stopping_at.or(Some(m.now));
        task.stopped_at = Some(m.now);
        task.last_status = STOPPED.into();
        // The containers' fate is unknown (no exit code); they end with their task.
        for c in task.containers.iter_mut().filter(|c| c.last_status != STOPPED) {
            c.last_status = STOPPED.into();
        }
        task.health_status = "UNKNOWN".into();
        task.version += 1;
        out.ids.push(id.clone());
    }
    Ok(out)
}
