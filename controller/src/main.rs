//! `berth-controller`: one controller process (a Raft group of one for now).

use berth_controller::{Controller, ControllerConfig};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "berth-controller", version, about = "Berth control plane")]
struct Args {
    /// Raft node id of this controller.
    #[arg(long, default_value_t = 1)]
    node_id: u64,
    /// Where the Raft log, snapshots and state live.
    #[arg(long, default_value = "berth-data")]
    data_dir: PathBuf,
    /// gRPC listen address (client API and agent sessions).
    #[arg(long, default_value = "127.0.0.1:7600")]
    listen: SocketAddr,
    /// Region used in ARNs.
    #[arg(long, default_value = "local", env = "BERTH_REGION")]
    region: String,
    /// Account id used in ARNs.
    #[arg(long, default_value = "000000000000", env = "BERTH_ACCOUNT")]
    account: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config =
        ControllerConfig { data_dir: args.data_dir, listen: args.listen, ..Default::default() };
    config.scope.region = args.region;
    config.scope.account = args.account;
    config.raft.id = args.node_id;
    config.raft.peers = vec![args.node_id];
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
