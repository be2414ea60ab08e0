//! Certificate renewal on the controller side (TLS mode).
//!
//! * [`spawn_own`] — this controller's own certificate: `berth_security::renew::run` (renew at
//!   2/3 of the lifetime, injected clock) re-issues it from the cluster CA in the store (opened
//!   with the cluster key), keeps it in `<data-dir>/tls/`, and swaps it into the running client
//!   listener and peer mTLS configs — no restart. Beside it a rotation watcher polls the
//!   applied store every [`ROTATION_POLL`]: when the trust the store prescribes at `now`
//!   (`tls::rotation::TrustEpoch`: roots, cross certificate) differs from what this controller
//!   serves — a CA rotation was applied, or the previous root reached `retire_at` — it
//!   re-issues and swaps the same way, and re-pins `<data-dir>/bootstrap/*.join-token`.
//! * [`renew_certificate`] — `BerthSecurity.RenewCertificate`: a node (agent or controller)
//!   authenticated by its current client certificate gets a new certificate for the *same*
//!   identity (the one in the certificate, never one it names), unless that identity was
//!   revoked. A client certificate (`berth://client/<name>`, `tls/client_cert.rs`) renews the
//!   same way and keeps the lifetime it was issued with. Served by any controller. The reply's `ca_pem` is the trust bundle (both roots
//!   during a CA rotation) and the certificate comes from the active root.

use crate::crypto::ClusterKey;
use crate::store::SharedState;
use crate::tls::rotation::TrustEpoch;
use berth_proto::model::Timestamp;
use berth_proto::v1;
use berth_security::renew::{RenewClock, Renewed};
use berth_security::{Identity, TlsMaterial};
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Longest accepted CSR (PEM).
const MAX_CSR_BYTES: usize = 16 * 1024;
/// How often a controller compares the store's trust (CA rotation) with what it serves: the
/// gap between a rotation committing and this controller presenting the new chain. A read of
/// the in-memory state each time; cheap.
pub const ROTATION_POLL: Duration = Duration::from_secs(1);

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

/// Runs the renewal loop of this controller's certificate and the rotation watcher until
/// `shutdown` turns true.
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
    let watcher = watch_rotation(own.clone(), current.clone(), apply.clone(), shutdown.clone());
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        let renewal = berth_security::renew::run("controller", clock, validity, renew, apply, stop);
        tokio::join!(renewal, watcher);
    }))
}

/// The rotation watcher (module doc): re-issues when the store's trust at `now` is not what
/// this controller serves.
async fn watch_rotation<A>(
    own: Arc<OwnRenewal>,
    current: TlsMaterial,
    apply: A,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    A: Fn(&Renewed) -> berth_security::Result<()>,
{
    let mut serving = TrustEpoch::of_material(&current);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(ROTATION_POLL) => {}
        }
        let now = Timestamp(own.clock.now().saturating_mul(1000));
        let wanted = TrustEpoch::of_store(&own.shared.read().security, now);
        if wanted == serving || wanted.roots.is_empty() {
            continue;
        }
        match issue_own(&own).and_then(|r| apply(&r).map(|_| r)) {
            Ok(r) => {
                tracing::info!(
                    identity = %own.identity,
                    roots = ?wanted.roots,
                    cross_signed = wanted.cross,
                    not_after = r.not_after,
                    "CA rotation: own certificate re-issued from the active root and swapped in"
                );
                serving = TrustEpoch::of_material(&r.material);
                if let (Some(data_dir), Some(active)) = (own.dir.parent(), wanted.roots.first()) {
                    for path in crate::tls::rotation::repin_bootstrap_tokens(data_dir, active) {
                        tracing::info!(path = %path.display(), "CA rotation: bootstrap join token re-pinned to the new root");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "CA rotation: re-issuing the own certificate failed; retrying")
            }
        }
    }
}

fn config_err(e: impl std::fmt::Display) -> berth_security::SecurityError {
    berth_security::SecurityError::Config(e.to_string())
}

/// A new own certificate from the active root in the store, with the trust bundle and (in a
/// CA rotation) the cross certificate, written to `<data-dir>/tls/`.
fn issue_own(own: &OwnRenewal) -> berth_security::Result<Renewed> {
    let now = Timestamp(own.clock.now().saturating_mul(1000));
    let made = crate::tls::rotation::own_material(
        &own.shared,
        &own.cluster_key,
        &own.identity,
        own.cert_ttl,
        now,
    )
    .map_err(config_err)?;
    made.write(&own.dir).map_err(config_err)?;
    Ok(Renewed {
        material: made.material,
        not_before: made.issued.not_before,
        not_after: made.issued.not_after,
    })
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
    let (record, bundle) = {
        let st = shared.read();
        if st.security.is_revoked(identity.role().as_str(), identity.id()) {
            return Err(Status::permission_denied(format!(
                "AccessDeniedException: identity {identity} was revoked"
            )));
        }
        let record =
            st.security.ca.clone().ok_or_else(|| Status::failed_precondition("no cluster CA"))?;
        let now = Timestamp(now_secs.saturating_mul(1000));
        let bundle = st.security.ca_bundle_pem(now).unwrap_or_else(|| record.cert_pem.clone());
        (record, bundle)
    };
    let leaf = request.peer_certs().and_then(|c| c.first().map(|d| d.as_ref().to_vec()));
    let ttl = crate::tls::client_cert::renewal_ttl(&identity, leaf.as_deref(), cert_ttl);
    let ca = crate::tls::bootstrap::open_ca(&record, cluster_key).map_err(Status::from)?;
    let issued = ca
        .sign_csr(csr, &identity, now_secs, ttl)
        .map_err(|e| Status::invalid_argument(format!("csr_pem: {e}")))?;
    tracing::info!(%identity, serial = %issued.serial, not_after = issued.not_after, "certificate renewed");
    Ok(Response::new(v1::RenewCertificateReply {
        cert_pem: issued.cert_pem,
        ca_pem: bundle,
        not_after: issued.not_after,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use crate::store::security::SecurityCommand;
    use crate::store::state::State;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// Unix seconds moved by the test; `sleep_until` resolves once they reach the target.
    struct TestClock(AtomicI64);

    impl RenewClock for TestClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
        fn sleep_until(&self, at: i64) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                while self.now() < at {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        }
    }

    fn digests(path: &std::path::Path) -> Vec<String> {
        let pem = std::fs::read_to_string(path).unwrap_or_default();
        berth_security::pem::certs_from_pem(&pem)
            .map(|c| c.iter().map(|d| berth_security::ca_digest(d)).collect())
            .unwrap_or_default()
    }

    async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_watcher_moves_to_the_new_root_then_drops_the_old_one_at_retire_at() {
        let key = Arc::new(ClusterKey::generate().expect("cluster key"));
        let start = 1_800_000_000i64;
        let now = Timestamp(start * 1000);
        let ttl = Duration::from_secs(3600);
        let clock = crate::clock::ManualClock::new(now);
        let record = crate::tls::bootstrap::new_ca_record("default", &key, clock.as_ref())
            .expect("ca record");
        let mut st = State::default();
        let init = SecurityCommand::InitCa { ca: record.clone() };
        crate::store::apply::apply(&mut st, Command::Security(init)).expect("init");
        // What the controller serves: issued before the rotation.
        let identity = Identity::controller(1).expect("id");
        let before = crate::tls::rotation::own_material(
            &SharedState::new(st.clone()),
            &key,
            &identity,
            ttl,
            now,
        )
        .expect("own");
        let rotate = crate::tls::rotation::rotate_command(&st.security, &key, "default", now, ttl)
            .expect("rotate");
        let SecurityCommand::RotateCa { ref new, retire_at, .. } = rotate else {
            panic!("{rotate:?}")
        };
        let new_digest = new.digest.clone();
        crate::store::apply::apply(&mut st, Command::Security(rotate.clone())).expect("apply");
        let shared = SharedState::new(st);

        let dir = tempfile::tempdir().expect("dir");
        let tls_dir = dir.path().join("tls");
        let listener = berth_security::ServerTls::new(
            crate::tls::bootstrap::client_listener_config(&before.material, &shared)
                .expect("config"),
        );
        let first_config = listener.current();
        let test_clock = Arc::new(TestClock(AtomicI64::new(start)));
        let own = OwnRenewal {
            identity,
            shared,
            cluster_key: key,
            cert_ttl: ttl,
            dir: tls_dir.clone(),
            client_listener: listener.clone(),
            peer: None,
            clock: test_clock.clone(),
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = spawn_own(own, &before.material, stop_rx).expect("spawn");

        // The rotation is in the store: re-issued from the new root, both roots, cross cert.
        let (ca, cert) = (tls_dir.join("ca.pem"), tls_dir.join("cert.pem"));
        wait_for("the rotated material", || {
            digests(&ca) == vec![new_digest.clone(), record.digest.clone()]
                && digests(&cert).len() == 2
        })
        .await;
        assert!(!Arc::ptr_eq(&first_config, &listener.current()), "the listener was swapped");
        // At retire_at: only the new root, no cross certificate.
        test_clock.0.store(retire_at.millis() / 1000 + 1, Ordering::SeqCst);
        wait_for("the retired material", || {
            digests(&ca) == vec![new_digest.clone()] && digests(&cert).len() == 1
        })
        .await;
        stop_tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on shutdown")
            .expect("task");
    }
}
