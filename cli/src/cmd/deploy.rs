//! Deployment flags shared by `service create` and `service update`
//! (`--min-healthy-percent`, `--max-percent`, `--circuit-breaker [--rollback]`,
//! `--health-check-grace-period`), and `service update --wait`: status lines per deployment and
//! the new service events until the PRIMARY deployment is COMPLETED (exit 0) or FAILED (error).

use crate::client::Api;
use crate::error::CliError;
use berth_proto::model::{Service, ServiceEvent};
use berth_proto::v1::{DeploymentSettings, ListTasksRequest};
use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// ECS deployment configuration flags; an absent flag leaves the service's value unchanged.
#[derive(Debug, Clone, Default, Args)]
pub struct DeploymentArgs {
    /// deploymentConfiguration.minimumHealthyPercent (0..=100; ECS default 100).
    #[arg(long, value_name = "PERCENT")]
    pub min_healthy_percent: Option<i64>,
    /// deploymentConfiguration.maximumPercent (ECS default 200).
    #[arg(long, value_name = "PERCENT")]
    pub max_percent: Option<i64>,
    /// Enable the deployment circuit breaker.
    #[arg(long)]
    pub circuit_breaker: bool,
    /// With --circuit-breaker: roll back to the last completed deployment when it trips.
    #[arg(long, requires = "circuit_breaker")]
    pub rollback: bool,
    /// healthCheckGracePeriodSeconds: ignore failing health checks this long after a task starts.
    #[arg(long, value_name = "SECONDS")]
    pub health_check_grace_period: Option<i64>,
}

impl DeploymentArgs {
    /// The request's settings, or `None` when no flag was given.
    pub fn settings(&self) -> Option<DeploymentSettings> {
        let any = self.min_healthy_percent.is_some()
            || self.max_percent.is_some()
            || self.circuit_breaker
            || self.health_check_grace_period.is_some();
        any.then(|| DeploymentSettings {
            minimum_healthy_percent: self.min_healthy_percent,
            maximum_percent: self.max_percent,
            circuit_breaker_enable: self.circuit_breaker.then_some(true),
            circuit_breaker_rollback: self.circuit_breaker.then_some(self.rollback),
            health_check_grace_period_seconds: self.health_check_grace_period,
        })
    }
}

/// How often `--wait` looks at the service.
const POLL: Duration = Duration::from_secs(1);

/// Follows the service's PRIMARY deployment (the one present right after the update) until it
/// is COMPLETED or FAILED, printing a status line whenever the counts change and every new event.
pub async fn wait(api: &mut Api, name: &str, timeout: Duration) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    let mut seen_events: BTreeSet<String> = BTreeSet::new();
    let mut first = true;
    let mut last_line = String::new();
    let mut target: Option<String> = None;
    loop {
        let json = super::service::describe(api, name).await?;
        let svc: Service = crate::output::parse(&json, "service")?;
        // Events are newest first; print the new ones oldest first. Old events are history.
        let fresh: Vec<&ServiceEvent> =
            svc.events.iter().filter(|e| !seen_events.contains(&e.id)).collect();
        for e in fresh.iter().rev() {
            seen_events.insert(e.id.clone());
            if !first {
                println!("  event: {}", e.message);
            }
        }
        first = false;
        let Some(primary) = svc.deployments.iter().find(|d| d.status == "PRIMARY") else {
            return Err(CliError::BadReply {
                what: "service",
                reason: "no PRIMARY deployment".into(),
            });
        };
        let target_id = target.get_or_insert_with(|| primary.id.clone()).clone();
        let healthy = healthy_by_deployment(api, name).await?;
        let line = svc
            .deployments
            .iter()
            .map(|d| {
                format!(
                    "{} {} {}: desired {} pending {} running {} healthy {}{}",
                    d.status,
                    d.id,
                    d.task_definition.rsplit('/').next().unwrap_or(&d.task_definition),
                    d.desired_count,
                    d.pending_count,
                    d.running_count,
                    match healthy.get(&d.id) {
                        // No task reports a health status: nothing to count (the scheduler
                        // counts such tasks healthy after its settle time).
                        Some((_, 0)) | None => "-".to_string(),
                        Some((n, _)) => n.to_string(),
                    },
                    d.rollout_state.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        // The deployment we follow may have been replaced by a rollback: look it up by id.
        let followed = svc.deployments.iter().find(|d| d.id == target_id);
        match followed.and_then(|d| d.rollout_state.as_deref()) {
            Some("COMPLETED") => {
                println!("deployment {target_id} COMPLETED");
                return Ok(());
            }
            Some("FAILED") => {
                let reason = followed
                    .and_then(|d| d.rollout_state_reason.clone())
                    .unwrap_or_else(|| "no reason given".into());
                return Err(CliError::Server {
                    code: tonic::Code::Aborted,
                    message: format!("deployment {target_id} FAILED: {reason}"),
                });
            }
            _ if followed.is_none() => {
                return Err(CliError::Server {
                    code: tonic::Code::Aborted,
                    message: format!("deployment {target_id} was replaced by another deployment"),
                });
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(CliError::Timeout {
                secs: timeout.as_secs(),
                what: format!("deployment {target_id} of service {name}"),
                detail: last_line.replace('\n', "; "),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Per deployment id (`startedBy`): its HEALTHY tasks, and its tasks that report a health
/// status at all (HEALTHY or UNHEALTHY).
async fn healthy_by_deployment(
    api: &mut Api,
    name: &str,
) -> Result<BTreeMap<String, (i64, i64)>, CliError> {
    let req = ListTasksRequest {
        cluster: api.cluster.clone(),
        service_name: name.to_string(),
        ..Default::default()
    };
    let mut out = BTreeMap::new();
    for listed in super::task::list_tasks(api, req).await? {
        let Some(d) = &listed.task.started_by else { continue };
        let entry = out.entry(d.clone()).or_insert((0, 0));
        match listed.task.health_status.as_str() {
            "HEALTHY" => *entry = (entry.0 + 1, entry.1 + 1),
            "UNHEALTHY" => entry.1 += 1,
            _ => {}
        }
    }
    Ok(out)
}
