//! Agent sessions (`berth.v1.AgentDispatch`): one bidirectional stream per agent.
//!
//! * `session` — the per-connection loop: register, then forward heartbeats and task reports up
//!   (as Raft commands) and assignments down.
//! * `assign`  — pure: which tasks an instance should know about, and what changed since the
//!   last message (full set on connect, then changes only; each carries the task's version).
//! * `validate` — pure checks of agent messages (registration fields, report JSON); fuzzed.
//! * `reports` — task reports of all sessions, proposed in batches (`ReportTaskStatuses`).
//! * `heartbeats` — heartbeats received here, written to the store in batches for node liveness
//!   (`orchestrator/liveness`). A session whose agent the leader declared disconnected closes,
//!   so the agent registers again and gets its full set (without the tasks it lost).
//!
//! A reconnect replaces the previous session of the same instance; only the newest session may
//! mark the agent disconnected.

mod assign;
mod assign_secrets;
pub mod heartbeats;
pub mod reports;
mod session;
pub mod validate;

pub use validate::{valid_attribute_name, valid_attribute_value};

use crate::clock::Clock;
use crate::propose::Proposer;
use crate::store::SharedState;
use berth_proto::v1::{self, agent_dispatch_server::AgentDispatch};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// How many controller messages may queue for one agent before the session applies back-pressure.
const OUTBOUND_QUEUE: usize = 64;

#[derive(Clone)]
pub struct Dispatcher {
    pub(crate) proposer: Proposer,
    pub(crate) shared: SharedState,
    pub(crate) clock: Arc<dyn Clock>,
    /// Instance id → generation of its newest session.
    pub(crate) generations: Arc<Mutex<HashMap<String, u64>>>,
    /// Instance id → the IP its newest session came from (a warning when it changes).
    session_hosts: Arc<Mutex<HashMap<String, std::net::IpAddr>>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Heartbeats not yet written to the store (see `heartbeats`).
    pub(crate) heartbeats: Arc<heartbeats::HeartbeatBook>,
    /// Stats periods not yet written to the store (written with the heartbeats).
    pub(crate) stats: Arc<heartbeats::StatsBook>,
    /// Told to every agent at registration: how often it must send a heartbeat.
    pub(crate) heartbeat_interval: std::time::Duration,
    /// Where sessions send task reports (see `reports`).
    pub(crate) reports: reports::ReportBatcher,
    /// The cluster key: opens the secrets a task references, for its agent's assignment only.
    pub(crate) cluster_key: Option<Arc<crate::crypto::ClusterKey>>,
    /// TLS mode: a session needs an agent certificate and registers as its instance id
    /// (`crate::tls::identity`).
    pub(crate) tls: bool,
}

impl Dispatcher {
    pub fn new(
        proposer: Proposer,
        shared: SharedState,
        clock: Arc<dyn Clock>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Dispatcher {
            reports: reports::ReportBatcher::new(proposer.clone(), clock.clone()),
            proposer,
            shared,
            clock,
            generations: Arc::default(),
            session_hosts: Arc::default(),
            shutdown,
            heartbeats: Arc::default(),
            stats: Arc::default(),
            heartbeat_interval: crate::orchestrator::liveness::LivenessConfig::default()
                .heartbeat_interval,
            cluster_key: None,
            tls: false,
        }
    }

    /// TLS mode (`--tls`): sessions are bound to the agent certificate's instance id.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// The cluster key secrets are opened with (`Controller::start` loads it). Without one, a
    /// task that references a secret is stopped with a reason instead of started.
    pub fn with_cluster_key(mut self, key: Arc<crate::crypto::ClusterKey>) -> Self {
        self.cluster_key = Some(key);
        self
    }

    /// The heartbeat interval agents are told to keep (`--heartbeat-interval-secs`).
    pub fn with_heartbeat_interval(mut self, interval: std::time::Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// The heartbeats this dispatcher's sessions record, for its `HeartbeatRecorder`.
    pub fn heartbeat_book(&self) -> Arc<heartbeats::HeartbeatBook> {
        self.heartbeats.clone()
    }

    /// The stats periods this dispatcher's sessions received, for its `HeartbeatRecorder`.
    pub fn stats_book(&self) -> Arc<heartbeats::StatsBook> {
        self.stats.clone()
    }
}

#[tonic::async_trait]
impl AgentDispatch for Dispatcher {
    type SessionStream = ReceiverStream<Result<v1::ControllerMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        // TLS mode: no agent certificate, no session (checked before reading anything).
        let peer = berth_security::peer_identity(&request);
        crate::tls::identity::bind_instance_id(self.tls, peer.clone(), "")?;
        let remote_ip = request.remote_addr().map(|a| a.ip());
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument("the agent closed the session before registering")
        })?;
        let Some(v1::agent_message::Msg::Register(mut reg)) = first.msg else {
            return Err(Status::invalid_argument(
                "the first message of a session must be RegisterAgent",
            ));
        };
        reg.instance_id = crate::tls::identity::bind_instance_id(self.tls, peer, &reg.instance_id)?;
        let registered = session::register(self, reg).await?;
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let generation = {
            let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
            let n = g.entry(registered.instance_id.clone()).or_default();
            *n += 1;
            *n
        };
        {
            // A session from another host replacing this instance's: an agent moved, or two
            // agents share one data dir (a copied certificate): worth an operator's look.
            let mut hosts = self.session_hosts.lock().unwrap_or_else(|e| e.into_inner());
            let previous = match remote_ip {
                Some(ip) => hosts.insert(registered.instance_id.clone(), ip),
                None => None,
            };
            if let (Some(before), Some(now)) = (previous, remote_ip)
                && before != now
            {
                tracing::warn!(
                    instance_id = %registered.instance_id,
                    previous_host = %before,
                    host = %now,
                    "a session from another host replaces this instance's: the agent moved, or two agents share one data dir (copied certificate or instance-id)"
                );
            }
        }
        let session = session::Session::new(self.clone(), registered, generation, tx);
        tokio::spawn(session.run(inbound));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
