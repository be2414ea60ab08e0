//! Task-level rules and everything that relates containers to each other.
//!
//! Entry point [`validate`]: normalises task `cpu`/`memory` in place (see `normalize`), then
//! checks names, limits, enumerations, volumes, tags and placement constraints, hands each
//! container to `containers::check_container`, and finally checks the references between
//! containers (`links`, `dependsOn`, `volumesFrom`, `mountPoints`), dependency cycles, shared
//! host ports and the task-size sums. It collects every violation rather than stopping at the
//! first, so a user fixes a document in one round.
//!
//! Names holding an unrendered template placeholder (`${container_name}`, Terraform's
//! templates) are judged with the placeholder read as one valid character and reported in one
//! warning; they are registered verbatim.

use super::containers::check_container;
use super::error::Violation;
use super::normalize;
use super::runtime_options;
use crate::model::{ContainerDefinition, TaskDefinition};
use std::collections::{BTreeMap, BTreeSet};

/// Hard ECS quota: containers per task definition (not adjustable).
pub(crate) const MAX_CONTAINERS: usize = 10;
/// Names of families, containers and volumes.
pub(crate) const MAX_NAME_LEN: usize = 255;
pub(crate) const MAX_TAGS: usize = 50;
pub(crate) const MAX_PLACEMENT_CONSTRAINTS: usize = 10;
pub(crate) const MAX_CONSTRAINT_EXPRESSION_LEN: usize = 2000;

pub(crate) const NETWORK_MODES: [&str; 4] = ["bridge", "host", "awsvpc", "none"];
pub(crate) const COMPATIBILITIES: [&str; 4] = ["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"];

/// Collects violations and the paths of names that hold template placeholders.
#[derive(Default)]
pub(crate) struct Findings {
    pub violations: Vec<Violation>,
    pub placeholder_paths: Vec<String>,
}

impl Findings {
    pub fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation::new(path, message));
    }

    /// The ECS name rule (`[A-Za-z0-9_-]{1,255}`) for a family, container or volume name.
    pub fn check_name(&mut self, path: &str, what: &str, name: &str) {
        if name.is_empty() {
            self.fail(path, format!("{what} is required"));
            return;
        }
        let (rendered, had_placeholder) = without_placeholders(name);
        if had_placeholder {
            self.placeholder_paths.push(path.to_string());
        }
        if rendered.chars().count() > MAX_NAME_LEN {
            self.fail(path, format!("{what} \"{name}\" is longer than {MAX_NAME_LEN} characters"));
        } else if !rendered.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            self.fail(
                path,
                format!(
                    "{what} \"{name}\" may only contain letters, digits, hyphens and underscores"
                ),
            );
        }
    }
}

/// `name` with each `${…}` replaced by `x`, and whether there was one.
fn without_placeholders(name: &str) -> (String, bool) {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    let mut found = false;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push('x');
        rest = &rest[start + len + 1..];
        found = true;
    }
    out.push_str(rest);
    (out, found)
}

/// Checks (and normalises task cpu/memory of) `def`; returns every violation found.
pub(crate) fn validate(def: &mut TaskDefinition, warnings: &mut Vec<String>) -> Vec<Violation> {
    let mut f = Findings::default();
    f.check_name("family", "family", &def.family);
    normalise_task_size(def, &mut f);
    check_enumerations(def, &mut f);
    check_volumes(def, &mut f);
    check_tags_and_constraints(def, &mut f);

    let count = def.container_definitions.len();
    if count == 0 {
        f.fail("containerDefinitions", "at least one container definition is required");
    } else if count > MAX_CONTAINERS {
        f.fail(
            "containerDefinitions",
            format!("{count} containers; a task definition holds at most {MAX_CONTAINERS}"),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, c) in def.container_definitions.iter().enumerate() {
        let path = format!("containerDefinitions[{i}]");
        check_container(def, c, &path, &mut f);
        if !c.name.is_empty() && !seen.insert(c.name.as_str()) {
            f.fail(format!("{path}.name"), format!("duplicate container name \"{}\"", c.name));
        }
    }
    if count > 0 && !def.container_definitions.iter().any(ContainerDefinition::is_essential) {
        f.fail(
            "containerDefinitions",
            "at least one container must be essential (\"essential\" defaults to true)",
        );
    }
    check_references(def, &mut f);
    check_cycles(def, &mut f);
    check_host_ports(def, &mut f);
    check_task_size_sums(def, &mut f);

    if !f.placeholder_paths.is_empty() {
        warnings.push(format!(
            "unrendered template placeholders (\"${{…}}\") registered verbatim at: {}",
            f.placeholder_paths.join(", ")
        ));
    }
    f.violations
}

fn normalise_task_size(def: &mut TaskDefinition, f: &mut Findings) {
    if let Some(cpu) = def.cpu.as_deref() {
        match normalize::cpu_units(cpu) {
            Ok(units) => def.cpu = Some(units.to_string()),
            Err(e) => f.fail("cpu", e),
        }
    }
    if let Some(memory) = def.memory.as_deref() {
        match normalize::memory_mib(memory) {
            Ok(mib) => def.memory = Some(mib.to_string()),
            Err(e) => f.fail("memory", e),
        }
    }
}

fn one_of(f: &mut Findings, path: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        f.fail(path, format!("\"{value}\" is not one of {}", allowed.join(", ")));
    }
}

fn check_enumerations(def: &TaskDefinition, f: &mut Findings) {
    if let Some(mode) = def.network_mode.as_deref() {
        one_of(f, "networkMode", mode, &NETWORK_MODES);
    }
    for (i, c) in def.requires_compatibilities.iter().flatten().enumerate() {
        one_of(f, &format!("requiresCompatibilities[{i}]"), c, &COMPATIBILITIES);
    }
    if let Some(pid) = def.pid_mode.as_deref() {
        one_of(f, "pidMode", pid, &["host", "task"]);
    }
    if let Some(ipc) = def.ipc_mode.as_deref() {
        one_of(f, "ipcMode", ipc, &["host", "task", "none"]);
    }
}

fn check_volumes(def: &TaskDefinition, f: &mut Findings) {
    let mut seen = BTreeSet::new();
    for (i, v) in def.volumes.iter().flatten().enumerate() {
        let path = format!("volumes[{i}].name");
        let name = v.name.as_deref().unwrap_or("");
        f.check_name(&path, "volume name", name);
        if !name.is_empty() && !seen.insert(name) {
            f.fail(path, format!("duplicate volume name \"{name}\""));
        }
        let kinds = [
            v.host.is_some(),
            v.docker_volume_configuration.is_some(),
            v.efs_volume_configuration.is_some(),
            v.fsx_windows_file_server_volume_configuration.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            f.fail(
                format!("volumes[{i}]"),
                "give only one of host, dockerVolumeConfiguration, efsVolumeConfiguration, \
                 fsxWindowsFileServerVolumeConfiguration",
            );
        }
        runtime_options::check_volume(i, v, f);
    }
}

fn check_tags_and_constraints(def: &TaskDefinition, f: &mut Findings) {
    let tags = def.tags.as_deref().unwrap_or(&[]);
    if tags.len() > MAX_TAGS {
        f.fail("tags", format!("{} tags; at most {MAX_TAGS}", tags.len()));
    }
    for (i, t) in tags.iter().enumerate() {
        let key_len = t.key.as_deref().map_or(0, |k| k.chars().count());
        if !(1..=128).contains(&key_len) {
            f.fail(format!("tags[{i}].key"), "tag key must be 1..128 characters");
        }
        if t.value.as_deref().map_or(0, |v| v.chars().count()) > 256 {
            f.fail(format!("tags[{i}].value"), "tag value must be at most 256 characters");
        }
    }
    let constraints = def.placement_constraints.as_deref().unwrap_or(&[]);
    if constraints.len() > MAX_PLACEMENT_CONSTRAINTS {
        f.fail(
            "placementConstraints",
            format!("{} constraints; at most {MAX_PLACEMENT_CONSTRAINTS}", constraints.len()),
        );
    }
    for (i, c) in constraints.iter().enumerate() {
        if c.kind != "memberOf" {
            f.fail(
                format!("placementConstraints[{i}].type"),
                format!("\"{}\": only memberOf is allowed in a task definition", c.kind),
            );
        }
        match c.expression.as_deref() {
            None | Some("") => f.fail(
                format!("placementConstraints[{i}].expression"),
                "memberOf needs an expression",
            ),
            Some(e) if e.chars().count() > MAX_CONSTRAINT_EXPRESSION_LEN => f.fail(
                format!("placementConstraints[{i}].expression"),
                format!("longer than {MAX_CONSTRAINT_EXPRESSION_LEN} characters"),
            ),
            Some(_) => {}
        }
    }
}

/// Container references: `links`, `dependsOn`, `volumesFrom` name a container of this task
/// definition (not itself); `mountPoints[].sourceVolume` names a task volume.
fn check_references(def: &TaskDefinition, f: &mut Findings) {
    let containers: BTreeMap<&str, &ContainerDefinition> =
        def.container_definitions.iter().map(|c| (c.name.as_str(), c)).collect();
    let volumes: BTreeSet<&str> =
        def.volumes.iter().flatten().filter_map(|v| v.name.as_deref()).collect();
    for (i, c) in def.container_definitions.iter().enumerate() {
        let path = format!("containerDefinitions[{i}]");
        for (j, link) in c.links.iter().flatten().enumerate() {
            let target = link.split(':').next().unwrap_or(link);
            refer(f, c, &containers, format!("{path}.links[{j}]"), "links to", target);
        }
        for (j, v) in c.volumes_from.iter().flatten().enumerate() {
            let target = v.source_container.as_deref().unwrap_or("");
            refer(
                f,
                c,
                &containers,
                format!("{path}.volumesFrom[{j}].sourceContainer"),
                "takes volumes from",
                target,
            );
        }
        for (j, d) in c.depends_on.iter().flatten().enumerate() {
            let p = format!("{path}.dependsOn[{j}]");
            refer(f, c, &containers, format!("{p}.containerName"), "depends on", &d.container_name);
            check_dependency_condition(
                f,
                &p,
                c,
                &d.condition,
                containers.get(d.container_name.as_str()),
            );
        }
        for (j, m) in c.mount_points.iter().flatten().enumerate() {
            let p = format!("{path}.mountPoints[{j}]");
            match m.source_volume.as_deref() {
                None | Some("") => f.fail(format!("{p}.sourceVolume"), "sourceVolume is required"),
                Some(v) if !volumes.contains(v) => f.fail(
                    format!("{p}.sourceVolume"),
                    format!(
                        "container \"{}\" mounts volume \"{v}\", which is not in the task's volumes",
                        c.name
                    ),
                ),
                Some(_) => {}
            }
            if m.container_path.as_deref().unwrap_or("").is_empty() {
                f.fail(format!("{p}.containerPath"), "containerPath is required");
            }
        }
        if c.links.as_ref().is_some_and(|l| !l.is_empty()) && def.network_mode() != "bridge" {
            f.fail(
                format!("{path}.links"),
                format!(
                    "links are only supported with networkMode bridge, not {}",
                    def.network_mode()
                ),
            );
        }
    }
}

/// One reference from container `c` to `target` must name another container of the definition.
fn refer(
    f: &mut Findings,
    c: &ContainerDefinition,
    containers: &BTreeMap<&str, &ContainerDefinition>,
    path: String,
    how: &str,
    target: &str,
) {
    if target == c.name {
        f.fail(path, format!("container \"{}\" {how} itself", c.name));
    } else if !containers.contains_key(target) {
        f.fail(
            path,
            format!(
                "container \"{}\" {how} \"{target}\", which is not a container of this task definition",
                c.name
            ),
        );
    }
}

fn check_dependency_condition(
    f: &mut Findings,
    path: &str,
    c: &ContainerDefinition,
    condition: &str,
    target: Option<&&ContainerDefinition>,
) {
    if !["START", "COMPLETE", "SUCCESS", "HEALTHY"].contains(&condition) {
        f.fail(
            format!("{path}.condition"),
            format!("\"{condition}\" is not one of START, COMPLETE, SUCCESS, HEALTHY"),
        );
        return;
    }
    let Some(target) = target else { return };
    if (condition == "COMPLETE" || condition == "SUCCESS") && target.is_essential() {
        f.fail(
            format!("{path}.condition"),
            format!(
                "container \"{}\" waits for \"{}\" to {condition}, but \"{}\" is essential \
                 (its exit would stop the task); mark it \"essential\": false",
                c.name, target.name, target.name
            ),
        );
    }
    if condition == "HEALTHY" && target.health_check.is_none() {
        f.fail(
            format!("{path}.condition"),
            format!(
                "container \"{}\" waits for \"{}\" to be HEALTHY, but \"{}\" has no healthCheck",
                c.name, target.name, target.name
            ),
        );
    }
}

/// Start-order edges (links, volumesFrom, dependsOn) must not form a cycle, or no container of
/// the cycle could ever start.
fn check_cycles(def: &TaskDefinition, f: &mut Findings) {
    let index: BTreeMap<&str, usize> =
        def.container_definitions.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let edges: Vec<Vec<usize>> = def
        .container_definitions
        .iter()
        .map(|c| {
            let links = c.links.iter().flatten().map(|l| l.split(':').next().unwrap_or(l));
            let from =
                c.volumes_from.iter().flatten().filter_map(|v| v.source_container.as_deref());
            let deps = c.depends_on.iter().flatten().map(|d| d.container_name.as_str());
            links
                .chain(from)
                .chain(deps)
                .filter_map(|n| index.get(n).copied())
                .filter(|&j| j != index.get(c.name.as_str()).copied().unwrap_or(usize::MAX))
                .collect()
        })
        .collect();
    // Iterative DFS with colours: 0 = unseen, 1 = on the stack, 2 = done.
    let mut colour = vec![0u8; edges.len()];
    for start in 0..edges.len() {
        if colour[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&to) = edges[node].get(*next) {
                *next += 1;
                if colour[to] == 1 {
                    let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                    let mut names: Vec<&str> = stack[from..]
                        .iter()
                        .map(|(n, _)| def.container_definitions[*n].name.as_str())
                        .collect();
                    names.push(def.container_definitions[to].name.as_str());
                    f.fail(
                        "containerDefinitions",
                        format!(
                            "containers form a start-order cycle through links/volumesFrom/dependsOn: {}",
                            names.join(" -> ")
                        ),
                    );
                    return;
                }
                if colour[to] == 0 {
                    colour[to] = 1;
                    stack.push((to, 0));
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
}

/// Two containers of one task cannot bind the same static host port and protocol.
fn check_host_ports(def: &TaskDefinition, f: &mut Findings) {
    let fixed_mode = matches!(def.network_mode(), "host" | "awsvpc");
    let mut seen: BTreeMap<(i64, String), String> = BTreeMap::new();
    for (i, c) in def.container_definitions.iter().enumerate() {
        for (j, p) in c.port_mappings.iter().flatten().enumerate() {
            let port = match p.host_port {
                Some(h) if h > 0 => h,
                _ if fixed_mode => match p.container_port {
                    Some(cp) => cp,
                    None => continue,
                },
                _ => continue,
            };
            let protocol = p.protocol.clone().unwrap_or_else(|| "tcp".to_string());
            let path = format!("containerDefinitions[{i}].portMappings[{j}]");
            if let Some(first) = seen.get(&(port, protocol.clone())) {
                f.fail(path, format!("host port {port}/{protocol} is already mapped by {first}"));
            } else {
                seen.insert((port, protocol), path);
            }
        }
    }
}

/// Container reservations must fit in the task size when one is given, and without a task
/// memory every container needs its own memory or memoryReservation (the ECS EC2 rule).
fn check_task_size_sums(def: &TaskDefinition, f: &mut Findings) {
    let task_cpu: Option<i64> = def.cpu.as_deref().and_then(|c| c.parse().ok());
    let task_memory: Option<i64> = def.memory.as_deref().and_then(|m| m.parse().ok());
    if let Some(task_cpu) = task_cpu {
        let sum: i64 =
            def.container_definitions.iter().filter_map(|c| c.cpu).map(|c| c.max(0)).sum();
        if sum > task_cpu {
            f.fail(
                "cpu",
                format!(
                    "containers reserve {sum} CPU units in total, more than the task's {task_cpu}"
                ),
            );
        }
    }
    for (i, c) in def.container_definitions.iter().enumerate() {
        let path = format!("containerDefinitions[{i}]");
        match task_memory {
            Some(task_memory) => {
                for (field, value) in
                    [("memory", c.memory), ("memoryReservation", c.memory_reservation)]
                {
                    if let Some(v) = value.filter(|v| *v > task_memory) {
                        f.fail(
                            format!("{path}.{field}"),
                            format!(
                                "container \"{}\" {field} {v} MiB is more than the task memory {task_memory} MiB",
                                c.name
                            ),
                        );
                    }
                }
            }
            None if c.memory.is_none() && c.memory_reservation.is_none() => f.fail(
                path,
                format!(
                    "container \"{}\": at least one of memory or memoryReservation is required \
                     when the task has no memory",
                    c.name
                ),
            ),
            None => {}
        }
    }
}
