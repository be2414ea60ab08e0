//! `berth task logs ID [--container NAME] [--follow|-f] [--tail N|all] [--timestamps]`: a task
//! container's stdout and stderr, streamed from the agent that runs it.
//!
//! Flow: DescribeTask (its container instance) → DescribeContainerInstance (its
//! `agentEndpoint`, the URL the agent registered) → `GET {agentEndpoint}/v1/tasks/{id}/logs`
//! on the agent's operator HTTP API → the body is copied to stdout as it arrives (flushed per
//! chunk, so `--follow` shows lines at once). `--follow` ends when the container exits.
//!
//! The agent's 404/400 replies are turned into what a user can act on here, because only the
//! CLI knows the task's status: not placed yet, placed but no container yet, STOPPED before
//! any container was created (its stoppedReason says why), STOPPED with its containers removed. Plain HTTP only (agents serve no TLS).

use crate::client::{self, Api};
use crate::error::CliError;
use crate::output;
use berth_proto::model::{ContainerInstance, Task};
use berth_proto::v1::{InstanceRef, TaskRef};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::Write as _;
use std::time::Duration;

/// How long to wait for the agent to answer with the response head (the body then streams
/// without a limit). An agent on a LAN answers in milliseconds; a dead one should not hang the
/// command.
const AGENT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Task id or ARN.
    pub id: String,
    /// The container to show (the task definition's name); required when the task has several.
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Keep printing new output until the container exits.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines written so far (`all`: every line, the default).
    #[arg(long, value_name = "N|all")]
    pub tail: Option<Tail>,
    /// Put the engine's RFC 3339 timestamp before each line.
    #[arg(long)]
    pub timestamps: bool,
}

/// `--tail`: a line count or `all` (as the agent's `tail` parameter and `docker logs` take).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    Lines(u64),
    All,
}

impl std::str::FromStr for Tail {
    type Err = String;
    fn from_str(s: &str) -> Result<Tail, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(Tail::All);
        }
        s.parse().map(Tail::Lines).map_err(|_| {
            format!("{s:?} is not a line count: expected a non-negative integer or all")
        })
    }
}

impl std::fmt::Display for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tail::Lines(n) => write!(f, "{n}"),
            Tail::All => f.write_str("all"),
        }
    }
}

/// The agent URL for these arguments (`endpoint` as registered, without a trailing slash).
pub fn logs_url(endpoint: &str, task_id: &str, args: &LogsArgs) -> String {
    let mut query = Vec::new();
    if let Some(c) = &args.container {
        query.push(format!("container={}", encode(c)));
    }
    if args.follow {
        query.push("follow=true".to_string());
    }
    if let Some(n) = args.tail {
        query.push(format!("tail={n}"));
    }
    if args.timestamps {
        query.push("timestamps=true".to_string());
    }
    let base = format!("{}/v1/tasks/{}/logs", endpoint.trim_end_matches('/'), encode(task_id));
    if query.is_empty() { base } else { format!("{base}?{}", query.join("&")) }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An agent's error reply: its message and, when it is about which container, the task's
/// container names.
#[derive(Debug, Default, PartialEq)]
pub struct AgentReply {
    pub message: String,
    pub containers: Vec<String>,
}

/// What the user is told for an agent's error reply, given what the controller says of the task.
pub fn explain_agent_error(
    status: u16,
    reply: &AgentReply,
    task: &Task,
    instance: &str,
) -> CliError {
    let id = task.id();
    if !reply.containers.is_empty() {
        let names = reply.containers.join(", ");
        return CliError::Usage(if status == 400 {
            format!(
                "task {id} has {} containers ({names}): choose one with --container NAME",
                reply.containers.len()
            )
        } else {
            format!("{} (choose one with --container NAME)", reply.message)
        });
    }
    if status == 404 && task.is_stopped() && task.containers.iter().all(|c| c.runtime_id.is_none())
    {
        let why = task.stopped_reason.as_deref().unwrap_or("no stoppedReason was given");
        return CliError::NoLogs(format!(
            "task {id} stopped before any of its containers was created, so it has no logs: {why}"
        ));
    }
    if status == 404 && task.is_stopped() {
        return CliError::NoLogs(format!(
            "task {id} is STOPPED and its containers are gone from container instance {instance} (the agent removes them after a task stops); no logs are left"
        ));
    }
    if status == 404 && matches!(task.last_status.as_str(), "PROVISIONING" | "PENDING") {
        return CliError::NoLogs(format!(
            "task {id} has no container on container instance {instance} yet (lastStatus {}); try again once it runs",
            task.last_status
        ));
    }
    CliError::Agent { instance: instance.to_string(), message: reply.message.clone() }
}

/// An ECS-style JSON error body (`message`, `containers`), or the body itself as the message.
fn parse_reply(status: u16, body: &[u8]) -> AgentReply {
    let text = String::from_utf8_lossy(body);
    let json = serde_json::from_str::<serde_json::Value>(&text).ok();
    let message = json
        .as_ref()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}: {}", text.trim()));
    let containers = json
        .as_ref()
        .and_then(|v| v["containers"].as_array())
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    AgentReply { message, containers }
}

pub async fn run(args: LogsArgs, api: &mut Api) -> anyhow::Result<()> {
    let cluster = api.cluster.clone();
    let json = client::object(
        api.grpc().describe_task(TaskRef { cluster: cluster.clone(), task: args.id.clone() }).await,
    )?;
    let task: Task = output::parse(&json, "task")?;
    let Some(instance) = task.instance_id().map(str::to_string) else {
        return Err(CliError::NoLogs(format!(
            "task {} is not placed on a container instance yet (lastStatus {}); it has no logs",
            task.id(),
            task.last_status
        ))
        .into());
    };
    let req = InstanceRef { cluster, container_instance: instance.clone() };
    let json = client::object(api.grpc().describe_container_instance(req).await)?;
    let ci: ContainerInstance = output::parse(&json, "container instance")?;
    let Some(endpoint) = ci.agent_endpoint.clone() else {
        return Err(CliError::NoLogs(format!(
            "container instance {instance} advertises no agent API (agentEndpoint): its agent predates `berth task logs` or runs without --http-listen"
        ))
        .into());
    };
    if !endpoint.starts_with("http://") {
        return Err(CliError::Agent {
            instance,
            message: format!("agent API {endpoint}: only http:// agent endpoints are supported"),
        }
        .into());
    }
    let url = logs_url(&endpoint, task.id(), &args);
    let unreachable = |cause: String| {
        let disconnected =
            if ci.agent_connected { "" } else { "; the controller also sees it disconnected" };
        CliError::AgentUnreachable {
            instance: instance.clone(),
            url: endpoint.clone(),
            cause: format!("{cause}{disconnected}"),
        }
    };
    let uri: hyper::Uri = url.parse().map_err(|e| unreachable(format!("bad URL {url}: {e}")))?;
    let http: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(AGENT_RESPONSE_TIMEOUT, http.get(uri))
        .await
        .map_err(|_| {
            unreachable(format!("no answer within {}s", AGENT_RESPONSE_TIMEOUT.as_secs()))
        })?
        .map_err(|e| unreachable(root_cause(&e)))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if status != 200 {
        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        return Err(
            explain_agent_error(status, &parse_reply(status, &bytes), &task, &instance).into()
        );
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::Agent {
            instance: instance.clone(),
            message: format!("the log stream from {endpoint} broke off: {}", root_cause(&e)),
        })?;
        if let Some(data) = frame.data_ref() {
            let written = stdout.write_all(data).and_then(|()| stdout.flush());
            // A closed pipe (`| head`) is the reader saying it has seen enough.
            if let Err(e) = written {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e.into());
            }
        }
    }
    Ok(())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(container: Option<&str>, follow: bool, tail: Option<Tail>) -> LogsArgs {
        LogsArgs {
            id: "t".into(),
            container: container.map(str::to_string),
            follow,
            tail,
            timestamps: false,
        }
    }

    #[test]
    fn url_carries_only_the_given_options() {
        assert_eq!(
            logs_url("http://10.0.0.5:51678/", "abc", &args(None, false, None)),
            "http://10.0.0.5:51678/v1/tasks/abc/logs"
        );
        assert_eq!(
            logs_url("http://h:1", "abc", &args(Some("web app"), true, Some(Tail::Lines(5)))),
            "http://h:1/v1/tasks/abc/logs?container=web%20app&follow=true&tail=5"
        );
        assert_eq!(
            logs_url("http://h:1", "abc", &args(None, false, Some(Tail::All))),
            "http://h:1/v1/tasks/abc/logs?tail=all"
        );
    }

    #[test]
    fn tail_takes_a_line_count_or_all() {
        assert_eq!("25".parse(), Ok(Tail::Lines(25)));
        assert_eq!("0".parse(), Ok(Tail::Lines(0)));
        assert_eq!("all".parse(), Ok(Tail::All));
        assert_eq!("ALL".parse(), Ok(Tail::All));
        let e = "-1".parse::<Tail>().unwrap_err();
        assert!(e.contains("expected a non-negative integer or all"), "{e}");
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            logs: LogsArgs,
        }
        let cli = Cli::try_parse_from(["berth", "t1", "--tail", "all"]).expect("--tail all");
        assert_eq!(cli.logs.tail, Some(Tail::All));
        assert!(Cli::try_parse_from(["berth", "t1", "--tail", "ten"]).is_err());
    }

    fn task(last: &str) -> Task {
        Task {
            task_arn: "arn:aws:ecs:local:0:task/default/t1".into(),
            last_status: last.into(),
            ..Default::default()
        }
    }

    fn reply(message: &str, containers: &[&str]) -> AgentReply {
        AgentReply {
            message: message.into(),
            containers: containers.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn agent_errors_are_explained_by_the_task_status() {
        let gone = reply("task t1 has no containers on this container instance", &[]);
        let mut ran = task("STOPPED");
        ran.containers = vec![berth_proto::model::Container {
            name: "app".into(),
            runtime_id: Some("d0c".into()),
            ..Default::default()
        }];
        let stopped = explain_agent_error(404, &gone, &ran, "i-1").to_string();
        assert!(stopped.contains("task t1 is STOPPED and its containers are gone"), "{stopped}");
        // Never created a container (a failed pull): say so, with the stoppedReason.
        let mut never = task("STOPPED");
        never.containers =
            vec![berth_proto::model::Container { name: "app".into(), ..Default::default() }];
        never.stopped_reason = Some("CannotPullContainerError: pull access denied".into());
        let e = explain_agent_error(404, &gone, &never, "i-1").to_string();
        assert_eq!(
            e,
            "task t1 stopped before any of its containers was created, so it has no logs: CannotPullContainerError: pull access denied"
        );
        let pending = explain_agent_error(404, &gone, &task("PENDING"), "i-1").to_string();
        assert!(pending.contains("no container on container instance i-1 yet"), "{pending}");
        let other = explain_agent_error(503, &reply("engine down", &[]), &task("RUNNING"), "i-1");
        assert_eq!(other.to_string(), "agent of container instance i-1: engine down");
    }

    #[test]
    fn an_ambiguous_task_asks_for_container() {
        let several =
            reply("task t1 has 2 containers (a, b): name one with container=NAME", &["a", "b"]);
        let e = explain_agent_error(400, &several, &task("RUNNING"), "i-1").to_string();
        assert_eq!(e, "task t1 has 2 containers (a, b): choose one with --container NAME");
    }

    #[test]
    fn error_bodies_yield_their_message_and_containers() {
        let r = parse_reply(
            404,
            br#"{"__type":"ClientException","message":"gone","containers":["x"]}"#,
        );
        assert_eq!(r, reply("gone", &["x"]));
        assert_eq!(parse_reply(502, b"bad gateway"), reply("HTTP 502: bad gateway", &[]));
    }
}
