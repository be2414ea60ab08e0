//! `berth instance list [--filter EXPR]`, `berth instance describe ID`,
//! `berth instance attributes put ID KEY=VALUE…` / `delete ID KEY…` (ECS PutAttributes /
//! DeleteAttributes). Replies are ECS ContainerInstance objects (with `attributes` and
//! `remainingResources`).

use crate::client::{self, Api};
use crate::output::{self, Format};
use berth_proto::model::ContainerInstance;
use berth_proto::v1::{AttributesRequest, InstanceRef, ListInstancesRequest};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum InstanceCmd {
    /// List the cluster's container instances.
    List {
        /// Only instances with this status (ACTIVE, DRAINING, …); all when omitted.
        #[arg(long)]
        status: Option<String>,
        /// Only instances matching a cluster query language expression, e.g.
        /// 'attribute:ecs.availability-zone in [a, b] and runningTasksCount < 3'.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Put or delete custom attributes of an instance (at most 10 custom attributes).
    #[command(subcommand)]
    Attributes(AttributesCmd),
    /// Show one container instance: resources, attributes, agent.
    Describe {
        /// Instance id or ARN.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AttributesCmd {
    /// Set attributes (`KEY=VALUE`, or `KEY` for a value-less attribute).
    Put {
        /// Instance id or ARN.
        id: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        attributes: Vec<String>,
    },
    /// Remove attributes that were put with `attributes put`.
    Delete {
        /// Instance id or ARN.
        id: String,
        #[arg(required = true, value_name = "KEY")]
        names: Vec<String>,
    },
}

fn attribute_map(items: &[String]) -> std::collections::HashMap<String, String> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (i.to_string(), String::new()),
        })
        .collect()
}

pub async fn run(cmd: InstanceCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let cluster = api.cluster.clone();
    match cmd {
        InstanceCmd::Attributes(cmd) => {
            let (json, what) = match cmd {
                AttributesCmd::Put { id, attributes } => {
                    let req = AttributesRequest { cluster, container_instance: id, attributes: attribute_map(&attributes) };
                    (client::object(api.grpc().put_attributes(req).await)?, "container instance")
                }
                AttributesCmd::Delete { id, names } => {
                    let req = AttributesRequest { cluster, container_instance: id, attributes: attribute_map(&names) };
                    (client::object(api.grpc().delete_attributes(req).await)?, "container instance")
                }
            };
            print!("{}", output::show::<ContainerInstance>(out, &json, what, output::instance_detail)?);
        }
        InstanceCmd::List { status, filter } => {
            let req = ListInstancesRequest {
                cluster,
                status: status.unwrap_or_default().to_uppercase(),
                filter: filter.unwrap_or_default(),
            };
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
