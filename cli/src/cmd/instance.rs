//! `berth instance list [--filter EXPR]`, `berth instance describe ID`,
//! `berth instance attributes put ID KEY=VALUE…` / `delete ID KEY…` (ECS PutAttributes /
//! DeleteAttributes), `berth instance deregister ID [--force]` (ECS
//! DeregisterContainerInstance; revokes the agent's identity). Replies are ECS ContainerInstance objects (with `attributes` and
//! `remainingResources`).

use crate::client::{self, Api};
use crate::output::{self, Format};
use berth_proto::model::ContainerInstance;
use berth_proto::v1::{
    AttributesRequest, DeregisterInstanceRequest, InstanceRef, InstanceStateRequest,
    ListInstancesRequest,
};
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
    /// Stop placing tasks on an instance and move its service tasks elsewhere (ECS DRAINING).
    Drain {
        /// Instance id or ARN.
        id: String,
        /// Return only when every service task on it is STOPPED and every affected service has
        /// its desired count of healthy tasks elsewhere.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long, e.g. 300s or 5m.
        #[arg(long, default_value = "300s", value_parser = crate::cmd::service::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Accept tasks on an instance again (ECS ACTIVE).
    Activate {
        /// Instance id or ARN.
        id: String,
    },
    /// Put or delete custom attributes of an instance (at most 10 custom attributes).
    #[command(subcommand)]
    Attributes(AttributesCmd),
    /// Remove an instance from the cluster (ECS DeregisterContainerInstance): it becomes
    /// INACTIVE and its agent's identity is revoked (its session ends; it cannot register or
    /// connect again). Refused while tasks run on it unless --force.
    Deregister {
        /// Instance id or ARN.
        id: String,
        /// Deregister although tasks run on it: they are marked STOPPED (services start
        /// replacements elsewhere) and a connected agent is told to stop their containers.
        #[arg(long)]
        force: bool,
    },
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
        InstanceCmd::Drain { id, wait, timeout } => {
            let req = InstanceStateRequest {
                cluster: cluster.clone(),
                container_instance: id.clone(),
                status: "DRAINING".into(),
            };
            let json = client::object(api.grpc().update_container_instance_state(req).await)?;
            if wait {
                wait_drained(api, &cluster, &id, timeout).await?;
            }
            print_instance(out, &json)?;
        }
        InstanceCmd::Activate { id } => {
            let req =
                InstanceStateRequest { cluster, container_instance: id, status: "ACTIVE".into() };
            let json = client::object(api.grpc().update_container_instance_state(req).await)?;
            print_instance(out, &json)?;
        }
        InstanceCmd::Attributes(cmd) => {
            let json = match cmd {
                AttributesCmd::Put { id, attributes } => {
                    let req = AttributesRequest {
                        cluster,
                        container_instance: id,
                        attributes: attribute_map(&attributes),
                    };
                    client::object(api.grpc().put_attributes(req).await)?
                }
                AttributesCmd::Delete { id, names } => {
                    let req = AttributesRequest {
                        cluster,
                        container_instance: id,
                        attributes: attribute_map(&names),
                    };
                    client::object(api.grpc().delete_attributes(req).await)?
                }
            };
            print_instance(out, &json)?;
        }
        InstanceCmd::List { status, filter } => {
            let req = ListInstancesRequest {
                cluster,
                status: status.unwrap_or_default().to_uppercase(),
                filter: filter.unwrap_or_default(),
                ..Default::default()
            };
            let c = api.grpc_clone();
            let items = client::list_all(req, |r| {
                let mut c = c.clone();
                async move { c.list_container_instances(r).await }
            })
            .await?;
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
        InstanceCmd::Deregister { id, force } => {
            let req = DeregisterInstanceRequest { cluster, container_instance: id, force };
            let json = client::object(api.grpc().deregister_container_instance(req).await)?;
            print_instance(out, &json)?;
        }
        InstanceCmd::Describe { id } => {
            let req = InstanceRef { cluster, container_instance: id };
            let json = client::object(api.grpc().describe_container_instance(req).await)?;
            print_instance(out, &json)?;
        }
    }
    Ok(())
}

/// Prints a ContainerInstance reply (table or ECS JSON).
fn print_instance(out: Format, json: &str) -> anyhow::Result<()> {
    print!(
        "{}",
        output::show::<ContainerInstance>(
            out,
            json,
            "container instance",
            output::instance_detail
        )?
    );
    Ok(())
}

/// How often `drain --wait` asks for the instance's drain progress.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Polls DescribeContainerInstances until the controller reports the drain complete: every
/// service task placed on the instance is STOPPED and every affected service has its desired
/// count of healthy tasks elsewhere (`drainProgress`, computed with the scheduler's own health
/// rules). Prints a progress line whenever it changes.
async fn wait_drained(
    api: &mut Api,
    cluster: &str,
    id: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let req = InstanceRef { cluster: cluster.into(), container_instance: id.into() };
        let json = client::object(api.grpc().describe_container_instance(req).await)?;
        let ci: ContainerInstance = output::parse(&json, "container instance")?;
        let instance = ci.ec2_instance_id.clone();
        let Some(p) = ci.drain_progress else {
            anyhow::bail!("instance {instance} is {} (no longer DRAINING)", ci.status);
        };
        let services: Vec<String> = p
            .services
            .iter()
            .map(|s| {
                format!("{} {}/{} healthy", s.service_name, s.healthy_elsewhere, s.desired_count)
            })
            .collect();
        let line = format!(
            "instance {instance}: {} service tasks left; replacements: {}",
            p.service_tasks_remaining,
            if services.is_empty() { "none needed".to_string() } else { services.join(", ") }
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if p.complete {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let waiting: Vec<String> = p
                .services
                .iter()
                .filter(|s| s.healthy_elsewhere < s.desired_count)
                .map(|s| {
                    format!(
                        "{} has {}/{} healthy tasks elsewhere (check its deployment configuration and `service events {}`)",
                        s.service_name, s.healthy_elsewhere, s.desired_count, s.service_name
                    )
                })
                .collect();
            anyhow::bail!(
                "timed out after {}s draining instance {instance}: {} service tasks still on it{}{}",
                timeout.as_secs(),
                p.service_tasks_remaining,
                if waiting.is_empty() { "" } else { "; " },
                waiting.join("; ")
            );
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}
