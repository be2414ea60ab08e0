//! # awsvpc — a network namespace per task, as the ECS agent does it. Pure.
//!
//! Plan (`spec.rs` calls [`add_pause`]): an awsvpc task gets one more container, the pause
//! container [`PAUSE_CONTAINER_NAME`] (as ECS names it), last in the plan so the definition's
//! indexes stay valid. It is essential, has no resources of its own to speak of, runs the
//! [`AwsvpcSettings::pause_image`] and carries a [`TaskNetworkSpec`]: the runtime attaches it
//! to the agent's network ([`AwsvpcSettings::network`]) with an address of its own and names it
//! `ip-A-B-C-D.<region>.compute.internal`. Every container of the definition runs with
//! `network_mode: container:<pause>` (so they share its interfaces, `localhost` and hostname)
//! and an implicit `START` dependency on it; reverse-order shutdown therefore stops the pause
//! container last. Port mappings publish nothing on the host (as on ECS, where `networkBindings`
//! of awsvpc tasks are empty): the task's address is reachable from the host through the bridge.
//!
//! Report (`decide.rs` calls [`attachment`] and [`network_interface`]): the pause container is
//! never reported as a container; its `berth.awsvpc.*` labels give the task's ECS attachment
//! (`ElasticNetworkInterface`, status PRECREATED → ATTACHED → DELETED) and each container's
//! `networkInterfaces`.

use super::decide_order::{Condition, Dependency};
use super::spec::{Placement, PlannedContainer, container_name};
use crate::runtime::pause_image::BUILTIN_PAUSE_IMAGE;
use crate::runtime::task_network::{
    self, DEFAULT_NETWORK, DEFAULT_SUBNET, Ipv4Subnet, LABEL_AWSVPC_DNS_NAME, LABEL_AWSVPC_IPV4,
    LABEL_AWSVPC_MAC, LABEL_AWSVPC_NETWORK, TaskNetworkSpec,
};
use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, LABEL_CLUSTER, LABEL_CONTAINER_NAME,
    LABEL_INSTANCE_ID, LABEL_STOP_TIMEOUT, LABEL_TASK_ID, LABEL_TASK_VERSION,
};
use berth_proto::model::{NetworkInterface, TaskDefinition};
use serde_json::{Value, json};
use std::time::Duration;

/// The pause container's name in the task (the ECS agent's own), in the
/// `berth.container-name` label. No definition can use it: container names are
/// `[A-Za-z0-9_-]`.
pub const PAUSE_CONTAINER_NAME: &str = "~internal~ecs~pause";

/// SIGTERM → SIGKILL grace of the pause container (Berth's own exits at SIGTERM; an
/// operator's image that ignores it should not hold every task stop for 30 s).
pub const PAUSE_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The ECS attachment type of an awsvpc task.
pub const ATTACHMENT_TYPE: &str = "ElasticNetworkInterface";

/// How this agent runs awsvpc tasks (`--awsvpc-network`, `--awsvpc-subnet`, `--pause-image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsvpcSettings {
    /// The engine network (created by the agent when absent).
    pub network: String,
    pub subnet: Ipv4Subnet,
    /// An operator's pause image; `None`: the built-in one, made by the agent.
    pub pause_image: Option<String>,
    /// The region in private DNS names; `None`: from the instance's `ecs.availability-zone`
    /// ([`task_network::region_of_zone`]), set by the session at registration.
    pub region: Option<String>,
}

impl Default for AwsvpcSettings {
    fn default() -> Self {
        AwsvpcSettings {
            network: DEFAULT_NETWORK.to_string(),
            subnet: Ipv4Subnet::parse(DEFAULT_SUBNET)
                .unwrap_or(Ipv4Subnet { base: std::net::Ipv4Addr::new(10, 213, 0, 0), prefix: 16 }),
            pause_image: None,
            region: None,
        }
    }
}

impl AwsvpcSettings {
    pub fn pause_image(&self) -> &str {
        self.pause_image.as_deref().unwrap_or(BUILTIN_PAUSE_IMAGE)
    }

    /// The settings with the region filled in from an availability zone, unless one is set.
    pub fn with_zone(mut self, zone: Option<&str>) -> Self {
        if self.region.is_none() {
            self.region = Some(task_network::region_of_zone(zone.unwrap_or("local")));
        }
        self
    }

    fn dns_domain(&self) -> String {
        task_network::dns_domain(self.region.as_deref().unwrap_or("local"))
    }
}

/// The command-line flags of `berth-agent` and `berth dev` for awsvpc (a contract: see the
/// README's awsvpc section).
#[derive(Debug, Clone, clap::Args)]
pub struct AwsvpcFlags {
    /// Docker bridge network of awsvpc tasks (created by the agent when absent).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NETWORK)]
    pub awsvpc_network: String,
    /// Subnet of that network; each awsvpc task gets an address of its own from it.
    #[arg(long, value_name = "CIDR", default_value = DEFAULT_SUBNET, value_parser = Ipv4Subnet::parse)]
    pub awsvpc_subnet: Ipv4Subnet,
    /// Pause image holding each awsvpc task's network namespace (default: Berth's own, built
    /// locally as berth/pause:1 without any registry).
    #[arg(long, value_name = "IMAGE")]
    pub pause_image: Option<String>,
}

impl AwsvpcFlags {
    pub fn settings(&self) -> AwsvpcSettings {
        AwsvpcSettings {
            network: self.awsvpc_network.clone(),
            subnet: self.awsvpc_subnet,
            pause_image: self.pause_image.clone(),
            region: None,
        }
    }
}

/// The pause container's engine name: `berth-<family>-<rev>-internal.pause-<task id 12>` (a `.`
/// no definition's container name can produce, so it never clashes with one).
pub fn pause_engine_name(def: &TaskDefinition, task_id: &str) -> String {
    container_name(def, "internal.pause", task_id)
}

/// `container:<pause>`: the network mode of every container of an awsvpc task.
pub fn container_network_mode(def: &TaskDefinition, task_id: &str) -> String {
    format!("container:{}", pause_engine_name(def, task_id))
}

/// Appends the pause container to an awsvpc task's `containers` (planned from the definition,
/// already in `container:` mode) and makes each of them depend on it (`START`).
pub fn add_pause(
    containers: &mut Vec<PlannedContainer>,
    task_id: &str,
    version: u64,
    def: &TaskDefinition,
    placement: &Placement,
    settings: &AwsvpcSettings,
) {
    let pause = containers.len();
    for c in containers.iter_mut() {
        c.spec.port_mappings.clear();
        c.depends_on.push(Dependency { target: pause, condition: Condition::Start });
    }
    let labels = [
        (LABEL_TASK_ID, task_id.to_string()),
        (LABEL_CONTAINER_NAME, PAUSE_CONTAINER_NAME.to_string()),
        (LABEL_INSTANCE_ID, placement.instance_id.clone()),
        (LABEL_CLUSTER, placement.cluster.clone()),
        (LABEL_TASK_VERSION, version.to_string()),
        (LABEL_STOP_TIMEOUT, PAUSE_STOP_TIMEOUT.as_secs().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    containers.push(PlannedContainer {
        name: PAUSE_CONTAINER_NAME.to_string(),
        essential: true,
        spec: ContainerSpec {
            name: pause_engine_name(def, task_id),
            image: settings.pause_image().to_string(),
            labels,
            cpu_shares: Some(2),
            network_mode: settings.network.clone(),
            stop_timeout: Some(PAUSE_STOP_TIMEOUT),
            task_network: Some(TaskNetworkSpec {
                network: settings.network.clone(),
                subnet: settings.subnet,
                dns_domain: settings.dns_domain(),
                seed: task_network::seed_of(task_id),
            }),
            ..Default::default()
        },
        depends_on: Vec::new(),
        start_timeout: None,
    });
}

/// Whether a planned container is a task's pause container.
pub fn is_pause(c: &PlannedContainer) -> bool {
    c.spec.task_network.is_some()
}

/// Whether an observed container is a pause container (by its name label).
pub fn is_pause_info(c: &ContainerInfo) -> bool {
    c.label(LABEL_CONTAINER_NAME) == Some(PAUSE_CONTAINER_NAME)
}

/// The attachment id of a task: its 32-hex id in UUID form (stable across agent restarts).
pub fn attachment_id(task_id: &str) -> String {
    let h: String = task_id.chars().filter(char::is_ascii_hexdigit).collect();
    if h.len() == 32 {
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    } else {
        format!("eni-attachment-{task_id}")
    }
}

/// The task's ECS attachment from its pause container (none before the runtime gave it an
/// address). `stopped`: the task is STOPPED, so the interface is DELETED.
pub fn attachment(task_id: &str, pause: &ContainerInfo, stopped: bool) -> Option<Value> {
    let ip = pause.label(LABEL_AWSVPC_IPV4)?;
    let status = if stopped {
        "DELETED"
    } else if pause.state == ContainerState::Running {
        "ATTACHED"
    } else {
        "PRECREATED"
    };
    let detail = |name: &str, value: &str| json!({"name": name, "value": value});
    // The engine has no ENI: the interface is the pause container's endpoint, so its id is
    // derived from the container id, and the "subnet" is the engine network.
    let eni: String = pause.id.chars().take(17).collect();
    Some(json!({
        "id": attachment_id(task_id),
        "type": ATTACHMENT_TYPE,
        "status": status,
        "details": [
            detail("subnetId", pause.label(LABEL_AWSVPC_NETWORK).unwrap_or_default()),
            detail("networkInterfaceId", &format!("eni-{eni}")),
            detail("macAddress", pause.label(LABEL_AWSVPC_MAC).unwrap_or_default()),
            detail("privateDnsName", pause.label(LABEL_AWSVPC_DNS_NAME).unwrap_or_default()),
            detail("privateIPv4Address", ip),
        ],
    }))
}

/// A container's `networkInterfaces` entry in an awsvpc task.
pub fn network_interface(task_id: &str, pause: &ContainerInfo) -> Option<NetworkInterface> {
    Some(NetworkInterface {
        attachment_id: attachment_id(task_id),
        private_ipv4_address: Some(pause.label(LABEL_AWSVPC_IPV4)?.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::{ContainerDefinition, PortMapping};

    const TASK: &str = "0123456789abcdef0123456789abcdef";

    fn def() -> TaskDefinition {
        TaskDefinition {
            family: "web".into(),
            revision: Some(2),
            network_mode: Some("awsvpc".into()),
            container_definitions: ["a", "b"]
                .iter()
                .map(|n| ContainerDefinition {
                    name: n.to_string(),
                    image: "busybox".into(),
                    memory: Some(32),
                    port_mappings: Some(vec![PortMapping {
                        container_port: Some(8080),
                        host_port: Some(8080),
                        ..Default::default()
                    }]),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn plan_for(settings: &AwsvpcSettings) -> super::super::spec::TaskPlan {
        let p = Placement { instance_id: "i-1".into(), cluster: "c".into() };
        super::super::spec::plan_task_with(TASK, 4, &def(), &p, settings).expect("plan")
    }

    #[test]
    fn an_awsvpc_task_gets_a_pause_container_last_that_every_container_joins() {
        let settings = AwsvpcSettings::default().with_zone(Some("us-east-1b"));
        let plan = plan_for(&settings);
        assert_eq!(plan.containers.len(), 3);
        let pause = &plan.containers[2];
        assert_eq!(pause.name, PAUSE_CONTAINER_NAME);
        assert!(pause.essential && is_pause(pause));
        assert_eq!(pause.spec.name, "berth-web-2-internal.pause-0123456789ab");
        assert_eq!(pause.spec.image, BUILTIN_PAUSE_IMAGE);
        assert_eq!(pause.spec.labels.get(LABEL_TASK_ID).map(String::as_str), Some(TASK));
        assert_eq!(pause.spec.labels.get(LABEL_STOP_TIMEOUT).map(String::as_str), Some("5"));
        let tn = pause.spec.task_network.clone().expect("task network");
        assert_eq!(tn.network, DEFAULT_NETWORK);
        assert_eq!(tn.subnet.to_string(), DEFAULT_SUBNET);
        assert_eq!(tn.dns_domain, "us-east-1.compute.internal");
        for c in &plan.containers[..2] {
            assert_eq!(c.spec.network_mode, "container:berth-web-2-internal.pause-0123456789ab");
            assert!(c.spec.port_mappings.is_empty(), "nothing is published on the host");
            assert!(!is_pause(c));
            assert_eq!(c.depends_on, vec![Dependency { target: 2, condition: Condition::Start }]);
        }
        let own = AwsvpcSettings {
            pause_image: Some("registry.k8s.io/pause:3.9".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        let plan = plan_for(&own);
        assert_eq!(plan.containers[2].spec.image, "registry.k8s.io/pause:3.9");
        let dns = plan.containers[2].spec.task_network.clone().map(|t| t.dns_domain);
        assert_eq!(dns.as_deref(), Some("eu-west-1.compute.internal"));
    }

    fn pause_info(state: ContainerState) -> ContainerInfo {
        let labels = [
            (LABEL_CONTAINER_NAME, PAUSE_CONTAINER_NAME),
            (LABEL_AWSVPC_IPV4, "10.213.0.9"),
            (LABEL_AWSVPC_MAC, "02:42:0a:d5:00:09"),
            (LABEL_AWSVPC_DNS_NAME, "ip-10-213-0-9.local.compute.internal"),
            (LABEL_AWSVPC_NETWORK, "berth-awsvpc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        ContainerInfo {
            id: "abcdef0123456789abcdef".into(),
            name: "berth-web-2-internal.pause-0123456789ab".into(),
            image: BUILTIN_PAUSE_IMAGE.into(),
            labels,
            state,
            exit_code: None,
            ports: Vec::new(),
            error: None,
            health: None,
        }
    }

    #[test]
    fn the_attachment_has_the_ecs_shape_and_follows_the_pause_container() {
        let a = attachment(TASK, &pause_info(ContainerState::Running), false).expect("attachment");
        assert_eq!(
            a,
            json!({
                "id": "01234567-89ab-cdef-0123-456789abcdef",
                "type": "ElasticNetworkInterface",
                "status": "ATTACHED",
                "details": [
                    {"name": "subnetId", "value": "berth-awsvpc"},
                    {"name": "networkInterfaceId", "value": "eni-abcdef0123456789a"},
                    {"name": "macAddress", "value": "02:42:0a:d5:00:09"},
                    {"name": "privateDnsName", "value": "ip-10-213-0-9.local.compute.internal"},
                    {"name": "privateIPv4Address", "value": "10.213.0.9"},
                ]
            })
        );
        let created = attachment(TASK, &pause_info(ContainerState::Created), false);
        assert_eq!(created.map(|a| a["status"].clone()), Some(json!("PRECREATED")));
        let gone = attachment(TASK, &pause_info(ContainerState::Exited), true);
        assert_eq!(gone.map(|a| a["status"].clone()), Some(json!("DELETED")));
        let mut unlabelled = pause_info(ContainerState::Created);
        unlabelled.labels.remove(LABEL_AWSVPC_IPV4);
        assert_eq!(attachment(TASK, &unlabelled, false), None);
        assert_eq!(
            network_interface(TASK, &pause_info(ContainerState::Running)),
            Some(NetworkInterface {
                attachment_id: "01234567-89ab-cdef-0123-456789abcdef".into(),
                private_ipv4_address: Some("10.213.0.9".into()),
            })
        );
        assert!(is_pause_info(&pause_info(ContainerState::Running)));
    }
}
