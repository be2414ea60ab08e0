//! Pure assignment logic: the tasks an instance should know about and the changes since the
//! versions it was last sent. Secrets: `assign_secrets.rs` ([`attach_secrets`]).

use crate::store::State;
use berth_proto::model::Task;
use berth_proto::v1;
use std::collections::HashMap;

/// Tasks placed on the instance that the agent still has to run or stop.
pub fn tasks_for<'a>(
    state: &'a State,
    instance_id: &'a str,
) -> impl Iterator<Item = &'a Task> + 'a {
    state.tasks_placed_on(instance_id).filter(|t| !t.is_stopped())
}

pub fn assignment(state: &State, task: &Task) -> v1::Assignment {
    let def = state.taskdef_by_arn(&task.task_definition_arn);
    v1::Assignment {
        task_id: task.id().to_string(),
        version: task.version,
        desired_status: task.desired_status.clone(),
        task_json: serde_json::to_string(task).unwrap_or_default(),
        task_definition_json: def.and_then(|d| serde_json::to_string(d).ok()).unwrap_or_default(),
        secrets: vec![],
    }
}

/// The complete set for the instance; records what was sent in `sent`.
pub fn full(state: &State, instance_id: &str, sent: &mut HashMap<String, u64>) -> v1::Assignments {
    sent.clear();
    let tasks = tasks_for(state, instance_id)
        .map(|t| {
            sent.insert(t.id().to_string(), t.version);
            assignment(state, t)
        })
        .collect();
    v1::Assignments { full: true, tasks }
}

/// Tasks whose version changed since `sent` (new ones included); forgets tasks that are done.
pub fn changes(
    state: &State,
    instance_id: &str,
    sent: &mut HashMap<String, u64>,
) -> Option<v1::Assignments> {
    let mut tasks = vec![];
    let mut live = std::collections::HashSet::new();
    for t in tasks_for(state, instance_id) {
        live.insert(t.id().to_string());
        if sent.get(t.id()) != Some(&t.version) {
            sent.insert(t.id().to_string(), t.version);
            tasks.push(assignment(state, t));
        }
    }
    sent.retain(|id, _| live.contains(id));
    (!tasks.is_empty()).then_some(v1::Assignments { full: false, tasks })
}

pub use super::assign_secrets::attach_secrets;
