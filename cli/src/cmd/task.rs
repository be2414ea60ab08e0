//! `berth task run|list|describe|stop`, plus `berth task urls` (the URLs of running tasks' host
//! port bindings, one per line, for scripts such as `scripts/quickstart.sh`) and `berth task
//! logs` (in `task_logs.rs`: container output streamed from the agent).
//!
//! [`list_tasks`] is shared with `service wait-running`: it returns each task both parsed (to
//! decide and draw tables) and as the server's JSON (so `-o json` prints exactly what was sent).

use crate::client::{self, Api};
use crate::output::{self, Format};
use berth_proto::model::{RUNNING, RunTaskResponse, Task};
use berth_proto::v1::{ListTasksRequest, RunTaskRequest, StopTaskRequest, TaskRef};
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Start tasks from a task definition (not part of a service).
    Run {
        /// FAMILY, FAMILY:REV or an ARN.
        #[arg(long)]
        taskdef: String,
        /// How many tasks to start (1–10, as ECS RunTask).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=10))]
        count: i64,
        /// Task group (ECS `group`); the server's default when omitted.
        #[arg(long)]
        group: Option<String>,
        /// Free-form `startedBy` tag.
        #[arg(long)]
        started_by: Option<String>,
        /// Placement strategies in order, ECS style: 'spread(attribute:ecs.availability-zone),binpack(memory)'.
        #[arg(long = "strategy", value_name = "STRATEGIES")]
        strategy: Vec<String>,
        /// A placement constraint: 'distinctInstance' or 'memberOf(EXPR)' (repeatable).
        #[arg(long = "constraint", value_name = "CONSTRAINT")]
        constraint: Vec<String>,
        /// Print where each task would be placed and why; start nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List tasks (full Task objects with -o json).
    List {
        /// Only the tasks of this service.
        #[arg(long)]
        service: Option<String>,
        /// Tasks whose desired status is this (as ECS ListTasks).
        #[arg(long, value_enum, ignore_case = true, default_value_t = DesiredStatus::Running)]
        desired_status: DesiredStatus,
        /// Only tasks of this task definition family.
        #[arg(long)]
        family: Option<String>,
        /// Only tasks on this container instance (id or ARN).
        #[arg(long)]
        instance: Option<String>,
    },
    /// Show one task with its containers.
    Describe {
        /// Task id or ARN.
        id: String,
    },
    /// Stop a task.
    Stop {
        /// Task id or ARN.
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print a task container's stdout and stderr, streamed from its agent.
    Logs(super::task_logs::LogsArgs),
    /// Print `http://HOST:PORT/` for every tcp host port binding of the RUNNING tasks.
    Urls {
        #[arg(long)]
        service: Option<String>,
        /// Host to put in the URLs; default: the binding's IP when specific, else 127.0.0.1.
        #[arg(long)]
        host: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DesiredStatus {
    #[value(name = "RUNNING")]
    Running,
    #[value(name = "STOPPED")]
    Stopped,
}

impl DesiredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredStatus::Running => "RUNNING",
            DesiredStatus::Stopped => "STOPPED",
        }
    }
}

/// A task as parsed, and as the server sent it.
pub struct Listed {
    pub task: Task,
    pub json: Value,
}

pub async fn list_tasks(
    api: &mut Api,
    req: ListTasksRequest,
) -> Result<Vec<Listed>, crate::error::CliError> {
    let c = api.grpc_clone();
    let items = client::list_all(req, |r| {
        let mut c = c.clone();
        async move { c.list_tasks(r).await }
    })
    .await?;
    items
        .iter()
        .map(|i| Ok(Listed { task: output::parse(i, "task")?, json: output::parse(i, "task")? }))
        .collect()
}

/// The listed tasks in the chosen format: a JSON array of Task objects, or the task table.
pub fn render_tasks(out: Format, tasks: &[Listed]) -> Result<String, crate::error::CliError> {
    match out {
        Format::Json => output::pretty(&tasks.iter().map(|l| &l.json).collect::<Vec<_>>()),
        Format::Table => {
            Ok(output::tasks_table(&tasks.iter().map(|l| l.task.clone()).collect::<Vec<_>>()))
        }
    }
}

pub async fn run(cmd: TaskCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let cluster = api.cluster.clone();
    match cmd {
        TaskCmd::Run { taskdef, count, group, started_by, strategy, constraint, dry_run } => {
            let req = RunTaskRequest {
                cluster,
                task_definition: taskdef,
                count,
                started_by: started_by.unwrap_or_default(),
                group: group.unwrap_or_default(),
                placement_strategy: super::placement::strategies(&strategy),
                placement_constraints: super::placement::constraints(&constraint),
                dry_run,
            };
            let json = client::object(api.grpc().run_task(req).await)?;
            if dry_run {
                super::placement::print_explanation(out, &json)?;
                return Ok(());
            }
            let resp: RunTaskResponse = output::parse(&json, "RunTask response")?;
            match out {
                Format::Json => print!(
                    "{}",
                    output::pretty(&output::parse::<Value>(&json, "RunTask response")?)?
                ),
                Format::Table => {
                    print!("{}", output::tasks_table(&resp.tasks));
                    if !resp.failures.is_empty() {
                        print!("Failures:\n{}", output::failures_table(&resp.failures));
                    }
                }
            }
            if resp.tasks.is_empty() && !resp.failures.is_empty() {
                anyhow::bail!("no task started ({} failures)", resp.failures.len());
            }
        }
        TaskCmd::List { service, desired_status, family, instance } => {
            let req = ListTasksRequest {
                cluster,
                service_name: service.unwrap_or_default(),
                desired_status: desired_status.as_str().into(),
                family: family.unwrap_or_default(),
                container_instance: instance.unwrap_or_default(),
                ..Default::default()
            };
            let tasks = list_tasks(api, req).await?;
            print!("{}", render_tasks(out, &tasks)?);
        }
        TaskCmd::Describe { id } => {
            let json =
                client::object(api.grpc().describe_task(TaskRef { cluster, task: id }).await)?;
            print!("{}", output::show::<Task>(out, &json, "task", output::task_detail)?);
        }
        TaskCmd::Stop { id, reason } => {
            let req = StopTaskRequest { cluster, task: id, reason: reason.unwrap_or_default() };
            let json = client::object(api.grpc().stop_task(req).await)?;
            print!("{}", output::show::<Task>(out, &json, "task", output::task_detail)?);
        }
        TaskCmd::Logs(args) => super::task_logs::run(args, api).await?,
        TaskCmd::Urls { service, host } => {
            let req = ListTasksRequest {
                cluster,
                service_name: service.unwrap_or_default(),
                desired_status: RUNNING.into(),
                ..Default::default()
            };
            let tasks: Vec<Task> =
                list_tasks(api, req).await?.into_iter().map(|l| l.task).collect();
            let urls = task_urls(&tasks, host.as_deref());
            match out {
                Format::Json => print!("{}", output::pretty(&urls)?),
                Format::Table => urls.iter().for_each(|u| println!("{u}")),
            }
        }
    }
    Ok(())
}

/// `http://HOST:PORT/` for each tcp binding of each RUNNING task, in list order, without repeats.
pub fn task_urls(tasks: &[Task], host: Option<&str>) -> Vec<String> {
    let mut urls = Vec::new();
    for t in tasks.iter().filter(|t| t.last_status == RUNNING) {
        for b in t.containers.iter().flat_map(|c| &c.network_bindings) {
            if !b.protocol.eq_ignore_ascii_case("tcp") {
                continue;
            }
            let h = match (host, b.bind_ip.as_deref()) {
                (Some(h), _) => h.to_string(),
                (None, Some(ip)) if !matches!(ip, "" | "0.0.0.0" | "::") => ip.to_string(),
                _ => "127.0.0.1".to_string(),
            };
            let h = if h.contains(':') && !h.starts_with('[') { format!("[{h}]") } else { h };
            let url = format!("http://{h}:{}/", b.host_port);
            // Docker publishes each port on 0.0.0.0 and `::`: one URL per port.
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::{Container, NetworkBinding};

    fn task(last: &str, bindings: Vec<(Option<&str>, u16, &str)>) -> Task {
        Task {
            last_status: last.into(),
            containers: vec![Container {
                network_bindings: bindings
                    .into_iter()
                    .map(|(ip, port, proto)| NetworkBinding {
                        bind_ip: ip.map(str::to_string),
                        container_port: 8080,
                        host_port: port,
                        protocol: proto.into(),
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn urls_cover_running_tcp_bindings_only() {
        let tasks = [
            task(
                "RUNNING",
                vec![
                    (Some("0.0.0.0"), 32768, "tcp"),
                    (Some("::"), 32768, "tcp"),
                    (None, 5353, "udp"),
                ],
            ),
            task("PENDING", vec![(Some("0.0.0.0"), 32769, "tcp")]),
            task("RUNNING", vec![(Some("10.0.0.5"), 32770, "tcp"), (Some("::"), 32771, "tcp")]),
        ];
        assert_eq!(
            task_urls(&tasks, None),
            ["http://127.0.0.1:32768/", "http://10.0.0.5:32770/", "http://127.0.0.1:32771/"]
        );
        assert_eq!(task_urls(&tasks[..1], Some("::1")), ["http://[::1]:32768/"]);
    }
}
