//! Wiring: storage → raft → store, the gRPC services (client API and agent dispatch) on one
//! listener, and the leader-only orchestrator. `Controller::start` returns once the listener is
//! bound; `RunningController::stop` shuts everything down in order and joins every task.
//!
//! Two shapes, chosen by the config:
//! * a group of one (no `initial_cluster`, no `join`: `berth dev`): `RaftNode::start_single`,
//!   no peer listener;
//! * a member of a replicated group: the gRPC transport (`peer::GrpcTransport`), the
//!   `RaftPeer` service on its own listener (`peer_listen`), and a proposer that forwards to
//!   the leader (`peer::PeerForwarder`). Fresh storage bootstraps from `initial_cluster` (every
//!   initial member with the same list); a restarted member ignores the list's membership
//!   (its data dir wins) but still takes peer addresses from it for ids its book lacks. With
//!   `join`, the node starts empty and waits to be added (`AddMember` on the leader);
//!   `initial_cluster` then lists the peer addresses of the existing members, which it needs
//!   to answer the leader before its first snapshot arrives.

use crate::api::Api;
use crate::clock::{Clock, SystemClock};
use crate::dispatcher::Dispatcher;
use crate::dispatcher::heartbeats::HeartbeatRecorder;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::orchestrator::liveness::{LivenessConfig, LivenessMonitor};
use crate::orchestrator::{Orchestrator, OrchestratorConfig};
use crate::peer::{GrpcTransport, PeerAddresses, PeerForwarder, follow_address_book};
use crate::propose::Proposer;
use crate::raft::{RaftConfig, RaftHandle, RaftNode};
use crate::storage::SledBackend;
use crate::store::{SharedState, State, Store};
use berth_proto::model::ArnScope;
use berth_proto::v1::{agent_dispatch_server::AgentDispatchServer, berth_server::BerthServer};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub scope: ArnScope,
    /// Raft knobs: `raft.id` is the node id, `raft.snapshot_threshold` the compaction
    /// threshold, `raft.tick_interval` the tick. `peers`, `addresses` and `client_address`
    /// are derived from the fields below when the controller starts.
    pub raft: RaftConfig,
    pub orchestrator: OrchestratorConfig,
    /// Heartbeat grace and lost-node timeout (`orchestrator/liveness`).
    pub liveness: LivenessConfig,
    /// Listen address of the `RaftPeer` service (required in a replicated group).
    pub peer_listen: Option<SocketAddr>,
    /// Node id → peer `host:port` of the initial members (or, with `join`, of the existing
    /// members). Empty and `join == false`: a group of one.
    pub initial_cluster: BTreeMap<u64, String>,
    /// Start empty and wait to be added to an existing group.
    pub join: bool,
    /// Client API address announced to the group (`http://host:port`); defaults to
    /// `http://<bound listen address>`.
    pub advertise_client: Option<String>,
    /// Listen address of the HTTP port (`crate::http`: `/v1/events`, `/healthz`); `None`: off.
    pub http_listen: Option<SocketAddr>,
    /// Event log retention (by age and count), applied by the leader.
    pub retention: crate::events::retention::RetentionConfig,
    /// Hardened input on the client listener: rate limit, unary deadline, request size
    /// (`crate::limits`).
    pub limits: crate::limits::LimitsConfig,
    /// The cluster key file (`--cluster-key-file`); `None`: `<data_dir>/cluster.key`. Loaded
    /// (or created) at start; the same key must be given to every member of a group.
    pub cluster_key_file: Option<PathBuf>,
    /// Enforce API tokens on the client listener and on `/v1/events` (`--acl`, `crate::auth`);
    /// the leader makes the first admin token when the store has none.
    pub acl: bool,
    /// Peer mTLS (`crate::peer::PeerTls`, built from this controller's certificate when TLS is
    /// on): the peer listener admits only controller certificates of the cluster CA and the
    /// peer clients present ours. `None`: plaintext peers.
    pub peer_tls: Option<crate::peer::PeerTls>,
    /// TLS mode of the client listener (`--tls`, `--insecure`, `--cert-ttl`; `crate::tls`).
    pub tls: crate::tls::TlsConfig,
}

/// How long `RunningController::stop` waits for another member to take over leadership.
pub const LEADERSHIP_TRANSFER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Parses `1=host:port,2=host:port` (the `--initial-cluster` syntax).
pub fn parse_initial_cluster(text: &str) -> Result<BTreeMap<u64, String>> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, address) = part
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("'{part}' is not ID=HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| Error::Config(format!("'{id}' in '{part}' is not a node id")))?;
        let address = address.trim();
        if id == 0 || address.is_empty() {
            return Err(Error::Config(format!("'{part}': id must be non-zero, address non-empty")));
        }
        if out.insert(id, address.to_string()).is_some() {
            return Err(Error::Config(format!("node id {id} appears twice")));
        }
    }
    Ok(out)
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            data_dir: PathBuf::from("berth-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            scope: ArnScope::default(),
            raft: RaftConfig::default(),
            orchestrator: OrchestratorConfig::default(),
            liveness: LivenessConfig::default(),
            peer_listen: None,
            initial_cluster: BTreeMap::new(),
            join: false,
            advertise_client: None,
            http_listen: None,
            retention: Default::default(),
            limits: Default::default(),
            cluster_key_file: None,
            acl: false,
            peer_tls: None,
            tls: Default::default(),
        }
    }
}

impl ControllerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.scope.region.is_empty() || self.scope.account.is_empty() {
            return Err(Error::Config("region and account must not be empty".into()));
        }
        self.effective_raft(None).validate().map_err(|e| Error::Config(e.to_string()))?;
        self.liveness.validate()?;
        self.limits.validate()?;
        crate::tls::listen_policy(self)?;
        if !self.is_replicated() {
            return Ok(());
        }
        if self.peer_listen.is_none() {
            return Err(Error::Config(
                "a replicated controller needs a peer listen address".into(),
            ));
        }
        let id = self.raft.id;
        // A fresh joiner needs the existing members' addresses to answer the leader before its
        // first snapshot; a restarted one has them in its data dir, so none are required here.
        if !self.join && !self.initial_cluster.contains_key(&id) {
            return Err(Error::Config(format!("the initial cluster does not list node {id}")));
        }
        Ok(())
    }

    /// The Raft config this controller runs with: membership and addresses derived from
    /// `initial_cluster` / `join` (a group of one: just this node).
    pub fn effective_raft(&self, client_addr: Option<SocketAddr>) -> RaftConfig {
        if !self.is_replicated() {
            return RaftConfig { peers: vec![self.raft.id], ..self.raft.clone() };
        }
        let peers =
            if self.join { Vec::new() } else { self.initial_cluster.keys().copied().collect() };
        let client_address = self.advertise_client.clone().or_else(|| {
            client_addr
                .map(|a| format!("{}://{a}", if self.tls.enabled { "https" } else { "http" }))
        });
        RaftConfig {
            peers,
            addresses: self.initial_cluster.clone(),
            client_address,
            ..self.raft.clone()
        }
    }

    /// Where the cluster key lives: `cluster_key_file`, else `<data_dir>/cluster.key`.
    pub fn cluster_key_path(&self) -> PathBuf {
        self.cluster_key_file.clone().unwrap_or_else(|| self.data_dir.join("cluster.key"))
    }

    /// True unless this is a group of one.
    pub fn is_replicated(&self) -> bool {
        self.join || !self.initial_cluster.is_empty()
    }
}

pub struct Controller;

pub struct RunningController {
    pub addr: SocketAddr,
    /// Bound address of the peer listener (replicated groups only).
    pub peer_addr: Option<SocketAddr>,
    /// Bound address of the HTTP port (when `http_listen` is set).
    pub http_addr: Option<SocketAddr>,
    pub raft: RaftHandle,
    pub shared: SharedState,
    /// This controller's copy of the event log.
    pub events: Arc<crate::events::EventLog>,
    /// When node liveness took office here (the start of its grace); `None` while a follower.
    pub leader_since: watch::Receiver<Option<berth_proto::model::Timestamp>>,
    /// This controller's Prometheus series (served on `/metrics` of the HTTP port).
    pub metrics: Metrics,
    /// The cluster key loaded at start (`ControllerConfig::cluster_key_path`).
    pub cluster_key: Arc<crate::crypto::ClusterKey>,
    /// TLS mode: the CA bundle, this controller's certificate, the client listener's config.
    pub tls: Option<crate::tls::NodeTls>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<()>>,
    http: Option<JoinHandle<Result<()>>>,
    orchestrator: JoinHandle<Result<()>>,
    /// The leader-only liveness loop and this controller's heartbeat writer.
    liveness: [JoinHandle<Result<()>>; 2],
    /// The leader-only event retention loop.
    retention: JoinHandle<Result<()>>,
    peer: Option<PeerTasks>,
}

/// The tasks of a replicated member, stopped after Raft.
struct PeerTasks {
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<()>>,
    raft: JoinHandle<std::result::Result<(), crate::raft::RaftError>>,
    /// Holds the event log (and so the storage) until it sees the shutdown.
    backfill: JoinHandle<()>,
}

impl Controller {
    /// Open the data dir, start Raft, bind the listener and start serving.
    pub async fn start(config: ControllerConfig) -> Result<RunningController> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        mut config: ControllerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningController> {
        config.validate()?;
        // TLS mode (`crate::tls`): plaintext off loopback was refused above unless --insecure.
        for warning in crate::tls::listen_policy(&config)? {
            tracing::warn!("{warning}");
        }
        if config.tls.enabled {
            // TLS mode turns API tokens on (H2's ACL).
            config.acl = true;
        }
        let metrics = Metrics::new();
        config.raft.metrics = metrics.raft().clone();
        create_private_dir(&config.data_dir)?;
        let own_cert =
            crate::tls::bootstrap::tls_dir(&config.data_dir).join(berth_security::tls::CERT_FILE);
        if !config.tls.enabled && own_cert.exists() {
            return Err(Error::Config(format!(
                "{} exists: this data dir belongs to a TLS cluster. Start with --tls (without it this controller would serve plaintext with API tokens off)",
                own_cert.display()
            )));
        }
        let key_path = config.cluster_key_path();
        let cluster_key = Arc::new(
            crate::crypto::ClusterKey::load_or_create(&key_path)
                .map_err(|e| Error::Config(format!("--cluster-key-file: {e}")))?,
        );
        tracing::info!(path = %key_path.display(), "cluster key loaded");
        crate::tls::check_fresh_cluster(&config, !config.data_dir.join("store").exists())?;
        let backend = Arc::new(
            SledBackend::open(config.data_dir.join("store"))
                .map_err(|e| Error::Storage(e.to_string()))?,
        );
        let shared = SharedState::new(State::new(config.scope.clone()));
        let events = crate::events::EventLog::new(Box::new(crate::events::files::open_in(
            &config.data_dir,
            backend.clone(),
        )?));
        events.set_metrics(metrics.clone());
        let store = Store::with_events(shared.clone(), events.clone());
        let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
            Error::Config(format!("cannot listen on {} (--listen): {e}", config.listen))
        })?;
        let addr = listener.local_addr()?;
        let http_listener = match config.http_listen {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.map_err(|e| {
                Error::Config(format!("cannot listen on {a} (--http-listen): {e}"))
            })?),
            None => None,
        };
        let http_addr = http_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        // Peer mTLS (`peer::PeerTls`): the certificate kept from an earlier run or a join, else
        // a placeholder until the TLS bootstrap below issues this controller's own.
        if config.tls.enabled && config.is_replicated() && config.peer_tls.is_none() {
            let dir = crate::tls::bootstrap::tls_dir(&config.data_dir);
            let deny = crate::tls::bootstrap::revoked_filter(shared.clone());
            let peer_tls = crate::peer::PeerTls::at_start(&dir, config.raft.id, Some(deny))
                .map_err(|e| Error::Config(format!("TLS (peer listener): {e}")))?;
            config.peer_tls = Some(peer_tls);
        }
        let (raft, proposer, peer_addr, peer) = if config.is_replicated() {
            let member = start_member(&config, addr, backend, store, events.clone()).await?;
            (member.raft, member.proposer, Some(member.peer_addr), Some(member.tasks))
        } else {
            let raft = RaftNode::start_single(config.raft.clone(), backend, store)
                .await
                .map_err(|e| Error::Raft(e.to_string()))?;
            (raft.clone(), Proposer::new(raft), None, None)
        };
        // TLS mode: the CA (created by the first leader), this controller's own certificate.
        let node_tls = if config.tls.enabled {
            let bootstrap = crate::tls::bootstrap::Bootstrap {
                config: &config.tls,
                data_dir: &config.data_dir,
                node_id: config.raft.id,
                ca_name: &config.scope.account,
                proposer: &proposer,
                shared: &shared,
                cluster_key: &cluster_key,
                clock: clock.as_ref(),
            };
            Some(bootstrap.run().await?)
        } else {
            None
        };
        if let (Some(peer_tls), Some(node_tls)) = (&config.peer_tls, &node_tls) {
            peer_tls
                .update(&node_tls.material)
                .map_err(|e| Error::Config(format!("TLS (peer listener): {e}")))?;
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        if let Some(node_tls) = &node_tls {
            // Renewal of this controller's certificate (`crate::renewal`): at 2/3 of its life,
            // swapped into the client listener and peer mTLS configs in place.
            let own = crate::renewal::OwnRenewal {
                identity: node_tls.identity.clone(),
                shared: shared.clone(),
                cluster_key: cluster_key.clone(),
                cert_ttl: config.tls.cert_ttl,
                dir: crate::tls::bootstrap::tls_dir(&config.data_dir),
                client_listener: node_tls.client_listener.clone(),
                peer: config.peer_tls.clone(),
                clock: Arc::new(berth_security::renew::SystemClock),
            };
            crate::renewal::spawn_own(own, &node_tls.material, shutdown_rx.clone())?;
        }
        tokio::spawn(follow_leadership(raft.clone(), metrics.clone(), shutdown_rx.clone()));
        let auth = crate::auth::Auth::new(config.acl, shared.clone(), clock.clone())
            .with_raft(raft.clone());
        let probes = crate::http::Probes {
            raft: raft.clone(),
            shared: shared.clone(),
            metrics: metrics.clone(),
            auth: auth.clone(),
        };
        let http = http_listener.map(|l| {
            tokio::spawn(crate::http::serve(l, events.clone(), shutdown_rx.clone(), probes))
        });

        let api = Api::new(proposer.clone(), shared.clone(), clock.clone(), events.clone())
            .with_health_policy(config.orchestrator.health_policy())
            .with_max_service_tasks(config.orchestrator.max_service_tasks)
            .with_metrics(metrics.clone())
            .with_cluster_key(cluster_key.clone());
        let dispatcher =
            Dispatcher::new(proposer.clone(), shared.clone(), clock.clone(), shutdown_rx.clone())
                .with_heartbeat_interval(config.liveness.heartbeat_interval)
                .with_cluster_key(cluster_key.clone())
                .with_tls(config.tls.enabled);
        let recorder = HeartbeatRecorder::new(
            proposer.clone(),
            dispatcher.heartbeat_book(),
            dispatcher.stats_book(),
            config.liveness.record_interval(),
        );
        // TCP_NODELAY: tonic's own nodelay setting does not apply to `serve_with_incoming`, and
        // without it Nagle holds a reply's trailers until the client's delayed ACK (~40 ms).
        // With TLS, `ServerTls::incoming` handshakes each connection (TCP_NODELAY set there).
        let incoming = match &node_tls {
            Some(t) => crate::tls::Incoming::Tls(t.client_listener.incoming(listener)),
            None => crate::tls::Incoming::Tcp(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
        };
        let security_api = crate::tls::service::SecurityApi::new(
            proposer.clone(),
            shared.clone(),
            clock.clone(),
            cluster_key.clone(),
            config.tls.cert_ttl,
        );
        let mut stop = shutdown_rx.clone();
        let max = berth_proto::MAX_MESSAGE_BYTES;
        let api_layer = metrics.api_layer();
        // Hardened input (`crate::limits`): per-token rate limit inside the metrics layer (so
        // throttled calls are counted), tonic's unary deadline, per-service request sizes.
        // With API tokens on, only known tokens get buckets of their own (made-up ones share
        // the caller's address bucket); without, the bearer value is the key as given.
        let mut rate_layer = crate::limits::RateLimitLayer::new(config.limits.limiter());
        if config.acl {
            let known_shared = shared.clone();
            rate_layer = rate_layer.with_known_tokens(Arc::new(move |secret: &str| {
                let hash = crate::crypto::sha256_hex(secret.as_bytes());
                known_shared.read().acl.by_secret_hash(&hash).is_some()
            }));
        }
        let mut builder = tonic::transport::Server::builder();
        if let Some(t) = config.limits.rpc_timeout {
            builder = builder.timeout(t);
        }
        let max_request = config.limits.max_request_bytes;
        // API tokens (`crate::auth`): checked inside the rate limit; Berth gets cluster scopes.
        let auth_layer = auth.layer();
        // `--require-client-cert` (`crate::tls::require_cert`): outside the token check, so a
        // connection without a client certificate is refused before its token is looked at.
        let require_cert_layer = crate::tls::require_cert::RequireClientCertLayer::new(
            config.tls.enabled && config.tls.require_client_cert,
        );
        // `berth.v1.BerthSecrets` (`api/secrets.rs`) is served by the same Api.
        let secrets_api = api.clone();
        let berth = crate::auth::ScopedBerth::new(api, config.acl);
        let acl_api =
            crate::auth::AclApi::new(proposer.clone(), shared.clone(), clock.clone(), config.acl);
        if config.acl {
            tokio::spawn(crate::auth::bootstrap::run(
                proposer.clone(),
                shared.clone(),
                clock.clone(),
                config.data_dir.clone(),
                shutdown_rx.clone(),
            ));
        }
        let server = tokio::spawn(async move {
            let router = builder
                .layer(api_layer)
                .layer(rate_layer)
                .layer(require_cert_layer)
                .layer(auth_layer)
                .add_service(
                    berth_proto::v1::berth_acl_server::BerthAclServer::new(acl_api)
                        .max_decoding_message_size(max_request)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    berth_proto::v1::berth_secrets_server::BerthSecretsServer::new(secrets_api)
                        .max_decoding_message_size(max_request)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    BerthServer::new(berth)
                        .max_decoding_message_size(max_request)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    AgentDispatchServer::new(dispatcher)
                        .max_decoding_message_size(crate::limits::AGENT_MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    berth_proto::v1::berth_security_server::BerthSecurityServer::new(security_api)
                        .max_decoding_message_size(max_request)
                        .max_encoding_message_size(max),
                );
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            match incoming {
                crate::tls::Incoming::Tcp(i) => {
                    router.serve_with_incoming_shutdown(i, signal).await
                }
                crate::tls::Incoming::Tls(i) => {
                    router.serve_with_incoming_shutdown(i, signal).await
                }
            }
            .map_err(Error::from)
        });
        // The reconciler proposes only while it leads: a deposed leader must not forward
        // decisions taken on a stale view to its successor (no double-started tasks).
        let orchestrator = Orchestrator::new(
            Proposer::new(raft.clone()),
            shared.clone(),
            clock.clone(),
            config.orchestrator.clone(),
        )
        .with_metrics(metrics.clone());
        drop(proposer);
        let monitor_clock = clock.clone();
        let monitor = LivenessMonitor::new(
            Proposer::new(raft.clone()),
            shared.clone(),
            clock,
            config.liveness.clone(),
        );
        let leader_since = monitor.leader_since();
        let liveness = [
            tokio::spawn(monitor.run(shutdown_rx.clone())),
            tokio::spawn(recorder.run(shutdown_rx.clone())),
        ];
        let retention = tokio::spawn(crate::events::retention::run(
            Proposer::new(raft.clone()),
            events.clone(),
            monitor_clock,
            config.retention.clone(),
            shutdown_rx.clone(),
        ));
        let orchestrator = tokio::spawn(orchestrator.run(raft.applied(), shutdown_rx));
        tracing::info!(%addr, ?peer_addr, data_dir = %config.data_dir.display(), "controller serving");
        if let Some(http_addr) = http_addr {
            tracing::info!(%http_addr, "controller HTTP port serving (/metrics, /readyz, /v1/events)");
        }
        Ok(RunningController {
            addr,
            peer_addr,
            http_addr,
            raft,
            shared,
            events,
            leader_since,
            metrics,
            cluster_key,
            tls: node_tls,
            shutdown: shutdown_tx,
            server,
            http,
            orchestrator,
            liveness,
            retention,
            peer,
        })
    }
}

/// Keeps `metrics` told whether this member leads (tasks are counted on the leader), until
/// shutdown or the node stops.
async fn follow_leadership(
    raft: RaftHandle,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut role = raft.role();
    loop {
        metrics.set_leader(role.borrow_and_update().is_leader());
        tokio::select! {
            changed = role.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

struct Member {
    raft: RaftHandle,
    proposer: Proposer,
    peer_addr: SocketAddr,
    tasks: PeerTasks,
}

/// Starts a member of a replicated group: gRPC transport, Raft node, peer listener.
async fn start_member(
    config: &ControllerConfig,
    client_addr: SocketAddr,
    backend: Arc<SledBackend>,
    store: Store,
    events: Arc<crate::events::EventLog>,
) -> Result<Member> {
    let id = config.raft.id;
    let peer_listen = config.peer_listen.ok_or_else(|| Error::Config("no peer listen".into()))?;
    let peer_listener = tokio::net::TcpListener::bind(peer_listen).await.map_err(|e| {
        Error::Config(format!("cannot listen on {peer_listen} (--peer-listen): {e}"))
    })?;
    let peer_addr = peer_listener.local_addr()?;
    let raft_config = config.effective_raft(Some(client_addr));
    let addresses = PeerAddresses::default();
    addresses.set_all(
        config.initial_cluster.iter().map(|(k, v)| (*k, v.clone())).collect::<HashMap<_, _>>(),
    );
    // Peer mTLS (`peer::PeerTls`): every peer client dials through this controller's cert.
    if let Some(tls) = &config.peer_tls {
        addresses.set_tls(tls.client.clone());
    }
    let peer_server_tls = config.peer_tls.as_ref().map(|t| t.server.clone());
    let transport = Arc::new(GrpcTransport::new(id, addresses.clone()));
    let (node, raft) = RaftNode::new(raft_config, backend, store, transport.clone())
        .map_err(|e| Error::Raft(e.to_string()))?;
    transport.attach(raft.clone());
    let raft_task = node.run_on_own_thread().map_err(|e| Error::Raft(e.to_string()))?;
    tokio::spawn(follow_address_book(raft.clone(), addresses.clone()));
    let (peer_tx, mut peer_rx) = watch::channel(false);
    let backfill = tokio::spawn(crate::events::backfill::run(
        raft.clone(),
        addresses.clone(),
        events.clone(),
        peer_rx.clone(),
    ));
    let peer_raft = raft.clone();
    let peer_events = events.clone();
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = peer_rx.wait_for(|s| *s).await;
        };
        crate::peer::serve_with_tls(peer_listener, peer_raft, peer_events, peer_server_tls, stop)
            .await
            .map_err(Error::from)
    });
    let proposer =
        Proposer::with_forwarder(raft.clone(), Arc::new(PeerForwarder::new(id, addresses)));
    tracing::info!(id, %peer_addr, join = config.join, "raft member started");
    Ok(Member {
        raft,
        proposer,
        peer_addr,
        tasks: PeerTasks { shutdown: peer_tx, server, raft: raft_task, backfill },
    })
}

impl RunningController {
    /// Wait until this controller is the Raft leader (a one-node group elects itself at once).
    pub async fn wait_leader(&self, timeout: std::time::Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.raft.is_leader() {
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Raft("no leader elected before the deadline".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Hand leadership to the most caught-up other voter (if leading; bounded by
    /// [`LEADERSHIP_TRANSFER_WAIT`]), stop serving, stop the loops, then stop Raft (which
    /// snapshots and flushes) and finally the peer listener.
    pub async fn stop(self) -> Result<()> {
        if self.peer.is_some() {
            match self.raft.transfer_leadership(LEADERSHIP_TRANSFER_WAIT).await {
                Ok(leader) => tracing::info!(id = self.raft.id(), ?leader, "stopping"),
                Err(e) => tracing::warn!(error = %e, "leadership transfer failed"),
            }
        }
        let _ = self.shutdown.send(true);
        // Subscriptions never end by themselves; the server's graceful stop waits for them.
        self.events.close();
        let server = self.server.await.map_err(|e| Error::Raft(format!("server task: {e}")))?;
        let http = match self.http {
            Some(h) => h.await.map_err(|e| Error::Raft(format!("http task: {e}")))?,
            None => Ok(()),
        };
        let orch =
            self.orchestrator.await.map_err(|e| Error::Raft(format!("orchestrator task: {e}")))?;
        let retention =
            self.retention.await.map_err(|e| Error::Raft(format!("retention task: {e}")))?;
        let mut liveness = Ok(());
        for handle in self.liveness {
            let r = handle.await.map_err(|e| Error::Raft(format!("liveness task: {e}")))?;
            liveness = liveness.and(r);
        }
        self.raft.shutdown().await.map_err(|e| Error::Raft(e.to_string()))?;
        if let Some(peer) = self.peer {
            let raft = peer.raft.await.map_err(|e| Error::Raft(format!("raft task: {e}")))?;
            let _ = peer.shutdown.send(true);
            let served = peer.server.await.map_err(|e| Error::Raft(format!("peer task: {e}")))?;
            // The storage is free for a restart once nothing holds the event log.
            let _ = peer.backfill.await;
            raft.map_err(|e| Error::Raft(e.to_string()))?;
            served?;
        }
        server?;
        http?;
        orch?;
        liveness?;
        retention?;
        Ok(())
    }
}

/// Creates the data dir (and parents) with mode 0700 when new
/// (`berth_security::pem::create_private_dir`).
fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    berth_security::pem::create_private_dir(dir).map_err(|e| Error::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_and_rejects_bad_entries() {
        let m = parse_initial_cluster("1=a:1, 2=b:2,3=c:3").expect("parse");
        assert_eq!(m.get(&2).map(String::as_str), Some("b:2"));
        assert_eq!(m.len(), 3);
        assert!(parse_initial_cluster("1=a:1,1=b:2").is_err());
        assert!(parse_initial_cluster("x=a:1").is_err());
        assert!(parse_initial_cluster("0=a:1").is_err());
        assert!(parse_initial_cluster("1a:1").is_err());
    }

    #[test]
    fn replicated_config_needs_peer_listen_and_its_own_id() {
        let mut c = ControllerConfig {
            initial_cluster: parse_initial_cluster("1=a:1,2=b:2").expect("parse"),
            ..ControllerConfig::default()
        };
        assert!(c.validate().is_err(), "no peer listen");
        c.peer_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.validate().expect("valid");
        c.raft.id = 3;
        assert!(c.validate().is_err(), "id 3 not listed");
        c.join = true;
        c.validate().expect("a joiner need not be listed");
    }
}
