//! Docker stats and addresses: one-shot `GET /containers/{id}/stats?stream=false&one-shot=true`
//! turned into an engine-neutral [`ContainerStats`] (keeping Docker's JSON for the task metadata
//! endpoint), a container's networks from inspect, and the default bridge network's gateway.
//!
//! Memory in use is Docker CLI's figure: usage minus the inactive page cache (`inactive_file`
//! on cgroup v2, `total_inactive_file` on v1), which is what the ECS agent reports too.

use super::map_err;
use crate::runtime::{ContainerNetwork, ContainerStats, RuntimeError};
use bollard::Docker;
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{InspectNetworkOptions, StatsOptionsBuilder};
use futures::StreamExt;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// The name of Docker's default bridge network.
const DEFAULT_BRIDGE: &str = "bridge";

pub(super) async fn sample(docker: &Docker, id: &str) -> Result<ContainerStats, RuntimeError> {
    let opts = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
    let mut stream = Box::pin(docker.stats(id, Some(opts)));
    match stream.next().await {
        Some(Ok(r)) => Ok(from_response(&r)),
        Some(Err(e)) => Err(map_err(&format!("stats {id}"), e)),
        None => Err(RuntimeError::Engine(format!("stats {id}: the engine sent no sample"))),
    }
}

/// Docker's response → the neutral sample. Pure.
pub(super) fn from_response(r: &ContainerStatsResponse) -> ContainerStats {
    let cpu = r.cpu_stats.as_ref();
    let mem = r.memory_stats.as_ref();
    let usage = mem.and_then(|m| m.usage).unwrap_or(0);
    let cache = mem.and_then(|m| m.stats.as_ref()).map(inactive_file).unwrap_or(0);
    ContainerStats {
        cpu_total_usage_ns: cpu
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0),
        system_cpu_usage_ns: cpu.and_then(|c| c.system_cpu_usage),
        online_cpus: cpu.and_then(|c| c.online_cpus).filter(|n| *n > 0),
        memory_usage_bytes: if cache < usage { usage - cache } else { usage },
        memory_limit_bytes: mem.and_then(|m| m.limit).filter(|l| *l > 0),
        raw: serde_json::to_value(r).unwrap_or_default(),
    }
}

fn inactive_file(stats: &HashMap<String, u64>) -> u64 {
    stats.get("inactive_file").or_else(|| stats.get("total_inactive_file")).copied().unwrap_or(0)
}

pub(super) async fn networks(
    docker: &Docker,
    id: &str,
) -> Result<Vec<ContainerNetwork>, RuntimeError> {
    let r = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| map_err(&format!("inspect {id}"), e))?;
    let mut out: Vec<ContainerNetwork> = r
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, ep)| ContainerNetwork {
            name,
            ipv4: ep.ip_address.as_deref().and_then(|a| a.parse().ok()),
            prefix_len: ep.ip_prefix_len.and_then(|p| u8::try_from(p).ok()).filter(|p| *p > 0),
            gateway: ep.gateway.as_deref().and_then(|a| a.parse().ok()),
            mac: ep.mac_address.filter(|m| !m.is_empty()),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(super) async fn bridge_gateway(docker: &Docker) -> Result<Option<IpAddr>, RuntimeError> {
    let net = match docker.inspect_network(DEFAULT_BRIDGE, None::<InspectNetworkOptions>).await {
        Ok(n) => n,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            return Ok(None);
        }
        Err(e) => return Err(map_err("inspect network bridge", e)),
    };
    let configs = net.ipam.and_then(|i| i.config).unwrap_or_default();
    Ok(configs.iter().find_map(|c| ipv4_gateway(c.gateway.as_deref(), c.subnet.as_deref())))
}

/// A bridge network's IPv4 gateway: the IPAM `Gateway`, or — when the engine leaves it out
/// (seen with Debian's docker.io 28 on a fresh daemon: `{"Subnet":"172.17.0.0/16"}` only) —
/// the subnet's first host address, which is what dockerd gives the bridge by default.
fn ipv4_gateway(gateway: Option<&str>, subnet: Option<&str>) -> Option<IpAddr> {
    if let Some(g) = gateway.and_then(|g| g.parse::<Ipv4Addr>().ok()) {
        return Some(IpAddr::V4(g));
    }
    let (network, prefix) = subnet?.split_once('/')?;
    let network = network.parse::<Ipv4Addr>().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    if !(1..=30).contains(&prefix) {
        return None;
    }
    let mask = u32::MAX << (32 - prefix);
    Some(IpAddr::V4(Ipv4Addr::from((u32::from(network) & mask) + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_gateway_is_the_ipam_gateway_or_the_subnets_first_host() {
        let v4 = |s: &str| Some(IpAddr::V4(s.parse().expect("ip")));
        assert_eq!(ipv4_gateway(Some("172.18.5.1"), Some("172.18.0.0/16")), v4("172.18.5.1"));
        assert_eq!(ipv4_gateway(None, Some("172.17.0.0/16")), v4("172.17.0.1"));
        assert_eq!(ipv4_gateway(None, Some("10.1.2.128/25")), v4("10.1.2.129"));
        assert_eq!(ipv4_gateway(Some("fe80::1"), Some("fd00::/64")), None);
        assert_eq!(ipv4_gateway(None, Some("garbage")), None);
        assert_eq!(ipv4_gateway(None, None), None);
    }
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};

    #[test]
    fn sample_subtracts_the_inactive_page_cache_and_keeps_docker_json() {
        let r = ContainerStatsResponse {
            id: Some("abc".into()),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(5_000),
                    ..Default::default()
                }),
                system_cpu_usage: Some(90_000),
                online_cpus: Some(2),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(10 << 20),
                limit: Some(64 << 20),
                stats: Some(HashMap::from([("inactive_file".to_string(), 2 << 20)])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = from_response(&r);
        assert_eq!(s.cpu_total_usage_ns, 5_000);
        assert_eq!(s.system_cpu_usage_ns, Some(90_000));
        assert_eq!(s.online_cpus, Some(2));
        assert_eq!(s.memory_usage_bytes, 8 << 20);
        assert_eq!(s.memory_limit_bytes, Some(64 << 20));
        assert_eq!(s.raw["memory_stats"]["usage"], serde_json::json!(10 << 20));
        assert_eq!(s.raw["cpu_stats"]["cpu_usage"]["total_usage"], serde_json::json!(5_000));
        assert_eq!(s.raw["id"], "abc");
    }
}
