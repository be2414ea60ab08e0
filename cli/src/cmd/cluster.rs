//! `berth cluster create|describe|delete NAME`, `berth cluster list`.
//! Replies are ECS Cluster objects; `-o json` prints them as sent.

use crate::client::{self, Api};
use crate::output::{self, Format};
use berth_proto::model::Cluster;
use berth_proto::v1::{ClusterRef, ListClustersRequest};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Create a cluster.
    Create { name: String },
    /// Show one cluster with its counters.
    Describe { name: String },
    /// Delete a cluster (it must have no services and no instances).
    Delete { name: String },
    /// List clusters.
    List,
}

pub async fn run(cmd: ClusterCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let reply = match cmd {
        ClusterCmd::Create { name } => {
            client::object(api.grpc().create_cluster(ClusterRef { cluster: name }).await)?
        }
        ClusterCmd::Describe { name } => {
            client::object(api.grpc().describe_cluster(ClusterRef { cluster: name }).await)?
        }
        ClusterCmd::Delete { name } => {
            client::object(api.grpc().delete_cluster(ClusterRef { cluster: name }).await)?
        }
        ClusterCmd::List => {
            let c = api.grpc_clone();
            let items = client::list_all(ListClustersRequest::default(), |r| {
                let mut c = c.clone();
                async move { c.list_clusters(r).await }
            })
            .await?;
            print!(
                "{}",
                output::show_list::<Cluster>(out, &items, "cluster", output::clusters_table)?
            );
            return Ok(());
        }
    };
    print!("{}", output::show::<Cluster>(out, &reply, "cluster", output::cluster_detail)?);
    Ok(())
}
