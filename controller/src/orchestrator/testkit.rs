//! Test-only builders of store states for the orchestrator's pure decisions: task
//! definitions, instances, services and tasks, all created through `store::apply` (the real
//! commands), so a test state is one the controller could really hold.

use crate::store::Command;
use crate::store::State;
use crate::store::apply::apply;
use crate::store::command::*;
use berth_proto::model::*;

/// A one-container definition needing 1 CPU unit and 1 MiB.
pub fn def(family: &str) -> TaskDefinition {
    TaskDefinition {
        family: family.into(),
        container_definitions: vec![ContainerDefinition {
            name: "c".into(),
            image: "i".into(),
            cpu: Some(1),
            memory: Some(1),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn register_taskdef(st: &mut State, family: &str) {
    apply(st, Command::RegisterTaskDefinition { definition: def(family), now: Timestamp(1) })
        .unwrap();
}

/// A big ACTIVE instance `id` in cluster `default` with a connected agent.
pub fn register_instance(st: &mut State, id: &str) {
    apply(
        st,
        Command::RegisterInstance(RegisterInstance {
            session: format!("s-{id}"),
            cluster: "default".into(),
            instance_id: id.into(),
            attributes: vec![],
            cpu: 100_000,
            memory: 100_000,
            reserved_ports: vec![],
            version_info: VersionInfo::default(),
            hostname: None,
            agent_endpoint: None,
            now: Timestamp(1),
        }),
    )
    .unwrap();
}

/// A REPLICA service `name` on `taskdef` (FAMILY[:REV]) whose first deployment is `deployment`.
pub fn create_service(st: &mut State, name: &str, taskdef: &str, desired: i64, deployment: &str) {
    let arn = st.resolve_taskdef(taskdef).unwrap().task_definition_arn.clone().unwrap();
    apply(
        st,
        Command::CreateService(CreateService {
            scheduling_strategy: None,
            placement: Default::default(),
            deployment_configuration: None,
            health_check_grace_period_seconds: None,
            cluster: "default".into(),
            name: name.into(),
            task_definition_arn: arn,
            desired_count: desired,
            deployment_id: deployment.into(),
            now: Timestamp(2),
        }),
    )
    .unwrap();
}

/// Where test tasks go: `service`'s `deployment` of `taskdef` (FAMILY[:REV]) on `instance`.
pub struct Slot<'a> {
    pub service: &'a str,
    pub deployment: &'a str,
    pub taskdef: &'a str,
    pub instance: &'a str,
}

/// `n` tasks in `slot` with last status `status` (RUNNING ones started at `started_at`).
/// Returns their ids.
pub fn add_tasks(
    st: &mut State,
    slot: &Slot,
    n: usize,
    status: &str,
    started_at: Timestamp,
) -> Vec<String> {
    let def = st.resolve_taskdef(slot.taskdef).unwrap().clone();
    let base = st.tasks.len();
    let mut tasks = vec![];
    for i in 0..n {
        let launch = super::placement::Launch {
            cluster: "default",
            def: &def,
            count: 1,
            group: format!("service:{}", slot.service),
            started_by: Some(slot.deployment.into()),
        };
        let id = format!("{:032x}", base + i + 1);
        let mut t = super::placement::new_task(st, &launch, slot.instance, &id, Timestamp(3));
        t.last_status = status.into();
        if status == RUNNING {
            t.started_at = Some(started_at);
        }
        tasks.push(t);
    }
    let ids = tasks.iter().map(|t| t.id().to_string()).collect();
    apply(st, Command::StartTasks { tasks, now: Timestamp(3) }).unwrap();
    ids
}
