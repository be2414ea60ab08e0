//! # berth — the command line
//!
//! `berth [--endpoint URL[,URL…]] [--cluster NAME] [-o table|json] COMMAND`
//!
//! * `main.rs`  — the argument tree (clap derive), dispatch, and the one place that turns an
//!   error into `error: …` on stderr and a non-zero exit code.
//! * [`dev`]    — `berth dev`: a one-node controller and agent in this process (the lead's module;
//!   it needs no connection, so it is dispatched before connecting).
//! * [`client`] — connects to the first endpoint that answers and unwraps replies (`ObjectReply`
//!   warnings go to stderr as `warning: …`; a `Status` becomes a [`error::CliError`]).
//! * [`cmd`]    — one module per resource (cluster, taskdef, service, task, instance, operator)
//!   and `events` (the event stream: it reconnects by itself, so it is dispatched before
//!   connecting): build the request, call, hand the reply JSON to [`output`].
//! * [`output`] — tables and pretty JSON. Pure functions over `berth_proto::model` types.
//!
//! Nothing here interprets cluster state beyond formatting it; the server validates and decides.

mod client;
mod cmd;
mod dev;
mod error;
mod output;

use clap::{Parser, Subcommand};
use output::Format;
use std::process::ExitCode;

/// mimalloc: the apply and event paths allocate heavily across threads (`bench -- sim`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Default gRPC endpoint of a controller (what `berth dev` listens on).
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7600";

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: a self-hosted container orchestrator modeled on Amazon ECS"
)]
pub struct Cli {
    /// Controller endpoint(s), comma separated; tried in order until one connects.
    #[arg(long, global = true, env = "BERTH_ENDPOINT", value_delimiter = ',', default_value = DEFAULT_ENDPOINT)]
    endpoint: Vec<String>,
    /// Cluster to act on.
    #[arg(long, global = true, env = "BERTH_CLUSTER", default_value = berth_proto::model::DEFAULT_CLUSTER)]
    cluster: String,
    /// Output format: human tables, or the ECS API JSON shapes (pretty-printed) [default: table;
    /// for `events`: JSON lines].
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    output: Option<Format>,
    /// Answer reads from the connected controller's local state, without asking the leader
    /// (faster, possibly stale). Reads are linearizable by default.
    #[arg(long, global = true, env = "BERTH_STALE")]
    stale: bool,
    /// API token sent with every request (`authorization: Bearer …`) when the controller runs
    /// with --acl (`berth operator acl token create`).
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true, value_name = "SECRET")]
    token: Option<String>,
    /// CA certificate (PEM) to verify https:// endpoints against: the controller's
    /// `<data-dir>/tls/ca.pem`.
    #[arg(long, global = true, env = "BERTH_CA_CERT", value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM) presented to https:// endpoints, with --client-key: needed by
    /// controllers started with --require-client-cert (`berth operator cert create`). The
    /// API token is still sent and still decides what you may do.
    #[arg(long, global = true, env = "BERTH_CLIENT_CERT", value_name = "FILE")]
    client_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, global = true, env = "BERTH_CLIENT_KEY", value_name = "FILE")]
    client_key: Option<std::path::PathBuf>,
    /// Whether --cluster was given on the command line (`acl token create` scopes to it).
    #[arg(skip)]
    cluster_given: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a one-node controller and a local agent in this process.
    Dev(dev::DevArgs),
    /// Create, describe, list and delete clusters.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCmd),
    /// Register, describe, list and deregister task definitions.
    #[command(subcommand)]
    Taskdef(cmd::taskdef::TaskdefCmd),
    /// Create, update, describe, list, delete and wait for services.
    #[command(subcommand)]
    Service(cmd::service::ServiceCmd),
    /// Run, list, describe and stop tasks.
    #[command(subcommand)]
    Task(cmd::task::TaskCmd),
    /// Container instances: list (with a query-language filter), describe, drain/activate, attributes.
    #[command(subcommand)]
    Instance(cmd::instance::InstanceCmd),
    /// Operate the controllers: Raft members, status.
    #[command(subcommand)]
    Operator(cmd::operator::OperatorCmd),
    /// Per-task secrets: put, list, delete (values are never shown).
    #[command(subcommand)]
    Secret(cmd::secret::SecretCmd),
    /// Stream cluster events (ECS EventBridge shapes plus `index`), as JSON lines or a table.
    Events(cmd::events::EventsArgs),
}

impl Cli {
    /// The output format of every command but `events` (which defaults to JSON lines).
    fn format(&self) -> Format {
        self.output.unwrap_or(Format::Table)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = parse_cli();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `Cli::parse`, plus whether `--cluster` came from the command line (not its default or env).
fn parse_cli() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.cluster_given =
        matches.value_source("cluster") == Some(clap::parser::ValueSource::CommandLine);
    cli
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = cli.format();
    client::set_token(cli.token.as_deref())?;
    client::set_ca_cert(
        cli.ca_cert.as_deref(),
        cli.client_cert.as_deref(),
        cli.client_key.as_deref(),
    )?;
    let scope = cli.cluster_given.then(|| cli.cluster.clone());
    let command = match cli.command {
        Command::Dev(args) => {
            berth_controller::logging::init(args.log_format);
            berth_controller::logging::exit_on_panic();
            return dev::run(args).await;
        }
        Command::Events(args) => {
            return cmd::events::run(args, &cli.endpoint, cli.stale, cli.output).await;
        }
        other => other,
    };
    let mut api = client::Api::connect(&cli.endpoint, &cli.cluster, cli.stale).await?;
    let result = match command {
        Command::Dev(_) | Command::Events(_) => unreachable!("dispatched above"),
        Command::Cluster(c) => cmd::cluster::run(c, &mut api, out).await,
        Command::Taskdef(c) => cmd::taskdef::run(c, &mut api, out).await,
        Command::Service(c) => cmd::service::run(c, &mut api, out).await,
        Command::Task(c) => cmd::task::run(c, &mut api, out).await,
        Command::Instance(c) => cmd::instance::run(c, &mut api, out).await,
        Command::Operator(cmd::operator::OperatorCmd::Acl(c)) => {
            cmd::acl::run(c, &mut api, out, scope).await
        }
        Command::Operator(cmd::operator::OperatorCmd::Token(c)) => {
            cmd::token::run(c, &mut api, out).await
        }
        Command::Operator(c) => cmd::operator::run(c, &mut api, out).await,
        Command::Secret(c) => cmd::secret::run(c, &mut api, out).await,
    };
    if let Err(e) = &result
        && transport_failure(e)
        && berth_security::tls::refuses_plaintext(api.endpoint()).await
    {
        // A TLS controller reached over http://: say so, whatever hyper made of its GOAWAY.
        anyhow::bail!("{}: {}", api.endpoint(), berth_security::tls::PLAINTEXT_REFUSED);
    }
    result.map_err(|e| name_endpoint(e, api.endpoint()))
}

/// A failure that may be a TLS listener's refusal of plaintext (hyper can report its GOAWAY
/// as a cancelled or unknown-error call).
fn transport_failure(e: &anyhow::Error) -> bool {
    use tonic::Code;
    matches!(
        e.downcast_ref::<error::CliError>(),
        Some(error::CliError::Server {
            code: Code::Cancelled | Code::Unknown | Code::Unavailable,
            ..
        })
    )
}

/// Transport-level failures after connecting (the server went away, or what answered is not a
/// Berth controller, or one of another version: HTTP 404 maps to Unimplemented) carry tonic's
/// generic text; say which endpoint it came from.
fn name_endpoint(e: anyhow::Error, endpoint: &str) -> anyhow::Error {
    match e.downcast_ref::<error::CliError>() {
        Some(error::CliError::Server {
            code: tonic::Code::Unknown | tonic::Code::Unimplemented,
            ..
        }) => e.context(format!("{endpoint} (is it a Berth controller?)")),
        Some(error::CliError::Server { code: tonic::Code::Unavailable, .. }) => {
            e.context(endpoint.to_string())
        }
        _ => e,
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (many errors print their source themselves).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn error_causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e =
            anyhow::Error::from(error::CliError::ReadFile { path: "/x.json".into(), source: io });
        assert_eq!(one_line(&e), "cannot read /x.json: No such file");
        let e = anyhow::anyhow!("inner cause").context("outer");
        assert_eq!(one_line(&e), "outer: inner cause");
    }

    #[test]
    fn cluster_given_on_the_command_line_is_told_apart_from_its_default() {
        let given = |args: &[&str]| {
            let m = Cli::command().try_get_matches_from(args).expect("parse");
            m.value_source("cluster") == Some(clap::parser::ValueSource::CommandLine)
        };
        assert!(given(&[
            "berth",
            "operator",
            "acl",
            "token",
            "create",
            "--role",
            "admin",
            "--cluster",
            "p"
        ]));
        assert!(given(&["berth", "--cluster", "p", "operator", "acl", "whoami"]));
        assert!(!given(&["berth", "operator", "acl", "token", "create", "--role", "admin"]));
        let cli = parse(&["--token", "s3", "operator", "acl", "whoami"]);
        assert_eq!(cli.token.as_deref(), Some("s3"));
    }

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_contract_command_parses() {
        for line in [
            "dev --data-dir /tmp/x --listen 127.0.0.1:7601 --attribute a=b --attribute c=d",
            "cluster create c1",
            "cluster describe c1",
            "cluster delete c1",
            "cluster list",
            "taskdef register web.json --family web",
            "taskdef describe web:2",
            "taskdef list --family web",
            "taskdef deregister web:1",
            "service create web --taskdef web --desired-count 3",
            "service update web --desired-count 5 --taskdef web:2",
            "service describe web",
            "service list",
            "service delete web --force",
            "service wait-running web --count 3 --timeout 90s --with-ports",
            "task run --taskdef web:1 --count 2",
            "task list --service web --desired-status STOPPED",
            "task describe 0123456789abcdef0123456789abcdef",
            "task stop 0123 --reason because",
            "task urls --service web",
            "instance list",
            "instance describe abc",
            "operator members list",
            "operator members add 4 --peer-address 127.0.0.1:7711 --client-address http://127.0.0.1:7710",
            "operator members remove 4",
            "operator status",
            "instance drain abc --wait --timeout 5m",
            "instance activate abc",
            "service events web --limit 5",
            "instance list --filter attribute:a==b",
            "instance attributes put abc stack=prod gpu",
            "instance attributes delete abc stack",
            "service create web --taskdef web --desired-count 2 --strategy spread(instanceId),binpack(memory) --constraint distinctInstance --dry-run",
            "service update web --constraint memberOf(attribute:x==y)",
            "service update web --force-new-deployment",
            "task run --taskdef web --strategy random --constraint distinctInstance --dry-run",
            "--stale task list",
            "-o json --cluster prod --endpoint http://a:1,http://b:2 task list",
            "task list -o json",
            "events",
            "events --follow --from-index 12 --type TASK --type service,DEPLOYMENT -o table",
            "events --pattern pattern.json --type INSTANCE",
            "dev --http-listen 127.0.0.1:7702",
            "dev --acl",
            "--token abc operator acl token create --role read-only --description ci -o json",
            "operator acl token create --role admin --cluster prod --ttl 12h",
            "operator acl token list",
            "operator acl token revoke 3f1c",
            "operator acl whoami",
            "operator cert create ops --ttl 30d --out /tmp/ops -o json",
            "--client-cert c.pem --client-key k.pem --ca-cert ca.pem operator members list",
        ] {
            parse(&line.split(' ').collect::<Vec<_>>());
        }
    }

    #[test]
    fn endpoints_split_on_commas_and_globals_have_defaults() {
        let cli = parse(&["--endpoint", "http://a:1,http://b:2", "cluster", "list"]);
        assert_eq!(cli.endpoint, ["http://a:1", "http://b:2"]);
        let cli = parse(&["instance", "list"]);
        assert_eq!(cli.cluster, "default");
        assert!(matches!(cli.format(), Format::Table));
    }

    #[test]
    fn desired_status_is_case_insensitive_and_checked() {
        parse(&["task", "list", "--desired-status", "running"]);
        assert!(
            Cli::try_parse_from(["berth", "task", "list", "--desired-status", "PENDING"]).is_err()
        );
    }

    #[test]
    fn events_default_to_json_lines_and_other_commands_to_tables() {
        let cli = parse(&["events", "--follow"]);
        assert_eq!(cli.output, None, "events prints JSON lines unless -o is given");
        assert!(matches!(cli.format(), Format::Table));
        let cli = parse(&["events", "-o", "table"]);
        assert_eq!(cli.output, Some(Format::Table));
        let cli = parse(&["-o", "json", "events"]);
        assert_eq!(cli.output, Some(Format::Json));
    }

    #[test]
    fn events_flags_parse_with_repeated_and_comma_separated_types() {
        let cli = parse(&[
            "events",
            "--from-index",
            "7",
            "--type",
            "task,Service",
            "--type",
            "DEPLOYMENT",
            "--pattern",
            r#"{"source": ["aws.ecs"]}"#,
        ]);
        let Command::Events(args) = cli.command else { panic!("not events") };
        assert_eq!(args.from_index, Some(7));
        assert!(!args.follow);
        assert_eq!(args.types, ["TASK", "SERVICE", "DEPLOYMENT"]);
        assert_eq!(args.pattern.as_deref(), Some(r#"{"source": ["aws.ecs"]}"#));
        let err = Cli::try_parse_from(["berth", "events", "--type", "TASK,NODE"]).unwrap_err();
        assert!(err.to_string().contains("'NODE'"), "{err}");
        assert!(Cli::try_parse_from(["berth", "events", "--from-index", "-1"]).is_err());
    }

    /// The name, task definition and count may come from `--from-json`, so clap accepts their
    /// absence; `cmd::service_create` reports what neither gives (tested there).
    #[test]
    fn service_create_takes_a_document_and_a_scheduling_strategy() {
        parse(&["service", "create", "--from-json", "svc.json"]);
        parse(&["service", "create", "web", "--from-json", "svc.json", "--desired-count", "2"]);
        parse(&[
            "service",
            "create",
            "logs",
            "--taskdef",
            "logs",
            "--scheduling-strategy",
            "DAEMON",
        ]);
        assert!(
            Cli::try_parse_from([
                "berth",
                "service",
                "create",
                "x",
                "--scheduling-strategy",
                "ONE"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["berth", "service", "create", "x", "--desired-count", "-1"])
                .is_err()
        );
    }
}
