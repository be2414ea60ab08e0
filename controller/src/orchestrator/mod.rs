//! Leader-only loops. Each pass reads a snapshot of the state, decides purely
//! (`reconciler::decide`, the scheduler), and proposes commands like any client; all progress
//! lives in the store, so a new leader continues where the old one stopped.
//!
//! * `drain`      — an instance's drain progress (pure; read by DescribeContainerInstances).
//! * `placement`  — state → scheduler views → new Task objects (shared with RunTask).
//! * `reconciler` — the per-service decision core (REPLICA services).
//! * `daemon`     — the same for DAEMON services: one task per eligible instance.
//! * `scale_in`   — which surplus tasks to stop (unhealthy, then PENDING, then by strategy).
//! * `liveness`   — node liveness, its own leader-only loop: missed heartbeats → disconnected →
//!   tasks lost after `lost_after` (then replaced here like any stopped task).
//! * this file    — the loop: wakes on state changes (debounced) and on a timer, acts only while
//!   this controller is the Raft leader.

pub mod daemon;
pub mod drain;
pub mod health;
pub mod liveness;
pub mod placement;
pub mod reconciler;
pub mod scale_in;
#[cfg(test)]
pub(crate) mod testkit;

use crate::clock::{Clock, new_id};
use crate::error::Result;
use crate::propose::Proposer;
use crate::store::command::{Rollback, ServiceProgress, StopTasks, UpdateService};
use crate::store::{Command, SharedState, State};
use berth_proto::model::Service;
use futures::StreamExt as _;
use placement::Launch;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// A pass runs at least this often, even without state changes (retries placements).
    pub interval: Duration,
    /// After a state change, wait this long for more before a pass: one pass per burst of
    /// agent reports instead of one per report.
    pub debounce: Duration,
    /// STOPPED tasks stay describable this long (ECS: at least one hour).
    pub stopped_task_retention: Duration,
    /// How long a task without health checks must run before it counts as healthy (ECS: 40 s).
    pub task_settle: Duration,
    /// A task that fails within this long of reaching RUNNING counts toward the circuit breaker.
    pub breaker_monitor: Duration,
    /// Largest desiredCount a service may have (checked by the API).
    pub max_service_tasks: i64,
}

/// ECS's default quota of tasks per service.
pub const DEFAULT_MAX_SERVICE_TASKS: i64 = 5000;

impl OrchestratorConfig {
    pub fn health_policy(&self) -> health::HealthPolicy {
        health::HealthPolicy {
            settle_millis: self.task_settle.as_millis() as i64,
            monitor_millis: self.breaker_monitor.as_millis() as i64,
        }
    }
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            interval: Duration::from_secs(1),
            debounce: Duration::from_millis(50),
            stopped_task_retention: Duration::from_secs(3600),
            task_settle: Duration::from_secs(40),
            breaker_monitor: Duration::from_secs(60),
            max_service_tasks: DEFAULT_MAX_SERVICE_TASKS,
        }
    }
}

pub struct Orchestrator {
    proposer: Proposer,
    shared: SharedState,
    clock: Arc<dyn Clock>,
    config: OrchestratorConfig,
    /// Placement series (`crate::metrics`); unregistered unless given.
    metrics: crate::metrics::Metrics,
}

impl Orchestrator {
    pub fn new(
        proposer: Proposer,
        shared: SharedState,
        clock: Arc<dyn Clock>,
        config: OrchestratorConfig,
    ) -> Self {
        Orchestrator { proposer, shared, clock, config, metrics: Default::default() }
    }

    /// The controller's metrics (the reconciler's placements are observed into them).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until shutdown: idle while a follower; while leader, a pass on every state change
    /// (debounced) and at least every `interval`. Losing leadership stops the passes at once;
    /// all progress is in the store, so the next leader continues from there.
    pub async fn run(
        self,
        mut applied: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut role = self.proposer.raft().role();
        loop {
            if !until_leader(&mut role, &mut shutdown).await {
                return Ok(());
            }
            tracing::info!("leader: service reconciler started");
            let mut ticker = tokio::time::interval(self.config.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    r = role.changed() => {
                        if r.is_err() { return Ok(()); }
                        if !role.borrow_and_update().is_leader() { break; }
                    }
                    _ = ticker.tick() => {}
                    r = applied.changed() => {
                        if r.is_err() { return Ok(()); }
                        tokio::time::sleep(self.config.debounce).await;
                        applied.borrow_and_update();
                    }
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
                if let Err(e) = self.pass().await {
                    tracing::warn!(error = %e, "reconciler pass failed; retrying on the next pass");
                }
            }
            tracing::info!("no longer leader: service reconciler stopped");
        }
    }

    /// One reconciliation pass over every service, then housekeeping.
    pub async fn pass(&self) -> Result<()> {
        let services: Vec<Service> = {
            let st = self.shared.read();
            st.services
                .values()
                .filter(|s| s.status == "ACTIVE" || s.status == "DRAINING")
                .cloned()
                .collect()
        };
        for svc in services {
            self.reconcile_service(&svc).await?;
        }
        let retention = self.config.stopped_task_retention.as_millis() as i64;
        let cutoff = self.clock.now().plus_millis(-retention);
        let stale = self
            .shared
            .read()
            .tasks
            .values()
            .any(|t| t.is_stopped() && t.stopped_at.is_some_and(|s| s < cutoff));
        if stale {
            self.proposer.propose(&Command::PurgeStoppedTasks { stopped_before: cutoff }).await?;
        }
        Ok(())
    }

    async fn reconcile_service(&self, svc: &Service) -> Result<()> {
        let now = self.clock.now();
        let cluster = crate::store::state::cluster_of_arn(&svc.cluster_arn).to_string();
        let name = svc.service_name.clone();
        let (decision, primary, victims) = {
            let st = self.shared.read();
            // Re-read: the service may have changed since the list was taken.
            let Some(svc) = st.services.get(&State::service_key(&cluster, &name)) else {
                return Ok(());
            };
            let d = if svc.is_daemon() {
                daemon::decide(&st, svc, now, &self.config.health_policy())
            } else {
                reconciler::decide(&st, svc, now, &self.config.health_policy())
            };
            let primary = svc.deployments.iter().find(|d| d.status == "PRIMARY").cloned();
            let victims = if d.stop_surplus > 0 {
                scale_in::choose_surplus(
                    &st,
                    &cluster,
                    &name,
                    primary.as_ref().map(|p| p.id.as_str()),
                    d.stop_surplus,
                )
            } else {
                vec![]
            };
            (d, primary, victims)
        };
        let mut events: Vec<String> = decision.events.clone();
        let mut to_stop = decision.stop.clone();
        to_stop.extend(victims);
        if !to_stop.is_empty() {
            let dep = primary.as_ref().map(|p| p.id.clone()).unwrap_or_default();
            let applied = self
                .proposer
                .propose(&Command::StopTasks(StopTasks {
                    task_ids: to_stop,
                    stop_code: "ServiceSchedulerInitiated".into(),
                    reason: format!("Scaling activity initiated by (deployment {dep})"),
                    now,
                }))
                .await?;
            if !applied.ids.is_empty() {
                tracing::info!(service = %name, cluster = %cluster, deployment_id = %dep,
                    stopped = applied.ids.len(), "reconciler stopped surplus tasks");
                events.push(format!(
                    "{} has stopped {} running tasks: {}.",
                    reconciler::prefix(&name),
                    applied.ids.len(),
                    task_list(&applied.ids)
                ));
            }
        }
        if !decision.stop_unhealthy.is_empty() {
            let applied = self
                .proposer
                .propose(&Command::StopTasks(StopTasks {
                    task_ids: decision.stop_unhealthy.clone(),
                    stop_code: "ServiceSchedulerInitiated".into(),
                    reason: health::UNHEALTHY_STOP_REASON.into(),
                    now,
                }))
                .await?;
            if !applied.ids.is_empty() {
                tracing::info!(service = %name, cluster = %cluster, stopped = applied.ids.len(),
                    "reconciler stopped tasks that failed container health checks");
            }
            for id in &applied.ids {
                events.push(format!(
                    "{} (task {id}) failed container health checks and was stopped.",
                    reconciler::prefix(&name)
                ));
            }
        }
        if decision.start > 0
            && let Some(p) = &primary
        {
            events.extend(self.start_tasks(&cluster, &name, p, decision.start, now).await?);
        }
        if !decision.start_on.is_empty() {
            events.extend(self.start_daemon_tasks(&cluster, &name, &decision.start_on, now).await?);
        }
        if let Some(n) = decision.desired_count {
            // A daemon's desired count follows its eligible instances: a scale, not a deployment.
            self.proposer
                .propose(&Command::UpdateService(UpdateService {
                    cluster: cluster.clone(),
                    name: name.clone(),
                    desired_count: Some(n),
                    task_definition_arn: None,
                    placement: None,
                    force_new_deployment: false,
                    deployment_configuration: None,
                    health_check_grace_period_seconds: None,
                    deployment_id: String::new(),
                    now,
                }))
                .await?;
        }
        let mut rollouts = match (&primary, decision.complete_primary) {
            (Some(p), true) => vec![(
                p.id.clone(),
                "COMPLETED".to_string(),
                format!("ECS deployment {} completed.", p.id),
            )],
            _ => vec![],
        };
        if let (Some(p), Some(reason)) = (&primary, &decision.fail_primary) {
            rollouts.push((p.id.clone(), "FAILED".to_string(), reason.clone()));
        }
        let rollback = decision.rollback.clone().map(|r| match r {
            Rollback::New { task_definition_arn, .. } => {
                Rollback::New { deployment_id: new_deployment_id(), task_definition_arn }
            }
            keep => keep,
        });
        for (deployment_id, rollout_state, reason) in &rollouts {
            tracing::info!(service = %name, cluster = %cluster, %deployment_id, %rollout_state,
                %reason, "deployment rollout state changed");
        }
        if let Some(target) = &rollback {
            let id = match target {
                Rollback::Promote { deployment_id } | Rollback::New { deployment_id, .. } => {
                    deployment_id
                }
            };
            events.push(format!("{} rolling back to deployment {id}.", reconciler::prefix(&name)));
            tracing::info!(service = %name, cluster = %cluster, deployment_id = %id,
                "deployment rolling back");
        }
        // Identical consecutive messages are suppressed, as ECS does.
        let last = svc.events.last().map(|e| e.message.clone());
        events.dedup();
        if events.len() == 1 && last.as_ref() == events.first() {
            events.clear();
        }
        if events.is_empty()
            && rollouts.is_empty()
            && rollback.is_none()
            && decision.drained_deployments.is_empty()
            && !decision.deactivate
        {
            return Ok(());
        }
        self.proposer
            .propose(&Command::ServiceProgress(ServiceProgress {
                cluster,
                name,
                events: events.into_iter().map(|m| (new_id(), m)).collect(),
                rollouts,
                drained_deployments: decision.drained_deployments,
                deactivate: decision.deactivate,
                rollback,
                now,
            }))
            .await?;
        Ok(())
    }

    /// Start a DAEMON service's PRIMARY task on each of `instances`; returns the events to record.
    async fn start_daemon_tasks(
        &self,
        cluster: &str,
        name: &str,
        instances: &[String],
        now: berth_proto::model::Timestamp,
    ) -> Result<Vec<String>> {
        let tasks = {
            let st = self.shared.read();
            let Some(svc) = st.services.get(&State::service_key(cluster, name)) else {
                return Ok(vec![]);
            };
            daemon::new_tasks(&st, svc, instances, now, &mut new_id)
        };
        if tasks.is_empty() {
            return Ok(vec![]);
        }
        let applied = self.proposer.propose(&Command::StartTasks { tasks, now }).await?;
        if applied.ids.is_empty() {
            return Ok(vec![]);
        }
        tracing::info!(service = %name, cluster = %cluster, started = applied.ids.len(),
            requested = instances.len(), "reconciler started daemon tasks");
        Ok(vec![format!(
            "{} has started {} tasks: {}.",
            reconciler::prefix(name),
            applied.ids.len(),
            task_list(&applied.ids)
        )])
    }

    /// Place and start `count` tasks of the PRIMARY deployment: [`LAUNCH_PLAN`] per scheduler
    /// call (each placed on the state the previous one left), proposed as `StartTasks` commands
    /// of at most [`LAUNCH_BATCH`]; returns the events to record.
    async fn start_tasks(
        &self,
        cluster: &str,
        name: &str,
        primary: &berth_proto::model::Deployment,
        count: usize,
        now: berth_proto::model::Timestamp,
    ) -> Result<Vec<String>> {
        let mut events = vec![];
        let mut left = count;
        while left > 0 {
            let n = left.min(LAUNCH_PLAN);
            left -= n;
            let (batch, placed_all) = self.start_batch(cluster, name, primary, n, now).await?;
            events.extend(batch);
            if !placed_all {
                break;
            }
        }
        Ok(events)
    }

    /// One batch of [`Orchestrator::start_tasks`]; answers its events and whether every task of
    /// the batch was started.
    async fn start_batch(
        &self,
        cluster: &str,
        name: &str,
        primary: &berth_proto::model::Deployment,
        count: usize,
        now: berth_proto::model::Timestamp,
    ) -> Result<(Vec<String>, bool)> {
        let mut started = 0;
        let began = std::time::Instant::now();
        // The state is read for the scheduler's views, then released while the scheduler
        // places (hundreds of milliseconds for thousands of tasks, which the Raft loop would
        // otherwise wait out before applying anything), then read again to form the tasks.
        // `StartTasks` checks at apply time that each task still fits.
        let (def, spec, views) = {
            let st = self.shared.read();
            let Some(def) = st.taskdef_by_arn(&primary.task_definition).cloned() else {
                return Ok((vec![], false));
            };
            let Some(svc) = st.services.get(&State::service_key(cluster, name)) else {
                return Ok((vec![], false));
            };
            let spec =
                match placement::spec(&svc.placement_strategy, &svc.placement_constraints, &def) {
                    Ok(spec) => spec,
                    Err(e) => {
                        return Ok((
                            vec![format!("service {name} was unable to place a task. Reason: {e}")],
                            false,
                        ));
                    }
                };
            (def, spec, placement::instance_views(&st, cluster))
        };
        let launch = Launch {
            cluster,
            def: &def,
            count,
            group: format!("service:{name}"),
            started_by: Some(primary.id.clone()),
        };
        let placing = std::time::Instant::now();
        let views_ms = placing.duration_since(began).as_millis() as u64;
        let placed = placement::place(&views, &launch, &spec, rand::random());
        let place_ms = placing.elapsed().as_millis() as u64;
        let plan =
            placement::finish_plan(&self.shared.read(), &launch, &views, &placed, now, &mut new_id);
        let proposing = std::time::Instant::now();
        let reasons = plan.failures.iter().map(|f| f.reason.as_str());
        self.metrics.placed(plan.tasks.len(), reasons, placing.elapsed());
        let mut events = vec![];
        // One plan, proposed as commands of at most LAUNCH_BATCH tasks, LAUNCH_IN_FLIGHT at a
        // time (one replicates while the one before applies); answers are taken in plan order.
        let mut chunks = vec![];
        let mut tasks = plan.tasks;
        while !tasks.is_empty() {
            let rest = tasks.split_off(tasks.len().min(LAUNCH_BATCH));
            chunks.push(tasks);
            tasks = rest;
        }
        let proposer = &self.proposer;
        let mut answers = futures::stream::iter(chunks)
            .map(|tasks| async move { proposer.propose(&Command::StartTasks { tasks, now }).await })
            .buffered(LAUNCH_IN_FLIGHT);
        while let Some(applied) = answers.next().await {
            let applied = applied?;
            started += applied.ids.len();
            if !applied.ids.is_empty() {
                events.push(format!(
                    "{} has started {} tasks: {}.",
                    reconciler::prefix(name),
                    applied.ids.len(),
                    task_list(&applied.ids)
                ));
            }
        }
        if started > 0 || !plan.failures.is_empty() {
            tracing::info!(service = %name, cluster = %cluster, deployment_id = %primary.id,
                started, requested = count, unplaced = plan.failures.len(), views_ms, place_ms,
                commit_ms = proposing.elapsed().as_millis() as u64, "reconciler started tasks");
        }
        if !plan.failures.is_empty() {
            let detail = plan.failure_detail.unwrap_or_default();
            events.push(format!("service {name} was unable to place a task because no container instance met all of its requirements. {detail}").trim_end().to_string());
        }
        Ok((events, started == count))
    }
}

/// Most tasks one `StartTasks` command carries: bounds the Raft entry (a task is about 1 KiB
/// of JSON) and the time the state is locked for one apply, while keeping entries few.
pub const LAUNCH_BATCH: usize = 1000;
/// Most tasks placed by one scheduler call; its commands are proposed together. Each plan waits
/// for the previous one's commands to apply (its views show their placements): 5,000 made ten
/// such waits of a 50,000-task scale-up, 10,000 five (`bench -- sim`: 28.8 s → 15.4 s).
pub const LAUNCH_PLAN: usize = 10000;
/// `StartTasks` commands of one plan in flight at once. One after the other left the leader
/// idle while each replicated; 5 overloaded a 2-core machine into elections while the event
/// log was a sled tree and agents reported every pull and create, and is fine since.
pub const LAUNCH_IN_FLIGHT: usize = 5;
/// Task ids a "has started N tasks" message lists; more are counted (`… and K more`). ECS lists
/// them all, but a message of 1,000 ids (42 KB) is kept in the service's events, every
/// DescribeService and every snapshot; ECS's console also shortens long lists.
pub const LISTED_TASK_IDS: usize = 10;

/// ECS deployment ids look like `ecs-svc/8646900195280463695`.
pub fn new_deployment_id() -> String {
    format!("ecs-svc/{}", rand::random::<u64>() % 10u64.pow(19))
}

fn task_list(ids: &[String]) -> String {
    let listed = ids.iter().take(LISTED_TASK_IDS).map(|id| format!("(task {id})"));
    let list = listed.collect::<Vec<_>>().join(" ");
    match ids.len().saturating_sub(LISTED_TASK_IDS) {
        0 => list,
        more => format!("{list} and {more} more"),
    }
}

/// Waits until this controller leads (true) or shutdown comes first (false): how every
/// leader-only loop idles while a follower.
pub(crate) async fn until_leader(
    role: &mut watch::Receiver<crate::raft::RoleState>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    while !role.borrow_and_update().is_leader() {
        tokio::select! {
            _ = shutdown.changed() => return false,
            r = role.changed() => if r.is_err() { return false },
        }
        if *shutdown.borrow() {
            return false;
        }
    }
    true
}
