//! The agent's TLS identity (`https://` endpoints).
//!
//! * First start: `--join-token` is required. [`prepare`] joins through the first endpoint that
//!   answers (`berth_security::join`: the CA is fetched and checked against the token's
//!   digest, a fresh key's CSR is signed by `JoinCluster`), keeps `{ca.pem,cert.pem,key.pem}`
//!   (key 0600) in the data dir and writes the certificate's instance id to `instance-id`.
//!   Transport failures are retried with backoff; a refused token is fatal.
//! * Later starts load the files (no token needed; a given one is ignored). While the agent
//!   runs, [`crate::renew`] renews the certificate before it lapses.
//! * A certificate that already lapsed (the agent was down past its expiry; time from the
//!   injected `RenewClock`) cannot connect, so it is not dialled: with `--join-token` the agent
//!   joins again exactly as the first time (new key, and a new instance id: the old instance
//!   stays behind, disconnected, and its containers are not adopted — deregister it); without
//!   one, [`prepare`] fails naming the file, the expiry and the fix.
//! * Sessions then dial through the returned `ClientTls` (mTLS): the controller registers the
//!   agent as the instance id in its certificate, whatever the agent claims.
//!
//! Plaintext (`http://`) endpoints need none of this; `--join-token` with only `http://`
//! endpoints is a configuration error.

use crate::{AgentConfig, AgentError};
use berth_security::renew::RenewClock;
use berth_security::{ClientTls, Identity, JoinToken, Role, TlsMaterial};
use std::path::Path;

/// What sessions (and renewal) need for TLS.
#[derive(Clone)]
pub struct AgentTls {
    pub client: ClientTls,
    /// The instance id in the certificate.
    pub instance_id: String,
    /// The identity in the certificate (`berth://agent/<instance_id>`).
    pub identity: Identity,
    /// The certificate's `(not_before, not_after)`, Unix seconds.
    pub validity: (i64, i64),
}

fn config_err(message: impl Into<String>) -> AgentError {
    AgentError::Config(message.into())
}

/// Loads or obtains the agent's certificate when an endpoint is `https://`; `None` otherwise.
/// `clock` tells whether a certificate on disk has lapsed.
pub async fn prepare(
    cfg: &AgentConfig,
    clock: &dyn RenewClock,
) -> Result<Option<AgentTls>, AgentError> {
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
    let cert = dir.join(berth_security::tls::CERT_FILE);
    if cert.exists() {
        let loaded = load(dir)?;
        let expired_at = loaded.validity.1;
        if clock.now() < expired_at {
            if cfg.join_token.is_some() {
                tracing::info!(data_dir = %dir.display(), "already joined: --join-token ignored");
            }
            return Ok(Some(loaded));
        }
        let Some(token) = &cfg.join_token else {
            return Err(config_err(format!(
                "{}: the agent's certificate expired at {} (it was not renewed in time, e.g. the agent was stopped): it can no longer connect. Create a join token (`berth operator token create --role agent`) and start the agent with --join-token to join again (as a new instance; deregister the old one, {})",
                cert.display(),
                utc(expired_at),
                loaded.instance_id
            )));
        };
        tracing::warn!(
            cert = %cert.display(),
            expired_at = %utc(expired_at),
            old_instance_id = %loaded.instance_id,
            "the agent's certificate expired: joining again with --join-token (a new instance id)"
        );
        return join_with(cfg, &https, token).await.map(Some);
    }
    let Some(token) = &cfg.join_token else {
        return Err(config_err(format!(
            "no certificate in {} and no --join-token: an agent joins a TLS cluster once with a join token (`berth operator token create --role agent`)",
            dir.display()
        )));
    };
    join_with(cfg, &https, token).await.map(Some)
}

/// Joins through the first of `https` that answers (retrying transport failures with backoff),
/// keeps the files and the instance id in the data dir.
async fn join_with(
    cfg: &AgentConfig,
    https: &[&String],
    token: &JoinToken,
) -> Result<AgentTls, AgentError> {
    let dir = &cfg.data_dir;
    let mut backoff = cfg.reconnect_backoff_min;
    loop {
        for url in https {
            match berth_security::join::join(url, token, Role::Agent, |_| {}).await {
                Ok(joined) => {
                    joined.write(dir).map_err(|e| config_err(e.to_string()))?;
                    let id = joined.identity.id().to_string();
                    crate::session::register::write_instance_id(dir, &id)?;
                    tracing::info!(instance_id = %id, endpoint = %url, "joined the cluster");
                    return from_material(dir, &joined.material);
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

/// `secs` (Unix) as `YYYY-MM-DD HH:MM:SS UTC` (the proleptic Gregorian calendar).
pub(crate) fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

fn load(dir: &Path) -> Result<AgentTls, AgentError> {
    let material = TlsMaterial::load_dir(dir).map_err(|e| config_err(e.to_string()))?;
    from_material(dir, &material)
}

fn from_material(dir: &Path, material: &TlsMaterial) -> Result<AgentTls, AgentError> {
    let leaf = material
        .chain
        .first()
        .ok_or_else(|| config_err(format!("{}: no certificate and key", dir.display())))?;
    let identity =
        Identity::from_der(leaf).map_err(|e| config_err(format!("{}: {e}", dir.display())))?;
    if identity.role() != Role::Agent {
        return Err(config_err(format!(
            "{}: the certificate is for {identity}, not an agent",
            dir.display()
        )));
    }
    let validity = berth_security::cert_validity(leaf.as_ref())
        .map_err(|e| config_err(format!("{}: {e}", dir.display())))?;
    let client = material.client_config().map_err(|e| config_err(e.to_string()))?;
    Ok(AgentTls {
        client: ClientTls::new(client),
        instance_id: identity.id().to_string(),
        identity,
        validity,
    })
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn expiry_times_print_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_371_199), "2026-12-04 07:59:59 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }
}
