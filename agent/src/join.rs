//! The agent's TLS identity (`https://` endpoints).
//!
//! * First start: `--join-token` is required. [`prepare`] joins through the first endpoint that
//!   answers (`berth_security::join`: the CA is fetched and checked against the token's
//!   digest, a fresh key's CSR is signed by `JoinCluster`), keeps `{ca.pem,cert.pem,key.pem}`
//!   (key 0600) in the data dir and writes the certificate's instance id to `instance-id`.
//!   Transport failures are retried with backoff; a refused token is fatal.
//! * Later starts load the files (no token needed; a given one is ignored).
//! * Sessions then dial through the returned `ClientTls` (mTLS): the controller registers the
//!   agent as the instance id in its certificate, whatever the agent claims.
//!
//! Plaintext (`http://`) endpoints need none of this; `--join-token` with only `http://`
//! endpoints is a configuration error.

use crate::{AgentConfig, AgentError};
use berth_security::{ClientTls, Role, TlsMaterial};

/// What sessions need for TLS.
#[derive(Clone)]
pub struct AgentTls {
    pub client: ClientTls,
    /// The instance id in the certificate.
    pub instance_id: String,
}

fn config_err(message: impl Into<String>) -> AgentError {
    AgentError::Config(message.into())
}

/// Loads or obtains the agent's certificate when an endpoint is `https://`; `None` otherwise.
pub async fn prepare(cfg: &AgentConfig) -> Result<Option<AgentTls>, AgentError> {
    let https: Vec<&String> = cfg.endpoints.iter().filter(|e| e.starts_with("https://")).collect();
    if https.is_empty() {
        if cfg.join_token.is_some() {
            return Err(config_err(
                "--join-token: needs an https:// --endpoint (a TLS controller)",
            ));
        }
        return Ok(None);
    }
    let dir = &cfg.data_dir;
    if dir.join(berth_security::tls::CERT_FILE).exists() {
        if cfg.join_token.is_some() {
            tracing::info!(data_dir = %dir.display(), "already joined: --join-token ignored");
        }
        return load(dir).map(Some);
    }
    let Some(token) = &cfg.join_token else {
        return Err(config_err(format!(
            "no certificate in {} and no --join-token: an agent joins a TLS cluster once with a join token (`berth operator token create --role agent`)",
            dir.display()
        )));
    };
    let mut backoff = cfg.reconnect_backoff_min;
    loop {
        for url in &https {
            match berth_security::join::join(url, token, Role::Agent, |_| {}).await {
                Ok(joined) => {
                    joined.write(dir).map_err(|e| config_err(e.to_string()))?;
                    let id = joined.identity.id().to_string();
                    crate::session::register::write_instance_id(dir, &id)?;
                    tracing::info!(instance_id = %id, endpoint = %url, "joined the cluster");
                    let client =
                        joined.material.client_config().map_err(|e| config_err(e.to_string()))?;
                    return Ok(Some(AgentTls { client: ClientTls::new(client), instance_id: id }));
                }
                Err(e) if e.retry => {
                    tracing::warn!(endpoint = %url, error = %e, "join failed; retrying")
                }
                Err(e) => {
                    return Err(AgentError::Controller {
                        endpoint: url.to_string(),
                        message: format!("join refused: {e}"),
                        leader_hint: None,
                    });
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(cfg.reconnect_backoff_max);
    }
}

fn load(dir: &std::path::Path) -> Result<AgentTls, AgentError> {
    let material = TlsMaterial::load_dir(dir).map_err(|e| config_err(e.to_string()))?;
    let identity = material
        .identity()
        .ok_or_else(|| config_err(format!("{}: no certificate and key", dir.display())))?
        .map_err(|e| config_err(format!("{}: {e}", dir.display())))?;
    if identity.role() != Role::Agent {
        return Err(config_err(format!(
            "{}: the certificate is for {identity}, not an agent",
            dir.display()
        )));
    }
    let client = material.client_config().map_err(|e| config_err(e.to_string()))?;
    Ok(AgentTls { client: ClientTls::new(client), instance_id: identity.id().to_string() })
}
