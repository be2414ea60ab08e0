//! `berth-agent`: the node agent binary. Flags mirror the ECS agent's settings where they exist.

use berth_agent::{Agent, AgentConfig, PullBehavior};
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "berth-agent", version, about = "Berth node agent")]
struct Args {
    /// Controller endpoint(s), comma-separated or repeated (http://host:port, or https://host:port for a TLS controller).
    #[arg(long = "endpoint", required = true, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Cluster to join.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// Custom attribute KEY=VALUE (repeatable); overrides a built-in of the same name.
    #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_attribute)]
    attributes: Vec<(String, String)>,
    /// Where the agent keeps its instance id.
    #[arg(long, default_value = "/var/lib/berth-agent")]
    data_dir: PathBuf,
    /// default | always | once | prefer-cached.
    #[arg(long, env = "ECS_IMAGE_PULL_BEHAVIOR", default_value = "default")]
    image_pull_behavior: PullBehavior,
    /// Docker engine address (unix:///var/run/docker.sock by default).
    #[arg(long, env = "DOCKER_HOST")]
    docker_host: Option<String>,
    /// initProcessEnabled containers: `auto` mounts the engine's init binary (found on this
    /// host) at /dev/init and runs `/dev/init -- ENTRYPOINT CMD`, as Docker 1.13–17.x did, else
    /// the engine's --init; `engine` always the engine's --init (/sbin/docker-init); PATH that
    /// binary on the engine's host at /dev/init.
    #[arg(long, value_name = "auto|engine|PATH", default_value = "auto")]
    init_binary: berth_agent::runtime::docker::InitBinary,
    /// CPU units to offer (default: cores × 1024).
    #[arg(long)]
    cpu_units: Option<i64>,
    /// Memory MiB to offer (default: MemTotal).
    #[arg(long)]
    memory_mib: Option<i64>,
    /// Listen address of the operator HTTP API (`/healthz`, `/v1/tasks/ID/logs`); port 0 picks
    /// a free port. Not served with --simulate.
    #[arg(long, value_name = "ADDR", default_value = berth_agent::http::DEFAULT_HTTP_LISTEN)]
    http_listen: std::net::SocketAddr,
    /// URL under which the controller and `berth task logs` reach that API (default: from the
    /// bound address; the hostname when bound to a wildcard address).
    #[arg(long, value_name = "URL")]
    advertise_http: Option<String>,
    /// Port of the task metadata endpoint v4 (ECS_CONTAINER_METADATA_URI_V4), on 127.0.0.1 and
    /// the Docker bridge gateway; 0 picks a free port (the same on both); `off` disables it.
    /// Not served with --simulate.
    #[arg(long, value_name = "PORT|off", default_value = "51679")]
    metadata_port: berth_agent::metadata::MetadataPortFlag,
    /// Seconds between container CPU / memory samples sent to the controller (0: off).
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    stats_interval_secs: u64,
    #[command(flatten)]
    awsvpc: berth_agent::supervisor::awsvpc::AwsvpcFlags,
    /// SIMULATION: register N simulated container instances from this process, each a full
    /// agent over an in-memory fake engine (no Docker). --cpu-units / --memory-mib are then per
    /// node (default 2048 / 8192); each node keeps its id in DATA_DIR/sim-node-I.
    #[arg(long, value_name = "N")]
    simulate: Option<usize>,
    /// With --simulate: KEY=V1|V2|…,KEY2=… ; node I gets value I mod n of each key.
    #[arg(long, value_name = "TEMPLATE", requires = "simulate")]
    attributes_template: Option<String>,
    /// With --simulate: delay before each simulated container start (ms).
    #[arg(long, default_value_t = 0, requires = "simulate")]
    sim_start_delay_ms: u64,
    /// With --simulate: delay before each simulated container stop (ms).
    #[arg(long, default_value_t = 0, requires = "simulate")]
    sim_stop_delay_ms: u64,
    /// With --simulate: probability in [0, 1] that a simulated container start fails.
    #[arg(long, default_value_t = 0.0, requires = "simulate")]
    sim_start_failure_rate: f64,
    /// With --simulate: seed of the simulation's random choices.
    #[arg(long, default_value_t = 0, requires = "simulate")]
    sim_seed: u64,
    /// Join token (`berth operator token create --role agent`), presented once to an https://
    /// endpoint for this agent's certificate, kept in --data-dir (ca.pem, cert.pem, key.pem);
    /// later starts need no token.
    /// (Parsed after clap, so a mistyped token is never echoed in the usage error.)
    #[arg(long, env = "BERTH_JOIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    join_token: Option<String>,
    /// Allow a non-loopback --http-listen (warned at start): the operator HTTP API (task logs,
    /// metrics) is plain HTTP without tokens.
    #[arg(long, env = "BERTH_INSECURE")]
    insecure: bool,
    /// Log format on stderr: `text` (human) or `json` (one object per line); RUST_LOG filters.
    #[arg(long, value_enum, default_value = "text", env = "BERTH_LOG_FORMAT")]
    log_format: berth_agent::logging::LogFormat,
}

/// `--join-token`; the error names the flag and the rule, never the value.
fn parse_join_token(s: &str) -> anyhow::Result<berth_security::JoinToken> {
    berth_security::JoinToken::parse(s.trim()).map_err(|e| anyhow::anyhow!("--join-token: {e}"))
}

/// A non-loopback `--http-listen` needs `--insecure` (then it is a warning to log).
fn http_listen_policy(
    addr: std::net::SocketAddr,
    insecure: bool,
) -> anyhow::Result<Option<String>> {
    if addr.ip().is_loopback() {
        return Ok(None);
    }
    let message = format!(
        "--http-listen {addr} is not a loopback address: the agent's operator API (task logs, metrics) is plain HTTP without tokens, so anyone who can reach it could read every task's logs. Keep it on 127.0.0.1, or pass --insecure to accept this explicitly."
    );
    if insecure { Ok(Some(message)) } else { Err(anyhow::anyhow!(message)) }
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    berth_agent::logging::init(args.log_format);
    berth_agent::logging::exit_on_panic();
    let join_token = args.join_token.as_deref().map(parse_join_token).transpose()?;
    if args.simulate.is_none()
        && let Some(warning) = http_listen_policy(args.http_listen, args.insecure)?
    {
        tracing::warn!("--insecure: {warning}");
    }
    let cfg = AgentConfig {
        endpoints: args.endpoints,
        cluster: args.cluster,
        attributes: args.attributes,
        data_dir: args.data_dir,
        docker_host: args.docker_host,
        init_binary: args.init_binary,
        image_pull_behavior: args.image_pull_behavior,
        cpu_units: args.cpu_units,
        memory_mib: args.memory_mib,
        awsvpc: args.awsvpc.settings(),
        stats_interval: std::time::Duration::from_secs(args.stats_interval_secs),
        join_token,
        ..AgentConfig::default()
    };
    if let Some(nodes) = args.simulate {
        let sim = berth_agent::simulate::SimulationConfig {
            nodes,
            base: cfg,
            template: args.attributes_template.as_deref().unwrap_or("").parse()?,
            behavior: berth_agent::simulate::SimBehavior {
                start_delay: std::time::Duration::from_millis(args.sim_start_delay_ms),
                stop_delay: std::time::Duration::from_millis(args.sim_stop_delay_ms),
                start_failure_rate: args.sim_start_failure_rate,
            },
            seed: args.sim_seed,
        };
        berth_agent::simulate::run(sim, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        return Ok(());
    }
    let cfg = AgentConfig {
        http_listen: Some(args.http_listen),
        advertise_http: args.advertise_http,
        metadata_port: args.metadata_port.0,
        ..cfg
    };
    let agent = Agent::new(cfg).await?;
    agent
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
