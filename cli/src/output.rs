//! Everything the CLI prints on stdout: pretty JSON (`-o json`) and human tables (default).
//!
//! * [`show`] / [`show_list`] take reply JSON and the chosen [`Format`]: JSON is re-printed from
//!   the server's text (as a `serde_json::Value`, so no field is lost or reordered); tables parse
//!   it into `berth_proto::model` types and hand them to one view function.
//! * Views (`*_table`, `*_detail`) are pure functions from model objects to text, unit-tested
//!   below on objects built from the model types.
//! * [`Table`] and [`Fields`] are the two layouts: aligned columns, and `Label: value` blocks.
//!
//! * [`events`] — the `berth events -o table` rows (fixed widths: the rows stream).
//!
//! IDs are shown as the last ARN segment; task definitions as `family:revision`.

pub mod events;

use crate::error::CliError;
use berth_proto::model::{
    Cluster, ContainerInstance, ContainerUsage, Failure, NetworkBinding, Resource, Service, Task,
    TaskDefinition, Timestamp, arn_tail,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Number of service events `service describe` shows (newest first).
const SERVICE_EVENTS_SHOWN: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Parses one reply object into a model type; `what` names it in the error.
pub fn parse<T: DeserializeOwned>(json: &str, what: &'static str) -> Result<T, CliError> {
    serde_json::from_str(json).map_err(|e| CliError::BadReply { what, reason: e.to_string() })
}

pub fn parse_all<T: DeserializeOwned>(
    items: &[String],
    what: &'static str,
) -> Result<Vec<T>, CliError> {
    items.iter().map(|i| parse(i, what)).collect()
}

/// Renders one reply object in the chosen format.
pub fn show<T: DeserializeOwned>(
    format: Format,
    json: &str,
    what: &'static str,
    view: impl Fn(&T) -> String,
) -> Result<String, CliError> {
    match format {
        Format::Json => pretty(&parse::<Value>(json, what)?),
        Format::Table => Ok(view(&parse(json, what)?)),
    }
}

/// Renders list items in the chosen format (JSON: one array of the objects).
pub fn show_list<T: DeserializeOwned>(
    format: Format,
    items: &[String],
    what: &'static str,
    view: impl Fn(&[T]) -> String,
) -> Result<String, CliError> {
    match format {
        Format::Json => pretty(&Value::Array(parse_all(items, what)?)),
        Format::Table => Ok(view(&parse_all(items, what)?)),
    }
}

pub fn pretty<T: serde::Serialize>(v: &T) -> Result<String, CliError> {
    let mut s = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::BadReply { what: "object", reason: e.to_string() })?;
    s.push('\n');
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Layouts

/// Left-aligned columns separated by three spaces, upper-case headers, `-` for empty cells.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "row width must match headers");
        self.rows
            .push(cells.into_iter().map(|c| if c.is_empty() { "-".into() } else { c }).collect());
    }

    pub fn render(&self) -> String {
        self.render_indented("")
    }

    pub fn render_indented(&self, indent: &str) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = indent.to_string();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("   ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `Label:  value` lines with the values aligned.
#[derive(Default)]
pub struct Fields(Vec<(&'static str, String)>);

impl Fields {
    pub fn add(&mut self, label: &'static str, value: impl Into<String>) -> &mut Self {
        self.0.push((label, value.into()));
        self
    }

    pub fn render(&self) -> String {
        let width = self.0.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0) + 1;
        let mut out = String::new();
        for (label, value) in &self.0 {
            let value = if value.is_empty() { "-" } else { value };
            out.push_str(&format!("{:<width$} {value}\n", format!("{label}:")));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Small formatters

/// UTC `YYYY-MM-DD HH:MM:SS` (no time-zone dependency; the CLI may run anywhere).
pub fn time(t: Timestamp) -> String {
    // `2017-04-13T21:37:29Z` → `2017-04-13 21:37:29`.
    let iso = berth_proto::model::event::iso8601_seconds(t);
    iso.trim_end_matches('Z').replacen('T', " ", 1)
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map(time).unwrap_or_default()
}

/// `hostPort->containerPort` for each binding, with `/udp` when not tcp. Docker publishes a port
/// on both 0.0.0.0 and `::`, so the same mapping can come twice; it is shown once.
pub fn bindings(list: &[NetworkBinding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in list {
        let proto = if b.protocol.eq_ignore_ascii_case("tcp") {
            String::new()
        } else {
            format!("/{}", b.protocol)
        };
        let s = format!("{}->{}{proto}", b.host_port, b.container_port);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// All bindings of a task's containers, comma separated.
pub fn task_ports(task: &Task) -> String {
    let all: Vec<NetworkBinding> =
        task.containers.iter().flat_map(|c| c.network_bindings.clone()).collect();
    bindings(&all).join(",")
}

/// `family:revision` from a task definition ARN (or whatever the server put there).
fn taskdef_ref(arn: &str) -> String {
    arn_tail(arn).to_string()
}

fn integer(resources: &[Resource], name: &str) -> Option<i64> {
    resources.iter().find(|r| r.name == name).and_then(|r| r.integer_value)
}

fn remaining_of(remaining: &[Resource], registered: &[Resource], name: &str) -> String {
    let show = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    format!("{}/{}", show(integer(remaining, name)), show(integer(registered, name)))
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

// ---------------------------------------------------------------------------------------------
// Views

pub fn clusters_table(clusters: &[Cluster]) -> String {
    let mut t = Table::new(&["NAME", "STATUS", "INSTANCES", "SERVICES", "RUNNING", "PENDING"]);
    for c in clusters {
        t.row(vec![
            c.cluster_name.clone(),
            c.status.clone(),
            c.registered_container_instances_count.to_string(),
            c.active_services_count.to_string(),
            c.running_tasks_count.to_string(),
            c.pending_tasks_count.to_string(),
        ]);
    }
    t.render()
}

pub fn cluster_detail(c: &Cluster) -> String {
    clusters_table(std::slice::from_ref(c))
}

pub fn taskdefs_table(defs: &[TaskDefinition]) -> String {
    let mut t = Table::new(&["TASKDEF", "STATUS", "NETWORK", "CPU", "MEMORY", "CONTAINERS"]);
    for d in defs {
        let containers: Vec<String> =
            d.container_definitions.iter().map(|c| format!("{}={}", c.name, c.image)).collect();
        t.row(vec![
            d.family_revision(),
            d.status.clone().unwrap_or_default(),
            d.network_mode().to_string(),
            d.reserved_cpu().to_string(),
            d.reserved_memory().to_string(),
            containers.join(","),
        ]);
    }
    t.render()
}

pub fn taskdef_detail(d: &TaskDefinition) -> String {
    let mut f = Fields::default();
    f.add("Task def", d.family_revision())
        .add("ARN", d.task_definition_arn.clone().unwrap_or_default())
        .add("Status", d.status.clone().unwrap_or_default())
        .add("Network", d.network_mode())
        .add("CPU", d.reserved_cpu().to_string())
        .add("Memory", d.reserved_memory().to_string())
        .add("Registered", opt_time(d.registered_at));
    let mut t = Table::new(&["NAME", "IMAGE", "CPU", "MEMORY", "ESSENTIAL", "PORTS"]);
    for c in &d.container_definitions {
        let ports: Vec<String> = c
            .port_mappings
            .iter()
            .flatten()
            .map(|p| {
                let host = match p.host_port {
                    Some(h) if h > 0 => h.to_string(),
                    _ => "*".into(),
                };
                let cport = p.container_port.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
                let proto = p.protocol.as_deref().filter(|p| !p.eq_ignore_ascii_case("tcp"));
                format!("{host}->{cport}{}", proto.map(|p| format!("/{p}")).unwrap_or_default())
            })
            .collect();
        let memory = match (c.memory, c.memory_reservation) {
            (Some(m), Some(r)) => format!("{r}..{m}"),
            (Some(m), None) => m.to_string(),
            (None, Some(r)) => format!("{r}.."),
            (None, None) => String::new(),
        };
        t.row(vec![
            c.name.clone(),
            c.image.clone(),
            c.cpu.map(|v| v.to_string()).unwrap_or_default(),
            memory,
            yes_no(c.is_essential()),
            ports.join(","),
        ]);
    }
    format!("{}Containers:\n{}", f.render(), t.render_indented("  "))
}

pub fn services_table(services: &[Service]) -> String {
    let mut t = Table::new(&["NAME", "STATUS", "TASKDEF", "DESIRED", "RUNNING", "PENDING"]);
    for s in services {
        t.row(vec![
            s.service_name.clone(),
            s.status.clone(),
            taskdef_ref(&s.task_definition),
            s.desired_count.to_string(),
            s.running_count.to_string(),
            s.pending_count.to_string(),
        ]);
    }
    t.render()
}

pub fn service_detail(s: &Service) -> String {
    let mut f = Fields::default();
    f.add("Service", s.service_name.clone())
        .add("Status", s.status.clone())
        .add("Task def", taskdef_ref(&s.task_definition))
        .add(
            "Tasks",
            format!(
                "{} desired, {} running, {} pending",
                s.desired_count, s.running_count, s.pending_count
            ),
        )
        .add("Cluster", arn_tail(&s.cluster_arn).to_string())
        .add("Created", time(s.created_at));
    let mut out = f.render();
    if !s.deployments.is_empty() {
        let mut t = Table::new(&[
            "DEPLOYMENT",
            "STATUS",
            "TASKDEF",
            "DESIRED",
            "RUNNING",
            "PENDING",
            "ROLLOUT",
        ]);
        for d in &s.deployments {
            t.row(vec![
                d.id.clone(),
                d.status.clone(),
                taskdef_ref(&d.task_definition),
                d.desired_count.to_string(),
                d.running_count.to_string(),
                d.pending_count.to_string(),
                d.rollout_state.clone().unwrap_or_default(),
            ]);
        }
        out.push_str("Deployments:\n");
        out.push_str(&t.render_indented("  "));
    }
    // ECS lists events newest first; sort anyway so the view does not depend on server order.
    let mut events: Vec<_> = s.events.iter().collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    out.push_str(&format!("Events (latest {SERVICE_EVENTS_SHOWN}):\n"));
    if events.is_empty() {
        out.push_str("  (none)\n");
    }
    for e in events.into_iter().take(SERVICE_EVENTS_SHOWN) {
        out.push_str(&format!("  {}  {}\n", time(e.created_at), e.message));
    }
    out
}

pub fn tasks_table(tasks: &[Task]) -> String {
    let mut t =
        Table::new(&["TASK ID", "TASKDEF", "LAST", "DESIRED", "INSTANCE", "PORTS", "STOP CODE"]);
    for task in tasks {
        t.row(vec![
            task.id().to_string(),
            taskdef_ref(&task.task_definition_arn),
            task.last_status.clone(),
            task.desired_status.clone(),
            task.instance_id().unwrap_or_default().to_string(),
            task_ports(task),
            task.stop_code.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

pub fn task_detail(task: &Task) -> String {
    let mut f = Fields::default();
    f.add("Task", task.id().to_string())
        .add("Task def", taskdef_ref(&task.task_definition_arn))
        .add("Cluster", arn_tail(&task.cluster_arn).to_string())
        .add("Instance", task.instance_id().unwrap_or_default().to_string())
        .add("Group", task.group.clone().unwrap_or_default())
        .add("Last status", task.last_status.clone())
        .add("Desired", task.desired_status.clone())
        .add("Health", task.health_status.clone())
        .add("Created", time(task.created_at))
        .add("Started", opt_time(task.started_at));
    // awsvpc: the task's own address (its ENI-shaped attachment).
    for a in &task.attachments {
        let detail = |name: &str| {
            a["details"].as_array()?.iter().find(|d| d["name"] == name)?["value"].as_str()
        };
        if let Some(ip) = detail("privateIPv4Address") {
            let dns = detail("privateDnsName").unwrap_or_default();
            let status = a["status"].as_str().unwrap_or_default();
            f.add("Address", format!("{ip} {dns} ({status})"));
        }
    }
    if task.stopped_at.is_some() || task.stop_code.is_some() || task.stopped_reason.is_some() {
        f.add("Stopped", opt_time(task.stopped_at))
            .add("Stop code", task.stop_code.clone().unwrap_or_default())
            .add("Reason", task.stopped_reason.clone().unwrap_or_default());
    }
    let mut t = Table::new(&[
        "CONTAINER",
        "IMAGE",
        "LAST",
        "EXIT",
        "CPU (units)",
        "MEM (MiB)",
        "PORTS",
        "REASON",
    ]);
    for c in &task.containers {
        let (cpu, mem) = usage_cells(c.stats.as_ref());
        t.row(vec![
            c.name.clone(),
            c.image.clone(),
            c.last_status.clone(),
            c.exit_code.map(|v| v.to_string()).unwrap_or_default(),
            cpu,
            mem,
            bindings(&c.network_bindings).join(","),
            c.reason.clone().unwrap_or_default(),
        ]);
    }
    format!("{}Containers:\n{}", f.render(), t.render_indented("  "))
}

/// A container's latest usage as table cells (the headers name the units): CPU units (1024 =
/// one core), memory MiB in use over the limit. Empty before the first sample; CPU needs two.
fn usage_cells(stats: Option<&ContainerUsage>) -> (String, String) {
    let Some(s) = stats else { return (String::new(), String::new()) };
    let cpu = s.cpu_utilized.map(|c| format!("{c:.1}")).unwrap_or_default();
    let mem = match s.memory_limit {
        Some(l) => format!("{:.1}/{l:.0}", s.memory_utilized),
        None => format!("{:.1}", s.memory_utilized),
    };
    (cpu, mem)
}

pub fn failures_table(failures: &[Failure]) -> String {
    let mut t = Table::new(&["REASON", "DETAIL", "ARN"]);
    for f in failures {
        t.row(vec![
            f.reason.clone(),
            f.detail.clone().unwrap_or_default(),
            f.arn.as_deref().map(arn_tail).unwrap_or_default().to_string(),
        ]);
    }
    t.render()
}

pub fn instances_table(instances: &[ContainerInstance]) -> String {
    let mut t = Table::new(&["ID", "STATUS", "CONNECTED", "CPU", "MEM", "RUNNING", "AZ"]);
    for i in instances {
        t.row(vec![
            i.id().to_string(),
            i.status.clone(),
            yes_no(i.agent_connected),
            remaining_of(&i.remaining_resources, &i.registered_resources, "CPU"),
            remaining_of(&i.remaining_resources, &i.registered_resources, "MEMORY"),
            i.running_tasks_count.to_string(),
            i.attribute("ecs.availability-zone").unwrap_or_default().to_string(),
        ]);
    }
    t.render()
}

pub fn instance_detail(i: &ContainerInstance) -> String {
    let mut f = Fields::default();
    f.add("Instance", i.id().to_string())
        .add("ARN", i.container_instance_arn.clone())
        .add("Status", i.status.clone())
        .add("Connected", yes_no(i.agent_connected))
        .add("Hostname", i.hostname.clone().unwrap_or_default())
        .add("Agent", i.version_info.agent_version.clone().unwrap_or_default())
        .add("Docker", i.version_info.docker_version.clone().unwrap_or_default())
        .add("Agent API", i.agent_endpoint.clone().unwrap_or_default())
        .add("Registered", time(i.registered_at))
        .add(
            "Tasks",
            format!("{} running, {} pending", i.running_tasks_count, i.pending_tasks_count),
        )
        .add(
            "CPU",
            remaining_of(&i.remaining_resources, &i.registered_resources, "CPU")
                + " remaining/registered",
        )
        .add(
            "Memory",
            remaining_of(&i.remaining_resources, &i.registered_resources, "MEMORY")
                + " remaining/registered",
        );
    if let Some(p) = &i.drain_progress {
        let services: Vec<String> = p
            .services
            .iter()
            .map(|s| {
                format!(
                    "{} {}/{} healthy elsewhere",
                    s.service_name, s.healthy_elsewhere, s.desired_count
                )
            })
            .collect();
        f.add(
            "Drain",
            format!(
                "{}: {} service tasks left{}{}",
                if p.complete { "complete" } else { "in progress" },
                p.service_tasks_remaining,
                if services.is_empty() { "" } else { "; " },
                services.join(", ")
            ),
        );
    }
    let mut t = Table::new(&["ATTRIBUTE", "VALUE"]);
    for a in &i.attributes {
        t.row(vec![a.name.clone(), a.value.clone().unwrap_or_default()]);
    }
    format!("{}Attributes:\n{}", f.render(), t.render_indented("  "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::{
        ArnScope, Attribute, Container, ContainerDefinition, Deployment, PortMapping,
        RunTaskResponse, ServiceEvent,
    };

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn task(id: &str, host_port: u16) -> Task {
        let s = ArnScope::default();
        Task {
            task_arn: s.task("default", id),
            cluster_arn: s.cluster("default"),
            task_definition_arn: s.task_definition("web", 3),
            container_instance_arn: Some(s.container_instance("default", "i-abc")),
            last_status: "RUNNING".into(),
            desired_status: "RUNNING".into(),
            health_status: "UNKNOWN".into(),
            group: Some("service:web".into()),
            created_at: Timestamp(1_621_198_756_207),
            containers: vec![Container {
                name: "web".into(),
                image: "berth/httpd:1".into(),
                last_status: "RUNNING".into(),
                network_bindings: vec![NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    container_port: 8080,
                    host_port,
                    protocol: "tcp".into(),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn instance() -> ContainerInstance {
        ContainerInstance {
            container_instance_arn: ArnScope::default().container_instance("default", "i-abc"),
            ec2_instance_id: "i-abc".into(),
            status: "ACTIVE".into(),
            agent_connected: true,
            running_tasks_count: 2,
            attributes: vec![Attribute {
                name: "ecs.availability-zone".into(),
                value: Some("az-1".into()),
            }],
            registered_resources: vec![
                Resource::integer("CPU", 2048),
                Resource::integer("MEMORY", 3900),
            ],
            remaining_resources: vec![
                Resource::integer("CPU", 1792),
                Resource::integer("MEMORY", 3772),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn time_is_utc_calendar() {
        assert_eq!(time(Timestamp(0)), "1970-01-01 00:00:00");
        assert_eq!(time(Timestamp(1_621_198_756_207)), "2021-05-16 20:59:16");
        assert_eq!(time(Timestamp(951_782_400_000)), "2000-02-29 00:00:00");
    }

    #[test]
    fn table_aligns_columns_and_dashes_empty_cells() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["xyz".into(), String::new()]);
        assert_eq!(t.render(), "A     LONGER\nxyz   -\n");
    }

    #[test]
    fn task_list_shows_short_ids_taskdef_and_bindings() {
        let out = tasks_table(&[task(ID, 32768)]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("TASK ID"));
        for cell in [ID, "web:3", "RUNNING", "i-abc", "32768->8080"] {
            assert!(lines[1].contains(cell), "{cell} missing from {out}");
        }
        assert!(!out.contains("arn:"), "{out}");
    }

    #[test]
    fn task_list_json_is_array_of_full_tasks() {
        let items = vec![serde_json::to_string(&task(ID, 32768)).unwrap()];
        let out = show_list::<Task>(Format::Json, &items, "task", tasks_table).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["taskArn"], ArnScope::default().task("default", ID));
        assert_eq!(v[0]["containers"][0]["networkBindings"][0]["hostPort"], 32768);
    }

    #[test]
    fn task_detail_shows_the_awsvpc_address() {
        let task = Task {
            attachments: vec![serde_json::json!({"status": "ATTACHED", "details": [
                {"name": "privateDnsName", "value": "ip-10-213-0-9.local.compute.internal"},
                {"name": "privateIPv4Address", "value": "10.213.0.9"}
            ]})],
            ..Default::default()
        };
        let out = task_detail(&task);
        assert!(
            out.contains("Address:     10.213.0.9 ip-10-213-0-9.local.compute.internal (ATTACHED)"),
            "{out}"
        );
        assert!(!task_detail(&Task::default()).contains("Address"));
    }

    #[test]
    fn task_detail_shows_container_cpu_and_memory() {
        let mut t = task(ID, 32768);
        t.containers[0].stats = Some(ContainerUsage {
            cpu_utilized: Some(256.0),
            memory_utilized: 3.3,
            memory_limit: Some(64.0),
            sampled_at: Timestamp(1_621_198_756_207),
        });
        let out = task_detail(&t);
        let header = out.lines().find(|l| l.contains("CONTAINER")).unwrap_or_default();
        assert!(header.contains("CPU (units)") && header.contains("MEM (MiB)"), "{out}");
        let row = out.lines().find(|l| l.contains("berth/httpd:1")).unwrap_or_default();
        assert!(row.contains("256.0") && row.contains("3.3/64") && !row.contains("MiB"), "{out}");
        assert_eq!(usage_cells(None), (String::new(), String::new()));
    }

    #[test]
    fn json_keeps_fields_the_model_does_not_know() {
        let out =
            show::<Task>(Format::Json, r#"{"taskArn":"x","futureField":1}"#, "task", task_detail)
                .unwrap();
        assert!(out.contains("\"futureField\": 1"), "{out}");
    }

    #[test]
    fn bad_reply_names_what_was_expected() {
        let err = show::<Task>(Format::Table, "[]", "task", task_detail).unwrap_err();
        assert!(err.to_string().starts_with("unexpected task in reply"), "{err}");
    }

    #[test]
    fn udp_bindings_are_marked() {
        let b = NetworkBinding {
            bind_ip: None,
            container_port: 53,
            host_port: 5353,
            protocol: "udp".into(),
        };
        assert_eq!(bindings(&[b]), ["5353->53/udp"]);
    }

    #[test]
    fn dual_stack_bindings_of_one_port_show_once() {
        let v4 = NetworkBinding {
            bind_ip: Some("0.0.0.0".into()),
            container_port: 80,
            host_port: 32768,
            protocol: "tcp".into(),
        };
        let v6 = NetworkBinding { bind_ip: Some("::".into()), ..v4.clone() };
        assert_eq!(bindings(&[v4, v6]), ["32768->80"]);
    }

    #[test]
    fn service_detail_shows_counts_and_latest_five_events_newest_first() {
        let events = (0..7)
            .map(|i| ServiceEvent {
                id: format!("e{i}"),
                created_at: Timestamp(1_000_000 + i * 1000),
                message: format!("event number {i}"),
            })
            .collect();
        let s = Service {
            service_name: "web".into(),
            status: "ACTIVE".into(),
            task_definition: ArnScope::default().task_definition("web", 2),
            cluster_arn: ArnScope::default().cluster("default"),
            desired_count: 3,
            running_count: 2,
            pending_count: 1,
            deployments: vec![Deployment {
                id: "ecs-svc/1".into(),
                status: "PRIMARY".into(),
                task_definition: ArnScope::default().task_definition("web", 2),
                desired_count: 3,
                ..Default::default()
            }],
            events,
            ..Default::default()
        };
        let out = service_detail(&s);
        assert!(out.contains("3 desired, 2 running, 1 pending"), "{out}");
        assert!(out.contains("web:2"), "{out}");
        assert!(out.contains("event number 6"));
        assert!(!out.contains("event number 1"), "only the latest five: {out}");
        assert!(out.find("event number 6").unwrap() < out.find("event number 2").unwrap());
    }

    #[test]
    fn instance_list_shows_remaining_over_registered_and_az() {
        let out = instances_table(&[instance()]);
        let row = out.lines().nth(1).unwrap();
        for cell in ["i-abc", "ACTIVE", "yes", "1792/2048", "3772/3900", "az-1"] {
            assert!(row.contains(cell), "{cell} missing from {out}");
        }
        assert!(instance_detail(&instance()).contains("ecs.availability-zone"));
    }

    #[test]
    fn taskdef_views_show_family_revision_and_dynamic_ports() {
        let d = TaskDefinition {
            family: "web".into(),
            revision: Some(1),
            status: Some("ACTIVE".into()),
            container_definitions: vec![ContainerDefinition {
                name: "web".into(),
                image: "berth/httpd:1".into(),
                cpu: Some(128),
                memory: Some(64),
                port_mappings: Some(vec![PortMapping {
                    container_port: Some(8080),
                    host_port: Some(0),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        };
        let detail = taskdef_detail(&d);
        assert!(
            detail.contains("web:1") && detail.contains("*->8080") && detail.contains("bridge"),
            "{detail}"
        );
        let list = taskdefs_table(&[d]);
        assert!(list.lines().nth(1).unwrap().contains("web=berth/httpd:1"), "{list}");
    }

    #[test]
    fn run_task_failures_show_reason_and_detail() {
        let resp = RunTaskResponse {
            tasks: vec![],
            failures: vec![Failure {
                arn: None,
                reason: "RESOURCE:MEMORY".into(),
                detail: Some("no room".into()),
            }],
        };
        let out = failures_table(&resp.failures);
        assert!(out.contains("RESOURCE:MEMORY") && out.contains("no room"), "{out}");
    }

    #[test]
    fn cluster_and_service_lists_render() {
        let c = Cluster {
            cluster_name: "default".into(),
            status: "ACTIVE".into(),
            ..Default::default()
        };
        assert!(cluster_detail(&c).contains("default"));
        let s = Service {
            service_name: "web".into(),
            task_definition: "web:1".into(),
            ..Default::default()
        };
        assert!(services_table(&[s]).contains("web:1"));
    }
}
