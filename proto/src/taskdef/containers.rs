//! Rules about one container definition on its own: name, image, cpu/memory, port mappings
//! (ECS-NOTES §1.4.1), health check limits (§1.4.2), log driver, timeouts, resource
//! requirements, ulimits and environment. Rules that relate containers to each other live in
//! `validate`.

use super::runtime_options::check_container_options;
use super::validate::Findings;
use crate::model::{ContainerDefinition, HealthCheck, PortMapping, TaskDefinition};

/// Docker ≥ 20.10 refuses a hard memory limit below 6 MiB; ECS refuses it at registration.
pub(crate) const MIN_CONTAINER_MEMORY_MIB: i64 = 6;
pub(crate) const MAX_IMAGE_LEN: usize = 255;
/// Log drivers ECS knows; Berth's agent runs only `json-file` (others warn, see `warnings`).
pub(crate) const LOG_DRIVERS: [&str; 8] =
    ["json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "awsfirelens"];

pub(crate) fn check_container(
    def: &TaskDefinition,
    c: &ContainerDefinition,
    path: &str,
    f: &mut Findings,
) {
    f.check_name(&format!("{path}.name"), "container name", &c.name);
    check_image(c, path, f);
    check_cpu_memory(c, path, f);
    check_port_mappings(def.network_mode(), c, path, f);
    check_container_options(def, c, path, f);
    if let Some(hc) = &c.health_check {
        check_health_check(hc, &format!("{path}.healthCheck"), f);
    }
    if let Some(log) = &c.log_configuration
        && !LOG_DRIVERS.contains(&log.log_driver.as_str())
    {
        f.fail(
            format!("{path}.logConfiguration.logDriver"),
            format!("\"{}\" is not one of {}", log.log_driver, LOG_DRIVERS.join(", ")),
        );
    }
    for (field, value) in [("startTimeout", c.start_timeout), ("stopTimeout", c.stop_timeout)] {
        if let Some(v) = value.filter(|v| *v < 0) {
            f.fail(format!("{path}.{field}"), format!("{v} seconds; it must not be negative"));
        }
    }
    for (i, r) in c.resource_requirements.iter().flatten().enumerate() {
        let p = format!("{path}.resourceRequirements[{i}]");
        match r.kind.as_str() {
            "GPU" => {
                if !r.value.parse::<u32>().is_ok_and(|n| n > 0) {
                    f.fail(
                        format!("{p}.value"),
                        format!("GPU count \"{}\" is not a positive integer", r.value),
                    );
                }
            }
            "InferenceAccelerator" => {}
            other => f.fail(
                format!("{p}.type"),
                format!("\"{other}\" is not one of GPU, InferenceAccelerator"),
            ),
        }
    }
    for (i, u) in c.ulimits.iter().flatten().enumerate() {
        if u.soft_limit > u.hard_limit {
            f.fail(
                format!("{path}.ulimits[{i}]"),
                format!(
                    "ulimit {}: softLimit {} is above hardLimit {}",
                    u.name, u.soft_limit, u.hard_limit
                ),
            );
        }
    }
    for (i, e) in c.environment.iter().flatten().enumerate() {
        if e.name.as_deref().unwrap_or("").is_empty() {
            f.fail(
                format!("{path}.environment[{i}].name"),
                "environment variable name is required",
            );
        }
    }
}

fn check_image(c: &ContainerDefinition, path: &str, f: &mut Findings) {
    let p = format!("{path}.image");
    if c.image.trim().is_empty() {
        f.fail(p, format!("container \"{}\": image is required", c.name));
    } else if c.image.chars().count() > MAX_IMAGE_LEN {
        f.fail(p, format!("image is longer than {MAX_IMAGE_LEN} characters"));
    } else if c.image.chars().any(char::is_whitespace) {
        f.fail(p, format!("image \"{}\" contains whitespace", c.image));
    } else if c.image.contains("${") {
        f.placeholder_paths.push(p);
    }
}

fn check_cpu_memory(c: &ContainerDefinition, path: &str, f: &mut Findings) {
    if let Some(cpu) = c.cpu.filter(|v| *v < 0) {
        f.fail(format!("{path}.cpu"), format!("{cpu} CPU units; it must not be negative"));
    }
    if let Some(m) = c.memory {
        if m <= 0 {
            f.fail(format!("{path}.memory"), format!("memory {m} MiB; it must be positive"));
        } else if m < MIN_CONTAINER_MEMORY_MIB {
            f.fail(
                format!("{path}.memory"),
                format!("memory {m} MiB is below the {MIN_CONTAINER_MEMORY_MIB} MiB minimum"),
            );
        }
    }
    if let Some(r) = c.memory_reservation.filter(|r| *r <= 0) {
        f.fail(
            format!("{path}.memoryReservation"),
            format!("memoryReservation {r} MiB; it must be positive"),
        );
    }
    if let (Some(m), Some(r)) = (c.memory, c.memory_reservation)
        && m > 0
        && r > 0
        && m < r
    {
        f.fail(
            format!("{path}.memory"),
            format!(
                "container \"{}\": memory {m} MiB is less than memoryReservation {r} MiB",
                c.name
            ),
        );
    }
}

fn check_port_mappings(mode: &str, c: &ContainerDefinition, path: &str, f: &mut Findings) {
    let mappings = c.port_mappings.as_deref().unwrap_or(&[]);
    if mode == "none" && !mappings.is_empty() {
        f.fail(
            format!("{path}.portMappings"),
            "port mappings are not allowed with networkMode none",
        );
        return;
    }
    for (i, p) in mappings.iter().enumerate() {
        check_port_mapping(mode, p, &format!("{path}.portMappings[{i}]"), f);
    }
}

fn check_port_mapping(mode: &str, p: &PortMapping, path: &str, f: &mut Findings) {
    if let Some(protocol) = p.protocol.as_deref()
        && protocol != "tcp"
        && protocol != "udp"
    {
        f.fail(format!("{path}.protocol"), format!("\"{protocol}\" is not one of tcp, udp"));
    }
    if let Some(app) = p.app_protocol.as_deref()
        && !["http", "http2", "grpc"].contains(&app)
    {
        f.fail(format!("{path}.appProtocol"), format!("\"{app}\" is not one of http, http2, grpc"));
    }
    if let Some(range) = p.container_port_range.as_deref() {
        check_port_range(mode, p, range, path, f);
        return;
    }
    let Some(container_port) = p.container_port else {
        f.fail(
            format!("{path}.containerPort"),
            "containerPort (or containerPortRange) is required",
        );
        return;
    };
    if !(1..=65535).contains(&container_port) {
        f.fail(
            format!("{path}.containerPort"),
            format!("{container_port} is not a port (1..65535)"),
        );
    }
    match p.host_port {
        None => {}
        Some(h) if !(0..=65535).contains(&h) => {
            f.fail(
                format!("{path}.hostPort"),
                format!("{h} is not a port (1..65535, or 0 for dynamic)"),
            );
        }
        Some(h) if (mode == "host" || mode == "awsvpc") && h != container_port => f.fail(
            format!("{path}.hostPort"),
            format!(
                "with networkMode {mode}, hostPort must be absent or equal to containerPort \
                 {container_port}, not {h}"
            ),
        ),
        Some(_) => {}
    }
}

/// `containerPortRange` `"8000-8010"`: bridge or awsvpc only, ports 1..65535, first < last,
/// and no `containerPort`/`hostPort` beside it.
fn check_port_range(mode: &str, p: &PortMapping, range: &str, path: &str, f: &mut Findings) {
    let p_range = format!("{path}.containerPortRange");
    if mode != "bridge" && mode != "awsvpc" {
        f.fail(&p_range, format!("port ranges need networkMode bridge or awsvpc, not {mode}"));
    }
    if p.host_port.is_some() || p.container_port.is_some() {
        f.fail(path, "give either containerPortRange or containerPort/hostPort, not both");
    }
    let bounds = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
    match bounds {
        Some((a, b)) if (1..=65535).contains(&a) && (1..=65535).contains(&b) && a < b => {}
        _ => f.fail(
            p_range,
            format!("\"{range}\" is not FIRST-LAST with 1 <= FIRST < LAST <= 65535"),
        ),
    }
}

/// ECS health check limits (ECS-NOTES §1.4.2).
fn check_health_check(hc: &HealthCheck, path: &str, f: &mut Findings) {
    match hc.command.first().map(String::as_str) {
        Some("CMD") | Some("CMD-SHELL") if hc.command.len() >= 2 => {}
        Some("NONE") if hc.command.len() == 1 => {}
        _ => f.fail(
            format!("{path}.command"),
            "must be [\"CMD\", ARG…] or [\"CMD-SHELL\", \"COMMAND\"] (or [\"NONE\"])",
        ),
    }
    for (field, value, lo, hi) in [
        ("interval", hc.interval, 5, 300),
        ("timeout", hc.timeout, 2, 60),
        ("retries", hc.retries, 1, 10),
        ("startPeriod", hc.start_period, 0, 300),
    ] {
        if let Some(v) = value.filter(|v| !(lo..=hi).contains(v)) {
            f.fail(format!("{path}.{field}"), format!("{v} is outside {lo}..{hi}"));
        }
    }
}
