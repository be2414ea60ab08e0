//! One agent session: registration, then a loop that forwards the agent's messages up (as Raft
//! commands) and assignment changes down, until either side goes away.

use super::{Dispatcher, assign};
use crate::clock::new_id;
use crate::store::Command;
use crate::store::command::RegisterInstance;
use berth_proto::model::{Attribute, DEFAULT_CLUSTER, StatsReport, TaskStatusReport, VersionInfo};
use berth_proto::v1::{self, agent_message::Msg, controller_message::Msg as Out};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// ECS allows 10 custom attributes per resource; built-ins come on top.
const MAX_ATTRIBUTES: usize = 32;

pub struct Registered {
    pub instance_id: String,
    pub cluster: String,
    /// This session's id, recorded with the registration.
    pub session: String,
}

pub fn valid_attribute_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_/\\.".contains(c))
}

pub fn valid_attribute_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.trim() == v
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_/\\.@: ".contains(c))
}

/// Longest `agent_endpoint` accepted (the agent's own bound is the same).
pub const MAX_AGENT_ENDPOINT_LEN: usize = 256;

/// `RegisterAgent.agent_endpoint`: empty (no API) or an `http://`/`https://` URL with a host, no
/// spaces or control characters, at most [`MAX_AGENT_ENDPOINT_LEN`] long.
pub fn check_agent_endpoint(url: &str) -> Result<Option<String>, String> {
    if url.is_empty() {
        return Ok(None);
    }
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
        || url.len() > MAX_AGENT_ENDPOINT_LEN
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "agent_endpoint '{url}' is invalid: an http:// or https:// URL with a host, at most {MAX_AGENT_ENDPOINT_LEN} characters, no spaces"
        ));
    }
    Ok(Some(url.trim_end_matches('/').to_string()))
}

/// Validate the agent's registration and propose it.
pub async fn register(d: &Dispatcher, reg: v1::RegisterAgent) -> Result<Registered, Status> {
    let cluster =
        if reg.cluster.is_empty() { DEFAULT_CLUSTER.to_string() } else { reg.cluster.clone() };
    let instance_id = if reg.instance_id.is_empty() { new_id() } else { reg.instance_id.clone() };
    if instance_id.len() != 32 || !instance_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Status::invalid_argument(format!(
            "instance_id '{instance_id}' is invalid: expected 32 hex characters"
        )));
    }
    if reg.cpu <= 0 || reg.memory <= 0 {
        return Err(Status::invalid_argument(format!(
            "cpu ({}) and memory ({}) must be positive",
            reg.cpu, reg.memory
        )));
    }
    if reg.attributes.len() > MAX_ATTRIBUTES {
        return Err(Status::invalid_argument(format!(
            "too many attributes ({}; at most {MAX_ATTRIBUTES})",
            reg.attributes.len()
        )));
    }
    let mut attributes = vec![];
    for (k, v) in &reg.attributes {
        if !valid_attribute_name(k) {
            return Err(Status::invalid_argument(format!(
                "attribute name '{k}' is invalid: 1-128 of letters, digits, - _ / \\ ."
            )));
        }
        if !valid_attribute_value(v) {
            return Err(Status::invalid_argument(format!(
                "attribute '{k}' value '{v}' is invalid: 1-128 of letters, digits, - _ / \\ . @ : space, no leading or trailing space"
            )));
        }
        attributes.push(Attribute { name: k.clone(), value: Some(v.clone()) });
    }
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    let ports: Vec<u16> =
        reg.reserved_ports.iter().filter_map(|p| u16::try_from(*p).ok()).collect();
    let agent_endpoint =
        check_agent_endpoint(&reg.agent_endpoint).map_err(Status::invalid_argument)?;
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
        let full = {
            let st = self.d.shared.read();
            seen_changes = st.index.instance_changes(&id);
            assign::full(&st, &id, &mut sent)
        };
        let mut applied = self.d.applied.clone();
        let mut shutdown = self.d.shutdown.clone();
        let mut ok = self.send(registered).await && self.send(Out::Assignments(full)).await;
        while ok && self.is_current() {
            tokio::select! {
                _ = shutdown.changed() => break,
                changed = applied.changed() => {
                    if changed.is_err() { break; }
                    if self.declared_disconnected() {
                        tracing::warn!(instance_id = %id, "the leader declared this agent disconnected (missed heartbeats); closing the session so it registers again");
                        break;
                    }
                    let next = {
                        let st = self.d.shared.read();
                        let changes = st.index.instance_changes(&id);
                        if changes == seen_changes && st.index.covers(st.tasks.len()) {
                            None
                        } else {
                            seen_changes = changes;
                            assign::changes(&st, &id, &mut sent)
                        }
                    };
                    if let Some(a) = next {
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

    /// One stats period of the agent → one `RecordContainerStats` command. Bad input is logged and
    /// dropped (stats are best effort; the next period brings fresh ones).
    async fn record_stats(&self, json: &str) {
        let id = &self.reg.instance_id;
        let report: StatsReport = match serde_json::from_str(json) {
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
        let cmd =
            Command::RecordContainerStats { instance_id: id.clone(), samples: report.samples };
        if let Err(e) = self.d.proposer.propose(&cmd).await {
            tracing::debug!(instance_id = %id, error = %e, "stats report not recorded");
        }
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
                let report: TaskStatusReport = match serde_json::from_str(&ts.json) {
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
                self.record_stats(&cs.json).await;
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

#[cfg(test)]
mod agent_endpoint_tests {
    use super::*;

    #[test]
    fn agent_endpoint_is_optional_and_must_be_an_http_url() {
        assert_eq!(check_agent_endpoint(""), Ok(None));
        assert_eq!(
            check_agent_endpoint("http://10.0.0.5:51678/"),
            Ok(Some("http://10.0.0.5:51678".to_string()))
        );
        for bad in ["10.0.0.5:51678", "http://", "http://a b:1", "ftp://x:1"] {
            let e = check_agent_endpoint(bad).expect_err(bad);
            assert!(e.contains("agent_endpoint"), "{e}");
        }
        assert!(check_agent_endpoint(&format!("http://{}", "a".repeat(300))).is_err());
    }
}
