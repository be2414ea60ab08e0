//! Automatic renewal of the agent's certificate (TLS mode; [`crate::join`] obtained it).
//!
//! * [`spawn`] — runs `berth_security::renew::run` for the certificate the sessions dial with:
//!   due at 2/3 of its lifetime (time from an injected `RenewClock`), a failed renewal retried
//!   every `berth_security::renew::RETRY_SECS`, until the agent stops.
//! * [`renew_once`] — one renewal: a fresh `NodeKey` and its CSR to
//!   `BerthSecurity.RenewCertificate` on the first `https://` endpoint that answers, dialled
//!   with the *current* certificate (mTLS: the controller certifies the identity in that
//!   certificate, never one the agent names). The reply must certify the new key for the same
//!   identity; its CA bundle may hold several roots (CA rotation) and all are trusted. Then
//!   `{ca.pem,cert.pem,key.pem}` in the data dir are rewritten
//!   (`berth_security::join::write_node_files`, key 0600).
//! * apply — `ClientTls::set`: the next connection (a session reconnect, the next renewal)
//!   presents the new certificate; open sessions keep theirs. Nothing restarts.
//!
//! Logs name endpoints, identities and validity times, never key material. The instance id
//! (and its file) never changes here; a lapsed certificate at start is [`crate::join`]'s
//! business.

use crate::AgentError;
use berth_proto::v1;
use berth_proto::v1::berth_security_client::BerthSecurityClient;
use berth_security::renew::{RenewClock, Renewed};
use berth_security::{ClientTls, Identity, NodeKey, TlsMaterial};
use futures::future::BoxFuture;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Connect timeout of a renewal call: a dead endpoint must not hold up the next one.
pub const RENEW_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one `RenewCertificate` call (signing is one ECDSA signature; this only bounds a
/// controller that hangs).
pub const RENEW_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a renewal needs.
#[derive(Clone)]
pub struct AgentRenewal {
    /// The `https://` controller endpoints, tried in turn.
    pub endpoints: Vec<String>,
    /// Holds `{ca.pem,cert.pem,key.pem}`.
    pub data_dir: PathBuf,
    /// The client config sessions dial with; renewal replaces it.
    pub tls: ClientTls,
    /// The identity in the current certificate (a renewed one must carry the same).
    pub identity: Identity,
}

fn renew_err(message: impl Into<String>) -> AgentError {
    AgentError::Renewal(message.into())
}

/// Spawns the renewal loop for the certificate valid `validity` (Unix seconds); it ends when
/// `stop` resolves.
pub fn spawn(
    renewal: AgentRenewal,
    validity: (i64, i64),
    clock: Arc<dyn RenewClock>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let tls = renewal.tls.clone();
    let renewal = Arc::new(renewal);
    // The current certificate's expiry, for the failure message.
    let not_after = Arc::new(AtomicI64::new(validity.1));
    let renew = {
        let (clock, not_after) = (clock.clone(), not_after.clone());
        move || -> BoxFuture<'static, Result<Renewed, AgentError>> {
            let (renewal, clock, not_after) = (renewal.clone(), clock.clone(), not_after.clone());
            Box::pin(async move {
                let result = renew_once(&renewal).await;
                result.map_err(|e| explain(e, clock.now(), not_after.load(Ordering::SeqCst)))
            })
        }
    };
    let apply = move |r: &Renewed| -> Result<(), AgentError> {
        let config = r.material.client_config().map_err(|e| renew_err(e.to_string()))?;
        tls.set(config);
        not_after.store(r.not_after, Ordering::SeqCst);
        Ok(())
    };
    tokio::spawn(async move {
        berth_security::renew::run("agent", clock, validity, renew, apply, stop).await;
    })
}

/// A failed renewal after the certificate lapsed cannot succeed any more (the controller
/// refuses the lapsed certificate at the handshake): say so, and what to do.
fn explain(e: AgentError, now: i64, not_after: i64) -> AgentError {
    if now < not_after {
        return e;
    }
    let cause = match e {
        AgentError::Renewal(message) => message,
        other => other.to_string(),
    };
    renew_err(format!(
        "{cause}; the certificate expired at {}, so this agent cannot reconnect or renew: restart it with --join-token (`berth operator token create --role agent`) to join again",
        crate::join::utc(not_after)
    ))
}

/// One renewal (see the module doc): the new material, also written to the data dir. Does not
/// swap it into `renewal.tls` (the loop's `apply` does).
pub async fn renew_once(renewal: &AgentRenewal) -> Result<Renewed, AgentError> {
    let key = NodeKey::generate().map_err(|e| renew_err(format!("new key: {e}")))?;
    let csr_pem = key.csr_pem().map_err(|e| renew_err(format!("CSR: {e}")))?;
    let mut failures = Vec::new();
    for url in renewal.endpoints.iter().filter(|e| e.starts_with("https://")) {
        match call(url, &renewal.tls, &csr_pem).await {
            Ok(reply) => {
                let renewed = accept(renewal, &key, &reply)
                    .map_err(|e| renew_err(format!("RenewCertificate reply from {url}: {e}")))?;
                berth_security::join::write_node_files(
                    &renewal.data_dir,
                    &reply.ca_pem,
                    &reply.cert_pem,
                    &key.key_pem(),
                )
                .map_err(|e| renew_err(format!("keeping the renewed certificate: {e}")))?;
                tracing::info!(
                    endpoint = %url,
                    identity = %renewal.identity,
                    not_after = renewed.not_after,
                    roots = renewed.material.roots.len(),
                    data_dir = %renewal.data_dir.display(),
                    "agent certificate renewed"
                );
                return Ok(renewed);
            }
            Err(e) => {
                tracing::debug!(endpoint = %url, error = %e, "RenewCertificate failed; next endpoint");
                failures.push(format!("{url}: {e}"));
            }
        }
    }
    if failures.is_empty() {
        return Err(renew_err("no https:// endpoint to renew the certificate with"));
    }
    Err(renew_err(format!("RenewCertificate failed on every endpoint: {}", failures.join("; "))))
}

/// `RenewCertificate` on `url` over mTLS with the current certificate.
async fn call(
    url: &str,
    tls: &ClientTls,
    csr_pem: &str,
) -> Result<v1::RenewCertificateReply, String> {
    let channel = berth_security::connect_channel(url, Some(tls), |e| {
        e.connect_timeout(RENEW_CONNECT_TIMEOUT).timeout(RENEW_CALL_TIMEOUT)
    })
    .await
    .map_err(|e| format!("connect: {}", innermost(&*e)))?;
    let request = v1::RenewCertificateRequest { csr_pem: csr_pem.to_string() };
    BerthSecurityClient::new(channel)
        .renew_certificate(request)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// The innermost cause of a connect error (tonic wraps the useful part deep down).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Checks a reply (it certifies `key`, for the same identity) and builds the new material.
fn accept(
    renewal: &AgentRenewal,
    key: &NodeKey,
    reply: &v1::RenewCertificateReply,
) -> Result<Renewed, String> {
    let material = TlsMaterial::from_pem(&reply.ca_pem, Some((&reply.cert_pem, &key.key_pem())))
        .map_err(|e| e.to_string())?;
    let leaf = material.chain.first().ok_or("no certificate")?;
    if !key.matches(leaf).map_err(|e| e.to_string())? {
        return Err("the certificate is for another key".into());
    }
    let identity = Identity::from_der(leaf).map_err(|e| e.to_string())?;
    if identity != renewal.identity {
        return Err(format!("the certificate is for {identity}, not {}", renewal.identity));
    }
    let (not_before, not_after) =
        berth_security::cert_validity(leaf.as_ref()).map_err(|e| e.to_string())?;
    Ok(Renewed { material, not_before, not_after })
}

#[cfg(test)]
#[path = "renew_tests.rs"]
mod tests;
