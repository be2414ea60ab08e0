//! Agent configuration: [`AgentConfig`] (with `Default` and `validate()`) and [`PullBehavior`].

use crate::AgentError;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// When to pull a container's image (ECS_IMAGE_PULL_BEHAVIOR); see `supervisor/images.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullBehavior {
    #[default]
    Default,
    Always,
    Once,
    PreferCached,
}

impl FromStr for PullBehavior {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(PullBehavior::Default),
            "always" => Ok(PullBehavior::Always),
            "once" => Ok(PullBehavior::Once),
            "prefer-cached" => Ok(PullBehavior::PreferCached),
            other => Err(AgentError::Config(format!(
                "image pull behavior {other:?}: expected default, always, once or prefer-cached"
            ))),
        }
    }
}

impl std::fmt::Display for PullBehavior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PullBehavior::Default => "default",
            PullBehavior::Always => "always",
            PullBehavior::Once => "once",
            PullBehavior::PreferCached => "prefer-cached",
        })
    }
}

/// Longest `advertise_http` accepted (the controller applies the same bound).
pub const MAX_ADVERTISE_URL_LEN: usize = 256;

/// Everything an agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Controller gRPC endpoints (`http://host:port`); tried in turn.
    pub endpoints: Vec<String>,
    pub cluster: String,
    /// Custom attributes; they override built-ins of the same name.
    pub attributes: Vec<(String, String)>,
    /// Keeps `instance-id`.
    pub data_dir: PathBuf,
    /// `unix:///var/run/docker.sock` when `None`.
    pub docker_host: Option<String>,
    /// Where `initProcessEnabled` containers get their init (`--init-binary auto|engine|PATH`;
    /// `runtime/docker/init.rs`).
    pub init_binary: crate::runtime::docker::InitBinary,
    pub image_pull_behavior: PullBehavior,
    /// CPU units to register (cores × 1024 when `None`).
    pub cpu_units: Option<i64>,
    /// Memory MiB to register (from /proc/meminfo when `None`).
    pub memory_mib: Option<i64>,
    pub heartbeat_interval: Duration,
    /// How often the runtime is polled for container changes.
    pub poll_interval: Duration,
    /// First reconnect delay; doubles per failed attempt up to `reconnect_backoff_max`.
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
    /// How long a task's exited containers stay before removal when the controller has not set
    /// desired STOPPED (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION, 3 h in ECS).
    pub task_cleanup_wait: Duration,
    /// Reported hostname (the machine's when `None`).
    pub hostname: Option<String>,
    /// Where to serve the operator HTTP API (`crate::http`); `None`: not served. The binary
    /// defaults to `crate::http::DEFAULT_HTTP_LISTEN`; library users (tests, simulations) opt in.
    pub http_listen: Option<std::net::SocketAddr>,
    /// The API's URL as the controller and `berth task logs` should use it (`http://host:port`);
    /// `None`: derived from the bound address (`crate::http::advertise_url`).
    pub advertise_http: Option<String>,
    /// awsvpc tasks: the engine network and subnet, the pause image (`--awsvpc-network`,
    /// `--awsvpc-subnet`, `--pause-image`).
    pub awsvpc: crate::supervisor::awsvpc::AwsvpcSettings,
    /// Port of the task metadata endpoint (`crate::metadata`), on 127.0.0.1 and the Docker
    /// bridge gateway; `Some(0)`: one the system picks; `None`: off. The binary defaults to
    /// `crate::metadata::DEFAULT_METADATA_PORT`; library users (tests, simulations) opt in.
    pub metadata_port: Option<u16>,
    /// How often running containers' CPU and memory are sampled and reported (`crate::stats`);
    /// zero: never.
    pub stats_interval: Duration,
    /// `--join-token` (BERTH_JOIN_TOKEN): presented once to an `https://` controller for this
    /// agent's certificate (`crate::join`); later starts reuse the certificate in `data_dir`.
    /// `Debug` hides the secret.
    pub join_token: Option<berth_security::JoinToken>,
    /// End `Agent::run` with an error when a controller says this instance was deregistered
    /// and its identity revoked (reconnecting cannot cure it). The simulator turns it off: one
    /// deregistered simulated node must not stop the others.
    pub exit_when_revoked: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            endpoints: vec!["http://127.0.0.1:7600".to_string()],
            cluster: "default".to_string(),
            attributes: Vec::new(),
            data_dir: PathBuf::from("/var/lib/berth-agent"),
            docker_host: None,
            init_binary: Default::default(),
            image_pull_behavior: PullBehavior::Default,
            cpu_units: None,
            memory_mib: None,
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: crate::supervisor::observer::POLL_INTERVAL,
            reconnect_backoff_min: Duration::from_millis(200),
            reconnect_backoff_max: Duration::from_secs(10),
            task_cleanup_wait: Duration::from_secs(3 * 3600),
            hostname: None,
            http_listen: None,
            advertise_http: None,
            awsvpc: Default::default(),
            metadata_port: None,
            stats_interval: crate::stats::DEFAULT_STATS_INTERVAL,
            join_token: None,
            exit_when_revoked: true,
        }
    }
}

impl AgentConfig {
    /// Checks the fields; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), AgentError> {
        let bad = |m: String| Err(AgentError::Config(m));
        if self.endpoints.is_empty() {
            return bad("endpoints: at least one controller endpoint is required".into());
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://"))
                || e.len() <= "https://".len()
            {
                return bad(format!("endpoints: {e:?} must look like http://host:port"));
            }
        }
        if self.cluster.is_empty() {
            return bad("cluster: must not be empty".into());
        }
        for (k, _) in &self.attributes {
            if k.is_empty() {
                return bad("attributes: a name must not be empty".into());
            }
        }
        if self.cpu_units.is_some_and(|c| c <= 0) {
            return bad("cpu_units: must be positive".into());
        }
        if self.memory_mib.is_some_and(|m| m <= 0) {
            return bad("memory_mib: must be positive".into());
        }
        for (name, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("poll_interval", self.poll_interval),
            ("reconnect_backoff_min", self.reconnect_backoff_min),
        ] {
            if d.is_zero() {
                return bad(format!("{name}: must be greater than zero"));
            }
        }
        if let Some(url) = &self.advertise_http {
            let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
                || url.len() > MAX_ADVERTISE_URL_LEN
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return bad(format!(
                    "advertise_http: {url:?} must look like http://host:port (at most {MAX_ADVERTISE_URL_LEN} characters, no spaces)"
                ));
            }
        }
        if self.awsvpc.network.is_empty() || self.awsvpc.network.contains(['/', ':', ' ']) {
            return bad(format!(
                "awsvpc network: {:?} is not a Docker network name",
                self.awsvpc.network
            ));
        }
        if self.awsvpc.pause_image.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return bad("pause image: must not be empty".into());
        }
        if self.reconnect_backoff_max < self.reconnect_backoff_min {
            return bad("reconnect_backoff_max: must be at least reconnect_backoff_min".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_behavior_parses_the_ecs_names() {
        assert_eq!("prefer-cached".parse::<PullBehavior>().ok(), Some(PullBehavior::PreferCached));
        assert_eq!("once".parse::<PullBehavior>().ok(), Some(PullBehavior::Once));
        assert!("sometimes".parse::<PullBehavior>().is_err());
    }

    #[test]
    fn validate_names_a_bad_advertise_url() {
        for bad in ["127.0.0.1:51678", "http://", "http://a b:1"] {
            let cfg = AgentConfig { advertise_http: Some(bad.into()), ..Default::default() };
            let e = cfg.validate().expect_err(bad).to_string();
            assert!(e.contains("advertise_http"), "{e}");
        }
        let ok = AgentConfig {
            advertise_http: Some("http://node-1:51678".into()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn validate_rejects_endpoint_without_scheme() {
        let cfg = AgentConfig { endpoints: vec!["127.0.0.1:7600".into()], ..Default::default() };
        assert!(cfg.validate().is_err());
        assert!(AgentConfig::default().validate().is_ok());
    }
}
