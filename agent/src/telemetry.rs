//! # telemetry — what the agent adds to its supervisor once registration created it
//!
//! * the task metadata endpoint's view ([`crate::metadata`]): the supervisor starts injecting
//!   the endpoint's URI into new containers and the server (bound by [`crate::Agent::run`]
//!   before the first session) starts answering tokens;
//! * the stats sampler ([`crate::stats`]), whose reports the session sends to the controller.
//!
//! Kept in `session::SessionState`, so both outlive reconnections as the supervisor does.

use crate::Clock;
use crate::metadata::{Injector, ViewSlot};
use crate::runtime::ContainerRuntime;
use crate::stats::{StatsCache, StatsSampler};
use crate::supervisor::Supervisor;
use berth_proto::model::StatsReport;
use std::sync::Arc;
use std::time::Duration;

/// Off by default (no endpoint, no sampler): library users and tests opt in.
#[derive(Default)]
pub struct Telemetry {
    metadata: Option<(Injector, ViewSlot)>,
    stats_interval: Duration,
    stats_cache: Arc<StatsCache>,
    sampler: Option<StatsSampler>,
}

impl Telemetry {
    /// `metadata`: the endpoint's injector and the slot its server reads; `stats_interval`
    /// zero: no sampling.
    pub fn new(metadata: Option<(Injector, ViewSlot)>, stats_interval: Duration) -> Telemetry {
        Telemetry { metadata, stats_interval, ..Telemetry::default() }
    }

    /// Hooks a freshly created supervisor up (once per agent process).
    pub fn attach(
        &mut self,
        sup: &mut Supervisor,
        runtime: &Arc<dyn ContainerRuntime>,
        clock: &Arc<dyn Clock>,
    ) {
        if let Some((injector, slot)) = self.metadata.take() {
            slot.set(sup.enable_metadata(injector, self.stats_cache.clone()));
        }
        if self.sampler.is_none() {
            self.sampler = StatsSampler::start(
                runtime.clone(),
                sup.observer(),
                self.stats_interval,
                clock.clone(),
                self.stats_cache.clone(),
            );
        }
    }

    /// The next stats period's report; never resolves while sampling is off.
    pub async fn next_report(&mut self) -> Option<Arc<StatsReport>> {
        crate::stats::next_report(self.sampler.as_mut()).await
    }
}

/// Binds the task metadata endpoint when `cfg.metadata_port` is set (loopback and the engine's
/// bridge gateway, found through the runtime) and serves it until `stop` flips; returns the
/// telemetry for the session state and the server's task.
pub async fn start(
    cfg: &crate::AgentConfig,
    runtime: &Arc<dyn ContainerRuntime>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(Telemetry, Option<tokio::task::JoinHandle<()>>), crate::AgentError> {
    let Some(port) = cfg.metadata_port else {
        return Ok((Telemetry::new(None, cfg.stats_interval), None));
    };
    let docker_bridge = match runtime.bridge_gateway().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "no bridge gateway: bridge-mode containers get no task metadata endpoint");
            None
        }
    };
    // `task_bridge` (awsvpc's own network) stays unset: awsvpc containers reach the host at the
    // default bridge's gateway address too (the host answers on all of its addresses).
    let addrs = crate::metadata::HostAddrs { docker_bridge, task_bridge: None };
    let endpoint = bind_endpoint(port, addrs, &cfg.data_dir).await?;
    tracing::info!(
        port = endpoint.port,
        addrs = ?endpoint.addrs.listen_addrs(),
        "task metadata endpoint v4 listening"
    );
    let injector = endpoint.injector(Arc::new(crate::metadata::RandomTokens));
    let slot = ViewSlot::default();
    let server = tokio::spawn(endpoint.serve(slot.clone(), stop));
    Ok((Telemetry::new(Some((injector, slot)), cfg.stats_interval), Some(server)))
}

/// Where a picked port (`--metadata-port 0`) is kept, so that a restarted agent binds the same
/// one: its containers keep the URI they were started with.
const PICKED_PORT_FILE: &str = "metadata-port";

async fn bind_endpoint(
    port: u16,
    addrs: crate::metadata::HostAddrs,
    data_dir: &std::path::Path,
) -> Result<crate::metadata::MetadataEndpoint, crate::AgentError> {
    use crate::metadata::MetadataEndpoint;
    if port != 0 {
        return MetadataEndpoint::bind(port, addrs).await;
    }
    let file = data_dir.join(PICKED_PORT_FILE);
    let previous = std::fs::read_to_string(&file).ok().and_then(|s| s.trim().parse::<u16>().ok());
    let endpoint = match previous.filter(|p| *p != 0) {
        Some(p) => match MetadataEndpoint::bind(p, addrs.clone()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(port = p, error = %e, "the previously picked metadata port is taken; picking another (containers started before keep a stale URI)");
                MetadataEndpoint::bind(0, addrs).await?
            }
        },
        None => MetadataEndpoint::bind(0, addrs).await?,
    };
    let written = std::fs::create_dir_all(data_dir)
        .and_then(|_| std::fs::write(&file, format!("{}\n", endpoint.port)));
    if let Err(e) = written {
        tracing::warn!(path = %file.display(), error = %e, "cannot keep the picked metadata port");
    }
    Ok(endpoint)
}
