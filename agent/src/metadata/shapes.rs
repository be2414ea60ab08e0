//! The task metadata v4 JSON (ECS-NOTES §6.2): ECS's PascalCase field names, absent values
//! omitted (never `null`), times as ISO-8601 strings, task `Limits.CPU` in vCPUs and container
//! `Limits.CPU` in CPU units, `Revision` as a string. Pure: views in, serde structs out.

use super::{ContainerView, TaskNetworkView, TaskView, ecs_labels};
use crate::runtime::ContainerNetwork;
use berth_proto::model::event::iso8601_millis;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskMetadata {
    #[serde(rename = "Cluster")]
    pub cluster: String,
    #[serde(rename = "ServiceName", skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(rename = "TaskARN")]
    pub task_arn: String,
    #[serde(rename = "Family")]
    pub family: String,
    #[serde(rename = "Revision")]
    pub revision: String,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    #[serde(rename = "KnownStatus")]
    pub known_status: String,
    #[serde(rename = "Limits", skip_serializing_if = "Option::is_none")]
    pub limits: Option<TaskLimits>,
    #[serde(rename = "PullStartedAt", skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<String>,
    #[serde(rename = "PullStoppedAt", skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<String>,
    #[serde(rename = "ExecutionStoppedAt", skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<String>,
    #[serde(rename = "AvailabilityZone", skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(rename = "LaunchType", skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    #[serde(rename = "Containers")]
    pub containers: Vec<ContainerMetadata>,
    /// `/taskWithTags` only (Berth has no resource tags yet: empty maps).
    #[serde(rename = "TaskTags", skip_serializing_if = "Option::is_none")]
    pub task_tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "ContainerInstanceTags", skip_serializing_if = "Option::is_none")]
    pub container_instance_tags: Option<BTreeMap<String, String>>,
}

/// Task-level limits: CPU in vCPUs (units / 1024), memory in MiB.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskLimits {
    #[serde(rename = "CPU", skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(rename = "Memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
}

/// Container-level limits: CPU units, memory MiB.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerLimits {
    #[serde(rename = "CPU")]
    pub cpu: i64,
    #[serde(rename = "Memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerMetadata {
    #[serde(rename = "DockerId", skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "DockerName", skip_serializing_if = "Option::is_none")]
    pub docker_name: Option<String>,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Ports", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMetadata>,
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    #[serde(rename = "KnownStatus")]
    pub known_status: String,
    #[serde(rename = "ExitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(rename = "Limits")]
    pub limits: ContainerLimits,
    #[serde(rename = "Type")]
    pub container_type: String,
    #[serde(rename = "LogDriver", skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    #[serde(rename = "LogOptions", skip_serializing_if = "BTreeMap::is_empty")]
    pub log_options: BTreeMap<String, String>,
    #[serde(rename = "ContainerARN")]
    pub container_arn: String,
    #[serde(rename = "Networks", skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkMetadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortMetadata {
    #[serde(rename = "ContainerPort")]
    pub container_port: u16,
    #[serde(rename = "Protocol")]
    pub protocol: String,
    #[serde(rename = "HostPort")]
    pub host_port: u16,
    /// Omitted for awsvpc (nothing is bound on a host address).
    #[serde(rename = "HostIp", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkMetadata {
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
    /// Empty (omitted) in host mode: the container has no address of its own.
    #[serde(rename = "IPv4Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<String>,
    /// awsvpc only: the interface's index (always 0, one interface per task, as on ECS).
    #[serde(rename = "AttachmentIndex", skip_serializing_if = "Option::is_none")]
    pub attachment_index: Option<u32>,
    #[serde(rename = "MACAddress", skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(rename = "IPv4SubnetCIDRBlock", skip_serializing_if = "Option::is_none")]
    pub ipv4_subnet_cidr_block: Option<String>,
    #[serde(rename = "PrivateDNSName", skip_serializing_if = "Option::is_none")]
    pub private_dns_name: Option<String>,
    #[serde(rename = "SubnetGatewayIpv4Address", skip_serializing_if = "Option::is_none")]
    pub subnet_gateway_ipv4_address: Option<String>,
}

/// `${URI}/task` (with `tags`: `${URI}/taskWithTags`).
pub fn task_metadata(task: &TaskView, tags: bool) -> TaskMetadata {
    let limits = (task.cpu.is_some() || task.memory.is_some())
        .then(|| TaskLimits { cpu: task.cpu.map(|c| c as f64 / 1024.0), memory: task.memory });
    TaskMetadata {
        cluster: task.cluster.clone(),
        service_name: task.service_name.clone(),
        task_arn: task.task_arn.clone(),
        family: task.family.clone(),
        revision: task.revision.to_string(),
        desired_status: task.desired_status.clone(),
        known_status: task.known_status.clone(),
        limits,
        pull_started_at: task.pull_started_at.map(iso8601_millis),
        pull_stopped_at: task.pull_stopped_at.map(iso8601_millis),
        execution_stopped_at: task.execution_stopped_at.map(iso8601_millis),
        availability_zone: task.availability_zone.clone(),
        launch_type: task.launch_type.clone(),
        containers: task.containers.iter().map(|c| container_metadata(task, c)).collect(),
        task_tags: tags.then(BTreeMap::new),
        container_instance_tags: tags.then(BTreeMap::new),
    }
}

/// `${URI}`: one container.
pub fn container_metadata(task: &TaskView, c: &ContainerView) -> ContainerMetadata {
    ContainerMetadata {
        docker_id: c.docker_id.clone(),
        name: c.name.clone(),
        docker_name: c.docker_name.clone(),
        image: c.image.clone(),
        ports: c
            .ports
            .iter()
            .map(|p| PortMetadata {
                container_port: p.container_port,
                protocol: p.protocol.clone(),
                host_port: p.host_port,
                host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
            })
            .collect(),
        labels: ecs_labels(task, c),
        desired_status: task.desired_status.clone(),
        known_status: c.known_status.clone(),
        exit_code: c.exit_code,
        limits: ContainerLimits { cpu: c.cpu.unwrap_or(0), memory: c.memory },
        container_type: "NORMAL".to_string(),
        log_driver: c.log_driver.clone(),
        log_options: c.log_options.clone(),
        container_arn: c.container_arn.clone(),
        networks: networks(task, c),
    }
}

/// A container's `Networks`: awsvpc containers run in their pause container's namespace and
/// show the task's interface; host-mode ones show `{"NetworkMode": "host"}` (as the ECS agent
/// does for a container whose engine network has no address); others their own networks.
fn networks(task: &TaskView, c: &ContainerView) -> Vec<NetworkMetadata> {
    match task.network_mode.as_str() {
        "awsvpc" => task.task_network.iter().map(awsvpc_network).collect(),
        "host" => vec![NetworkMetadata {
            network_mode: "host".to_string(),
            ipv4_addresses: Vec::new(),
            attachment_index: None,
            mac_address: None,
            ipv4_subnet_cidr_block: None,
            private_dns_name: None,
            subnet_gateway_ipv4_address: None,
        }],
        mode => c.networks.iter().filter_map(|n| network_metadata(mode, n)).collect(),
    }
}

fn awsvpc_network(n: &TaskNetworkView) -> NetworkMetadata {
    NetworkMetadata {
        network_mode: "awsvpc".to_string(),
        ipv4_addresses: vec![n.ipv4.to_string()],
        attachment_index: Some(0),
        mac_address: n.mac.clone(),
        ipv4_subnet_cidr_block: n.subnet.map(|s| s.to_string()),
        private_dns_name: n.private_dns_name.clone(),
        subnet_gateway_ipv4_address: n.subnet.map(|s| format!("{}/{}", s.gateway(), s.prefix)),
    }
}

/// One attached network with an address (host mode containers have none of their own).
fn network_metadata(network_mode: &str, n: &ContainerNetwork) -> Option<NetworkMetadata> {
    let ip = n.ipv4?;
    let cidr = n.prefix_len.filter(|p| *p <= 32).map(|p| {
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) };
        format!("{}/{p}", Ipv4Addr::from(u32::from(ip) & mask))
    });
    Some(NetworkMetadata {
        network_mode: network_mode.to_string(),
        ipv4_addresses: vec![ip.to_string()],
        attachment_index: None,
        mac_address: n.mac.clone(),
        ipv4_subnet_cidr_block: cidr,
        private_dns_name: None,
        subnet_gateway_ipv4_address: n
            .gateway
            .map(|g| format!("{g}/{}", n.prefix_len.unwrap_or(32))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::BoundPort;
    use berth_proto::model::Timestamp;
    use serde_json::json;

    pub(crate) fn view() -> TaskView {
        TaskView {
            cluster: "default".into(),
            task_arn: "arn:aws:ecs:local:000000000000:task/default/abc".into(),
            family: "web".into(),
            revision: 3,
            desired_status: "RUNNING".into(),
            known_status: "RUNNING".into(),
            launch_type: Some("EC2".into()),
            cpu: Some(512),
            memory: Some(256),
            pull_started_at: Some(Timestamp(1_601_597_707_620)),
            network_mode: "bridge".into(),
            containers: vec![ContainerView {
                name: "app".into(),
                container_arn: "arn:aws:ecs:local:000000000000:container/default/abc/app".into(),
                docker_id: Some("d0c".into()),
                docker_name: Some("berth-web-3-app-abc".into()),
                image: "busybox".into(),
                labels: BTreeMap::from([
                    ("berth.metadata-token".to_string(), "secret".to_string()),
                    ("team".to_string(), "a".to_string()),
                ]),
                known_status: "RUNNING".into(),
                cpu: Some(10),
                memory: Some(128),
                ports: vec![BoundPort {
                    container_port: 80,
                    host_port: 49153,
                    protocol: "tcp".into(),
                    host_ip: "0.0.0.0".into(),
                }],
                networks: vec![ContainerNetwork {
                    name: "bridge".into(),
                    ipv4: Some(Ipv4Addr::new(172, 17, 0, 5)),
                    prefix_len: Some(16),
                    gateway: Some(Ipv4Addr::new(172, 17, 0, 1)),
                    mac: Some("02:42:ac:11:00:05".into()),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn task_json_uses_the_v4_field_names_and_omits_absent_values() {
        let v = serde_json::to_value(task_metadata(&view(), false)).unwrap();
        assert_eq!(v["Cluster"], "default");
        assert_eq!(v["TaskARN"], "arn:aws:ecs:local:000000000000:task/default/abc");
        assert_eq!(v["Family"], "web");
        assert_eq!(v["Revision"], "3");
        assert_eq!(v["DesiredStatus"], "RUNNING");
        assert_eq!(v["KnownStatus"], "RUNNING");
        assert_eq!(v["Limits"], json!({"CPU": 0.5, "Memory": 256}));
        assert_eq!(v["PullStartedAt"], "2020-10-02T00:15:07.620Z");
        assert_eq!(v["LaunchType"], "EC2");
        for absent in
            ["ServiceName", "PullStoppedAt", "ExecutionStoppedAt", "AvailabilityZone", "TaskTags"]
        {
            assert!(v.get(absent).is_none(), "{absent} should be omitted");
        }
        let c = &v["Containers"][0];
        assert_eq!(c["DockerId"], "d0c");
        assert_eq!(c["Name"], "app");
        assert_eq!(c["DockerName"], "berth-web-3-app-abc");
        assert_eq!(c["Image"], "busybox");
        assert_eq!(c["KnownStatus"], "RUNNING");
        assert_eq!(c["DesiredStatus"], "RUNNING");
        assert_eq!(c["Limits"], json!({"CPU": 10, "Memory": 128}));
        assert_eq!(c["Type"], "NORMAL");
        assert_eq!(
            c["Ports"],
            json!([{"ContainerPort": 80, "Protocol": "tcp", "HostPort": 49153, "HostIp": "0.0.0.0"}])
        );
        assert_eq!(
            c["Networks"],
            json!([{"NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.5"],
                "MACAddress": "02:42:ac:11:00:05", "IPv4SubnetCIDRBlock": "172.17.0.0/16",
                "SubnetGatewayIpv4Address": "172.17.0.1/16"}])
        );
        assert!(c.get("ExitCode").is_none());
        assert!(c.get("ImageID").is_none());
        let labels = &c["Labels"];
        assert_eq!(labels["com.amazonaws.ecs.task-arn"], v["TaskARN"]);
        assert_eq!(labels["com.amazonaws.ecs.task-definition-version"], "3");
        assert_eq!(labels["com.amazonaws.ecs.container-name"], "app");
        assert_eq!(labels["team"], "a");
        assert!(labels.get("berth.metadata-token").is_none(), "the token is never shown");
    }

    #[test]
    fn task_with_tags_adds_the_tag_maps_and_stopped_containers_show_exit_codes() {
        let mut t = view();
        t.containers[0].exit_code = Some(3);
        t.containers[0].known_status = "STOPPED".into();
        t.containers[0].networks.clear();
        let v = serde_json::to_value(task_metadata(&t, true)).unwrap();
        assert_eq!(v["TaskTags"], json!({}));
        assert_eq!(v["ContainerInstanceTags"], json!({}));
        assert_eq!(v["Containers"][0]["ExitCode"], 3);
        assert!(v["Containers"][0].get("Networks").is_none());
    }

    #[test]
    fn awsvpc_containers_show_the_task_interface_and_their_declared_ports() {
        let mut t = view();
        t.network_mode = "awsvpc".into();
        t.task_network = Some(TaskNetworkView {
            ipv4: Ipv4Addr::new(10, 213, 0, 9),
            mac: Some("02:42:0a:d5:00:09".into()),
            private_dns_name: Some("ip-10-213-0-9.local.compute.internal".into()),
            subnet: crate::runtime::task_network::Ipv4Subnet::parse("10.213.0.0/16").ok(),
        });
        // In container:<pause> mode the engine shows no networks of the container's own.
        t.containers[0].networks.clear();
        t.containers[0].ports = vec![BoundPort {
            container_port: 8080,
            host_port: 8080,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }];
        let c = serde_json::to_value(container_metadata(&t, &t.containers[0])).unwrap();
        assert_eq!(
            c["Networks"],
            json!([{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.213.0.9"], "AttachmentIndex": 0,
                "MACAddress": "02:42:0a:d5:00:09", "IPv4SubnetCIDRBlock": "10.213.0.0/16",
                "PrivateDNSName": "ip-10-213-0-9.local.compute.internal",
                "SubnetGatewayIpv4Address": "10.213.0.1/16"}])
        );
        assert_eq!(
            c["Ports"],
            json!([{"ContainerPort": 8080, "Protocol": "tcp", "HostPort": 8080}])
        );
    }

    #[test]
    fn host_mode_containers_show_the_host_network_mode() {
        let mut t = view();
        t.network_mode = "host".into();
        t.containers[0].networks.clear();
        let c = serde_json::to_value(container_metadata(&t, &t.containers[0])).unwrap();
        assert_eq!(c["Networks"], json!([{"NetworkMode": "host"}]));
    }
}
