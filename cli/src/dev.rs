//! `berth dev`: a one-node controller and a local agent in one process, data in one directory.
//!
//! The controller is the real thing (a Raft group of one on sled, the gRPC API on `--listen`);
//! the agent connects to it over real gRPC on loopback and runs real Docker containers. On
//! SIGINT/SIGTERM the agent disconnects (leaving its containers running, to be adopted on the next
//! start) and the controller snapshots and flushes before the process exits.
//!
//! The agent serves the task metadata endpoint v4 on `--metadata-port` (default 51679, as the
//! ECS agent) and samples container stats every `--stats-interval-secs` (default 20).
//!
//! With `--acl` (env `BERTH_ACL`) the controller enforces API tokens; the banner names the
//! bootstrap admin token file (`<data-dir>/controller/bootstrap/admin.token`).
//!
//! The agent's operator HTTP API (container logs for `berth task logs`) listens on
//! `--agent-http-listen` (default 127.0.0.1:7603, beside the controller's 7600 and 7602; port 0
//! picks a free one) and is registered with the controller, so the CLI finds it either way.

use anyhow::Context;
use berth_agent::{Agent, AgentConfig, PullBehavior};
use berth_controller::{Controller, ControllerConfig};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the controller and agent keep their data.
    #[arg(long, default_value = ".berth-dev")]
    pub data_dir: PathBuf,
    /// gRPC listen address of the controller.
    #[arg(long, default_value = "127.0.0.1:7600")]
    pub listen: String,
    /// Listen address of the controller's HTTP port (`/v1/events`, `/metrics`, `/healthz`,
    /// `/readyz`).
    #[arg(long, default_value = "127.0.0.1:7602", value_name = "ADDR")]
    pub http_listen: String,
    /// Listen address of the local agent's HTTP API (`/v1/tasks/ID/logs`, `/metrics`,
    /// `/healthz`, `/readyz`); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:7603", value_name = "ADDR")]
    pub agent_http_listen: String,
    /// Custom attribute of the local container instance (repeatable).
    #[arg(long = "attribute", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
    /// Image pull behaviour of the local agent (as ECS_IMAGE_PULL_BEHAVIOR).
    #[arg(long, env = "ECS_IMAGE_PULL_BEHAVIOR", default_value = "default")]
    pub image_pull_behavior: String,
    /// Docker Engine socket of the local agent.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Where the local agent's initProcessEnabled containers get their init: `auto` (the
    /// engine's init binary found on this host, run as /dev/init like Docker 1.13–17.x; else the
    /// engine's --init), `engine` (always the engine's --init, /sbin/docker-init) or a PATH.
    #[arg(long, value_name = "auto|engine|PATH", default_value = "auto")]
    pub init_binary: berth_agent::runtime::docker::InitBinary,
    /// How long the containers of a task that stopped by itself stay before removal
    /// (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION), in seconds.
    #[arg(long, default_value_t = 3600)]
    pub task_cleanup_wait_secs: u64,
    /// Port of the local agent's task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`,
    /// on 127.0.0.1 and the Docker bridge gateway); 0 picks a free one; `off` disables it.
    #[arg(long, value_name = "PORT|off", default_value = "51679")]
    pub metadata_port: berth_agent::metadata::MetadataPortFlag,
    /// Seconds between the local agent's container CPU / memory samples (0: off).
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    pub stats_interval_secs: u64,
    #[command(flatten)]
    pub awsvpc: berth_agent::supervisor::awsvpc::AwsvpcFlags,
    #[command(flatten)]
    pub orchestrator: berth_controller::flags::OrchestratorFlags,
    #[command(flatten)]
    pub liveness: berth_controller::flags::LivenessFlags,
    #[command(flatten)]
    pub events: berth_controller::flags::EventFlags,
    #[command(flatten)]
    pub limits: berth_controller::limits::LimitFlags,
    #[command(flatten)]
    pub cluster_key: berth_controller::flags::ClusterKeyFlags,
    #[command(flatten)]
    pub acl: berth_controller::flags::AclFlags,
    /// Allow a non-loopback --listen without TLS (warned): `berth dev` is plaintext, so it
    /// refuses to listen beyond loopback unless told so.
    #[arg(long, env = "BERTH_INSECURE")]
    pub insecure: bool,
    /// Log format on stderr (controller and agent): `text` (human) or `json` (one object per
    /// line); RUST_LOG filters (default `info`). Client commands log nothing.
    #[arg(long, value_enum, default_value = "text", env = "BERTH_LOG_FORMAT")]
    pub log_format: berth_controller::logging::LogFormat,
}

fn parse_attribute(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) =
        s.split_once('=').with_context(|| format!("--attribute {s:?}: expected KEY=VALUE"))?;
    if k.is_empty() {
        anyhow::bail!("--attribute {s:?}: the key must not be empty");
    }
    Ok((k.to_string(), v.to_string()))
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let listen: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen {:?}: expected HOST:PORT", args.listen))?;
    let http_listen: SocketAddr = args
        .http_listen
        .parse()
        .with_context(|| format!("--http-listen {:?}: expected HOST:PORT", args.http_listen))?;
    let agent_http_listen: SocketAddr = args.agent_http_listen.parse().with_context(|| {
        format!("--agent-http-listen {:?}: expected HOST:PORT", args.agent_http_listen)
    })?;
    let attributes =
        args.attributes.iter().map(|a| parse_attribute(a)).collect::<anyhow::Result<Vec<_>>>()?;
    let pull: PullBehavior =
        args.image_pull_behavior.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;

    let controller_dir = args.data_dir.join("controller");
    let acl = args.acl.acl;
    let mut config = ControllerConfig {
        data_dir: controller_dir.clone(),
        listen,
        http_listen: Some(http_listen),
        ..Default::default()
    };
    args.orchestrator.apply(&mut config.orchestrator);
    args.liveness.apply(&mut config.liveness);
    args.events.apply(&mut config.retention);
    args.limits.apply(&mut config.limits);
    args.cluster_key.apply(&mut config);
    args.acl.apply(&mut config);
    config.tls.insecure = args.insecure;
    let controller = Controller::start(config).await.context("starting the controller")?;
    controller.wait_leader(Duration::from_secs(10)).await?;
    let endpoint = format!("http://{}", controller.addr);
    let admin_token = match acl {
        true => berth_controller::auth::bootstrap::wait_bootstrapped(
            &controller.shared,
            &controller_dir,
            Duration::from_secs(10),
        )
        .await
        .map(|p| p.display().to_string()),
        false => None,
    };

    let agent_config = AgentConfig {
        endpoints: vec![endpoint.clone()],
        attributes,
        data_dir: args.data_dir.join("agent"),
        docker_host: args.docker_host,
        init_binary: args.init_binary,
        image_pull_behavior: pull,
        awsvpc: args.awsvpc.settings(),
        task_cleanup_wait: Duration::from_secs(args.task_cleanup_wait_secs),
        http_listen: Some(agent_http_listen),
        metadata_port: args.metadata_port.0,
        stats_interval: Duration::from_secs(args.stats_interval_secs),
        ..Default::default()
    };
    let agent =
        Agent::new(agent_config).await.map_err(|e| anyhow::anyhow!("starting the agent: {e}"))?;
    let agent_url = agent.advertised_http().map(str::to_string);
    let agent_api = agent_url.as_ref().map(|u| format!(", agent API on {u}"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(agent.run(async move {
        let _ = stop_rx.await;
    }));
    let http = controller.http_addr.map(|a| format!(", events on http://{a}/v1/events"));
    match args.log_format {
        // One JSON object a line on stderr: the banner is an event like the rest.
        berth_controller::logging::LogFormat::Json => tracing::info!(
            endpoint = %endpoint,
            events_url = controller.http_addr.map(|a| format!("http://{a}/v1/events")),
            agent_api = agent_url.as_deref(),
            data_dir = %args.data_dir.display(),
            "berth dev: controller and agent started; Ctrl-C to stop"
        ),
        berth_controller::logging::LogFormat::Text => eprintln!(
            "berth dev: controller on {endpoint}{}{}, data in {}; Ctrl-C to stop",
            http.unwrap_or_default(),
            agent_api.unwrap_or_default(),
            args.data_dir.display()
        ),
    }

    if acl {
        let path = admin_token.as_deref().unwrap_or("(none here: tokens already existed)");
        match args.log_format {
            berth_controller::logging::LogFormat::Json => {
                tracing::info!(admin_token_file = path, "berth dev: API tokens required (--acl)")
            }
            berth_controller::logging::LogFormat::Text => eprintln!(
                "berth dev: API tokens required (--acl); bootstrap admin token in {path} (export BERTH_TOKEN=$(cat {path}))"
            ),
        }
    }
    shutdown_signal().await;
    tracing::info!("berth dev: shutting down");
    let _ = stop_tx.send(());
    match agent_task.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "agent stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "agent task failed"),
        Ok(Ok(())) => {}
    }
    controller.stop().await?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
