//! What the agent tells the controller about itself (`RegisterAgent`), and the persisted
//! instance id.

use crate::{AgentConfig, AgentError};
use berth_proto::v1::RegisterAgent;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Ports every instance reserves (SSH, the Docker API, the ECS agent ports).
pub const RESERVED_PORTS: [u32; 6] = [22, 2375, 2376, 51678, 51679, 51680];

const INSTANCE_ID_FILE: &str = "instance-id";

/// Built-in attributes, then custom ones (which win on a name clash).
pub fn attributes(cfg: &AgentConfig) -> HashMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let mut m = HashMap::from([
        ("ecs.availability-zone".to_string(), "local".to_string()),
        ("ecs.instance-type".to_string(), "berth.local".to_string()),
        ("ecs.os-type".to_string(), "linux".to_string()),
        ("ecs.os-family".to_string(), "LINUX".to_string()),
        ("ecs.cpu-architecture".to_string(), arch.to_string()),
    ]);
    for (k, v) in &cfg.attributes {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// CPU units: cores × 1024.
pub fn host_cpu_units() -> i64 {
    std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1) * 1024
}

/// Total memory MiB from /proc/meminfo (0 if unreadable).
pub fn host_memory_mib() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse_meminfo_total_mib(&text).unwrap_or(0)
}

fn parse_meminfo_total_mib(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

pub fn hostname(cfg: &AgentConfig) -> String {
    if let Some(h) = &cfg.hostname {
        return h.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn register_message(
    cfg: &AgentConfig,
    instance_id: &str,
    docker_version: &str,
) -> RegisterAgent {
    RegisterAgent {
        cluster: cfg.cluster.clone(),
        instance_id: instance_id.to_string(),
        attributes: attributes(cfg),
        cpu: cfg.cpu_units.unwrap_or_else(host_cpu_units),
        memory: cfg.memory_mib.unwrap_or_else(host_memory_mib),
        reserved_ports: RESERVED_PORTS.to_vec(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        docker_version: docker_version.to_string(),
        hostname: hostname(cfg),
        agent_endpoint: cfg.advertise_http.clone().unwrap_or_default(),
    }
}

/// The instance id a previous registration stored, or "" on first start.
pub fn read_instance_id(data_dir: &Path) -> Result<String, AgentError> {
    let path = data_dir.join(INSTANCE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(AgentError::DataDir { path: path.display().to_string(), source }),
    }
}

/// Stores the instance id durably: write a temp file, fsync, rename, fsync the directory.
pub fn write_instance_id(data_dir: &Path, id: &str) -> Result<(), AgentError> {
    let err = |source| AgentError::DataDir { path: data_dir.display().to_string(), source };
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let tmp = data_dir.join(format!("{INSTANCE_ID_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(id.as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, data_dir.join(INSTANCE_ID_FILE)).map_err(err)?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_attribute_overrides_builtin_availability_zone() {
        let cfg = AgentConfig {
            attributes: vec![
                ("ecs.availability-zone".into(), "az-2".into()),
                ("team".into(), "x".into()),
            ],
            ..Default::default()
        };
        let a = attributes(&cfg);
        assert_eq!(a.get("ecs.availability-zone").map(String::as_str), Some("az-2"));
        assert_eq!(a.get("team").map(String::as_str), Some("x"));
        assert_eq!(a.get("ecs.os-type").map(String::as_str), Some("linux"));
    }

    #[test]
    fn meminfo_total_is_read_in_mib() {
        assert_eq!(
            parse_meminfo_total_mib("MemTotal:       2048000 kB\nMemFree: 1 kB\n"),
            Some(2000)
        );
    }

    #[test]
    fn instance_id_round_trips_through_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_instance_id(dir.path()).ok().as_deref(), Some(""));
        write_instance_id(dir.path(), "abc").expect("write");
        assert_eq!(read_instance_id(dir.path()).ok().as_deref(), Some("abc"));
    }
}
