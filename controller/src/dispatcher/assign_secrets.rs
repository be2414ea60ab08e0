//! Secrets in assignments (pure, given the cluster key): a task about to start whose containers
//! have `secrets[]` gets their values in `Assignment.secrets`, opened here, for the one agent
//! that runs it. A task whose secrets cannot be had (missing, another cluster key, bad JSON key)
//! is not sent: it gets a STOPPED report with an ECS-like reason instead.
//!
//! When values are sent: only on the first assignment of a task in a session (an agent needs
//! them to create containers, which it does on the first assignment it sees for a task), only
//! while the task is desired RUNNING and not yet RUNNING (a running task is adopted, never
//! re-created). `delivered` remembers, per session, the tasks that got them.

use crate::crypto::ClusterKey;
use crate::store::State;
use berth_proto::model::{RUNNING, STOPPED, Task, TaskDefinition, TaskStatusReport};
use berth_proto::secrets::{SecretRef, seal_context};
use berth_proto::v1;
use std::collections::HashSet;

/// ECS's stop code for a task that never started.
pub const STOP_CODE_FAILED_TO_START: &str = "TaskFailedToStart";
/// The start of every reason a task stops for because of its secrets (as ECS words it).
pub const REASON_PREFIX: &str =
    "ResourceInitializationError: unable to pull secrets or registry auth";

fn needs_secrets(def: &TaskDefinition) -> bool {
    def.container_definitions.iter().any(|c| c.secrets.as_ref().is_some_and(|s| !s.is_empty()))
}

/// The values of every container's secrets, or the reason the task cannot start.
pub fn resolve(
    state: &State,
    def: &TaskDefinition,
    key: Option<&ClusterKey>,
) -> Result<Vec<v1::ContainerSecrets>, String> {
    let fail = |why: String| format!("{REASON_PREFIX}: {why}");
    let mut out = Vec::new();
    for c in &def.container_definitions {
        let Some(secrets) = c.secrets.as_ref().filter(|s| !s.is_empty()) else { continue };
        let mut environment = Vec::with_capacity(secrets.len());
        for s in secrets {
            let at = format!("container {}, variable {}", c.name, s.name);
            let r = SecretRef::parse(&s.value_from).map_err(|e| fail(format!("{at}: {e}")))?;
            let stored = state
                .secrets
                .resolve(&r)
                .ok_or_else(|| fail(format!("{at}: secret {} not found", r.name())))?;
            let key = key.ok_or_else(|| {
                fail(format!(
                    "{at}: this controller has no cluster key to open secret {}",
                    stored.name
                ))
            })?;
            let plain = key.open(&seal_context(&stored.name), &stored.sealed.0).map_err(|e| {
                fail(format!(
                    "{at}: secret {} cannot be opened with this controller's cluster key ({e}); \
                     every controller of the group needs the same --cluster-key-file",
                    stored.name
                ))
            })?;
            let text = String::from_utf8(plain)
                .map_err(|_| fail(format!("{at}: secret {} is not UTF-8", stored.name)))?;
            let value = r.select(&text).map_err(|e| fail(format!("{at}: {e}")))?;
            environment.push(v1::SecretEnvironmentVariable { name: s.name.clone(), value });
        }
        out.push(v1::ContainerSecrets { container_name: c.name.clone(), environment });
    }
    Ok(out)
}

/// The report that stops a task whose secrets cannot be had.
pub fn failure_report(task_id: &str, reason: String) -> TaskStatusReport {
    TaskStatusReport {
        task_id: task_id.to_string(),
        last_status: STOPPED.to_string(),
        stop_code: Some(STOP_CODE_FAILED_TO_START.to_string()),
        stopped_reason: Some(reason),
        ..Default::default()
    }
}

/// Fills `Assignment.secrets` of the tasks in `batch` that start now and were not given them in
/// this session yet (`delivered`). Tasks whose secrets cannot be had are taken out of `batch`;
/// their STOPPED reports are returned (to be proposed like the agent's own reports).
pub fn attach_secrets(
    state: &State,
    key: Option<&ClusterKey>,
    batch: &mut v1::Assignments,
    delivered: &mut HashSet<String>,
) -> Vec<TaskStatusReport> {
    let mut failed = Vec::new();
    batch.tasks.retain_mut(|a| {
        if delivered.contains(&a.task_id) {
            return true;
        }
        let Some(task) = state.tasks.get(&a.task_id) else { return true };
        if !starts_now(task) {
            return true;
        }
        let Some(def) = state.taskdef_by_arn(&task.task_definition_arn) else { return true };
        if !needs_secrets(def) {
            return true;
        }
        match resolve(state, def, key) {
            Ok(secrets) => {
                a.secrets = secrets;
                delivered.insert(a.task_id.clone());
                true
            }
            Err(reason) => {
                tracing::warn!(task_id = %a.task_id, %reason, "task not started");
                failed.push(failure_report(&a.task_id, reason));
                false
            }
        }
    });
    if !delivered.is_empty() {
        delivered.retain(|id| state.tasks.get(id).is_some_and(|t| !t.is_stopped()));
    }
    failed
}

fn starts_now(task: &Task) -> bool {
    task.desired_status == RUNNING && task.last_status != RUNNING && !task.is_stopped()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::secrets::{Sealed, SecretCommand};
    use berth_proto::model::{ArnScope, ContainerDefinition, Secret, Timestamp};

    fn def(secrets: &[(&str, &str)]) -> TaskDefinition {
        TaskDefinition {
            family: "f".into(),
            container_definitions: vec![
                ContainerDefinition {
                    name: "app".into(),
                    secrets: Some(
                        secrets
                            .iter()
                            .map(|(n, v)| Secret { name: n.to_string(), value_from: v.to_string() })
                            .collect(),
                    ),
                    ..Default::default()
                },
                ContainerDefinition { name: "side".into(), ..Default::default() },
            ],
            ..Default::default()
        }
    }

    fn put(st: &mut State, key: &ClusterKey, name: &str, value: &str) {
        let sealed = key.seal(&seal_context(name), value.as_bytes()).expect("seal");
        crate::store::secrets::apply(
            st,
            SecretCommand::Put {
                name: name.into(),
                sealed: Sealed(sealed),
                description: None,
                now: Timestamp(1),
            },
        )
        .expect("put");
    }

    #[test]
    fn resolve_opens_each_reference_for_its_container_only() {
        let key = ClusterKey::generate().expect("key");
        let mut st = State::new(ArnScope::default());
        put(&mut st, &key, "db", "pw-1");
        put(&mut st, &key, "creds", r#"{"user":"u1"}"#);
        let d = def(&[
            ("DB", "db"),
            ("USER", "arn:aws:secretsmanager:local:000000000000:secret:creds:user"),
            ("DB2", "arn:aws:ssm:local:000000000000:parameter/db"),
        ]);
        let out = resolve(&st, &d, Some(&key)).expect("resolve");
        assert_eq!(out.len(), 1, "the container without secrets gets no entry");
        assert_eq!(out[0].container_name, "app");
        let env: Vec<(&str, &str)> =
            out[0].environment.iter().map(|e| (e.name.as_str(), e.value.as_str())).collect();
        assert_eq!(env, vec![("DB", "pw-1"), ("USER", "u1"), ("DB2", "pw-1")]);
    }

    #[test]
    fn missing_secret_other_key_or_no_key_give_ecs_reasons() {
        let key = ClusterKey::generate().expect("key");
        let mut st = State::new(ArnScope::default());
        let e = resolve(&st, &def(&[("DB", "db")]), Some(&key)).expect_err("missing");
        assert_eq!(
            e,
            "ResourceInitializationError: unable to pull secrets or registry auth: container app, \
             variable DB: secret db not found"
        );
        put(&mut st, &key, "db", "pw");
        let other = ClusterKey::generate().expect("key");
        let e = resolve(&st, &def(&[("DB", "db")]), Some(&other)).expect_err("other key");
        assert!(e.starts_with(REASON_PREFIX) && e.contains("same --cluster-key-file"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        let e = resolve(&st, &def(&[("DB", "db")]), None).expect_err("no key");
        assert!(e.contains("no cluster key"), "{e}");
        let e = resolve(&st, &def(&[("DB", "arn:x")]), Some(&key)).expect_err("bad ref");
        assert!(e.contains("valueFrom 'arn:x'"), "{e}");
        let r = failure_report("t1", e.clone());
        assert_eq!(r.last_status, STOPPED);
        assert_eq!(r.stop_code.as_deref(), Some("TaskFailedToStart"));
        assert_eq!(r.stopped_reason, Some(e));
    }

    /// A state with `f:1` (secrets as given) and task `t1` in `last_status`.
    fn with_task(secrets: &[(&str, &str)], last_status: &str) -> State {
        let mut st = State::new(ArnScope::default());
        let cmd = crate::store::Command::RegisterTaskDefinition {
            definition: def(secrets),
            now: Timestamp(1),
        };
        crate::store::apply::apply(&mut st, cmd).expect("register");
        let task = Task {
            task_arn: st.scope.task("default", "t1"),
            task_definition_arn: st.scope.task_definition("f", 1),
            desired_status: RUNNING.into(),
            last_status: last_status.into(),
            ..Default::default()
        };
        st.insert_task(task);
        st
    }

    fn batch() -> v1::Assignments {
        v1::Assignments {
            full: true,
            tasks: vec![v1::Assignment { task_id: "t1".into(), ..Default::default() }],
        }
    }

    #[test]
    fn values_go_once_per_session_and_only_to_tasks_about_to_start() {
        let key = ClusterKey::generate().expect("key");
        let mut st = with_task(&[("DB", "db")], "PENDING");
        put(&mut st, &key, "db", "pw-1");
        let mut delivered = HashSet::new();
        let mut b = batch();
        assert!(attach_secrets(&st, Some(&key), &mut b, &mut delivered).is_empty());
        assert_eq!(b.tasks[0].secrets[0].environment[0].value, "pw-1");
        assert!(delivered.contains("t1"));
        let mut again = batch();
        assert!(attach_secrets(&st, Some(&key), &mut again, &mut delivered).is_empty());
        assert!(again.tasks[0].secrets.is_empty(), "sent once per session");

        let running = with_task(&[("DB", "missing")], RUNNING);
        let mut b = batch();
        assert!(attach_secrets(&running, Some(&key), &mut b, &mut HashSet::new()).is_empty());
        assert_eq!(b.tasks.len(), 1, "a running task is adopted, never failed for its secrets");
        assert!(b.tasks[0].secrets.is_empty());
    }

    #[test]
    fn a_task_whose_secret_is_missing_is_not_sent_but_stopped() {
        let key = ClusterKey::generate().expect("key");
        let st = with_task(&[("DB", "db")], "PENDING");
        let mut b = batch();
        let mut delivered = HashSet::new();
        let failed = attach_secrets(&st, Some(&key), &mut b, &mut delivered);
        assert!(b.tasks.is_empty(), "the agent never sees it");
        assert!(delivered.is_empty());
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].task_id, "t1");
        assert!(
            failed[0].stopped_reason.as_deref().is_some_and(|r| r.ends_with("secret db not found")),
            "{:?}",
            failed[0]
        );
    }
}
