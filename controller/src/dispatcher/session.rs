//! One agent session: registration, then a loop that forwards the agent's messages up (as Raft
//! commands) and assignment changes down, until either side goes away.

use super::{Dispatcher, assign};
use crate::clock::new_id;
use crate::store::Command;
use crate::store::command::RegisterInstance;
use berth_proto::model::{Attribute, DEFAULT_CLUSTER, TaskStatusReport, VersionInfo};
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
        now: d.clock.now(),
    });
    d.proposer.propose(&cmd).await.map_err(Status::from)?;
    tracing::info!(instance = %instance_id, cluster = %cluster, "agent registered");
    Ok(Registered { instance_id, cluster, session })
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
        let mut sent: HashMap<String, u64> = HashMap::new();
        let full = assign::full(&self.d.shared.read(), &id, &mut sent);
        let mut applied = self.d.applied.clone();
        let mut shutdown = self.d.shutdown.clone();
        let mut ok = self.send(registered).await && self.send(Out::Assignments(full)).await;
        while ok && self.is_current() {
            tokio::select! {
                _ = shutdown.changed() => break,
                changed = applied.changed() => {
                    if changed.is_err() { break; }
                    if self.declared_disconnected() {
                        tracing::warn!(instance = %id, "the leader declared this agent disconnected (missed heartbeats); closing the session so it registers again");
                        break;
                    }
                    let next = assign::changes(&self.d.shared.read(), &id, &mut sent);
                    if let Some(a) = next {
                        ok = self.send(Out::Assignments(a)).await;
                    }
                }
                msg = in_rx.recv() => match msg {
                    None => break,
                    Some(m) => ok = self.handle(m).await,
                },
            }
        }
        reader.abort();
        if self.is_current() && !*self.d.shutdown.borrow() {
            let cmd = Command::SetAgentConnected {
                instance_id: id.clone(),
                session: self.reg.session.clone(),
                connected: false,
                now: self.d.clock.now(),
            };
            if let Err(e) = self.d.proposer.propose(&cmd).await {
                tracing::warn!(instance = %id, error = %e, "could not record the agent's disconnection");
            }
        }
        tracing::info!(instance = %id, "agent session ended");
    }

    async fn handle(&self, m: v1::AgentMessage) -> bool {
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
                        tracing::warn!(instance = %self.reg.instance_id, task = %ts.task_id, error = %e, "undecodable task report ignored");
                        return true;
                    }
                };
                let cmd = Command::ReportTaskStatus {
                    instance_id: self.reg.instance_id.clone(),
                    report,
                    now: self.d.clock.now(),
                };
                if let Err(e) = self.d.proposer.propose(&cmd).await {
                    tracing::warn!(instance = %self.reg.instance_id, task = %ts.task_id, error = %e, "task report not recorded");
                }
                true
            }
            Some(Msg::Register(_)) => {
                tracing::warn!(instance = %self.reg.instance_id, "second RegisterAgent in one session ignored");
                true
            }
            None => true,
        }
    }
}
