//! DescribeContainerInstances, ListContainerInstances, attributes, UpdateContainerInstancesState,
//! DeregisterContainerInstance.

use super::{Api, cluster_name, list_reply, object};
use crate::error::{Error, Result};
use crate::store::command::PutAttributes;
use crate::store::{Command, RejectKind, Rejection};
use berth_proto::model::{Attribute, arn_tail};
use berth_proto::v1;
use tonic::Response;

pub fn describe(api: &Api, r: v1::InstanceRef) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let id = arn_tail(&r.container_instance);
    let st = api.shared.read();
    let mut view = st
        .instances
        .get(id)
        .filter(|rec| rec.cluster == cluster)
        .and_then(|_| st.instance_view(id))
        .ok_or_else(|| {
            Rejection::new(
                RejectKind::NotFound,
                "InvalidParameterException",
                format!("The referenced container instance was not found: {id}."),
            )
        })?;
    if view.status == "DRAINING" {
        let now = api.clock.now();
        view.drain_progress =
            Some(crate::orchestrator::drain::drain_progress(&st, id, now, &api.health));
    }
    object(&view, vec![])
}

fn attributes_target(api: &Api, r: &v1::AttributesRequest) -> Result<(String, String)> {
    let cluster = cluster_name(api, &r.cluster)?;
    let id = arn_tail(&r.container_instance).to_string();
    if r.attributes.is_empty() {
        return Err(Error::invalid("attributes: at least one attribute is required."));
    }
    for (k, v) in &r.attributes {
        if k.starts_with("ecs.") {
            return Err(Error::invalid(format!(
                "attribute name '{k}' is invalid: names starting with 'ecs.' are reserved for the attributes the agent reports."
            )));
        }
        if !crate::dispatcher::valid_attribute_name(k) {
            return Err(Error::invalid(format!(
                "attribute name '{k}' is invalid: 1-128 letters, digits, hyphens, underscores, periods, slashes or backslashes."
            )));
        }
        if !v.is_empty() && !crate::dispatcher::valid_attribute_value(v) {
            return Err(Error::invalid(format!(
                "attribute '{k}' value '{v}' is invalid: 1-128 letters, digits, - _ / \\ . @ : or spaces, without leading or trailing space."
            )));
        }
    }
    let st = api.shared.read();
    if st.instances.get(&id).is_none_or(|rec| rec.cluster != cluster) {
        return Err(Rejection::new(
            RejectKind::NotFound,
            "TargetNotFoundException",
            format!("The specified target {id} could not be found in cluster {cluster}."),
        )
        .into());
    }
    Ok((cluster, id))
}

pub async fn update_state(
    api: &Api,
    r: v1::InstanceStateRequest,
) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let id = arn_tail(&r.container_instance).to_string();
    let status = r.status.to_uppercase();
    if status != "ACTIVE" && status != "DRAINING" {
        return Err(Error::invalid(format!(
            "status '{}' is invalid: expected ACTIVE or DRAINING.",
            r.status
        )));
    }
    if api.shared.read().instances.get(&id).is_none_or(|rec| rec.cluster != cluster) {
        return Err(Rejection::new(
            RejectKind::NotFound,
            "InvalidParameterException",
            format!("The referenced container instance was not found: {id}."),
        )
        .into());
    }
    let now = Some(api.clock.now());
    api.proposer
        .propose(&Command::SetInstanceStatus { instance_id: id.clone(), status, now })
        .await?;
    describe(api, v1::InstanceRef { cluster, container_instance: id })
}

pub async fn put_attributes(
    api: &Api,
    r: v1::AttributesRequest,
) -> Result<Response<v1::ObjectReply>> {
    let (cluster, id) = attributes_target(api, &r)?;
    let attributes = r
        .attributes
        .iter()
        .map(|(k, v)| Attribute { name: k.clone(), value: (!v.is_empty()).then(|| v.clone()) })
        .collect();
    api.proposer
        .propose(&Command::PutAttributes(PutAttributes { instance_id: id.clone(), attributes }))
        .await?;
    describe(api, v1::InstanceRef { cluster, container_instance: id })
}

pub async fn delete_attributes(
    api: &Api,
    r: v1::AttributesRequest,
) -> Result<Response<v1::ObjectReply>> {
    let (cluster, id) = attributes_target(api, &r)?;
    let names = r.attributes.keys().cloned().collect();
    api.proposer.propose(&Command::DeleteAttributes { instance_id: id.clone(), names }).await?;
    describe(api, v1::InstanceRef { cluster, container_instance: id })
}

pub fn list(api: &Api, r: v1::ListInstancesRequest) -> Result<Response<v1::ListReply>> {
    use super::page::{DEFAULT_RESULTS, ListKind, Page};
    let page = Page::from_request(
        ListKind::ContainerInstances,
        r.max_results,
        &r.next_token,
        DEFAULT_RESULTS,
    )?;
    let cluster = cluster_name(api, &r.cluster)?;
    let status = r.status.to_uppercase();
    if ![
        "",
        "ACTIVE",
        "DRAINING",
        "INACTIVE",
        "REGISTERING",
        "DEREGISTERING",
        "REGISTRATION_FAILED",
    ]
    .contains(&status.as_str())
    {
        return Err(Error::invalid(format!(
            "status '{}' is invalid: expected ACTIVE, DRAINING, INACTIVE, REGISTERING, DEREGISTERING or REGISTRATION_FAILED.",
            r.status
        )));
    }
    let filter = if r.filter.trim().is_empty() {
        None
    } else {
        Some(berth_scheduler::query::Expr::parse(&r.filter).map_err(|e| {
            Error::invalid(format!("filter is invalid: cluster query expression {e}"))
        })?)
    };
    let st = api.shared.read();
    // The one evaluator: the same scheduler views placement sees.
    let matching: Option<std::collections::BTreeSet<String>> = filter.map(|expr| {
        crate::orchestrator::placement::instance_views(&st, &cluster)
            .into_iter()
            .filter(|v| expr.eval(v))
            .map(|v| v.id)
            .collect()
    });
    let keyed: Vec<_> = st
        .instances_in(&cluster)
        .filter(|ci| if status.is_empty() { ci.status != "INACTIVE" } else { ci.status == status })
        .filter(|ci| matching.as_ref().is_none_or(|m| m.contains(ci.id())))
        .map(|ci| (ci.id().to_string(), ci.id()))
        .collect();
    let (ids, next_token) = super::page::paginate(keyed, &page);
    let mut reply = list_reply(ids.into_iter().filter_map(|id| st.instance_view(id)))?;
    reply.get_mut().next_token = next_token;
    Ok(reply)
}

/// ECS DeregisterContainerInstance: INACTIVE, identity revoked (`store/deregister.rs`); without
/// `force`, refused while a task on it is not yet STOPPED (checked here for a quick answer and
/// again when applied).
pub async fn deregister(
    api: &Api,
    r: v1::DeregisterInstanceRequest,
) -> Result<Response<v1::ObjectReply>> {
    use crate::store::deregister::{DeregisterInstance, RUNNING_TASKS_MESSAGE};
    let cluster = cluster_name(api, &r.cluster)?;
    let id = arn_tail(&r.container_instance).to_string();
    if id.is_empty() {
        return Err(Error::invalid("containerInstance: an instance id or ARN is required."));
    }
    {
        let st = api.shared.read();
        if st.instances.get(&id).is_none_or(|rec| rec.cluster != cluster) {
            return Err(Rejection::new(
                RejectKind::NotFound,
                "InvalidParameterException",
                format!("The referenced container instance was not found: {id}."),
            )
            .into());
        }
        if !r.force && st.tasks_on_instance(&id).next().is_some() {
            return Err(Rejection::invalid(RUNNING_TASKS_MESSAGE).into());
        }
    }
    let cmd = Command::DeregisterInstance(DeregisterInstance {
        cluster: cluster.clone(),
        instance_id: id.clone(),
        force: r.force,
        now: api.clock.now(),
    });
    api.proposer.propose(&cmd).await?;
    tracing::info!(instance_id = %id, cluster = %cluster, force = r.force, "container instance deregistered; its identity is revoked");
    describe(api, v1::InstanceRef { cluster, container_instance: id })
}
