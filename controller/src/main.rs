//! `berth-controller`: one controller process. Without `--initial-cluster` and `--join` it is
//! a Raft group of one; otherwise a member of a replicated group (see `server.rs`). SIGTERM or
//! SIGINT stops it gracefully, handing leadership to another member first.

use berth_controller::server::parse_initial_cluster;
use berth_controller::{Controller, ControllerConfig};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc: the apply and event paths allocate heavily across threads (`bench -- sim`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "berth-controller", version, about = "Berth control plane")]
struct Args {
    /// Raft node id of this controller.
    #[arg(long, default_value_t = 1, env = "BERTH_NODE_ID")]
    node_id: u64,
    /// Where the Raft log, snapshots and state live.
    #[arg(long, default_value = "berth-data", env = "BERTH_DATA_DIR")]
    data_dir: PathBuf,
    /// gRPC listen address (client API and agent sessions).
    #[arg(long, default_value = "127.0.0.1:7600", env = "BERTH_LISTEN")]
    listen: SocketAddr,
    /// Listen address of the Raft peer service (replicated groups).
    #[arg(long, env = "BERTH_PEER_LISTEN")]
    peer_listen: Option<SocketAddr>,
    /// Peer addresses of the initial members, `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT` (the same
    /// on every initial member). With --join: the peer addresses of the existing members.
    #[arg(long, env = "BERTH_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// Start empty and wait to be added with `berth operator members add`. With a URL and
    /// --join-token: join a TLS cluster through that existing controller (its https:// client
    /// URL): get a certificate and the cluster key, be added as a voter, then start.
    #[arg(long, env = "BERTH_JOIN", value_name = "URL", num_args = 0..=1, default_missing_value = "true")]
    join: Option<String>,
    /// A controller join token (`BERTH-1-…`, from `berth operator token create --role
    /// controller` or the first controller's `<data-dir>/bootstrap/controller.join-token`);
    /// needs --join URL and --peer-listen; turns --tls on. Ignored once the data dir has a store.
    #[arg(
        long,
        env = "BERTH_JOIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        requires = "join"
    )]
    join_token: Option<String>,
    /// Client API address announced to the other members (default: http://<listen>, or
    /// https://<listen> with --tls).
    #[arg(long, env = "BERTH_ADVERTISE_CLIENT")]
    advertise_client: Option<String>,
    /// Applied entries between two snapshots (each compacts the Raft log).
    #[arg(long, default_value_t = berth_controller::raft::DEFAULT_SNAPSHOT_THRESHOLD, env = "BERTH_SNAPSHOT_THRESHOLD")]
    snapshot_threshold: u64,
    /// Raft tick interval in milliseconds (election timeout: 10–20 ticks; heartbeat: 3).
    #[arg(long, default_value_t = berth_controller::raft::DEFAULT_TICK_MS, env = "BERTH_TICK_MS")]
    tick_ms: u64,
    /// Listen address of the HTTP port (`GET /v1/events` as NDJSON or SSE, `/metrics`,
    /// `/healthz`, `/readyz`); off unless given.
    #[arg(long, env = "BERTH_HTTP_LISTEN", value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Region used in ARNs.
    #[arg(long, default_value = "local", env = "BERTH_REGION")]
    region: String,
    /// Account id used in ARNs.
    #[arg(long, default_value = "000000000000", env = "BERTH_ACCOUNT")]
    account: String,
    #[command(flatten)]
    orchestrator: berth_controller::flags::OrchestratorFlags,
    #[command(flatten)]
    liveness: berth_controller::flags::LivenessFlags,
    #[command(flatten)]
    events: berth_controller::flags::EventFlags,
    #[command(flatten)]
    limits: berth_controller::limits::LimitFlags,
    #[command(flatten)]
    cluster_key: berth_controller::flags::ClusterKeyFlags,
    #[command(flatten)]
    acl: berth_controller::flags::AclFlags,
    #[command(flatten)]
    tls: berth_controller::tls::TlsFlags,
    /// Log format on stderr: `text` (human) or `json` (one object per line); RUST_LOG filters.
    #[arg(long, value_enum, default_value = "text", env = "BERTH_LOG_FORMAT")]
    log_format: berth_controller::logging::LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    berth_controller::logging::init(args.log_format);
    berth_controller::logging::exit_on_panic();
    let mut config =
        ControllerConfig { data_dir: args.data_dir, listen: args.listen, ..Default::default() };
    config.scope.region = args.region;
    config.scope.account = args.account;
    config.raft.id = args.node_id;
    config.raft.peers = vec![args.node_id];
    config.raft.snapshot_threshold = args.snapshot_threshold;
    config.raft.tick_interval = Some(std::time::Duration::from_millis(args.tick_ms.max(1)));
    config.peer_listen = args.peer_listen;
    config.initial_cluster = match &args.initial_cluster {
        Some(text) => parse_initial_cluster(text)?,
        None => Default::default(),
    };
    let join_url =
        args.join.clone().filter(|u| !matches!(u.as_str(), "true" | "1" | "false" | "0" | ""));
    config.join = args.join.as_deref().is_some_and(|u| !matches!(u, "false" | "0"));
    args.orchestrator.apply(&mut config.orchestrator);
    args.liveness.apply(&mut config.liveness);
    args.events.apply(&mut config.retention);
    args.limits.apply(&mut config.limits);
    args.cluster_key.apply(&mut config);
    args.acl.apply(&mut config);
    args.tls.apply(&mut config);
    config.advertise_client = args.advertise_client;
    config.http_listen = args.http_listen;
    if let Some(token) = &args.join_token {
        join_with_token(&mut config, token, join_url).await?;
    } else if config.tls.enabled
        && !config.join
        && config.initial_cluster.is_empty()
        && let Some(peer) = config.peer_listen
    {
        // The first controller of a TLS cluster that others join later: a group of one with
        // a peer listener (README "Security": no --initial-cluster needed).
        config.initial_cluster.insert(config.raft.id, peer.to_string());
    }
    let running = Controller::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await?;
    Ok(())
}

/// `--join-token` (`berth_controller::join`): a fresh data dir joins through `url` before
/// the controller starts; a data dir that already has a store just starts (it joined before).
async fn join_with_token(
    config: &mut ControllerConfig,
    token: &str,
    url: Option<String>,
) -> anyhow::Result<()> {
    let url = url.ok_or_else(|| {
        anyhow::anyhow!(
            "--join-token needs --join URL: the https:// client URL of an existing controller"
        )
    })?;
    config.tls.enabled = true;
    config.join = true;
    if !berth_controller::join::needs_join(&config.data_dir, Some(token)) {
        tracing::info!("the data dir holds a store: this controller joined before; starting");
        return Ok(());
    }
    let peer = config.peer_listen.ok_or_else(|| {
        anyhow::anyhow!("--join-token needs --peer-listen (the address the other members reach)")
    })?;
    let client =
        config.advertise_client.clone().unwrap_or_else(|| format!("https://{}", config.listen));
    berth_security::pem::create_private_dir(&config.data_dir)?;
    let request = berth_controller::join::JoinRequest {
        url,
        token: token.to_string(),
        node_id: config.raft.id,
        peer_address: peer.to_string(),
        client_address: client,
        data_dir: config.data_dir.clone(),
        cluster_key_path: config.cluster_key_path(),
    };
    config.initial_cluster = berth_controller::join::join_controller(&request).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
