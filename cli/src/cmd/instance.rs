//! `berth instance list`, `berth instance describe ID`.
//! Replies are ECS ContainerInstance objects (with `attributes` and `remainingResources`).

use crate::client::{self, Api};
use crate::output::{self, Format};
use berth_proto::model::ContainerInstance;
use berth_proto::v1::{InstanceRef, ListInstancesRequest};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum InstanceCmd {
    /// List the cluster's container instances.
    List {
        /// Only instances with this status (ACTIVE, DRAINING, …); all when omitted.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one container instance: resources, attributes, agent.
    Describe {
        /// Instance id or ARN.
        id: String,
    },
}

pub async fn run(cmd: InstanceCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let cluster = api.cluster.clone();
    match cmd {
        InstanceCmd::List { status } => {
            let req =
                ListInstancesRequest { cluster, status: status.unwrap_or_default().to_uppercase() };
            let items = client::list(api.grpc().list_container_instances(req).await)?;
            print!(
                "{}",
                output::show_list::<ContainerInstance>(
                    out,
                    &items,
                    "container instance",
                    output::instances_table
                )?
            );
        }
        InstanceCmd::Describe { id } => {
            let req = InstanceRef { cluster, container_instance: id };
            let json = client::object(api.grpc().describe_container_instance(req).await)?;
            print!(
                "{}",
                output::show::<ContainerInstance>(
                    out,
                    &json,
                    "container instance",
                    output::instance_detail
                )?
            );
        }
    }
    Ok(())
}
