//! One agent session: registration, then a loop that forwards the agent's messages up (as Raft
//! commands) and assignment changes down, until either side goes away.

use super::{Dispatcher, assign};
use crate::clock::new_id;
use crate::store::Command;
use crate::store::command::RegisterInstance;
use berth_proto::model::{DEFAULT_CLUSTER, TaskStatusReport, VersionInfo};
use berth_proto::v1::{self, agent_message::Msg, controller_message::Msg as Out};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

pub struct Registered {
    pub instance_id: String,
    pub cluster: String,
    /// This session's id, recorded with the registration.
    pub session: String,
}

/// Validate the agent's registration and propose it.
pub async fn register(d: &Dispatcher, reg: v1::RegisterAgent) -> Result<Registered, Status> {
    let cluster =
        if reg.cluster.is_empty() { DEFAULT_CLUSTER.to_string() } else { reg.cluster.clone() };
    // The pure checks (`validate.rs`, also what the fuzz targets run).
    let checked = super::validate::check_registration(&reg).map_err(Status::invalid_argument)?;
    let instance_id = if reg.instance_id.is_empty() { new_id() } else { reg.instance_id.clone() };
    let super::validate::CheckedRegistration { attributes, reserved_ports: ports, agent_endpoint } =
        checked;
    if d.shared.read().security.is_revoked(crate::store::deregister::AGENT_ROLE, &instance_id) {
        tracing::warn!(instance_id = %instance_id, "registration refused: the instance was deregistered (identity revoked)");
        return Err(Status::permission_denied(crate::store::deregister::revoked_agent_message(
            &instance_id,
        )));
    }
    let session = new_id();
    let cmd = Command::RegisterInstance(RegisterInstance {
        cluster: cluster.clone(),
        instance_id: instance_id.clone(),
        session: session.clone(),
        attributes,
        cpu: reg.cpu,
        memory: reg.memory,
        reserved_ports: ports,
        version_info: VersionInfo {
            agent_version: Some(reg.agent_version.clone()),
            agent_hash: None,
            docker_version: Some(reg.docker_version.clone()),
        },
        hostname: (!reg.hostname.is_empty()).then(|| reg.hostname.clone()),
        agent_endpoint,
        now: d.clock.now(),
    });
    d.proposer.propose(&cmd).await.map_err(Status::from)?;
    tracing::info!(instance_id = %instance_id, cluster = %cluster, "agent registered");
    Ok(Registered { instance_id, cluster, session })
}

/// Reports of one session waiting for the pump, at most (then the session waits: back-pressure).
const REPORT_QUEUE: usize = 1024;
/// A group whose proposal failed (leader change, timeout) is proposed again, this many times at
/// most, after a pause growing by [`REPORT_RETRY_PAUSE`] per attempt. Reports are idempotent
/// (statuses only move forward), so a report applied although its proposal "failed" is harmless
/// to apply again; one never applied would otherwise stay lost until the agent reconnects.
const REPORT_RETRIES: u32 = 20;
const REPORT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// One session's task reports, in arrival order: whatever arrived while the previous group was
/// being applied is submitted as the next group (`reports.rs` never splits a group), so an
/// agent's reports apply in order and a burst costs one round trip, not one per report. A group
/// holds at most one report per task (a second one starts the next group), so every reported
/// transition is its own event. Failed reports are retried ahead of the ones that arrived
/// meanwhile.
async fn report_pump(
    batcher: super::reports::ReportBatcher,
    instance_id: String,
    mut rx: mpsc::Receiver<TaskStatusReport>,
) {
    use super::reports::ReportOutcome;
    // A report held back for the next group: its task already has one in the current group.
    let mut held: Option<TaskStatusReport> = None;
    loop {
        let first = match held.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => break,
            },
        };
        let mut tasks: std::collections::HashSet<String> = [first.task_id.clone()].into();
        let mut group = vec![first];
        let mut attempt = 0;
        loop {
            // At most one report per task in a group: each transition is applied by a command
            // of its own and so gets its own event (an agent delivering what happened while it
            // was disconnected sends several reports of one task at once).
            while held.is_none() {
                let Ok(r) = rx.try_recv() else { break };
                if tasks.insert(r.task_id.clone()) {
                    group.push(r);
                } else {
                    held = Some(r);
                }
            }
            let outcomes = batcher.submit(&instance_id, group.clone()).await;
            let mut failed = vec![];
            let mut error = None;
            for (report, outcome) in group.into_iter().zip(outcomes) {
                match outcome {
                    ReportOutcome::Applied => {}
                    ReportOutcome::Refused => {
                        tracing::warn!(instance_id = %instance_id, task_id = %report.task_id, "task report refused: the task is not assigned to this instance");
                    }
                    ReportOutcome::Failed(e) => {
                        failed.push(report);
                        error = Some(e);
                    }
                }
            }
            let Some(error) = error else { break };
            attempt += 1;
            if attempt > REPORT_RETRIES {
                tracing::warn!(instance_id = %instance_id, reports = failed.len(), %error, "task reports not recorded; giving up");
                break;
            }
            tracing::debug!(instance_id = %instance_id, reports = failed.len(), %error, attempt, "task reports not recorded; retrying");
            tokio::time::sleep(REPORT_RETRY_PAUSE * attempt).await;
            tasks = failed.iter().map(|r| r.task_id.clone()).collect();
            group = failed;
        }
    }
}

pub struct Session {
    d: Dispatcher,
    reg: Registered,
    generation: u64,
    tx: mpsc::Sender<Result<v1::ControllerMessage, Status>>,
}

impl Session {
    pub fn new(
        d: Dispatcher,
        reg: Registered,
        generation: u64,
        tx: mpsc::Sender<Result<v1::ControllerMessage, Status>>,
    ) -> Self {
        Session { d, reg, generation, tx }
    }

    async fn send(&self, msg: Out) -> bool {
        self.tx.send(Ok(v1::ControllerMessage { msg: Some(msg) })).await.is_ok()
    }

    /// True when the store says this session's agent is disconnected although the session is
    /// open: node liveness saw no heartbeat in time (or recorded them too late).
    fn declared_disconnected(&self) -> bool {
        let st = self.d.shared.read();
        st.instances
            .get(&self.reg.instance_id)
            .is_some_and(|r| r.session == self.reg.session && !r.instance.agent_connected)
    }

    /// True once the instance was deregistered (its identity revoked).
    fn revoked(&self) -> bool {
        let st = self.d.shared.read();
        st.security.is_revoked(crate::store::deregister::AGENT_ROLE, &self.reg.instance_id)
    }

    fn is_current(&self) -> bool {
        let g = self.d.generations.lock().unwrap_or_else(|e| e.into_inner());
        g.get(&self.reg.instance_id) == Some(&self.generation)
    }

    pub async fn run(self, mut inbound: Streaming<v1::AgentMessage>) {
        let id = self.reg.instance_id.clone();
        let registered = Out::Registered(v1::Registered {
            instance_id: id.clone(),
            instance_arn: self.d.shared.read().scope.container_instance(&self.reg.cluster, &id),
            cluster: self.reg.cluster.clone(),
            heartbeat_interval_ms: self.d.heartbeat_interval.as_millis() as u64,
        });
        // Messages from the agent arrive through a channel, so the loop below selects only on
        // cancel-safe futures.
        let (in_tx, mut in_rx) = mpsc::channel::<v1::AgentMessage>(super::OUTBOUND_QUEUE);
        let reader = tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if in_tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        // Task reports go through a pump of their own (see `report_pump`), so a report in flight
        // holds up neither heartbeats nor the next reports' arrival.
        let (reports_tx, reports_rx) = mpsc::channel(REPORT_QUEUE);
        let pump = tokio::spawn(report_pump(self.d.reports.clone(), id.clone(), reports_rx));
        let mut sent: HashMap<String, u64> = HashMap::new();
        // The instance's change counter when its tasks were last compared: an applied command
        // that touched no task of this instance needs no look at them.
        let mut seen_changes;
        // Tasks given their secrets' values in this session (`assign_secrets.rs`).
        let mut delivered = std::collections::HashSet::new();
        let key = self.d.cluster_key.clone();
        // Woken when this instance or a task on it changes (before the first read: a change
        // applied meanwhile is kept as a permit).
        let signal = self.d.shared.subscribe_instance(&id);
        let (full, unstartable) = {
            let st = self.d.shared.read();
            seen_changes = st.index.instance_changes(&id);
            let mut full = assign::full(&st, &id, &mut sent);
            let failed = assign::attach_secrets(&st, key.as_deref(), &mut full, &mut delivered);
            (full, failed)
        };
        for report in unstartable {
            let _ = reports_tx.send(report).await;
        }
        let mut shutdown = self.d.shutdown.clone();
        let mut ok = self.send(registered).await && self.send(Out::Assignments(full)).await;
        while ok && self.is_current() {
            tokio::select! {
                _ = shutdown.changed() => break,
                () = signal.changed() => {
                    if !self.is_current() {
                        break;
                    }
                    if self.revoked() {
                        // The last word: the full set (without the tasks a forced
                        // deregistration stopped, so the agent stops their containers), then why.
                        let last = assign::full(&self.d.shared.read(), &id, &mut sent);
                        let _ = self.send(Out::Assignments(last)).await;
                        let reason = crate::store::deregister::revoked_agent_message(&id);
                        tracing::warn!(instance_id = %id, "instance deregistered; closing its session");
                        let _ = self.tx.send(Err(Status::permission_denied(reason))).await;
                        break;
                    }
                    if self.declared_disconnected() {
                        tracing::warn!(instance_id = %id, "the leader declared this agent disconnected (missed heartbeats); closing the session so it registers again");
                        break;
                    }
                    let mut unstartable = vec![];
                    let next = {
                        let st = self.d.shared.read();
                        let changes = st.index.instance_changes(&id);
                        if changes == seen_changes && st.index.covers(st.tasks.len()) {
                            None
                        } else {
                            seen_changes = changes;
                            assign::changes(&st, &id, &mut sent).map(|mut a| {
                                unstartable = assign::attach_secrets(
                                    &st,
                                    key.as_deref(),
                                    &mut a,
                                    &mut delivered,
                                );
                                a
                            })
                        }
                    };
                    for report in unstartable {
                        let _ = reports_tx.send(report).await;
                    }
                    if let Some(a) = next.filter(|a| !a.tasks.is_empty()) {
                        ok = self.send(Out::Assignments(a)).await;
                    }
                }
                msg = in_rx.recv() => match msg {
                    None => break,
                    Some(m) => ok = self.handle(m, &reports_tx).await,
                },
            }
        }
        reader.abort();
        // Reports the agent sent before it went are applied before it is marked disconnected.
        drop(reports_tx);
        let _ = pump.await;
        if self.is_current() && !*self.d.shutdown.borrow() {
            let cmd = Command::SetAgentConnected {
                instance_id: id.clone(),
                session: self.reg.session.clone(),
                connected: false,
                now: self.d.clock.now(),
            };
            if let Err(e) = self.d.proposer.propose(&cmd).await {
                tracing::warn!(instance_id = %id, error = %e, "could not record the agent's disconnection");
            }
        }
        tracing::info!(instance_id = %id, "agent session ended");
    }

    /// One stats period of the agent → the stats book (written in the next batch). Bad input is
    /// logged and dropped (stats are best effort; the next period brings fresh ones).
    fn record_stats(&self, json: &str) {
        let id = &self.reg.instance_id;
        let report = match super::validate::decode_stats(json) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(instance_id = %id, error = %e, "undecodable stats report ignored");
                return;
            }
        };
        if let Err(reason) = crate::store::stats::check_report(&report) {
            tracing::warn!(instance_id = %id, %reason, "stats report ignored");
            return;
        }
        if report.samples.is_empty() {
            return;
        }
        // Written with the next batch of heartbeats (`heartbeats.rs`).
        self.d.stats.put(id, report.samples);
    }

    async fn handle(&self, m: v1::AgentMessage, reports: &mpsc::Sender<TaskStatusReport>) -> bool {
        match m.msg {
            Some(Msg::Heartbeat(h)) => {
                self.d.heartbeats.record(
                    &self.reg.instance_id,
                    &self.reg.session,
                    self.d.clock.now(),
                );
                self.send(Out::HeartbeatAck(v1::HeartbeatAck { seq: h.seq })).await
            }
            Some(Msg::TaskStatus(ts)) => {
                let report = match super::validate::decode_task_report(&ts.json) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(instance_id = %self.reg.instance_id, task_id = %ts.task_id, error = %e, "undecodable task report ignored");
                        return true;
                    }
                };
                // The pump ends only when this session drops its sender.
                let _ = reports.send(report).await;
                true
            }
            Some(Msg::ContainerStats(cs)) => {
                self.record_stats(&cs.json);
                true
            }
            Some(Msg::Register(_)) => {
                tracing::warn!(instance_id = %self.reg.instance_id, "second RegisterAgent in one session ignored");
                true
            }
            None => true,
        }
    }
}
