//! Applying the service commands (CreateService, UpdateService, DeleteService and the
//! reconciler's ServiceProgress): split from `apply.rs`, same rules — deterministic,
//! all-or-nothing, every changed object's `version` grows.

use super::apply::require_cluster;
use super::apply::{Applied, ApplyResult};
use super::command::Rollback;
use super::command::*;
use super::state::State;
use super::{RejectKind, Rejection};
use berth_proto::model::{self, Deployment, Service, ServiceEvent, Timestamp};

pub(super) fn new_deployment(id: &str, taskdef: &str, desired: i64, now: Timestamp) -> Deployment {
    Deployment {
        id: id.into(),
        status: "PRIMARY".into(),
        task_definition: taskdef.into(),
        desired_count: desired,
        created_at: now,
        updated_at: now,
        launch_type: "EC2".into(),
        rollout_state: Some("IN_PROGRESS".into()),
        rollout_state_reason: Some(format!("ECS deployment {id} in progress.")),
        ..Default::default()
    }
}

pub(super) fn active_taskdef<'a>(
    state: &'a State,
    arn: &str,
) -> Result<&'a model::TaskDefinition, Rejection> {
    let def = state
        .taskdef_by_arn(arn)
        .ok_or_else(|| Rejection::client(format!("TaskDefinition not found: {arn}.")))?;
    if def.status.as_deref() != Some("ACTIVE") {
        return Err(Rejection::client(format!("TaskDefinition is inactive: {arn}.")));
    }
    Ok(def)
}

pub(super) fn create_service(state: &mut State, c: CreateService) -> ApplyResult {
    require_cluster(state, &c.cluster)?;
    if !model::is_valid_name(&c.name) {
        return Err(Rejection::invalid(format!(
            "serviceName '{}' is invalid: up to 255 letters, numbers, hyphens, and underscores are allowed.",
            c.name
        )));
    }
    if c.desired_count < 0 {
        return Err(Rejection::invalid(format!(
            "desiredCount {} is invalid: it must be 0 or greater.",
            c.desired_count
        )));
    }
    active_taskdef(state, &c.task_definition_arn)?;
    let key = State::service_key(&c.cluster, &c.name);
    if let Some(s) = state.services.get(&key)
        && s.status != "INACTIVE"
    {
        return Err(Rejection::new(
            RejectKind::AlreadyExists,
            "InvalidParameterException",
            format!(
                "Creation of service was not idempotent: service {} already exists in cluster {} ({}).",
                c.name, c.cluster, s.status
            ),
        ));
    }
    let daemon = c.scheduling_strategy.as_deref() == Some(model::SCHEDULING_DAEMON);
    let default_config = if daemon {
        model::DeploymentConfiguration::daemon_default()
    } else {
        model::DeploymentConfiguration::default()
    };
    let svc = Service {
        service_arn: state.scope.service(&c.cluster, &c.name),
        service_name: c.name.clone(),
        cluster_arn: state.scope.cluster(&c.cluster),
        task_definition: c.task_definition_arn.clone(),
        desired_count: c.desired_count,
        status: "ACTIVE".into(),
        launch_type: "EC2".into(),
        scheduling_strategy: c
            .scheduling_strategy
            .unwrap_or_else(|| model::SCHEDULING_REPLICA.to_string()),
        placement_strategy: c.placement.strategy,
        placement_constraints: c.placement.constraints,
        deployment_configuration: c.deployment_configuration.unwrap_or(default_config),
        health_check_grace_period_seconds: c.health_check_grace_period_seconds,
        deployments: vec![new_deployment(
            &c.deployment_id,
            &c.task_definition_arn,
            c.desired_count,
            c.now,
        )],
        created_at: c.now,
        version: 1,
        ..Default::default()
    };
    state.services.insert(key.clone(), svc);
    Ok(Applied { ids: vec![key], ..Default::default() })
}

pub(super) fn active_service<'a>(
    state: &'a mut State,
    cluster: &str,
    name: &str,
) -> Result<&'a mut Service, Rejection> {
    require_cluster(state, cluster)?;
    let svc = state
        .services
        .get_mut(&State::service_key(cluster, name))
        .ok_or_else(|| Rejection::service_not_found(name))?;
    if svc.status != "ACTIVE" {
        return Err(Rejection::new(
            RejectKind::FailedPrecondition,
            "ServiceNotActiveException",
            format!("Service was not ACTIVE: {name} is {}.", svc.status),
        ));
    }
    Ok(svc)
}

pub(super) fn update_service(state: &mut State, u: UpdateService) -> ApplyResult {
    if let Some(arn) = &u.task_definition_arn {
        active_taskdef(state, arn)?;
    }
    if let Some(d) = u.desired_count
        && d < 0
    {
        return Err(Rejection::invalid(format!(
            "desiredCount {d} is invalid: it must be 0 or greater."
        )));
    }
    let svc = active_service(state, &u.cluster, &u.name)?;
    if let Some(d) = u.desired_count {
        svc.desired_count = d;
        if let Some(p) = svc.deployments.iter_mut().find(|d| d.status == "PRIMARY") {
            p.desired_count = d;
            p.updated_at = u.now;
        }
    }
    if let Some(g) = u.health_check_grace_period_seconds {
        svc.health_check_grace_period_seconds = Some(g);
    }
    let new_config = u.deployment_configuration.filter(|c| *c != svc.deployment_configuration);
    let new_taskdef = u.task_definition_arn.filter(|arn| *arn != svc.task_definition);
    let new_placement = u.placement.filter(|p| {
        p.strategy != svc.placement_strategy || p.constraints != svc.placement_constraints
    });
    // ECS: a new task definition, new placement or forceNewDeployment starts a deployment;
    // a desired count change alone is a scale.
    if new_taskdef.is_some()
        || new_placement.is_some()
        || new_config.is_some()
        || u.force_new_deployment
    {
        if let Some(c) = new_config {
            svc.deployment_configuration = c;
        }
        if let Some(p) = new_placement {
            svc.placement_strategy = p.strategy;
            svc.placement_constraints = p.constraints;
        }
        if let Some(arn) = new_taskdef {
            svc.task_definition = arn;
        }
        for d in &mut svc.deployments {
            if d.status == "PRIMARY" {
                d.status = "ACTIVE".into();
                d.updated_at = u.now;
            }
        }
        let dep = new_deployment(&u.deployment_id, &svc.task_definition, svc.desired_count, u.now);
        svc.deployments.insert(0, dep);
    }
    svc.version += 1;
    Ok(Applied { ids: vec![State::service_key(&u.cluster, &u.name)], ..Default::default() })
}

pub(super) fn delete_service(
    state: &mut State,
    cluster: &str,
    name: &str,
    force: bool,
    now: Timestamp,
) -> ApplyResult {
    let svc = active_service(state, cluster, name)?;
    // ECS: force is only needed for REPLICA services (a daemon's count follows its instances).
    if svc.desired_count > 0 && !force && !svc.is_daemon() {
        return Err(Rejection::new(
            RejectKind::FailedPrecondition,
            "InvalidParameterException",
            format!(
                "The service {name} cannot be deleted while desiredCount is {}: scale it to 0 first, or use --force.",
                svc.desired_count
            ),
        ));
    }
    svc.desired_count = 0;
    svc.status = "DRAINING".into();
    svc.version += 1;
    for d in &mut svc.deployments {
        d.desired_count = 0;
        d.updated_at = now;
    }
    Ok(Applied { ids: vec![State::service_key(cluster, name)], ..Default::default() })
}

pub(super) fn service_progress(state: &mut State, p: ServiceProgress) -> ApplyResult {
    let key = State::service_key(&p.cluster, &p.name);
    let Some(svc) = state.services.get_mut(&key) else {
        return Err(Rejection::service_not_found(&p.name));
    };
    for (id, message) in p.events {
        svc.events.push(ServiceEvent { id, created_at: p.now, message });
    }
    let n = svc.events.len();
    if n > model::MAX_SERVICE_EVENTS {
        svc.events.drain(..n - model::MAX_SERVICE_EVENTS);
    }
    for (id, rollout, reason) in p.rollouts {
        if let Some(d) = svc.deployments.iter_mut().find(|d| d.id == id) {
            if rollout == "COMPLETED" {
                state.completed_taskdefs.insert(key.clone(), d.task_definition.clone());
            }
            d.rollout_state = Some(rollout);
            d.rollout_state_reason = Some(reason);
            d.updated_at = p.now;
        }
    }
    if let Some(rollback) = p.rollback {
        for d in &mut svc.deployments {
            if d.status == "PRIMARY" {
                d.status = "ACTIVE".into();
                d.updated_at = p.now;
            }
        }
        let reason = format!(
            "ECS deployment circuit breaker: rolling back to deploymentId {}.",
            match &rollback {
                Rollback::Promote { deployment_id } | Rollback::New { deployment_id, .. } =>
                    deployment_id,
            }
        );
        match rollback {
            Rollback::Promote { deployment_id } => {
                if let Some(d) = svc.deployments.iter_mut().find(|d| d.id == deployment_id) {
                    d.status = "PRIMARY".into();
                    d.desired_count = svc.desired_count;
                    d.rollout_state = Some("IN_PROGRESS".into());
                    d.rollout_state_reason = Some(reason);
                    d.updated_at = p.now;
                    svc.task_definition = d.task_definition.clone();
                }
            }
            Rollback::New { deployment_id, task_definition_arn } => {
                let mut d =
                    new_deployment(&deployment_id, &task_definition_arn, svc.desired_count, p.now);
                d.rollout_state_reason = Some(reason);
                svc.task_definition = task_definition_arn;
                svc.deployments.insert(0, d);
            }
        }
        // The failed deployment is ACTIVE now, keeping its FAILED rollout state; its tasks are
        // replaced like any older deployment's.
    }
    for id in p.drained_deployments {
        svc.deployments.retain(|d| d.id != id || d.status == "PRIMARY");
    }
    if p.deactivate && svc.status == "DRAINING" {
        svc.status = "INACTIVE".into();
    }
    svc.version += 1;
    Ok(Applied { ids: vec![key], ..Default::default() })
}

/// ECS allows 10 custom attributes per container instance (`AttributeLimitExceededException`).
pub const MAX_CUSTOM_ATTRIBUTES: usize = 10;
