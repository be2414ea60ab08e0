//! # metadata — the ECS task metadata endpoint, version 4 (ECS-NOTES §6.2)
//!
//! ```text
//!  plan (supervisor) ─► Injector: per container a random token, the env var
//!     ECS_CONTAINER_METADATA_URI_V4=http://<host for the network mode>:<port>/v4/<token>
//!     and the label berth.metadata-token=<token> (so a restarted agent still knows it)
//!
//!  container ─HTTP─► MetadataEndpoint (127.0.0.1 + the Docker bridge gateway, one port)
//!     ─► server.rs: token → MetadataSource::find (the supervisor's read-only view:
//!        observer snapshot labels, assignment, latest report) ─► auth.rs decides 404 / 403 / ok
//!        ─► shapes.rs builds the v4 JSON
//! ```
//!
//! * [`endpoint_host`]: network mode → the host address a container of that mode reaches the
//!   agent on (the hook for more modes: `awsvpc` uses [`HostAddrs::task_bridge`] when set).
//! * [`Injector`]: what the supervisor calls on every new plan; [`TokenSource`] is the injected
//!   randomness ([`RandomTokens`]: UUID v4 from the OS RNG).
//! * [`MetadataSource`]: the narrow read-only view the HTTP layer needs; the supervisor
//!   implements it (`supervisor/metadata_view.rs`), tests use a fake.
//! * `auth.rs` — the token / caller-address decision. Pure.
//! * `shapes.rs` — the v4 JSON (PascalCase ECS names, absent values omitted). Pure.
//! * `server.rs` — the axum routes over a [`ViewSlot`].
//!
//! Isolation: a token is 122 random bits and only ever handed to the container it was made
//! for, so no task can name another's path; where the caller's address is known for the task's
//! network mode (bridge: the containers' IPs), a valid token from another address is refused
//! (403).

mod auth;
mod server;
pub mod shapes;

pub use auth::{Access, decide};
pub use server::router;

use crate::AgentError;
use crate::runtime::{ContainerNetwork, ContainerSpec, LABEL_CONTAINER_NAME};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

/// The env var ECS injects (agent ≥ 1.39).
pub const ENV_METADATA_URI_V4: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The container's token, on the container (survives agent restarts with the container).
pub const LABEL_METADATA_TOKEN: &str = "berth.metadata-token";
/// The ECS agent's metadata port (it serves on 169.254.170.2:80 via a proxy and on 51679).
pub const DEFAULT_METADATA_PORT: u16 = 51679;
/// Longest token accepted in a path (a UUID in simple form has 32 characters).
const MAX_TOKEN_LEN: usize = 64;

/// The `--metadata-port` flag of `berth-agent` and `berth dev`: a port (0: the system picks
/// one) or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataPortFlag(pub Option<u16>);

impl std::str::FromStr for MetadataPortFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(MetadataPortFlag(None));
        }
        s.parse()
            .map(|p| MetadataPortFlag(Some(p)))
            .map_err(|_| format!("{s:?}: expected a port (0-65535) or off"))
    }
}

/// Host addresses containers reach the agent on, besides loopback (host mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAddrs {
    /// The host's address on the engine's default bridge (`bridge` mode).
    pub docker_bridge: Option<IpAddr>,
    /// The host's address on the network `awsvpc` tasks are attached to, when it is not the
    /// default bridge (the awsvpc work sets it).
    pub task_bridge: Option<IpAddr>,
}

impl HostAddrs {
    /// Every address to listen on: loopback first, then the bridges (deduplicated).
    pub fn listen_addrs(&self) -> Vec<IpAddr> {
        let mut out = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        for a in [self.docker_bridge, self.task_bridge].into_iter().flatten() {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// The address a container of a task in `network_mode` (the task definition's) reaches the
/// endpoint on; `None`: it cannot (`none`, or no such network on this host).
pub fn endpoint_host(network_mode: &str, addrs: &HostAddrs) -> Option<IpAddr> {
    match network_mode {
        "host" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "bridge" | "" => addrs.docker_bridge,
        "awsvpc" => addrs.task_bridge.or(addrs.docker_bridge),
        _ => None,
    }
}

/// Whether `token` can be one of ours at all (checked before any lookup).
pub fn plausible_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Injected randomness for tokens.
pub trait TokenSource: Send + Sync + 'static {
    /// A fresh unguessable token of `[A-Za-z0-9-]`, at most 64 characters.
    fn token(&self) -> String;
}

/// UUID v4 tokens from the operating system's RNG.
#[derive(Debug, Default)]
pub struct RandomTokens;

impl TokenSource for RandomTokens {
    fn token(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// Adds the endpoint's env var and token label to container specs before they are created.
pub struct Injector {
    pub port: u16,
    pub addrs: HostAddrs,
    pub tokens: Arc<dyn TokenSource>,
}

impl Injector {
    /// Gives `spec` (of a task in `network_mode`) its token and URI. A container that cannot
    /// reach the endpoint (network mode `none`, networking disabled) gets neither, nor does one
    /// whose definition sets the variable itself.
    pub fn inject(&self, network_mode: &str, spec: &mut ContainerSpec) {
        let Some(host) = endpoint_host(network_mode, &self.addrs) else { return };
        let prefix = format!("{ENV_METADATA_URI_V4}=");
        if spec.options.network_disabled || spec.env.iter().any(|e| e.starts_with(&prefix)) {
            return;
        }
        let token = self.tokens.token();
        let host = match host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        spec.env.push(format!("{prefix}http://{host}:{}/v4/{token}", self.port));
        spec.labels.insert(LABEL_METADATA_TOKEN.to_string(), token);
    }
}

/// One task as the endpoint shows it (engine-neutral, plain data; `shapes.rs` renders it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskView {
    /// The cluster's short name.
    pub cluster: String,
    pub task_arn: String,
    pub family: String,
    pub revision: u32,
    pub desired_status: String,
    pub known_status: String,
    pub service_name: Option<String>,
    pub availability_zone: Option<String>,
    pub launch_type: Option<String>,
    /// Task-level CPU units and memory MiB, as the definition says.
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub pull_started_at: Option<berth_proto::model::Timestamp>,
    pub pull_stopped_at: Option<berth_proto::model::Timestamp>,
    pub execution_stopped_at: Option<berth_proto::model::Timestamp>,
    /// The task definition's network mode.
    pub network_mode: String,
    /// Addresses of the task itself beyond its containers' own (awsvpc: the task's interface,
    /// held by its pause container); callers from them are the task too.
    pub task_addrs: Vec<IpAddr>,
    /// awsvpc: the task's interface (from its pause container's `berth.awsvpc.*` labels),
    /// shown as every container's `Networks` entry; `None` in other modes or before the
    /// runtime gave the task an address.
    pub task_network: Option<TaskNetworkView>,
    pub containers: Vec<ContainerView>,
}

/// The network interface of an awsvpc task (its pause container's), as the endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNetworkView {
    pub ipv4: Ipv4Addr,
    pub mac: Option<String>,
    pub private_dns_name: Option<String>,
    /// The agent's awsvpc subnet (`--awsvpc-subnet`), e.g. `10.213.0.0/16`.
    pub subnet: Option<crate::runtime::task_network::Ipv4Subnet>,
}

/// One container of a [`TaskView`], in definition order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub container_arn: String,
    /// The engine's id and name; `None` before the container was created.
    pub docker_id: Option<String>,
    pub docker_name: Option<String>,
    pub image: String,
    /// The container's engine labels (the token label is never shown).
    pub labels: BTreeMap<String, String>,
    pub known_status: String,
    pub exit_code: Option<i64>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    /// Bridge: the engine's bound ports. awsvpc and host: the definition's port mappings with
    /// `HostPort` = `ContainerPort` (the engine publishes nothing in those modes).
    pub ports: Vec<crate::runtime::BoundPort>,
    pub log_driver: Option<String>,
    pub log_options: BTreeMap<String, String>,
    /// Filled by the HTTP layer from [`MetadataSource::networks`].
    pub networks: Vec<ContainerNetwork>,
}

/// What the HTTP layer needs from the agent, read-only.
#[async_trait]
pub trait MetadataSource: Send + Sync + 'static {
    /// The task whose container carries `token`, and that container's index in
    /// [`TaskView::containers`]; `None` for a token of no container on this instance.
    fn find(&self, token: &str) -> Option<(TaskView, usize)>;
    /// The networks (addresses) of a container, empty when unknown.
    async fn networks(&self, docker_id: &str) -> Vec<ContainerNetwork>;
    /// A fresh engine stats document of a container (Docker's JSON).
    async fn stats(&self, docker_id: &str) -> Option<serde_json::Value>;
}

/// Where the server finds its source: filled once the supervisor exists (after registration);
/// before that every token is unknown.
#[derive(Default, Clone)]
pub struct ViewSlot(Arc<OnceLock<Arc<dyn MetadataSource>>>);

impl ViewSlot {
    pub fn set(&self, source: Arc<dyn MetadataSource>) {
        if self.0.set(source).is_err() {
            tracing::warn!("task metadata source set twice; keeping the first");
        }
    }
    pub fn get(&self) -> Option<&Arc<dyn MetadataSource>> {
        self.0.get()
    }
}

/// The bound listeners of the endpoint (one port on every address of [`HostAddrs`]).
pub struct MetadataEndpoint {
    pub port: u16,
    pub addrs: HostAddrs,
    listeners: Vec<tokio::net::TcpListener>,
}

impl MetadataEndpoint {
    /// Binds `port` (0: one the system picks, then the same on every address) on loopback and
    /// on each bridge address in `addrs`. A bridge address that cannot be bound is dropped from
    /// `addrs` with a warning (its containers then get no URI); loopback must bind.
    pub async fn bind(port: u16, mut addrs: HostAddrs) -> Result<MetadataEndpoint, AgentError> {
        let err = |addr: SocketAddr, e: std::io::Error| AgentError::Http {
            addr: addr.to_string(),
            message: format!("task metadata endpoint: {e}"),
        };
        let first = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let lo = tokio::net::TcpListener::bind(first).await.map_err(|e| err(first, e))?;
        let port = lo.local_addr().map_err(|e| err(first, e))?.port();
        let mut listeners = vec![lo];
        for ip in addrs.listen_addrs().into_iter().skip(1) {
            let at = SocketAddr::new(ip, port);
            match tokio::net::TcpListener::bind(at).await {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    tracing::warn!(%at, error = %e, "task metadata endpoint not served on this bridge");
                    for slot in [&mut addrs.docker_bridge, &mut addrs.task_bridge] {
                        if *slot == Some(ip) {
                            *slot = None;
                        }
                    }
                }
            }
        }
        Ok(MetadataEndpoint { port, addrs, listeners })
    }

    /// An injector for this endpoint.
    pub fn injector(&self, tokens: Arc<dyn TokenSource>) -> Injector {
        Injector { port: self.port, addrs: self.addrs.clone(), tokens }
    }

    /// Serves every listener until `shutdown` flips to true.
    pub async fn serve(self, slot: ViewSlot, shutdown: tokio::sync::watch::Receiver<bool>) {
        let app = router(slot);
        let mut servers = Vec::new();
        for l in self.listeners {
            let app = app.clone();
            let mut stop = shutdown.clone();
            servers.push(tokio::spawn(async move {
                let at = l.local_addr().ok();
                let r = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = r {
                    tracing::warn!(addr = ?at, error = %e, "task metadata endpoint failed");
                }
            }));
        }
        for s in servers {
            let _ = s.await;
        }
    }
}

/// The ECS labels Docker shows on an ECS agent's containers, derived for the endpoint's
/// `Labels` (Berth's own containers carry `berth.*` labels instead).
pub fn ecs_labels(task: &TaskView, c: &ContainerView) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = c
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != LABEL_METADATA_TOKEN)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let name = c.labels.get(LABEL_CONTAINER_NAME).cloned().unwrap_or_else(|| c.name.clone());
    for (k, v) in [
        ("com.amazonaws.ecs.cluster", task.cluster.clone()),
        ("com.amazonaws.ecs.container-name", name),
        ("com.amazonaws.ecs.task-arn", task.task_arn.clone()),
        ("com.amazonaws.ecs.task-definition-family", task.family.clone()),
        ("com.amazonaws.ecs.task-definition-version", task.revision.to_string()),
    ] {
        out.entry(k.to_string()).or_insert(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl TokenSource for Fixed {
        fn token(&self) -> String {
            "tok1".into()
        }
    }

    fn injector() -> Injector {
        Injector {
            port: 51679,
            addrs: HostAddrs {
                docker_bridge: Some(IpAddr::V4(Ipv4Addr::new(172, 17, 0, 1))),
                task_bridge: None,
            },
            tokens: Arc::new(Fixed),
        }
    }

    #[test]
    fn network_mode_picks_the_host_address_containers_reach() {
        let a = injector().addrs;
        assert_eq!(endpoint_host("host", &a), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(endpoint_host("bridge", &a), a.docker_bridge);
        assert_eq!(endpoint_host("awsvpc", &a), a.docker_bridge);
        let own =
            HostAddrs { task_bridge: Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1))), ..a.clone() };
        assert_eq!(endpoint_host("awsvpc", &own), own.task_bridge);
        assert_eq!(endpoint_host("none", &a), None);
        assert_eq!(endpoint_host("bridge", &HostAddrs::default()), None);
        assert_eq!(own.listen_addrs().len(), 3);
    }

    #[test]
    fn injection_sets_env_and_label_per_network_mode() {
        let inj = injector();
        let mut s = ContainerSpec::default();
        inj.inject("bridge", &mut s);
        assert_eq!(
            s.env,
            vec!["ECS_CONTAINER_METADATA_URI_V4=http://172.17.0.1:51679/v4/tok1".to_string()]
        );
        assert_eq!(s.labels.get(LABEL_METADATA_TOKEN).map(String::as_str), Some("tok1"));
        let mut h = ContainerSpec::default();
        inj.inject("host", &mut h);
        assert_eq!(
            h.env,
            vec!["ECS_CONTAINER_METADATA_URI_V4=http://127.0.0.1:51679/v4/tok1".to_string()]
        );
        let mut n = ContainerSpec::default();
        inj.inject("none", &mut n);
        assert!(n.env.is_empty() && n.labels.is_empty());
        let mut own = ContainerSpec {
            env: vec!["ECS_CONTAINER_METADATA_URI_V4=x".into()],
            ..Default::default()
        };
        inj.inject("bridge", &mut own);
        assert_eq!(own.env.len(), 1);
        assert!(own.labels.is_empty());
    }

    #[test]
    fn port_flag_takes_a_port_or_off() {
        assert_eq!("0".parse(), Ok(MetadataPortFlag(Some(0))));
        assert_eq!("51679".parse(), Ok(MetadataPortFlag(Some(51679))));
        assert_eq!("off".parse(), Ok(MetadataPortFlag(None)));
        assert!("70000".parse::<MetadataPortFlag>().is_err());
    }

    #[test]
    fn tokens_are_plausible_only_in_their_alphabet() {
        assert!(plausible_token(&RandomTokens.token()));
        assert_ne!(RandomTokens.token(), RandomTokens.token());
        assert!(!plausible_token(""));
        assert!(!plausible_token("../x"));
        assert!(!plausible_token(&"a".repeat(65)));
    }
}
