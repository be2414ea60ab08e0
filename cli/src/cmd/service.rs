//! `berth service create|update|describe|list|delete`, plus `berth service wait-running`, which
//! polls until a service has N RUNNING tasks (optionally with host port bindings) or a deadline
//! passes — what scripts need instead of parsing JSON in shell.
//!
//! Replies are ECS Service objects; `-o json` prints them as sent.

use super::deploy::DeploymentArgs;
use super::service_create::CreateArgs;
use super::task::{Listed, list_tasks, render_tasks};
use crate::client::{self, Api};
use crate::error::CliError;
use crate::output::{self, Format};
use berth_proto::model::{RUNNING, Service, Task};
use berth_proto::v1::{
    DeleteServiceRequest, ListServicesRequest, ListTasksRequest, ServiceRef, UpdateServiceRequest,
};
use clap::{ArgGroup, Subcommand};
use std::time::{Duration, Instant};

/// How often `wait-running` asks for the service's tasks. A task start takes seconds (image
/// present, container create/start, agent report); one list call per second is cheap for the
/// controller and keeps the wait within a second of the truth.
const WAIT_POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Create a service that keeps N tasks of a task definition running (REPLICA), or one on
    /// every eligible instance (DAEMON); optionally from an ECS CreateService JSON document.
    Create(CreateArgs),
    /// Change a service's desired count and/or task definition (a new deployment).
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["desired_count", "taskdef", "strategy", "constraint", "clear_placement", "force_new_deployment", "min_healthy_percent", "max_percent", "circuit_breaker", "health_check_grace_period"])))]
    Update {
        name: String,
        /// New desired count (a scale, not a new deployment).
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        desired_count: Option<i64>,
        /// New task definition, FAMILY, FAMILY:REV or an ARN (a new deployment).
        #[arg(long)]
        taskdef: Option<String>,
        /// Placement strategies in order, ECS style: 'spread(attribute:ecs.availability-zone),binpack(memory)'.
        #[arg(long = "strategy", value_name = "STRATEGIES")]
        strategy: Vec<String>,
        /// A placement constraint: 'distinctInstance' or 'memberOf(EXPR)' (repeatable).
        #[arg(long = "constraint", value_name = "CONSTRAINT")]
        constraint: Vec<String>,
        /// Remove the service's strategies and constraints (back to the default spread).
        #[arg(long, conflicts_with_all = ["strategy", "constraint"])]
        clear_placement: bool,
        /// Start a new deployment even if nothing else changed.
        #[arg(long)]
        force_new_deployment: bool,
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// Follow the new deployment until COMPLETED (exit 0) or FAILED (exit non-zero).
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this long (e.g. 10m, 90s).
        #[arg(long, default_value = "15m", value_parser = parse_duration, requires = "wait")]
        wait_timeout: Duration,
    },
    /// The service's scheduler events, newest first (ECS keeps the latest 100).
    Events {
        name: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show a service: counts, deployments and the latest events.
    Describe { name: String },
    /// List the cluster's services.
    List,
    /// Delete a service (with --force, even if its desired count is not 0).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Wait until the service has N RUNNING tasks; print them.
    WaitRunning {
        name: String,
        /// Number of RUNNING tasks to wait for (default: the service's desired count).
        #[arg(long)]
        count: Option<usize>,
        /// Give up after this long (e.g. 90s, 2m, 500ms; a bare number is seconds).
        #[arg(long, default_value = "90s", value_parser = parse_duration)]
        timeout: Duration,
        /// Count a task only once it reports host port bindings.
        #[arg(long)]
        with_ports: bool,
    },
}

pub async fn run(cmd: ServiceCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let cluster = api.cluster.clone();
    let json = match cmd {
        ServiceCmd::Create(args) => {
            let doc = super::service_create::read_document(args.from_json.as_deref())?;
            for w in doc.iter().flat_map(|d| &d.warnings) {
                eprintln!("warning: {w}");
            }
            let (req, warnings) = super::service_create::request(&args, &cluster, doc)?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            let dry_run = req.dry_run;
            let json = client::object(api.grpc().create_service(req).await)?;
            if dry_run {
                super::placement::print_explanation(out, &json)?;
                return Ok(());
            }
            json
        }
        ServiceCmd::Update {
            name,
            desired_count,
            taskdef,
            strategy,
            constraint,
            clear_placement,
            force_new_deployment,
            deployment,
            wait,
            wait_timeout,
        } => {
            let set_placement = clear_placement || !strategy.is_empty() || !constraint.is_empty();
            let req = UpdateServiceRequest {
                cluster,
                service: name,
                desired_count,
                task_definition: taskdef.unwrap_or_default(),
                set_placement,
                placement_strategy: super::placement::strategies(&strategy),
                placement_constraints: super::placement::constraints(&constraint),
                force_new_deployment,
                deployment: deployment.settings(),
            };
            let json = client::object(api.grpc().update_service(req).await)?;
            if wait {
                return Ok(super::deploy::wait(api, &name_of(&json)?, wait_timeout).await?);
            }
            json
        }
        ServiceCmd::Describe { name } => describe(api, &name).await?,
        ServiceCmd::Events { name, limit } => {
            let json = describe(api, &name).await?;
            let svc: Service = output::parse(&json, "service")?;
            let events: Vec<_> = svc.events.into_iter().take(limit).collect();
            match out {
                Format::Json => print!("{}", output::pretty(&events)?),
                Format::Table => {
                    let mut t = output::Table::new(&["TIME", "MESSAGE"]);
                    for e in &events {
                        t.row(vec![output::time(e.created_at), e.message.clone()]);
                    }
                    print!("{}", t.render());
                }
            }
            return Ok(());
        }
        ServiceCmd::Delete { name, force } => client::object(
            api.grpc().delete_service(DeleteServiceRequest { cluster, service: name, force }).await,
        )?,
        ServiceCmd::List => {
            let c = api.grpc_clone();
            let req = ListServicesRequest { cluster, max_results: Some(100), ..Default::default() };
            let items = client::list_all(req, |r| {
                let mut c = c.clone();
                async move { c.list_services(r).await }
            })
            .await?;
            print!(
                "{}",
                output::show_list::<Service>(out, &items, "service", output::services_table)?
            );
            return Ok(());
        }
        ServiceCmd::WaitRunning { name, count, timeout, with_ports } => {
            let tasks = wait_running(api, &name, count, timeout, with_ports).await?;
            print!("{}", render_tasks(out, &tasks)?);
            return Ok(());
        }
    };
    print!("{}", output::show::<Service>(out, &json, "service", output::service_detail)?);
    Ok(())
}

fn name_of(json: &str) -> Result<String, CliError> {
    Ok(output::parse::<Service>(json, "service")?.service_name)
}

pub(super) async fn describe(api: &mut Api, name: &str) -> Result<String, CliError> {
    let req = ServiceRef { cluster: api.cluster.clone(), service: name.to_string() };
    client::object(api.grpc().describe_service(req).await)
}

/// True when `task` counts toward `wait-running`.
fn counts(task: &Task, with_ports: bool) -> bool {
    task.last_status == RUNNING
        && (!with_ports || task.containers.iter().any(|c| !c.network_bindings.is_empty()))
}

async fn wait_running(
    api: &mut Api,
    name: &str,
    count: Option<usize>,
    timeout: Duration,
    with_ports: bool,
) -> Result<Vec<Listed>, CliError> {
    let deadline = Instant::now() + timeout;
    // Also checks that the service exists before polling (a typo fails at once).
    let want = match count {
        Some(n) => n,
        None => {
            let s: Service = output::parse(&describe(api, name).await?, "service")?;
            usize::try_from(s.desired_count).unwrap_or(0)
        }
    };
    let what = format!("service {name}");
    let mut last_seen: Option<usize> = None;
    loop {
        let req = ListTasksRequest {
            cluster: api.cluster.clone(),
            service_name: name.to_string(),
            desired_status: RUNNING.into(),
            ..Default::default()
        };
        match list_tasks(api, req).await {
            Ok(tasks) => {
                let ready: Vec<Listed> =
                    tasks.into_iter().filter(|l| counts(&l.task, with_ports)).collect();
                if last_seen != Some(ready.len()) {
                    eprintln!("{what}: {}/{want} tasks running", ready.len());
                    last_seen = Some(ready.len());
                }
                if ready.len() >= want {
                    return Ok(ready);
                }
            }
            // A controller electing a leader answers Unavailable for a moment; keep waiting.
            Err(CliError::Server { code: tonic::Code::Unavailable, message }) => {
                eprintln!("{what}: {message}")
            }
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(timeout_error(api, name, want, last_seen.unwrap_or(0), timeout).await);
        }
        // The last sleep ends at the deadline, then one more look: the wait is the full timeout.
        tokio::time::sleep(WAIT_POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// The timeout error, with the service's latest event (often the reason: "unable to place…").
async fn timeout_error(
    api: &mut Api,
    name: &str,
    want: usize,
    seen: usize,
    timeout: Duration,
) -> CliError {
    let mut detail = format!("{seen}/{want} tasks running");
    if let Ok(json) = describe(api, name).await
        && let Ok(s) = output::parse::<Service>(&json, "service")
        && let Some(e) = s.events.iter().max_by_key(|e| e.created_at)
    {
        detail.push_str(&format!("; latest event: {}", e.message));
    }
    CliError::Timeout { secs: timeout.as_secs(), what: format!("service {name}"), detail }
}

/// `90s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("invalid duration {s:?} (examples: 90s, 2m, 500ms)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration unit {unit:?} in {s:?} (use ms, s, m or h)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::{Container, NetworkBinding};

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn with_ports_counts_only_tasks_with_bindings() {
        let bare = Task { last_status: RUNNING.into(), ..Default::default() };
        let bound = Task {
            last_status: RUNNING.into(),
            containers: vec![Container {
                network_bindings: vec![NetworkBinding {
                    host_port: 32768,
                    container_port: 8080,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let pending = Task { last_status: "PENDING".into(), ..bound.clone() };
        assert!(counts(&bare, false) && !counts(&bare, true));
        assert!(counts(&bound, true));
        assert!(!counts(&pending, false));
    }
}
