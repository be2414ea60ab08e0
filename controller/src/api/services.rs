//! CreateService, UpdateService, DescribeServices, ListServices, DeleteService.
//! The reconciler (orchestrator) does the starting and stopping; these only change the spec.

use super::{Api, cluster_name, list_reply, object, placement, tasks};
use crate::error::{Error, Result};
use crate::store::command::{CreateService, UpdateService};
use crate::store::{Command, Rejection};
use berth_proto::model::{
    DeploymentCircuitBreaker, DeploymentConfiguration, SCHEDULING_DAEMON, SCHEDULING_REPLICA,
    arn_tail, is_valid_name,
};
use berth_proto::v1;
use tonic::Response;

use crate::orchestrator::new_deployment_id as deployment_id;

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

/// Applies the request's deployment settings over `base`, checking ECS's limits.
fn deployment_config(
    base: &DeploymentConfiguration,
    s: Option<&v1::DeploymentSettings>,
) -> Result<(DeploymentConfiguration, Option<i64>)> {
    let mut c = base.clone();
    let Some(s) = s else { return Ok((c, None)) };
    if let Some(min) = s.minimum_healthy_percent {
        if !(0..=100).contains(&min) {
            return Err(Error::invalid(format!(
                "deploymentConfiguration.minimumHealthyPercent {min} is invalid: it must be between 0 and 100."
            )));
        }
        c.minimum_healthy_percent = min;
    }
    if let Some(max) = s.maximum_percent {
        if !(100..=200).contains(&max) {
            return Err(Error::invalid(format!(
                "deploymentConfiguration.maximumPercent {max} is invalid: it must be between 100 and 200."
            )));
        }
        c.maximum_percent = max;
    }
    if s.circuit_breaker_enable.is_some() || s.circuit_breaker_rollback.is_some() {
        let cur = c.deployment_circuit_breaker.clone().unwrap_or_default();
        let enable = s.circuit_breaker_enable.unwrap_or(cur.enable);
        let rollback = s.circuit_breaker_rollback.unwrap_or(cur.rollback);
        if rollback && !enable {
            return Err(Error::invalid(
                "deploymentConfiguration.deploymentCircuitBreaker.rollback needs enable: true.",
            ));
        }
        c.deployment_circuit_breaker = Some(DeploymentCircuitBreaker { enable, rollback });
    }
    if let Some(g) = s.health_check_grace_period_seconds
        && !(0..=2_147_483_647).contains(&g)
    {
        return Err(Error::invalid(format!(
            "healthCheckGracePeriodSeconds {g} is invalid: it must be between 0 and 2147483647."
        )));
    }
    Ok((c, s.health_check_grace_period_seconds))
}

/// `schedulingStrategy`: REPLICA (also when empty) or DAEMON.
fn scheduling_strategy(given: &str) -> Result<&'static str> {
    match given {
        "" | SCHEDULING_REPLICA => Ok(SCHEDULING_REPLICA),
        SCHEDULING_DAEMON => Ok(SCHEDULING_DAEMON),
        other => Err(Error::invalid(format!(
            "schedulingStrategy '{other}' is invalid: it must be REPLICA or DAEMON."
        ))),
    }
}

/// ECS's rules for a DAEMON service (ECS-NOTES §3.2, §3.8): no desired count (one task per
/// eligible instance), no placement strategies, and maximumPercent exactly 100.
fn check_daemon(
    desired_count: Option<i64>,
    strategies: usize,
    config: &DeploymentConfiguration,
) -> Result<()> {
    if desired_count.is_some_and(|n| n != 0) {
        return Err(Error::invalid(
            "The daemon scheduling strategy does not support a desired count for services.",
        ));
    }
    if strategies > 0 {
        return Err(Error::invalid(
            "The daemon scheduling strategy does not support placement strategies.",
        ));
    }
    if config.maximum_percent != 100 {
        return Err(Error::invalid(format!(
            "deploymentConfiguration.maximumPercent {} is invalid for a DAEMON service: it must be 100.",
            config.maximum_percent
        )));
    }
    Ok(())
}

fn check_count(n: i64, max: i64) -> Result<()> {
    if !(0..=max).contains(&n) {
        return Err(Error::invalid(format!(
            "desiredCount {n} is invalid: it must be between 0 and {max}."
        )));
    }
    Ok(())
}

pub async fn create(api: &Api, r: v1::CreateServiceRequest) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let name = service_name(&r.service_name)?;
    check_count(r.desired_count, api.max_service_tasks)?;
    let arn = taskdef_arn(api, &r.task_definition)?;
    let placement = placement::from_request(&r.placement_strategy, &r.placement_constraints)?;
    let strategy = scheduling_strategy(&r.scheduling_strategy)?;
    let daemon = strategy == SCHEDULING_DAEMON;
    let base = if daemon {
        DeploymentConfiguration::daemon_default()
    } else {
        DeploymentConfiguration::default()
    };
    let (config, grace) = deployment_config(&base, r.deployment.as_ref())?;
    if daemon {
        check_daemon(Some(r.desired_count), placement.strategy.len(), &config)?;
        if r.dry_run {
            return Err(Error::invalid(
                "dryRun is not supported for DAEMON services: a daemon runs one task on every eligible instance.",
            ));
        }
    }
    if r.dry_run {
        let def = api.shared.read().resolve_taskdef(&arn)?.clone();
        let group = format!("service:{name}");
        return tasks::explain(
            api,
            &cluster,
            &def,
            &placement,
            r.desired_count.max(0) as usize,
            group,
        );
    }
    api.proposer
        .propose(&Command::CreateService(CreateService {
            cluster: cluster.clone(),
            name: name.clone(),
            task_definition_arn: arn,
            desired_count: r.desired_count,
            deployment_id: deployment_id(),
            placement,
            deployment_configuration: Some(config),
            health_check_grace_period_seconds: grace,
            scheduling_strategy: Some(strategy.to_string()),
            now: api.clock.now(),
        }))
        .await?;
    describe(api, v1::ServiceRef { cluster, service: name })
}

pub async fn update(api: &Api, r: v1::UpdateServiceRequest) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let name = service_name(&r.service)?;
    if let Some(n) = r.desired_count {
        check_count(n, api.max_service_tasks)?;
    }
    let arn = if r.task_definition.is_empty() {
        None
    } else {
        Some(taskdef_arn(api, &r.task_definition)?)
    };
    let placement = if r.set_placement {
        Some(placement::from_request(&r.placement_strategy, &r.placement_constraints)?)
    } else {
        None
    };
    let (current, daemon) = {
        let st = api.shared.read();
        let svc = st
            .services
            .get(&crate::store::State::service_key(&cluster, &name))
            .ok_or_else(|| Rejection::service_not_found(&name))?;
        (svc.deployment_configuration.clone(), svc.is_daemon())
    };
    let (config, grace) = deployment_config(&current, r.deployment.as_ref())?;
    if daemon {
        let strategies = placement.as_ref().map_or(0, |p| p.strategy.len());
        check_daemon(r.desired_count, strategies, &config)?;
    }
    api.proposer
        .propose(&Command::UpdateService(UpdateService {
            cluster: cluster.clone(),
            name: name.clone(),
            desired_count: r.desired_count,
            task_definition_arn: arn,
            deployment_id: deployment_id(),
            placement,
            force_new_deployment: r.force_new_deployment,
            deployment_configuration: r.deployment.is_some().then_some(config),
            health_check_grace_period_seconds: grace,
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
    use super::page::{DEFAULT_SERVICE_RESULTS, ListKind, Page};
    let page = Page::from_request(
        ListKind::Services,
        r.max_results,
        &r.next_token,
        DEFAULT_SERVICE_RESULTS,
    )?;
    let cluster = cluster_name(api, &r.cluster)?;
    let st = api.shared.read();
    // ListServices hides DRAINING and INACTIVE services, as ECS does.
    let keyed: Vec<_> = st
        .services
        .values()
        .filter(|s| {
            s.status == "ACTIVE" && crate::store::state::cluster_of_arn(&s.cluster_arn) == cluster
        })
        .map(|s| (s.service_name.clone(), s.service_name.as_str()))
        .collect();
    let (names, next_token) = super::page::paginate(keyed, &page);
    let mut reply = list_reply(names.into_iter().filter_map(|n| st.service_view(&cluster, n)))?;
    reply.get_mut().next_token = next_token;
    Ok(reply)
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
