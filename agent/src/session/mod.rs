//! # session — the agent's side of `AgentDispatch.Session`
//!
//! One call of [`run_session`] is one connection: connect to an endpoint, send `RegisterAgent`,
//! then loop over three inputs — controller messages (Registered, Assignments, HeartbeatAck),
//! task reports from the supervisor, and the heartbeat tick. The caller ([`crate::Agent::run`])
//! rotates endpoints and backs off between calls; a leader hint in the error (gRPC metadata
//! [`LEADER_HINT_METADATA`]) is tried next.
//!
//! On `Registered` the instance id is persisted and the supervisor is created (once per agent
//! process, it outlives connections); then the reports made while disconnected are delivered in
//! order (the supervisor queues them, bounded by `REPORT_QUEUE_BOUND`), followed by the latest
//! report of every task not already covered (the controller ignores what it already has).
//!
//! * `register.rs` — the RegisterAgent message, host resources, the instance-id file.

pub mod register;

#[cfg(test)]
mod tests;

use crate::runtime::ContainerRuntime;
use crate::supervisor::{ReportStream, Supervisor, SupervisorConfig};
use crate::{AgentConfig, AgentError, Clock};
use berth_proto::model::TaskStatusReport;
use berth_proto::v1::agent_dispatch_client::AgentDispatchClient;
use berth_proto::v1::{self as pb, agent_message, controller_message};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// gRPC metadata key (or `leader=` message suffix) a follower controller may use to name the
/// leader's endpoint.
pub const LEADER_HINT_METADATA: &str = "x-berth-leader";

/// Connect timeout per endpoint attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 keepalive: a dead controller is noticed within interval + timeout even when no
/// messages flow.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Outbound queue per connection; heartbeats and reports are small and few.
const OUTBOUND_QUEUE: usize = 1024;

/// State that survives reconnects.
pub struct SessionState {
    pub instance_id: String,
    pub supervisor: Option<(Supervisor, ReportStream)>,
    pub docker_version: String,
    /// The metadata endpoint's view and the stats sampler, hooked onto the supervisor when it
    /// is created (`crate::telemetry`; off unless the agent sets it).
    pub telemetry: crate::telemetry::Telemetry,
    /// Heartbeat round trips and the connected flag (`crate::metrics`).
    pub metrics: crate::metrics::AgentMetrics,
    /// TLS for `https://` endpoints (`crate::join`); `None`: plaintext only.
    pub tls: Option<berth_security::ClientTls>,
    heartbeat_seq: u64,
    /// The last heartbeat sent and when, until its ack arrives.
    heartbeat_sent: Option<(u64, std::time::Instant)>,
}

impl SessionState {
    pub fn new(instance_id: String, docker_version: String) -> Self {
        SessionState {
            instance_id,
            supervisor: None,
            docker_version,
            telemetry: Default::default(),
            metrics: Default::default(),
            tls: None,
            heartbeat_seq: 0,
            heartbeat_sent: None,
        }
    }
}

/// How a session ended without error (the controller closed the stream).
#[derive(Debug)]
pub struct SessionEnd {
    /// Whether registration succeeded on this connection (resets the caller's backoff).
    pub registered: bool,
}

/// What an agent on an `http://` endpoint of a TLS controller is told.
const PLAINTEXT_HINT: &str = "this controller requires TLS: use its https:// endpoint, and start the agent once with --join-token (`berth operator token create --role agent`)";

fn controller_err(endpoint: &str, status: &tonic::Status) -> AgentError {
    let leader_hint = status
        .metadata()
        .get(LEADER_HINT_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            status
                .message()
                .split_whitespace()
                .find_map(|w| w.strip_prefix("leader="))
                .map(str::to_string)
        })
        .filter(|h| h.starts_with("http://") || h.starts_with("https://"));
    // A TLS controller answers a plaintext client with a GOAWAY naming the fix
    // (`berth_security::tls::PLAINTEXT_REFUSED`), visible only in the error's sources.
    let message = if format!("{status:?}").contains(berth_security::tls::PLAINTEXT_REFUSED) {
        format!("{}: {PLAINTEXT_HINT}", status.code())
    } else {
        format!("{}: {}", status.code(), status.message())
    };
    AgentError::Controller { endpoint: endpoint.to_string(), message, leader_hint }
}

fn report_message(r: &TaskStatusReport) -> Option<pb::AgentMessage> {
    match serde_json::to_string(r) {
        Ok(json) => Some(pb::AgentMessage {
            msg: Some(agent_message::Msg::TaskStatus(pb::TaskStatusReport {
                task_id: r.task_id.clone(),
                json,
            })),
        }),
        Err(e) => {
            tracing::error!(task_id = %r.task_id, error = %e, "report does not serialize");
            None
        }
    }
}

/// One stats period as the `ContainerStatsReport` message.
fn stats_message(r: &berth_proto::model::StatsReport) -> Option<pb::AgentMessage> {
    match serde_json::to_string(r) {
        Ok(json) => Some(pb::AgentMessage {
            msg: Some(agent_message::Msg::ContainerStats(pb::ContainerStatsReport { json })),
        }),
        Err(e) => {
            tracing::error!(error = %e, "stats report does not serialize");
            None
        }
    }
}

enum Event {
    Inbound(Result<Option<pb::ControllerMessage>, tonic::Status>),
    Reports(Vec<TaskStatusReport>),
    Stats(Arc<berth_proto::model::StatsReport>),
    Heartbeat,
}

/// Runs one connection until it breaks. Cancel-safe at await points (dropping it disconnects).
pub async fn run_session(
    cfg: &AgentConfig,
    endpoint: &str,
    runtime: &Arc<dyn ContainerRuntime>,
    clock: &Arc<dyn Clock>,
    state: &mut SessionState,
) -> Result<SessionEnd, AgentError> {
    let cerr = |message: String| AgentError::Controller {
        endpoint: endpoint.to_string(),
        message,
        leader_hint: None,
    };
    // `https://`: mTLS with the agent's certificate (`berth_security::connect_channel`).
    let channel = berth_security::connect_channel(endpoint, state.tls.as_ref(), |e| {
        e.connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
    })
    .await
    .map_err(|e| cerr(format!("connect: {e}")))?;
    let mut client = AgentDispatchClient::new(channel)
        .max_decoding_message_size(berth_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(berth_proto::MAX_MESSAGE_BYTES);

    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(OUTBOUND_QUEUE);
    let register = register::register_message(cfg, &state.instance_id, &state.docker_version);
    tx.send(pb::AgentMessage { msg: Some(agent_message::Msg::Register(register)) })
        .await
        .map_err(|_| cerr("outbound stream closed".into()))?;
    let inbound = client.session(ReceiverStream::new(rx)).await;
    let mut inbound = match inbound {
        Ok(reply) => reply.into_inner(),
        Err(s) if berth_security::tls::refuses_plaintext(endpoint).await => {
            return Err(cerr(format!("{}: {}", s.code(), PLAINTEXT_HINT)));
        }
        Err(s) => return Err(controller_err(endpoint, &s)),
    };
    tracing::info!(endpoint, cluster = %cfg.cluster, "session open; registering");

    let mut heartbeat = tokio::time::interval(cfg.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await; // the first tick is immediate; registration is the first message
    let mut registered = false;
    loop {
        let event = {
            let reports = async {
                match state.supervisor.as_mut() {
                    Some((_, rx)) if registered => rx.recv().await,
                    _ => std::future::pending().await,
                }
            };
            let stats = state.telemetry.next_report();
            tokio::select! {
                m = inbound.message() => Event::Inbound(m),
                Some(r) = reports => Event::Reports(r),
                Some(s) = stats, if registered => Event::Stats(s),
                _ = heartbeat.tick() => Event::Heartbeat,
            }
        };
        let out = match event {
            Event::Inbound(Err(status)) => return Err(controller_err(endpoint, &status)),
            Event::Inbound(Ok(None)) => return Ok(SessionEnd { registered }),
            Event::Inbound(Ok(Some(m))) => {
                if let Some(controller_message::Msg::Registered(r)) = &m.msg {
                    let wanted = Duration::from_millis(r.heartbeat_interval_ms);
                    if !wanted.is_zero() && wanted != heartbeat.period() {
                        // The controller judges liveness by its own interval: beat at that one.
                        tracing::info!(
                            interval_ms = r.heartbeat_interval_ms,
                            "heartbeat interval set by the controller"
                        );
                        heartbeat =
                            tokio::time::interval_at(tokio::time::Instant::now() + wanted, wanted);
                        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                }
                handle_inbound(cfg, runtime, clock, state, m, &mut registered).await?
            }
            Event::Reports(rs) => rs.iter().filter_map(report_message).collect(),
            Event::Stats(s) => stats_message(&s).into_iter().collect(),
            Event::Heartbeat => {
                state.heartbeat_seq += 1;
                state.heartbeat_sent = Some((state.heartbeat_seq, std::time::Instant::now()));
                vec![pb::AgentMessage {
                    msg: Some(agent_message::Msg::Heartbeat(pb::Heartbeat {
                        seq: state.heartbeat_seq,
                    })),
                }]
            }
        };
        for m in out {
            tx.send(m).await.map_err(|_| cerr("outbound stream closed".into()))?;
        }
    }
}

/// Handles one controller message; returns messages to send.
async fn handle_inbound(
    cfg: &AgentConfig,
    runtime: &Arc<dyn ContainerRuntime>,
    clock: &Arc<dyn Clock>,
    state: &mut SessionState,
    m: pb::ControllerMessage,
    registered: &mut bool,
) -> Result<Vec<pb::AgentMessage>, AgentError> {
    match m.msg {
        Some(controller_message::Msg::Registered(r)) => {
            if r.instance_id.is_empty() {
                tracing::warn!("Registered without an instance id; ignored");
                return Ok(Vec::new());
            }
            if r.instance_id != state.instance_id {
                register::write_instance_id(&cfg.data_dir, &r.instance_id)?;
            }
            match &state.supervisor {
                Some((sup, _)) if sup.instance_id() != r.instance_id => {
                    // Containers are labelled with the first id; running under two ids would
                    // orphan them. Keep the first and let the operator see why.
                    tracing::error!(have = sup.instance_id(), got = %r.instance_id,
                        "controller gave a different instance id; keeping the current one until restart");
                }
                Some(_) => {}
                None => {
                    let sc = SupervisorConfig {
                        instance_id: r.instance_id.clone(),
                        cluster: cfg.cluster.clone(),
                        pull_behavior: cfg.image_pull_behavior,
                        poll_interval: cfg.poll_interval,
                        task_cleanup_wait: cfg.task_cleanup_wait,
                        awsvpc: cfg.awsvpc.clone().with_zone(
                            register::attributes(cfg)
                                .get("ecs.availability-zone")
                                .map(String::as_str),
                        ),
                    };
                    let (mut sup, reports) = Supervisor::new(runtime.clone(), sc, clock.clone());
                    state.telemetry.attach(&mut sup, runtime, clock);
                    state.supervisor = Some((sup, reports));
                }
            }
            state.instance_id = r.instance_id.clone();
            *registered = true;
            state.metrics.set_connected(true);
            tracing::info!(instance_id = %r.instance_id, arn = %r.instance_arn, "registered");
            // Deliver what happened while disconnected, in order, then the latest of every task.
            let Some((_, rx)) = state.supervisor.as_mut() else {
                return Ok(Vec::new());
            };
            Ok(rx.drain_for_reconnect().iter().filter_map(report_message).collect())
        }
        Some(controller_message::Msg::Assignments(a)) => {
            match state.supervisor.as_mut() {
                Some((sup, _)) if *registered => {
                    tracing::debug!(full = a.full, count = a.tasks.len(), "assignments");
                    sup.apply(a.full, &a.tasks).await;
                }
                _ => tracing::warn!("assignments before registration; ignored"),
            }
            Ok(Vec::new())
        }
        Some(controller_message::Msg::HeartbeatAck(ack)) => {
            if let Some((seq, sent)) = state.heartbeat_sent
                && seq == ack.seq
            {
                state.heartbeat_sent = None;
                state.metrics.heartbeat_rtt.observe(sent.elapsed().as_secs_f64());
            }
            Ok(Vec::new())
        }
        None => Ok(Vec::new()),
    }
}
