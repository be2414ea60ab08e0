//! Simulated stats: deterministic fake numbers, shaped like Docker's stats JSON and marked
//! `"berth_simulated": true` so nobody mistakes them for measurements.
//!
//! Sample `n` of a running container reports `n × SIMULATED_CPU_NS_PER_SAMPLE` of container CPU
//! time and `n × SIMULATED_SYSTEM_NS_PER_SAMPLE` of host CPU time on `SIMULATED_ONLINE_CPUS`
//! CPUs: between two samples the container used a quarter of one core (256 CPU units). A
//! container that is not running shows zeros, as Docker does.

use crate::runtime::{ContainerInfo, ContainerState, ContainerStats};
use serde_json::json;

/// Container CPU time added per sample: 0.25 s.
pub const SIMULATED_CPU_NS_PER_SAMPLE: u64 = 250_000_000;
/// Host CPU time added per sample: one second on each of the online CPUs.
const SIMULATED_SYSTEM_NS_PER_SAMPLE: u64 = 2_000_000_000;
const SIMULATED_ONLINE_CPUS: u32 = 2;
/// Memory in use of every running simulated container: 16 MiB.
pub const SIMULATED_MEMORY_BYTES: u64 = 16 << 20;
/// The limit of a container created without a hard memory limit (the "host's" memory): 2 GiB.
const SIMULATED_HOST_MEMORY_BYTES: u64 = 2 << 30;

pub(super) fn simulated_sample(c: &ContainerInfo, n: u64, limit: Option<i64>) -> ContainerStats {
    let running = c.state == ContainerState::Running;
    let (cpu, system, memory) = if running {
        (
            n.saturating_mul(SIMULATED_CPU_NS_PER_SAMPLE),
            n.saturating_mul(SIMULATED_SYSTEM_NS_PER_SAMPLE),
            SIMULATED_MEMORY_BYTES,
        )
    } else {
        (0, 0, 0)
    };
    let limit = limit
        .and_then(|l| u64::try_from(l).ok())
        .filter(|l| *l > 0)
        .unwrap_or(SIMULATED_HOST_MEMORY_BYTES);
    let raw = json!({
        "berth_simulated": true,
        "id": c.id,
        "name": format!("/{}", c.name),
        "read": "0001-01-01T00:00:00Z",
        "preread": "0001-01-01T00:00:00Z",
        "num_procs": 0,
        "pids_stats": {"current": u64::from(running)},
        "cpu_stats": {
            "cpu_usage": {"total_usage": cpu, "usage_in_kernelmode": 0, "usage_in_usermode": cpu},
            "system_cpu_usage": system,
            "online_cpus": SIMULATED_ONLINE_CPUS,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 0}},
        "memory_stats": {"usage": memory, "limit": limit, "stats": {}},
    });
    ContainerStats {
        cpu_total_usage_ns: cpu,
        system_cpu_usage_ns: Some(system),
        online_cpus: Some(SIMULATED_ONLINE_CPUS),
        memory_usage_bytes: memory,
        memory_limit_bytes: Some(limit),
        raw,
    }
}
