//! `berth-agent`: the node agent binary. Flags mirror the ECS agent's settings where they exist.

use berth_agent::{Agent, AgentConfig, PullBehavior};
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "berth-agent", version, about = "Berth node agent")]
struct Args {
    /// Controller endpoint(s), comma-separated or repeated (http://host:port).
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
    /// CPU units to offer (default: cores × 1024).
    #[arg(long)]
    cpu_units: Option<i64>,
    /// Memory MiB to offer (default: MemTotal).
    #[arg(long)]
    memory_mib: Option<i64>,
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = AgentConfig {
        endpoints: args.endpoints,
        cluster: args.cluster,
        attributes: args.attributes,
        data_dir: args.data_dir,
        docker_host: args.docker_host,
        image_pull_behavior: args.image_pull_behavior,
        cpu_units: args.cpu_units,
        memory_mib: args.memory_mib,
        ..AgentConfig::default()
    };
    let agent = Agent::new(cfg).await?;
    agent
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
