//! TLS mode of the controller (`--tls`): the client-API + AgentDispatch listener over TLS with
//! certificates from the cluster CA, join tokens, and the listen-address policy.
//!
//! * [`TlsConfig`] / [`check_listen_policy`] — `--tls`, `--insecure`, `--cert-ttl`,
//!   `--require-client-cert` (only with `--tls`): a
//!   non-loopback `--listen` / `--peer-listen` without TLS is refused unless `--insecure`
//!   (then warned). Loopback without `--tls` stays plaintext.
//! * `bootstrap` — at start in TLS mode: the leader of a fresh store creates the root CA
//!   (`SecurityCommand::InitCa`, key sealed with the cluster key), every controller issues its
//!   own server certificate from it ([`NodeTls`]) and the controller that made the CA writes
//!   `<data-dir>/bootstrap/{agent,controller}.join-token` (0600).
//! * `service` — `berth.v1.BerthSecurity`: GetCaBundle, JoinCluster (signs a CSR for a join
//!   token; assigns an agent's instance id), Create/List/RevokeJoinToken, RenewCertificate
//!   (`crate::renewal`), RotateCa / DescribeCa (`rotation`).
//! * `rotation` — CA rotation: the `RotateCa` command (new root + cross certificate signed by
//!   the old one), each controller's own material from the store's trust bundle at `now`
//!   (bootstrap, renewal and rotation share it), DescribeCa, re-pinning the bootstrap join
//!   tokens to the new root.
//! * `identity` — what the dispatcher asks of an agent's certificate in TLS mode.
//! * `client_cert` — client certificates (`berth://client/<name>`, the CLI's `--client-cert`):
//!   the IssueClientCertificate decision, their renewal lifetime, the bootstrap admin's
//!   `<data-dir>/bootstrap/admin-client/`.
//! * `require_cert` — `--require-client-cert`: a tower layer on the client listener refusing
//!   every call but GetCaBundle / JoinCluster on a connection without a client certificate
//!   (the handshake keeps them optional so that nodes can join; see its doc for why).
//!
//! Threat model: the CA key is in the replicated store sealed with the cluster key (AES-256-GCM,
//! `crate::crypto`), which lives only in each controller's key file: a copy of the Raft log or
//! a snapshot does not let anyone sign certificates. Whoever holds the cluster key file and
//! the store can.

pub mod bootstrap;
pub mod client_cert;
pub mod identity;
pub mod require_cert;
pub mod rotation;
pub mod service;

pub use bootstrap::NodeTls;

use crate::error::{Error, Result};
use std::net::SocketAddr;
use std::time::Duration;

/// TLS settings of a controller.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// Serve the client listener over TLS with the cluster CA (`--tls`).
    pub enabled: bool,
    /// Allow non-loopback listen addresses without TLS (`--insecure`; warned).
    pub insecure: bool,
    /// Lifetime of the node certificates this controller signs (`--cert-ttl`).
    pub cert_ttl: Duration,
    /// Refuse client-listener calls without a client certificate of the cluster CA, but the
    /// join methods (`--require-client-cert`; needs `enabled`; `require_cert`).
    pub require_client_cert: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            insecure: false,
            cert_ttl: berth_security::DEFAULT_CERT_TTL,
            require_client_cert: false,
        }
    }
}

/// The refusal of `--require-client-cert` without `--tls`.
pub const REQUIRE_CLIENT_CERT_NEEDS_TLS: &str = "--require-client-cert needs --tls: client certificates come from the cluster CA, which exists only in TLS mode";

/// The message for a non-loopback address without TLS.
pub fn insecure_listen_message(flag: &str, addr: SocketAddr) -> String {
    let risk = match flag {
        "--peer-listen" => "join the Raft group and rewrite the cluster state",
        "--http-listen" => "read the event stream and metrics",
        _ => "register agents and control tasks",
    };
    format!(
        "{flag} {addr} is not a loopback address and TLS is off: anyone who can reach it could {risk}. Start with --tls (see README \"Security\"), or pass --insecure to accept this explicitly."
    )
}

/// Refuses non-loopback listeners without TLS unless `insecure`; returns the warnings to log
/// when `insecure` lets them through. `addrs`: (flag, address).
pub fn check_listen_policy(
    tls: &TlsConfig,
    addrs: &[(&str, Option<SocketAddr>)],
) -> Result<Vec<String>> {
    if tls.require_client_cert && !tls.enabled {
        return Err(Error::Config(REQUIRE_CLIENT_CERT_NEEDS_TLS.into()));
    }
    if tls.enabled {
        if tls.cert_ttl < Duration::from_secs(60) {
            return Err(Error::Config("--cert-ttl must be at least 60 seconds".into()));
        }
        return Ok(Vec::new());
    }
    let mut warnings = Vec::new();
    for (flag, addr) in addrs {
        let Some(addr) = addr else { continue };
        if addr.ip().is_loopback() {
            continue;
        }
        let message = insecure_listen_message(flag, *addr);
        if !tls.insecure {
            return Err(Error::Config(message));
        }
        warnings.push(format!("--insecure: {message}"));
    }
    Ok(warnings)
}

/// Parses `--cert-ttl`: `90s`, `30m`, `24h`, `7d` or plain seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 =
        digits.parse().map_err(|_| format!("'{text}' is not a duration like 24h, 30m, 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("'{text}': the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_tls_or_insecure() {
        let public: SocketAddr = "0.0.0.0:7600".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:7600".parse().expect("addr");
        let off = TlsConfig::default();
        assert!(
            check_listen_policy(&off, &[("--listen", Some(local)), ("--peer-listen", None)])
                .expect("loopback")
                .is_empty()
        );
        let err =
            check_listen_policy(&off, &[("--peer-listen", Some(public))]).expect_err("public");
        assert!(err.to_string().contains("--peer-listen 0.0.0.0:7600 is not a loopback"), "{err}");
        let insecure = TlsConfig { insecure: true, ..TlsConfig::default() };
        let warnings = check_listen_policy(&insecure, &[("--listen", Some(public))]).expect("ok");
        assert_eq!(warnings.len(), 1);
        let tls = TlsConfig { enabled: true, ..TlsConfig::default() };
        assert!(check_listen_policy(&tls, &[("--listen", Some(public))]).expect("tls").is_empty());
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn require_client_cert_needs_tls() {
        let local: SocketAddr = "127.0.0.1:7600".parse().expect("addr");
        let without = TlsConfig { require_client_cert: true, ..TlsConfig::default() };
        let err = check_listen_policy(&without, &[("--listen", Some(local))]).expect_err("no tls");
        let text = err.to_string();
        assert!(text.contains("--require-client-cert") && text.contains("--tls"), "{text}");
        let with = TlsConfig { enabled: true, ..without };
        assert!(check_listen_policy(&with, &[("--listen", Some(local))]).is_ok());
    }
}

/// The listen-address policy for `config` (see [`check_listen_policy`]).
pub fn listen_policy(config: &crate::ControllerConfig) -> Result<Vec<String>> {
    check_listen_policy(
        &config.tls,
        &[
            ("--listen", Some(config.listen)),
            ("--peer-listen", config.peer_listen),
            ("--http-listen", config.http_listen),
        ],
    )
}

/// A TLS cluster starts with one member and grows by join tokens: a fresh store with a TLS
/// `--initial-cluster` of more than one member is refused.
pub fn check_fresh_cluster(config: &crate::ControllerConfig, fresh_store: bool) -> Result<()> {
    if config.tls.enabled && fresh_store && !config.join && config.initial_cluster.len() > 1 {
        return Err(Error::Config(format!(
            "--tls with an --initial-cluster of {} fresh members: a TLS cluster starts with one controller (it creates the CA) and grows with controller join tokens; start node {} alone first",
            config.initial_cluster.len(),
            config.raft.id
        )));
    }
    Ok(())
}

/// The client listener's connections: plaintext TCP or TLS.
pub enum Incoming {
    Tcp(tonic::transport::server::TcpIncoming),
    Tls(
        tokio_stream::wrappers::ReceiverStream<
            std::io::Result<berth_security::tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
        >,
    ),
}

/// `--tls`, `--insecure`, `--cert-ttl` of `berth-controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsFlags {
    /// Serve the client API and agent sessions over TLS with the cluster's own CA (created by
    /// the first controller), agents joining with join tokens; turns API tokens (--acl) on.
    #[arg(long, env = "BERTH_TLS")]
    pub tls: bool,
    /// Allow a non-loopback --listen / --peer-listen without TLS (warned at start).
    #[arg(long, env = "BERTH_INSECURE")]
    pub insecure: bool,
    /// Lifetime of the node certificates this controller signs: 90s, 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_duration, env = "BERTH_CERT_TTL")]
    pub cert_ttl: Duration,
    /// With --tls: refuse API calls on connections without a client certificate of the
    /// cluster CA (the CLI's --client-cert; agents present theirs). Joining nodes may still
    /// call GetCaBundle and JoinCluster without one. The first controller writes a bootstrap
    /// admin client certificate to <data-dir>/bootstrap/admin-client/.
    #[arg(long, env = "BERTH_REQUIRE_CLIENT_CERT")]
    pub require_client_cert: bool,
}

impl TlsFlags {
    pub fn apply(&self, config: &mut crate::ControllerConfig) {
        config.tls = TlsConfig {
            enabled: self.tls,
            insecure: self.insecure,
            cert_ttl: self.cert_ttl,
            require_client_cert: self.require_client_cert,
        };
    }
}
