//! From an assignment (Task + TaskDefinition JSON) to the container specs to create. Pure.
//! Health checks get ECS's defaults here (ECS-NOTES §1.4.2); their limits were checked when the
//! definition was registered.

use super::awsvpc::{self, AwsvpcSettings};
use super::decide_order::{Dependency, plan_dependencies};
use crate::runtime::{
    ContainerSpec, HealthCheckSpec, LABEL_CLUSTER, LABEL_CONTAINER_NAME, LABEL_INSTANCE_ID,
    LABEL_STOP_TIMEOUT, LABEL_TASK_ID, LABEL_TASK_VERSION, PortMappingSpec,
};
use berth_proto::model::{ContainerDefinition, HealthCheck, Task, TaskDefinition};
use std::time::Duration;

/// ECS default grace period between SIGTERM and SIGKILL (`ECS_CONTAINER_STOP_TIMEOUT`).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// ECS `healthCheck` defaults: interval, timeout, retries (the start period defaults to none).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// The kernel minimum for CPU shares; ECS turns a null, 0 or 1 `cpu` into 2.
const MIN_CPU_SHARES: i64 = 2;

const MIB: i64 = 1024 * 1024;

/// ECS container options beyond the basics (volumes, links, security, limits): `spec/options.rs`.
mod options;
pub use options::task_volume_name;

/// Where a task runs: the identity labels every container gets.
#[derive(Debug, Clone)]
pub struct Placement {
    pub instance_id: String,
    pub cluster: String,
}

/// One container to run, in definition order.
#[derive(Debug, Clone)]
pub struct PlannedContainer {
    pub name: String,
    pub essential: bool,
    pub spec: ContainerSpec,
    /// `dependsOn`, plus an implicit `START` dependency per `links` target (`decide_order.rs`).
    pub depends_on: Vec<Dependency>,
    /// How long containers depending on this one wait for it (ECS `startTimeout`; none: no
    /// limit, as with the ECS agent).
    pub start_timeout: Option<Duration>,
}

/// Everything the supervisor needs to run one task.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    pub task_id: String,
    pub containers: Vec<PlannedContainer>,
    /// Things the host cannot honour, logged once when the task starts.
    pub warnings: Vec<String>,
}

/// Parses an assignment's JSON documents; the error names the document that is bad.
pub fn parse_assignment(task_json: &str, def_json: &str) -> Result<(Task, TaskDefinition), String> {
    let task: Task = serde_json::from_str(task_json).map_err(|e| format!("task JSON: {e}"))?;
    let def: TaskDefinition =
        serde_json::from_str(def_json).map_err(|e| format!("task definition JSON: {e}"))?;
    Ok((task, def))
}

/// Builds the plan, or a `CannotCreateContainerError`-style message for a definition this host
/// cannot run. awsvpc tasks get the default [`AwsvpcSettings`]; see [`plan_task_with`].
pub fn plan_task(
    task_id: &str,
    version: u64,
    def: &TaskDefinition,
    placement: &Placement,
) -> Result<TaskPlan, String> {
    plan_task_with(task_id, version, def, placement, &AwsvpcSettings::default())
}

/// [`plan_task`] with this agent's awsvpc settings: an awsvpc task's containers join the network
/// namespace of a pause container appended to the plan (`awsvpc.rs`).
pub fn plan_task_with(
    task_id: &str,
    version: u64,
    def: &TaskDefinition,
    placement: &Placement,
    awsvpc_settings: &AwsvpcSettings,
) -> Result<TaskPlan, String> {
    let mut warnings = Vec::new();
    let network_mode = match def.network_mode() {
        m @ ("bridge" | "host" | "none") => m.to_string(),
        "awsvpc" => awsvpc::container_network_mode(def, task_id),
        other => {
            return Err(format!("network mode {other} is not supported on this host"));
        }
    };
    if def.container_definitions.is_empty() {
        return Err("task definition has no containers".to_string());
    }
    let awsvpc = def.network_mode() == "awsvpc";
    let mut dependencies = plan_dependencies(def)?.into_iter();
    let mut containers = Vec::with_capacity(def.container_definitions.len());
    for c in &def.container_definitions {
        let mut spec =
            container_spec(task_id, version, def, c, &network_mode, placement, &mut warnings);
        spec.health_check = match &c.health_check {
            Some(hc) => health_check_spec(hc).map_err(|e| format!("container {}: {e}", c.name))?,
            None => None,
        };
        containers.push(PlannedContainer {
            name: c.name.clone(),
            essential: c.is_essential(),
            spec,
            depends_on: dependencies.next().unwrap_or_default(),
            start_timeout: c
                .start_timeout
                .filter(|t| *t > 0)
                .map(|t| Duration::from_secs(t as u64)),
        });
    }
    if awsvpc {
        awsvpc::add_pause(&mut containers, task_id, version, def, placement, awsvpc_settings);
    }
    Ok(TaskPlan { task_id: task_id.to_string(), containers, warnings })
}

/// ECS `healthCheck` → the engine's check, with ECS defaults. `["NONE"]` means no check.
pub fn health_check_spec(hc: &HealthCheck) -> Result<Option<HealthCheckSpec>, String> {
    match hc.command.first().map(String::as_str) {
        Some("NONE") if hc.command.len() == 1 => return Ok(None),
        Some("CMD") | Some("CMD-SHELL") if hc.command.len() >= 2 => {}
        _ => {
            return Err(format!(
                "healthCheck.command {:?} is not [\"CMD\", ARG…] or [\"CMD-SHELL\", \"COMMAND\"]",
                hc.command
            ));
        }
    }
    let secs = |v: Option<i64>, default: Duration| {
        v.filter(|s| *s > 0).map(|s| Duration::from_secs(s as u64)).unwrap_or(default)
    };
    Ok(Some(HealthCheckSpec {
        test: hc.command.clone(),
        interval: secs(hc.interval, DEFAULT_HEALTH_INTERVAL),
        timeout: secs(hc.timeout, DEFAULT_HEALTH_TIMEOUT),
        retries: hc
            .retries
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| *r > 0)
            .unwrap_or(DEFAULT_HEALTH_RETRIES),
        start_period: secs(hc.start_period, Duration::ZERO),
    }))
}

/// `berth-<family>-<rev>-<container>-<first 12 of task id>`.
pub fn container_name(def: &TaskDefinition, container: &str, task_id: &str) -> String {
    let short: String = task_id.chars().take(12).collect();
    let raw = format!("berth-{}-{}-{}-{}", def.family, def.revision.unwrap_or(0), container, short);
    // Docker names allow [a-zA-Z0-9_.-]; family and container names already fit, but never
    // hand the engine a name it rejects.
    raw.chars()
        .map(|ch| if ch.is_ascii_alphanumeric() || "_.-".contains(ch) { ch } else { '-' })
        .collect()
}

fn container_spec(
    task_id: &str,
    version: u64,
    def: &TaskDefinition,
    c: &ContainerDefinition,
    network_mode: &str,
    placement: &Placement,
    warnings: &mut Vec<String>,
) -> ContainerSpec {
    let stop_timeout = c
        .stop_timeout
        .filter(|t| *t >= 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    // dockerLabels never override Berth's own `berth.*` labels (registration warns about them).
    let mut labels: std::collections::BTreeMap<String, String> = c
        .docker_labels
        .iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with(berth_proto::taskdef::RESERVED_LABEL_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_TASK_ID.into(), task_id.into());
    labels.insert(LABEL_CONTAINER_NAME.into(), c.name.clone());
    labels.insert(LABEL_INSTANCE_ID.into(), placement.instance_id.clone());
    labels.insert(LABEL_CLUSTER.into(), placement.cluster.clone());
    labels.insert(LABEL_TASK_VERSION.into(), version.to_string());
    labels.insert(LABEL_STOP_TIMEOUT.into(), stop_timeout.as_secs().to_string());

    let env = c
        .environment
        .iter()
        .flatten()
        .filter_map(|kv| {
            Some(format!("{}={}", kv.name.as_deref()?, kv.value.as_deref().unwrap_or("")))
        })
        .collect();
    if let Some(lc) = &c.log_configuration
        && lc.log_driver != "json-file"
    {
        warnings.push(format!(
            "container {}: log driver {} is not available; using json-file",
            c.name, lc.log_driver
        ));
    }

    let mut port_mappings = Vec::new();
    for pm in c.port_mappings.iter().flatten() {
        let Some(cp) = pm.container_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0)
        else {
            warnings
                .push(format!("container {}: port mapping without a valid containerPort", c.name));
            continue;
        };
        let host_port = pm.host_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
        let protocol = pm.protocol.as_deref().unwrap_or("tcp").to_ascii_lowercase();
        port_mappings.push(PortMappingSpec { container_port: cp, host_port, protocol });
    }

    ContainerSpec {
        name: container_name(def, &c.name, task_id),
        image: c.image.clone(),
        entrypoint: c.entry_point.clone(),
        cmd: c.command.clone(),
        env,
        // Filled from the assignment by `supervisor/secrets.rs`.
        secret_env: Vec::new(),
        labels,
        port_mappings,
        memory_bytes: c.memory.filter(|m| *m > 0).map(|m| m.saturating_mul(MIB)),
        memory_reservation_bytes: c
            .memory_reservation
            .filter(|m| *m > 0)
            .map(|m| m.saturating_mul(MIB)),
        cpu_shares: Some(c.cpu.unwrap_or(0).max(MIN_CPU_SHARES)),
        network_mode: network_mode.to_string(),
        hostname: c.hostname.clone(),
        user: c.user.clone(),
        working_dir: c.working_directory.clone(),
        stop_timeout: Some(stop_timeout),
        health_check: None,
        options: options::container_options(task_id, def, c, warnings),
        task_network: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::{KeyValuePair, PortMapping};

    fn def() -> TaskDefinition {
        TaskDefinition {
            family: "web".into(),
            revision: Some(3),
            container_definitions: vec![ContainerDefinition {
                name: "app".into(),
                image: "img:1".into(),
                cpu: Some(1),
                memory: Some(64),
                memory_reservation: Some(32),
                environment: Some(vec![KeyValuePair {
                    name: Some("A".into()),
                    value: Some("b".into()),
                }]),
                port_mappings: Some(vec![PortMapping {
                    container_port: Some(80),
                    host_port: Some(0),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn spec_translates_resources_ports_env_and_labels() {
        let p = Placement { instance_id: "i-1".into(), cluster: "c".into() };
        let plan = plan_task("0123456789abcdef0123", 7, &def(), &p).expect("plan");
        let s = &plan.containers[0].spec;
        assert_eq!(s.name, "berth-web-3-app-0123456789ab");
        assert_eq!(s.cpu_shares, Some(2));
        assert_eq!(s.memory_bytes, Some(64 * MIB));
        assert_eq!(s.memory_reservation_bytes, Some(32 * MIB));
        assert_eq!(s.env, vec!["A=b".to_string()]);
        assert_eq!(s.port_mappings[0].host_port, None);
        assert_eq!(s.labels.get(LABEL_TASK_VERSION).map(String::as_str), Some("7"));
        assert_eq!(s.labels.get(LABEL_STOP_TIMEOUT).map(String::as_str), Some("30"));
        assert_eq!(s.network_mode, "bridge");
    }

    #[test]
    fn awsvpc_containers_join_the_pause_container_and_publish_no_ports() {
        let mut d = def();
        d.network_mode = Some("awsvpc".into());
        if let Some(pm) = d.container_definitions[0].port_mappings.as_mut() {
            pm.iter_mut().for_each(|p| p.host_port = p.container_port);
        }
        let p = Placement { instance_id: "i".into(), cluster: "c".into() };
        let plan = plan_task("t", 1, &d, &p).expect("awsvpc plans");
        let s = &plan.containers[0].spec;
        assert_eq!(s.network_mode, "container:berth-web-3-internal.pause-t");
        assert!(s.port_mappings.is_empty());
        assert_eq!(plan.containers[1].name, awsvpc::PAUSE_CONTAINER_NAME);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    #[test]
    fn health_check_gets_ecs_defaults_and_none_means_no_check() {
        let mut d = def();
        d.container_definitions[0].health_check = Some(HealthCheck {
            command: vec!["CMD-SHELL".into(), "wget -q -O- localhost".into()],
            start_period: Some(10),
            ..Default::default()
        });
        let p = Placement { instance_id: "i".into(), cluster: "c".into() };
        let plan = plan_task("t", 1, &d, &p).expect("plan");
        let hc = plan.containers[0].spec.health_check.clone().expect("health check");
        assert_eq!(hc.test, vec!["CMD-SHELL".to_string(), "wget -q -O- localhost".to_string()]);
        assert_eq!(hc.interval, Duration::from_secs(30));
        assert_eq!(hc.timeout, Duration::from_secs(5));
        assert_eq!(hc.retries, 3);
        assert_eq!(hc.start_period, Duration::from_secs(10));

        let explicit = HealthCheck {
            command: vec!["CMD".into(), "true".into()],
            interval: Some(5),
            timeout: Some(2),
            retries: Some(1),
            start_period: None,
        };
        let hc = health_check_spec(&explicit).expect("valid").expect("a check");
        assert_eq!(
            (hc.interval, hc.timeout, hc.retries, hc.start_period),
            (Duration::from_secs(5), Duration::from_secs(2), 1, Duration::ZERO)
        );
        let none = HealthCheck { command: vec!["NONE".into()], ..Default::default() };
        assert_eq!(health_check_spec(&none), Ok(None));
        assert!(
            plan_task("t", 1, &def(), &p).expect("plan").containers[0].spec.health_check.is_none()
        );
    }

    #[test]
    fn malformed_health_check_command_cannot_be_planned() {
        let mut d = def();
        d.container_definitions[0].health_check =
            Some(HealthCheck { command: vec!["curl".into(), "x".into()], ..Default::default() });
        let p = Placement { instance_id: "i".into(), cluster: "c".into() };
        let e = plan_task("t", 1, &d, &p).err().unwrap_or_default();
        assert!(e.contains("container app: healthCheck.command"), "{e}");
    }

    #[test]
    fn unknown_network_mode_is_rejected() {
        let mut d = def();
        d.network_mode = Some("nat".into());
        let p = Placement { instance_id: "i".into(), cluster: "c".into() };
        assert!(plan_task("t", 1, &d, &p).is_err());
    }
}
