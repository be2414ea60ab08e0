//! `berth-controller`: one controller process. Without `--initial-cluster` and `--join` it is
//! a Raft group of one; otherwise a member of a replicated group (see `server.rs`). SIGTERM or
//! SIGINT stops it gracefully, handing leadership to another member first.

use berth_controller::server::parse_initial_cluster;
use berth_controller::{Controller, ControllerConfig};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Start empty and wait to be added with `berth operator members add`.
    #[arg(long, env = "BERTH_JOIN")]
    join: bool,
    /// Client API address announced to the other members (default: http://<listen>).
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
    /// Log format on stderr: `text` (human) or `json` (one object per line); RUST_LOG filters.
    #[arg(long, value_enum, default_value = "text", env = "BERTH_LOG_FORMAT")]
    log_format: berth_controller::logging::LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    berth_controller::logging::init(args.log_format);
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
    config.join = args.join;
    args.orchestrator.apply(&mut config.orchestrator);
    args.liveness.apply(&mut config.liveness);
    args.events.apply(&mut config.retention);
    config.advertise_client = args.advertise_client;
    config.http_listen = args.http_listen;
    let running = Controller::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await?;
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
