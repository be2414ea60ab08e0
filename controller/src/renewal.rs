//! Certificate renewal on the controller side (TLS mode).
//!
//! * [`spawn_own`] — this controller's own certificate: `berth_security::renew::run` (renew at
//!   2/3 of the lifetime, injected clock) re-issues it from the cluster CA in the store (opened
//!   with the cluster key), keeps it in `<data-dir>/tls/`, and swaps it into the running client
//!   listener and peer mTLS configs — no restart.
//! * [`renew_certificate`] — `BerthSecurity.RenewCertificate`: a node (agent or controller)
//!   authenticated by its current client certificate gets a new certificate for the *same*
//!   identity (the one in the certificate, never one it names), unless that identity was
//!   revoked. Served by any controller.

use crate::crypto::ClusterKey;
use crate::store::SharedState;
use berth_proto::v1;
use berth_security::renew::{RenewClock, Renewed};
use berth_security::{Identity, NodeKey, TlsMaterial};
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Longest accepted CSR (PEM).
const MAX_CSR_BYTES: usize = 16 * 1024;

/// Everything the own-certificate loop needs.
pub struct OwnRenewal {
    pub identity: Identity,
    pub shared: SharedState,
    pub cluster_key: Arc<ClusterKey>,
    pub cert_ttl: Duration,
    /// `<data-dir>/tls`.
    pub dir: PathBuf,
    pub client_listener: berth_security::ServerTls,
    pub peer: Option<crate::peer::PeerTls>,
    pub clock: Arc<dyn RenewClock>,
}

/// Runs the renewal loop of this controller's certificate until `shutdown` turns true.
pub fn spawn_own(
    own: OwnRenewal,
    current: &TlsMaterial,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> crate::error::Result<tokio::task::JoinHandle<()>> {
    let leaf = current
        .chain
        .first()
        .ok_or_else(|| crate::error::Error::Config("TLS: no own certificate".into()))?;
    let validity = berth_security::cert_validity(leaf.as_ref())
        .map_err(|e| crate::error::Error::Config(format!("TLS: own certificate: {e}")))?;
    let own = Arc::new(own);
    let renew = {
        let own = own.clone();
        move || -> BoxFuture<'static, berth_security::Result<Renewed>> {
            let result = issue_own(&own);
            Box::pin(async move { result })
        }
    };
    let apply = {
        let own = own.clone();
        move |r: &Renewed| -> berth_security::Result<()> {
            let config = crate::tls::bootstrap::client_listener_config(&r.material, &own.shared)
                .map_err(|e| berth_security::SecurityError::Config(e.to_string()))?;
            own.client_listener.set(config);
            if let Some(peer) = &own.peer {
                peer.update(&r.material)?;
            }
            Ok(())
        }
    };
    let clock = own.clock.clone();
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        berth_security::renew::run("controller", clock, validity, renew, apply, stop).await;
    }))
}

fn config_err(e: impl std::fmt::Display) -> berth_security::SecurityError {
    berth_security::SecurityError::Config(e.to_string())
}

/// A new own certificate from the CA in the store, written to `<data-dir>/tls/`.
fn issue_own(own: &OwnRenewal) -> berth_security::Result<Renewed> {
    let record = own
        .shared
        .read()
        .security
        .ca
        .clone()
        .ok_or_else(|| config_err("the store has no cluster CA"))?;
    let ca = crate::tls::bootstrap::open_ca(&record, &own.cluster_key).map_err(config_err)?;
    let key = NodeKey::generate()?;
    let issued = ca.sign_csr(&key.csr_pem()?, &own.identity, own.clock.now(), own.cert_ttl)?;
    let key_pem = key.key_pem();
    let write = |name: &str, text: &str, private: bool| {
        berth_security::pem::write_file(&own.dir.join(name), text, private)
    };
    write(berth_security::tls::CA_FILE, &record.cert_pem, false)?;
    write(berth_security::tls::CERT_FILE, &issued.cert_pem, false)?;
    write(berth_security::tls::KEY_FILE, &key_pem, true)?;
    let material = TlsMaterial::from_pem(&record.cert_pem, Some((&issued.cert_pem, &key_pem)))?;
    Ok(Renewed { material, not_before: issued.not_before, not_after: issued.not_after })
}

/// `BerthSecurity.RenewCertificate` (see the module doc).
pub fn renew_certificate(
    shared: &SharedState,
    cluster_key: &ClusterKey,
    now_secs: i64,
    cert_ttl: Duration,
    request: Request<v1::RenewCertificateRequest>,
) -> Result<Response<v1::RenewCertificateReply>, Status> {
    let identity = match berth_security::peer_identity(&request) {
        None => {
            return Err(Status::unauthenticated(
                "RenewCertificate needs the node's current client certificate (TLS)",
            ));
        }
        Some(Err(e)) => {
            return Err(Status::unauthenticated(format!("client certificate: {e}")));
        }
        Some(Ok(id)) => id,
    };
    let csr = &request.get_ref().csr_pem;
    if csr.is_empty() || csr.len() > MAX_CSR_BYTES {
        return Err(Status::invalid_argument(format!(
            "csr_pem must be a PEM certificate signing request of at most {MAX_CSR_BYTES} bytes"
        )));
    }
    let record = {
        let st = shared.read();
        if st.security.is_revoked(identity.role().as_str(), identity.id()) {
            return Err(Status::permission_denied(format!(
                "AccessDeniedException: identity {identity} was revoked"
            )));
        }
        st.security.ca.clone().ok_or_else(|| Status::failed_precondition("no cluster CA"))?
    };
    let ca = crate::tls::bootstrap::open_ca(&record, cluster_key).map_err(Status::from)?;
    let issued = ca
        .sign_csr(csr, &identity, now_secs, cert_ttl)
        .map_err(|e| Status::invalid_argument(format!("csr_pem: {e}")))?;
    tracing::info!(%identity, serial = %issued.serial, not_after = issued.not_after, "certificate renewed");
    Ok(Response::new(v1::RenewCertificateReply {
        cert_pem: issued.cert_pem,
        ca_pem: record.cert_pem,
        not_after: issued.not_after,
    }))
}
