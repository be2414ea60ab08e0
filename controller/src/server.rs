//! Wiring: storage → raft → store, the gRPC services (client API and agent dispatch) on one
//! listener, and the leader-only orchestrator. `Controller::start` returns once the listener is
//! bound; `RunningController::stop` shuts everything down in order and joins every task.

use crate::api::Api;
use crate::clock::{Clock, SystemClock};
use crate::dispatcher::Dispatcher;
use crate::error::{Error, Result};
use crate::orchestrator::{Orchestrator, OrchestratorConfig};
use crate::propose::Proposer;
use crate::raft::{RaftConfig, RaftHandle, RaftNode};
use crate::storage::SledBackend;
use crate::store::{SharedState, State, Store};
use berth_proto::model::ArnScope;
use berth_proto::v1::{agent_dispatch_server::AgentDispatchServer, berth_server::BerthServer};
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
    pub raft: RaftConfig,
    pub orchestrator: OrchestratorConfig,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            data_dir: PathBuf::from("berth-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            scope: ArnScope::default(),
            raft: RaftConfig::default(),
            orchestrator: OrchestratorConfig::default(),
        }
    }
}

impl ControllerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.scope.region.is_empty() || self.scope.account.is_empty() {
            return Err(Error::Config("region and account must not be empty".into()));
        }
        self.raft.validate().map_err(|e| Error::Config(e.to_string()))?;
        Ok(())
    }
}

pub struct Controller;

pub struct RunningController {
    pub addr: SocketAddr,
    pub raft: RaftHandle,
    pub shared: SharedState,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<()>>,
    orchestrator: JoinHandle<Result<()>>,
}

impl Controller {
    /// Open the data dir, start Raft, bind the listener and start serving.
    pub async fn start(config: ControllerConfig) -> Result<RunningController> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        config: ControllerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<RunningController> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)?;
        let backend = Arc::new(
            SledBackend::open(config.data_dir.join("store"))
                .map_err(|e| Error::Storage(e.to_string()))?,
        );
        let shared = SharedState::new(State::new(config.scope.clone()));
        let store = Store::new(shared.clone());
        let raft = RaftNode::start_single(config.raft.clone(), backend, store)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        let proposer = Proposer::new(raft.clone());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);

        let api = Api::new(proposer.clone(), shared.clone(), clock.clone());
        let dispatcher = Dispatcher::new(
            proposer.clone(),
            shared.clone(),
            clock.clone(),
            raft.applied(),
            shutdown_rx.clone(),
        );
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let mut stop = shutdown_rx.clone();
        let max = berth_proto::MAX_MESSAGE_BYTES;
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(
                    BerthServer::new(api)
                        .max_decoding_message_size(max)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    AgentDispatchServer::new(dispatcher)
                        .max_decoding_message_size(max)
                        .max_encoding_message_size(max),
                )
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .map_err(Error::from)
        });
        let orchestrator =
            Orchestrator::new(proposer, shared.clone(), clock, config.orchestrator.clone());
        let orchestrator = tokio::spawn(orchestrator.run(raft.applied(), shutdown_rx));
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "controller serving");
        Ok(RunningController { addr, raft, shared, shutdown: shutdown_tx, server, orchestrator })
    }
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

    /// Stop serving, stop the loops, then stop Raft (which snapshots and flushes).
    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let server = self.server.await.map_err(|e| Error::Raft(format!("server task: {e}")))?;
        let orch =
            self.orchestrator.await.map_err(|e| Error::Raft(format!("orchestrator task: {e}")))?;
        self.raft.shutdown().await.map_err(|e| Error::Raft(e.to_string()))?;
        server?;
        orch?;
        Ok(())
    }
}
