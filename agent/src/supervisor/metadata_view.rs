//! The supervisor's side of the task metadata endpoint (`crate::metadata`):
//!
//! * [`Supervisor::enable_metadata`] turns it on: every new plan gets the endpoint's env var and
//!   token label ([`crate::metadata::Injector`]), and every assignment is noted in a
//!   [`TaskDirectory`] (the controller's task and its definition, by task id).
//! * [`SupervisorView`] is the read-only [`MetadataSource`] the HTTP layer gets: a token is
//!   found in the observer's latest snapshot (the `berth.metadata-token` label, so containers a
//!   previous agent process created are found too), the task in the directory, statuses in the
//!   latest report; stats and networks come from the runtime.
//!
//! Nothing here changes a task; with the endpoint off (the default) nothing here runs.

use super::awsvpc::{PAUSE_CONTAINER_NAME, is_pause_info};
use super::spec::TaskPlan;
use super::worker::WorkerContext;
use super::{Supervisor, observer::ObserverHandle};
use crate::metadata::TaskNetworkView;
use crate::metadata::{ContainerView, Injector, LABEL_METADATA_TOKEN, MetadataSource, TaskView};
use crate::runtime::task_network::{
    Ipv4Subnet, LABEL_AWSVPC_DNS_NAME, LABEL_AWSVPC_IPV4, LABEL_AWSVPC_MAC, LABEL_AWSVPC_SUBNET,
};
use crate::runtime::{BoundPort, ContainerInfo, ContainerNetwork, LABEL_CONTAINER_NAME};
use crate::stats::StatsCache;
use async_trait::async_trait;
use berth_proto::model::{ContainerDefinition, Task, TaskDefinition, arn_tail};
use berth_proto::v1::Assignment;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The controller's view of each assigned task, as last assigned.
#[derive(Debug, Default)]
pub struct TaskDirectory {
    tasks: Mutex<HashMap<String, Arc<TaskRecord>>>,
}

#[derive(Debug)]
pub struct TaskRecord {
    pub task: Task,
    pub def: TaskDefinition,
    pub desired_status: String,
}

impl TaskDirectory {
    fn record(&self, task_id: &str, rec: TaskRecord) {
        self.lock().insert(task_id.to_string(), Arc::new(rec));
    }
    fn get(&self, task_id: &str) -> Option<Arc<TaskRecord>> {
        self.lock().get(task_id).cloned()
    }
    fn forget(&self, task_id: &str) {
        self.lock().remove(task_id);
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TaskRecord>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the supervisor keeps while the endpoint is on.
pub(super) struct MetadataHooks {
    injector: Injector,
    directory: Arc<TaskDirectory>,
}

impl MetadataHooks {
    /// Notes an assignment (unless it is older than the worker's).
    pub(super) fn note(
        &self,
        a: &Assignment,
        have: Option<u64>,
        task: &Task,
        def: &TaskDefinition,
    ) {
        if have.is_some_and(|v| a.version < v) {
            return;
        }
        let rec = TaskRecord {
            task: task.clone(),
            def: def.clone(),
            desired_status: a.desired_status.clone(),
        };
        self.directory.record(&a.task_id, rec);
    }

    /// Gives every container of a new plan its token and URI.
    pub(super) fn inject(&self, def: &TaskDefinition, plan: &mut TaskPlan) {
        for c in plan.containers.iter_mut().filter(|c| c.name != PAUSE_CONTAINER_NAME) {
            self.injector.inject(def.network_mode(), &mut c.spec);
        }
    }

    pub(super) fn forget(&self, task_id: &str) {
        self.directory.forget(task_id);
    }
}

impl Supervisor {
    /// Turns the task metadata endpoint on for tasks planned from now on (call it right after
    /// [`Supervisor::new`]); returns the view to serve.
    pub fn enable_metadata(
        &mut self,
        injector: Injector,
        stats: Arc<StatsCache>,
    ) -> Arc<dyn MetadataSource> {
        let directory = Arc::new(TaskDirectory::default());
        self.metadata = Some(MetadataHooks { injector, directory: directory.clone() });
        Arc::new(SupervisorView { ctx: self.ctx.clone(), directory, stats })
    }

    /// The container observer (the stats sampler reads its snapshots).
    pub fn observer(&self) -> ObserverHandle {
        self.ctx.observer.clone()
    }
}

/// The read-only view behind the endpoint.
pub struct SupervisorView {
    ctx: Arc<WorkerContext>,
    directory: Arc<TaskDirectory>,
    stats: Arc<StatsCache>,
}

#[async_trait]
impl MetadataSource for SupervisorView {
    fn find(&self, token: &str) -> Option<(TaskView, usize)> {
        let snap = self.ctx.observer.subscribe().borrow().clone();
        let (task_id, infos) = snap.by_task.iter().find(|(_, infos)| {
            infos.iter().any(|c| c.label(LABEL_METADATA_TOKEN) == Some(token))
        })?;
        let me = infos.iter().find(|c| c.label(LABEL_METADATA_TOKEN) == Some(token))?;
        let me = me.label(LABEL_CONTAINER_NAME)?;
        let rec = self.directory.get(task_id)?;
        let view = task_view(&rec, infos, self.ctx.reports.get(task_id).as_ref());
        let idx = view.containers.iter().position(|c| c.name == me)?;
        Some((view, idx))
    }

    async fn networks(&self, docker_id: &str) -> Vec<ContainerNetwork> {
        self.ctx.runtime.networks(docker_id).await.unwrap_or_default()
    }

    async fn stats(&self, docker_id: &str) -> Option<serde_json::Value> {
        let cur = self.ctx.runtime.stats(docker_id).await.ok()?;
        let mut raw = cur.raw;
        // A one-shot sample has no `precpu_stats`; the sampler's previous one stands in, so
        // callers can compute a rate from one answer (as from the ECS agent's).
        if let (Some(prev), Some(obj)) = (self.stats.get(docker_id), raw.as_object_mut()) {
            if let Some(cpu) = prev.raw.get("cpu_stats") {
                obj.insert("precpu_stats".into(), cpu.clone());
            }
            if let Some(read) = prev.raw.get("read") {
                obj.insert("preread".into(), read.clone());
            }
        }
        Some(raw)
    }
}

/// The endpoint's view of one task: the controller's task and definition, the engine's
/// containers, the agent's latest report. Pure.
pub fn task_view(
    rec: &TaskRecord,
    infos: &[ContainerInfo],
    report: Option<&berth_proto::model::TaskStatusReport>,
) -> TaskView {
    let (task, def) = (&rec.task, &rec.def);
    let mode = def.network_mode();
    let containers = def
        .container_definitions
        .iter()
        .map(|cd| {
            let info = infos.iter().find(|i| i.label(LABEL_CONTAINER_NAME) == Some(&cd.name));
            let reported = report.and_then(|r| r.containers.iter().find(|c| c.name == cd.name));
            let known = reported
                .map(|r| r.last_status.clone())
                .or_else(|| info.map(|i| i.state.ecs_status().to_string()))
                .unwrap_or_else(|| "PENDING".to_string());
            ContainerView {
                name: cd.name.clone(),
                container_arn: task
                    .containers
                    .iter()
                    .find(|c| c.name == cd.name)
                    .map(|c| c.container_arn.clone())
                    .unwrap_or_default(),
                docker_id: info.map(|i| i.id.clone()),
                docker_name: info.map(|i| i.name.clone()),
                image: cd.image.clone(),
                labels: info.map(|i| i.labels.clone()).unwrap_or_default(),
                known_status: known,
                exit_code: info.and_then(|i| i.exit_code).or(reported.and_then(|r| r.exit_code)),
                cpu: cd.cpu,
                memory: cd.memory,
                ports: match mode {
                    "awsvpc" | "host" => declared_ports(mode, cd),
                    _ => info.map(|i| i.ports.clone()).unwrap_or_default(),
                },
                // Berth runs every container on json-file (other drivers fall back to it).
                log_driver: Some("json-file".to_string()),
                log_options: cd
                    .log_configuration
                    .as_ref()
                    .filter(|l| l.log_driver == "json-file")
                    .and_then(|l| l.options.clone())
                    .unwrap_or_default(),
                networks: Vec::new(),
            }
        })
        .collect();
    let parse = |s: &Option<String>| s.as_deref().and_then(|v| v.trim().parse::<i64>().ok());
    TaskView {
        cluster: arn_tail(&task.cluster_arn).to_string(),
        task_arn: task.task_arn.clone(),
        family: def.family.clone(),
        revision: def.revision.unwrap_or(0),
        desired_status: rec.desired_status.clone(),
        known_status: report.map(|r| r.last_status.clone()).unwrap_or(task.last_status.clone()),
        service_name: task.service_name().map(str::to_string),
        availability_zone: task.availability_zone.clone(),
        launch_type: Some(task.launch_type.clone()),
        cpu: parse(&task.cpu).or(parse(&def.cpu)),
        memory: parse(&task.memory).or(parse(&def.memory)),
        pull_started_at: report.and_then(|r| r.pull_started_at).or(task.pull_started_at),
        pull_stopped_at: report.and_then(|r| r.pull_stopped_at).or(task.pull_stopped_at),
        execution_stopped_at: report
            .and_then(|r| r.execution_stopped_at)
            .or(task.execution_stopped_at),
        network_mode: def.network_mode().to_string(),
        task_addrs: infos.iter().filter_map(|i| i.label(LABEL_AWSVPC_IPV4)?.parse().ok()).collect(),
        task_network: (mode == "awsvpc")
            .then(|| infos.iter().find(|i| is_pause_info(i)).and_then(task_network))
            .flatten(),
        containers,
    }
}

/// The task's interface from its pause container's labels (none before it has an address).
fn task_network(pause: &ContainerInfo) -> Option<TaskNetworkView> {
    Some(TaskNetworkView {
        ipv4: pause.label(LABEL_AWSVPC_IPV4)?.parse().ok()?,
        mac: pause.label(LABEL_AWSVPC_MAC).map(str::to_string),
        private_dns_name: pause.label(LABEL_AWSVPC_DNS_NAME).map(str::to_string),
        subnet: pause.label(LABEL_AWSVPC_SUBNET).and_then(|s| Ipv4Subnet::parse(s).ok()),
    })
}

/// awsvpc and host mode: the definition's port mappings, `HostPort` = `ContainerPort` (as the
/// ECS agent shows them; the engine binds nothing itself). Host mode binds every address.
fn declared_ports(mode: &str, cd: &ContainerDefinition) -> Vec<BoundPort> {
    cd.port_mappings
        .iter()
        .flatten()
        .filter_map(|pm| {
            let port = pm.container_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0)?;
            Some(BoundPort {
                container_port: port,
                host_port: port,
                protocol: pm.protocol.as_deref().unwrap_or("tcp").to_ascii_lowercase(),
                host_ip: if mode == "host" { "0.0.0.0".to_string() } else { String::new() },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerState;
    use berth_proto::model::{ContainerDefinition, ContainerReport, TaskStatusReport};
    use std::collections::BTreeMap;

    #[test]
    fn view_joins_assignment_engine_and_report() {
        let rec = TaskRecord {
            task: Task {
                task_arn: "arn:aws:ecs:local:0:task/prod/t1".into(),
                cluster_arn: "arn:aws:ecs:local:0:cluster/prod".into(),
                last_status: "PENDING".into(),
                group: Some("service:web".into()),
                launch_type: "EC2".into(),
                memory: Some("512".into()),
                ..Default::default()
            },
            def: TaskDefinition {
                family: "web".into(),
                revision: Some(4),
                container_definitions: vec![
                    ContainerDefinition {
                        name: "app".into(),
                        image: "busybox".into(),
                        cpu: Some(10),
                        ..Default::default()
                    },
                    ContainerDefinition {
                        name: "side".into(),
                        image: "busybox".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            desired_status: "RUNNING".into(),
        };
        let info = ContainerInfo {
            id: "d1".into(),
            name: "berth-web-4-app-t1".into(),
            image: "busybox".into(),
            labels: BTreeMap::from([(LABEL_CONTAINER_NAME.to_string(), "app".to_string())]),
            state: ContainerState::Running,
            exit_code: None,
            ports: Vec::new(),
            error: None,
            health: None,
        };
        let report = TaskStatusReport {
            task_id: "t1".into(),
            last_status: "RUNNING".into(),
            containers: vec![ContainerReport {
                name: "app".into(),
                last_status: "RUNNING".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = task_view(&rec, &[info], Some(&report));
        assert_eq!(v.cluster, "prod");
        assert_eq!((v.family.as_str(), v.revision), ("web", 4));
        assert_eq!(v.known_status, "RUNNING");
        assert_eq!(v.service_name.as_deref(), Some("web"));
        assert_eq!(v.memory, Some(512));
        assert_eq!(v.containers.len(), 2);
        assert_eq!(v.containers[0].docker_id.as_deref(), Some("d1"));
        assert_eq!(v.containers[0].cpu, Some(10));
        assert_eq!(v.containers[1].docker_id, None);
        assert_eq!(v.containers[1].known_status, "PENDING");
        assert_eq!(v.task_network, None);
    }

    #[test]
    fn awsvpc_view_takes_the_pause_containers_interface_and_declared_ports() {
        let rec = TaskRecord {
            task: Task::default(),
            def: TaskDefinition {
                family: "web".into(),
                network_mode: Some("awsvpc".into()),
                container_definitions: vec![ContainerDefinition {
                    name: "app".into(),
                    image: "busybox".into(),
                    port_mappings: Some(vec![berth_proto::model::PortMapping {
                        container_port: Some(8080),
                        protocol: Some("UDP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            },
            desired_status: "RUNNING".into(),
        };
        let info = |name: &str, labels: &[(&str, &str)]| ContainerInfo {
            id: format!("id-{name}"),
            name: name.into(),
            image: "busybox".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            state: ContainerState::Running,
            exit_code: None,
            ports: Vec::new(),
            error: None,
            health: None,
        };
        let infos = [
            info("app", &[(LABEL_CONTAINER_NAME, "app")]),
            info(
                "pause",
                &[
                    (LABEL_CONTAINER_NAME, PAUSE_CONTAINER_NAME),
                    (LABEL_AWSVPC_IPV4, "10.213.0.9"),
                    (LABEL_AWSVPC_MAC, "02:42:0a:d5:00:09"),
                    (LABEL_AWSVPC_DNS_NAME, "ip-10-213-0-9.local.compute.internal"),
                    (LABEL_AWSVPC_SUBNET, "10.213.0.0/16"),
                ],
            ),
        ];
        let v = task_view(&rec, &infos, None);
        assert_eq!(v.containers.len(), 1, "the pause container is not shown");
        let n = v.task_network.expect("the task's interface");
        assert_eq!(n.ipv4, std::net::Ipv4Addr::new(10, 213, 0, 9));
        assert_eq!(n.mac.as_deref(), Some("02:42:0a:d5:00:09"));
        assert_eq!(n.private_dns_name.as_deref(), Some("ip-10-213-0-9.local.compute.internal"));
        assert_eq!(n.subnet.map(|s| s.to_string()).as_deref(), Some("10.213.0.0/16"));
        assert_eq!(
            v.containers[0].ports,
            vec![BoundPort {
                container_port: 8080,
                host_port: 8080,
                protocol: "udp".into(),
                host_ip: String::new(),
            }]
        );
        let mut host = rec;
        host.def.network_mode = Some("host".into());
        let v = task_view(&host, &infos[..1], None);
        assert_eq!(v.task_network, None);
        assert_eq!(v.containers[0].ports[0].host_ip, "0.0.0.0");
        assert_eq!(v.containers[0].ports[0].host_port, 8080);
    }
}
