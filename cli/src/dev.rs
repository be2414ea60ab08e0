//! `berth dev`: a one-node controller and a local agent in one process (being written by the lead).

use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the controller and agent keep their data.
    #[arg(long, default_value = ".berth-dev")]
    pub data_dir: PathBuf,
    /// gRPC listen address of the controller.
    #[arg(long, default_value = "127.0.0.1:7600")]
    pub listen: String,
    /// Custom attribute of the local container instance (repeatable).
    #[arg(long = "attribute", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
}

pub async fn run(_args: DevArgs) -> anyhow::Result<()> {
    anyhow::bail!("berth dev: not wired yet")
}
