//! CreateService, UpdateService, DescribeServices, ListServices, DeleteService.
//! The reconciler (orchestrator) does the starting and stopping; these only change the spec.

use super::{Api, cluster_name, list_reply, object};
use crate::error::{Error, Result};
use crate::store::command::{CreateService, UpdateService};
use crate::store::{Command, Rejection};
use berth_proto::model::{arn_tail, is_valid_name};
use berth_proto::v1;
use tonic::Response;

/// ECS deployment ids look like `ecs-svc/8646900195280463695`.
fn deployment_id() -> String {
    format!("ecs-svc/{}", rand::random::<u64>() % 10u64.pow(19))
}

fn service_name(given: &str) -> Result<String> {
    let name = arn_tail(given);
    if !is_valid_name(name) {
        return Err(Error::invalid(format!(
            "serviceName '{name}' is invalid: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )));
    }
    Ok(name.to_string())
}

fn taskdef_arn(api: &Api, reference: &str) -> Result<String> {
    if reference.is_empty() {
        return Err(Error::invalid(
            "taskDefinition is required: give FAMILY, FAMILY:REVISION or an ARN.",
        ));
    }
    let st = api.shared.read();
    let def = st.resolve_taskdef(reference)?;
    if def.status.as_deref() != Some("ACTIVE") {
        return Err(Rejection::client(format!("TaskDefinition is inactive: {reference}.")).into());
    }
    Ok(def.task_definition_arn.clone().unwrap_or_default())
}

fn check_count(n: i64) -> Result<()> {
    if !(0..=5000).contains(&n) {
        return Err(Error::invalid(format!(
            "desiredCount {n} is invalid: it must be between 0 and 5000."
        )));
    }
    Ok(())
}

pub async fn create(api: &Api, r: v1::CreateServiceRequest) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let name = service_name(&r.service_name)?;
    check_count(r.desired_count)?;
    let arn = taskdef_arn(api, &r.task_definition)?;
    api.proposer
        .propose(&Command::CreateService(CreateService {
            cluster: cluster.clone(),
            name: name.clone(),
            task_definition_arn: arn,
            desired_count: r.desired_count,
            deployment_id: deployment_id(),
            placement: Default::default(),
            deployment_configuration: None,
            now: api.clock.now(),
        }))
        .await?;
    describe(api, v1::ServiceRef { cluster, service: name })
}

pub async fn update(api: &Api, r: v1::UpdateServiceRequest) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let name = service_name(&r.service)?;
    if let Some(n) = r.desired_count {
        check_count(n)?;
    }
    let arn = if r.task_definition.is_empty() {
        None
    } else {
        Some(taskdef_arn(api, &r.task_definition)?)
    };
    api.proposer
        .propose(&Command::UpdateService(UpdateService {
            cluster: cluster.clone(),
            name: name.clone(),
            desired_count: r.desired_count,
            task_definition_arn: arn,
            deployment_id: deployment_id(),
            placement: None,
            force_new_deployment: r.force_new_deployment,
            now: api.clock.now(),
        }))
        .await?;
    describe(api, v1::ServiceRef { cluster, service: name })
}

pub fn describe(api: &Api, r: v1::ServiceRef) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let name = service_name(&r.service)?;
    let view = api
        .shared
        .read()
        .service_view(&cluster, &name)
        .ok_or_else(|| Rejection::service_not_found(&name))?;
    object(&view, vec![])
}

pub fn list(api: &Api, r: v1::ListServicesRequest) -> Result<Response<v1::ListReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let st = api.shared.read();
    // ListServices hides DRAINING and INACTIVE services, as ECS does.
    let views: Vec<_> = st
        .services
        .values()
        .filter(|s| {
            s.status == "ACTIVE" && crate::store::state::cluster_of_arn(&s.cluster_arn) == cluster
        })
        .filter_map(|s| st.service_view(&cluster, &s.service_name))
        .collect();
    list_reply(views)
}

pub async fn delete(api: &Api, r: v1::DeleteServiceRequest) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let name = service_name(&r.service)?;
    api.proposer
        .propose(&Command::DeleteService {
            cluster: cluster.clone(),
            name: name.clone(),
            force: r.force,
            now: api.clock.now(),
        })
        .await?;
    let st = api.shared.read();
    let view =
        st.service_view(&cluster, &name).ok_or_else(|| Rejection::service_not_found(&name))?;
    object(&view, vec![])
}
