//! awsvpc on Docker: the task network, the pause container's address, the built-in pause image.
//!
//! * [`create_pause`]: under one lock (so two tasks of this agent never pick the same address):
//!   the network exists with the configured subnet ([`ensure_network`], created when absent;
//!   a network of that name with another subnet is an error naming `--awsvpc-subnet`), the
//!   addresses in use are read (containers attached to the network, plus every Berth pause
//!   container labelled with an address — created but not started ones hold theirs too, and
//!   another agent on the same engine shares the network), a free one is picked, and the
//!   container is created with it ([`pause_body`], pure).
//! * [`ensure_builtin_image`]: `docker import` of `pause_image::rootfs_tar` as
//!   [`BUILTIN_PAUSE_IMAGE`] when the engine lacks it.
//!
//! Two agent processes on one engine can still race for an address between the read and the
//! start; the seed (the task id's hash) makes that unlikely, and the loser's task fails to start
//! with the engine's "address already in use" rather than sharing an address.

use super::create::create_body;
use super::map_err;
use crate::runtime::pause_image::{self, BUILTIN_PAUSE_IMAGE};
use crate::runtime::task_network::{
    self, LABEL_AWSVPC_DNS_NAME, LABEL_AWSVPC_IPV4, LABEL_AWSVPC_MAC, LABEL_AWSVPC_NETWORK,
    LABEL_AWSVPC_SUBNET, LABEL_MANAGED_NETWORK, TaskNetworkSpec,
};
use crate::runtime::{ContainerSpec, RuntimeError};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// Linux interface names are at most 15 bytes; longer network names keep Docker's `br-<id>`.
const MAX_BRIDGE_NAME: usize = 15;

/// Serialises address allocation and pause image builds within one agent process.
#[derive(Debug, Default)]
pub(super) struct AwsvpcLocks {
    allocate: tokio::sync::Mutex<()>,
    image: tokio::sync::Mutex<()>,
}

/// Creates the pause container `spec` describes; returns its id.
pub(super) async fn create_pause(
    docker: &Docker,
    locks: &AwsvpcLocks,
    spec: &ContainerSpec,
    tn: &TaskNetworkSpec,
) -> Result<String, RuntimeError> {
    let _guard = locks.allocate.lock().await;
    ensure_network(docker, tn).await?;
    let used = addresses_in_use(docker, tn).await?;
    let ip = task_network::allocate(&tn.subnet, &used, tn.seed).ok_or_else(|| {
        RuntimeError::Engine(format!(
            "network {} (subnet {}) has no free address for another awsvpc task",
            tn.network, tn.subnet
        ))
    })?;
    let opts = CreateContainerOptionsBuilder::default().name(&spec.name).build();
    let body = pause_body(spec, tn, ip);
    let resp = docker
        .create_container(Some(opts), body)
        .await
        .map_err(|e| map_err(&format!("create {}", spec.name), e))?;
    tracing::info!(container = %spec.name, %ip, network = %tn.network, "awsvpc pause container created");
    Ok(resp.id)
}

/// The create body of a pause container with address `ip`. Pure.
pub(super) fn pause_body(
    spec: &ContainerSpec,
    tn: &TaskNetworkSpec,
    ip: Ipv4Addr,
) -> ContainerCreateBody {
    let dns_name = task_network::private_dns_name(ip, &tn.dns_domain);
    let mac = task_network::mac_address(ip);
    let spec = ContainerSpec {
        network_mode: tn.network.clone(),
        hostname: Some(dns_name.clone()),
        port_mappings: Vec::new(),
        ..spec.clone()
    };
    let mut body = create_body(&spec);
    let labels = body.labels.get_or_insert_with(HashMap::new);
    labels.insert(LABEL_AWSVPC_IPV4.into(), ip.to_string());
    labels.insert(LABEL_AWSVPC_MAC.into(), mac.clone());
    labels.insert(LABEL_AWSVPC_DNS_NAME.into(), dns_name);
    labels.insert(LABEL_AWSVPC_NETWORK.into(), tn.network.clone());
    labels.insert(LABEL_AWSVPC_SUBNET.into(), tn.subnet.to_string());
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        // Honoured from API 1.44; older engines derive this very address from the IP.
        mac_address: Some(mac),
        ..Default::default()
    };
    body.networking_config = Some(NetworkingConfig {
        endpoints_config: Some([(tn.network.clone(), endpoint)].into_iter().collect()),
    });
    body
}

/// The network exists with `tn.subnet`: created (bridge driver, gateway `.1`) when absent.
async fn ensure_network(docker: &Docker, tn: &TaskNetworkSpec) -> Result<(), RuntimeError> {
    let subnets = match network_subnets(docker, &tn.network).await? {
        Some(s) => s,
        None => {
            let mut options = HashMap::new();
            if tn.network.len() <= MAX_BRIDGE_NAME {
                options.insert("com.docker.network.bridge.name".to_string(), tn.network.clone());
            }
            let req = NetworkCreateRequest {
                name: tn.network.clone(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(tn.subnet.to_string()),
                        gateway: Some(tn.subnet.gateway().to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                labels: Some([(LABEL_MANAGED_NETWORK.to_string(), "true".to_string())].into()),
                options: Some(options),
                ..Default::default()
            };
            if let Err(e) = docker.create_network(req).await {
                // Another agent on this engine may have created it meanwhile.
                match network_subnets(docker, &tn.network).await? {
                    Some(s) => s,
                    None => {
                        return Err(RuntimeError::Engine(format!(
                            "cannot create network {} with subnet {} (choose another with \
                             --awsvpc-subnet): {e}",
                            tn.network, tn.subnet
                        )));
                    }
                }
            } else {
                tracing::info!(network = %tn.network, subnet = %tn.subnet, "awsvpc network created");
                return Ok(());
            }
        }
    };
    let want = tn.subnet.to_string();
    if subnets.contains(&want) {
        Ok(())
    } else {
        Err(RuntimeError::Engine(format!(
            "network {} exists with subnet {}, not {want}: start the agent with --awsvpc-subnet {} \
             or remove the network (docker network rm {})",
            tn.network,
            subnets.join(","),
            subnets.first().map(String::as_str).unwrap_or("…"),
            tn.network
        )))
    }
}

/// The IPv4 subnets of a network, or `None` when there is no such network.
async fn network_subnets(docker: &Docker, name: &str) -> Result<Option<Vec<String>>, RuntimeError> {
    match docker.inspect_network(name, None).await {
        Ok(n) => Ok(Some(
            n.ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet)
                .filter(|s| !s.contains(':'))
                .collect(),
        )),
        Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
        Err(e) => Err(map_err(&format!("inspect network {name}"), e)),
    }
}

/// Addresses of the subnet that are taken: the gateway, every endpoint on the network, and the
/// address label of every pause container on it (running or not, any agent).
async fn addresses_in_use(
    docker: &Docker,
    tn: &TaskNetworkSpec,
) -> Result<HashSet<Ipv4Addr>, RuntimeError> {
    let mut used: HashSet<Ipv4Addr> = [tn.subnet.gateway()].into();
    let net = docker
        .inspect_network(&tn.network, None)
        .await
        .map_err(|e| map_err(&format!("inspect network {}", tn.network), e))?;
    for ep in net.containers.unwrap_or_default().into_values() {
        let addr = ep.ipv4_address.unwrap_or_default();
        if let Ok(ip) = addr.split('/').next().unwrap_or("").parse::<Ipv4Addr>() {
            used.insert(ip);
        }
    }
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![format!("{LABEL_AWSVPC_NETWORK}={}", tn.network)]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let list = docker.list_containers(Some(opts)).await.map_err(|e| map_err("list", e))?;
    for c in list {
        let label = c.labels.as_ref().and_then(|l| l.get(LABEL_AWSVPC_IPV4));
        if let Some(ip) = label.and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
            used.insert(ip);
        }
    }
    Ok(used)
}

/// Imports [`BUILTIN_PAUSE_IMAGE`] unless the engine has it; any other image must be present.
pub(super) async fn ensure_builtin_image(
    docker: &Docker,
    locks: &AwsvpcLocks,
    image: &str,
) -> Result<(), RuntimeError> {
    let _guard = locks.image.lock().await;
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(e) => return Err(map_err("inspect image", e)),
    }
    if image != BUILTIN_PAUSE_IMAGE {
        return Err(RuntimeError::NotFound(format!("pause image {image}")));
    }
    let arch = std::env::consts::ARCH;
    let tar = match pause_image::rootfs_tar(arch) {
        Some(Ok(t)) => t,
        Some(Err(e)) => return Err(RuntimeError::Engine(format!("building the pause image: {e}"))),
        None => {
            return Err(RuntimeError::Engine(format!(
                "Berth has no built-in pause image for {arch} (only x86_64 and aarch64): give \
                 one with --pause-image IMAGE (any image whose command blocks until SIGTERM)"
            )));
        }
    };
    let (repo, tag) = image.split_once(':').unwrap_or((image, "latest"));
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec!["CMD [\"/pause\"]".to_string()])
        .message("Berth awsvpc pause image (agent/src/runtime/pause_image.rs)")
        .build();
    let mut stream =
        Box::pin(docker.create_image(Some(opts), Some(bollard::body_full(tar.into())), None));
    while let Some(item) = stream.next().await {
        item.map_err(|e| RuntimeError::Engine(format!("importing the pause image {image}: {e}")))?;
    }
    tracing::info!(image, "built-in pause image imported");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task_network::Ipv4Subnet;

    #[test]
    fn the_pause_body_attaches_the_address_hostname_and_labels() {
        let tn = TaskNetworkSpec {
            network: "berth-awsvpc".into(),
            subnet: Ipv4Subnet::parse("10.213.0.0/16").unwrap(),
            dns_domain: "local.compute.internal".into(),
            seed: 0,
        };
        let spec = ContainerSpec {
            name: "berth-f-1-internal.pause-abc".into(),
            image: BUILTIN_PAUSE_IMAGE.into(),
            network_mode: "ignored".into(),
            task_network: Some(tn.clone()),
            ..Default::default()
        };
        let body = pause_body(&spec, &tn, "10.213.3.4".parse().unwrap());
        assert_eq!(body.hostname.as_deref(), Some("ip-10-213-3-4.local.compute.internal"));
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("berth-awsvpc"));
        assert!(host.port_bindings.is_none());
        let labels = body.labels.clone().unwrap();
        assert_eq!(labels.get(LABEL_AWSVPC_IPV4).map(String::as_str), Some("10.213.3.4"));
        assert_eq!(labels.get(LABEL_AWSVPC_MAC).map(String::as_str), Some("02:42:0a:d5:03:04"));
        assert_eq!(labels.get(LABEL_AWSVPC_SUBNET).map(String::as_str), Some("10.213.0.0/16"));
        let ep = body
            .networking_config
            .and_then(|n| n.endpoints_config)
            .and_then(|mut e| e.remove("berth-awsvpc"))
            .unwrap();
        assert_eq!(ep.ipam_config.and_then(|i| i.ipv4_address).as_deref(), Some("10.213.3.4"));
        assert_eq!(ep.mac_address.as_deref(), Some("02:42:0a:d5:03:04"));
    }
}
