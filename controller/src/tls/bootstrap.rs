//! TLS bootstrap of a controller (TLS mode, at start, before the client listener serves).
//!
//! 1. Wait until the store holds the cluster CA. Meanwhile, whenever this controller leads and
//!    the store has none, it creates a root (`berth_security::CertificateAuthority`), seals the
//!    key with the cluster key and proposes `SecurityCommand::InitCa` (refused if another got
//!    there first: then that one is used).
//! 2. Open the (active) CA key with the cluster key and issue this controller's own certificate
//!    (`berth://controller/<node id>`, DNS `controller.berth`), freshly at every start
//!    (`tls/rotation.rs`'s `own_material`: during a CA rotation the chain carries the cross
//!    certificate and the bundle both roots); keep `{ca.pem,cert.pem,key.pem}` in
//!    `<data-dir>/tls/` (key 0600) — `ca.pem` is what the CLI takes as `--ca-cert`.
//! 3. The controller that created the CA makes one agent and one controller join token (no
//!    expiry; revoke them with `berth operator token revoke`) and writes their text to
//!    `<data-dir>/bootstrap/{agent,controller}.join-token` (0600). With `--require-client-cert`
//!    it also writes the bootstrap admin's client certificate,
//!    `<data-dir>/bootstrap/admin-client/{cert,key,ca}.pem` (`tls/client_cert.rs`). Logs name
//!    the paths only.

use super::TlsConfig;
use crate::clock::Clock;
use crate::crypto::ClusterKey;
use crate::error::{Error, Result};
use crate::propose::Proposer;
use crate::store::security::{CA_KEY_CONTEXT, CaRecord, SecurityCommand};
use crate::store::{Command, RejectKind, SharedState};
use berth_security::{
    CertificateAuthority, ClientAuth, Identity, IdentityFilter, ServerTls, TlsMaterial,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a controller waits for the cluster CA to appear in its store.
pub const CA_WAIT: Duration = Duration::from_secs(120);

/// `<data-dir>/tls`: this controller's `{ca.pem,cert.pem,key.pem}`.
pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// `<data-dir>/bootstrap/<role>.join-token`.
pub fn join_token_path(data_dir: &Path, role: &str) -> PathBuf {
    data_dir.join("bootstrap").join(format!("{role}.join-token"))
}

/// This controller's TLS state.
#[derive(Clone)]
pub struct NodeTls {
    /// CA bundle + this controller's certificate and key (what peer mTLS uses too).
    pub material: TlsMaterial,
    /// The client listener's config (swap it with `ServerTls::set` after renewal/rotation).
    pub client_listener: ServerTls,
    pub identity: Identity,
    /// Own certificate expiry, Unix seconds.
    pub not_after: i64,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeTls({}, not_after {})", self.identity, self.not_after)
    }
}

/// Refuses identities the store lists as revoked (at the TLS handshake).
pub fn revoked_filter(shared: SharedState) -> IdentityFilter {
    Arc::new(move |id: &Identity| shared.read().security.is_revoked(id.role().as_str(), id.id()))
}

/// The client listener's server config for `material`: client certificates optional but
/// verified if presented (a CLI may have none; joining nodes have none yet), revoked identities
/// refused. `--require-client-cert` is enforced per call by `tls/require_cert.rs`, not here,
/// so renewal and rotation (which rebuild this config) cannot lose it.
pub fn client_listener_config(
    material: &TlsMaterial,
    shared: &SharedState,
) -> Result<Arc<berth_security::rustls::ServerConfig>> {
    material
        .server_config(ClientAuth::Optional, Some(revoked_filter(shared.clone())))
        .map_err(|e| Error::Config(format!("TLS: {e}")))
}

/// The CA in `record`, its key opened with the cluster key.
pub fn open_ca(record: &CaRecord, key: &ClusterKey) -> Result<CertificateAuthority> {
    let sealed = hex::decode(&record.sealed_key_hex)
        .map_err(|_| Error::Config("the stored CA key is not hex".into()))?;
    let pem = key.open(CA_KEY_CONTEXT, &sealed).map_err(|e| {
        Error::Config(format!(
            "the cluster CA key cannot be opened with this controller's cluster key ({e}): every controller needs the same --cluster-key-file"
        ))
    })?;
    let pem = String::from_utf8(pem).map_err(|_| Error::Config("the CA key is not PEM".into()))?;
    CertificateAuthority::from_pem(&record.cert_pem, &pem)
        .map_err(|e| Error::Config(format!("the stored CA: {e}")))
}

fn unix_secs(now: berth_proto::model::Timestamp) -> i64 {
    now.millis().div_euclid(1000)
}

/// A new CA record (key sealed) named after the cluster scope.
pub fn new_ca_record(name: &str, key: &ClusterKey, clock: &dyn Clock) -> Result<CaRecord> {
    let now = clock.now();
    let ca = CertificateAuthority::create(name, unix_secs(now), berth_security::DEFAULT_CA_TTL)
        .map_err(|e| Error::Config(format!("creating the cluster CA: {e}")))?;
    let sealed = key
        .seal(CA_KEY_CONTEXT, ca.key_pem().as_bytes())
        .map_err(|e| Error::Config(format!("sealing the CA key: {e}")))?;
    Ok(CaRecord {
        cert_pem: ca.cert_pem().to_string(),
        sealed_key_hex: hex::encode(sealed),
        digest: ca.digest(),
        created_at: now,
    })
}

/// Everything `start` needs.
pub struct Bootstrap<'a> {
    pub config: &'a TlsConfig,
    pub data_dir: &'a Path,
    pub node_id: u64,
    pub ca_name: &'a str,
    pub proposer: &'a Proposer,
    pub shared: &'a SharedState,
    pub cluster_key: &'a ClusterKey,
    pub clock: &'a dyn Clock,
}

impl Bootstrap<'_> {
    /// Steps 1–3 of the module doc.
    pub async fn run(&self) -> Result<NodeTls> {
        let (record, created) = self.wait_for_ca().await?;
        let identity =
            Identity::controller(self.node_id).map_err(|e| Error::Config(format!("TLS: {e}")))?;
        // The active root signs; the trust bundle and (during a CA rotation) the cross
        // certificate come from the store (`tls/rotation.rs`).
        let own = super::rotation::own_material(
            self.shared,
            self.cluster_key,
            &identity,
            self.config.cert_ttl,
            self.clock.now(),
        )?;
        let dir = tls_dir(self.data_dir);
        own.write(&dir)?;
        let material = own.material;
        let client_listener = ServerTls::new(client_listener_config(&material, self.shared)?);
        tracing::info!(
            %identity,
            ca_digest = %record.digest,
            ca_cert = %dir.join(berth_security::tls::CA_FILE).display(),
            "TLS: own certificate issued (clients: --ca-cert this ca.pem)"
        );
        if created {
            self.write_bootstrap_tokens(&record).await;
            if self.config.require_client_cert {
                self.write_bootstrap_client(&record);
            }
        }
        Ok(NodeTls { material, client_listener, identity, not_after: own.issued.not_after })
    }

    /// The CA in the store (waiting for it), and whether this controller created it.
    async fn wait_for_ca(&self) -> Result<(CaRecord, bool)> {
        let deadline = tokio::time::Instant::now() + CA_WAIT;
        let mut created = false;
        let mut next_log = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(ca) = self.shared.read().security.ca.clone() {
                return Ok((ca, created));
            }
            if self.proposer.raft().is_leader() {
                let record = new_ca_record(self.ca_name, self.cluster_key, self.clock)?;
                let cmd = Command::Security(SecurityCommand::InitCa { ca: record });
                match self.proposer.propose(&cmd).await {
                    Ok(_) => {
                        created = true;
                        tracing::info!("TLS bootstrap: created the cluster root CA");
                    }
                    Err(Error::Rejected(r)) if r.kind == RejectKind::FailedPrecondition => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS bootstrap: proposing the CA failed; retrying")
                    }
                }
                continue;
            }
            let now = tokio::time::Instant::now();
            if now > deadline {
                return Err(Error::Config(format!(
                    "TLS: no cluster CA in the store after {}s (a new TLS cluster starts with one controller; others join with a controller join token)",
                    CA_WAIT.as_secs()
                )));
            }
            if now > next_log {
                tracing::info!("TLS: waiting for the cluster CA to reach this controller's store");
                next_log = now + Duration::from_secs(10);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The bootstrap admin's client certificate (`--require-client-cert`): without it the
    /// first admin could not connect to make one.
    fn write_bootstrap_client(&self, record: &CaRecord) {
        let now = self.clock.now();
        let bundle = self
            .shared
            .read()
            .security
            .ca_bundle_pem(now)
            .unwrap_or_else(|| record.cert_pem.clone());
        match super::client_cert::write_bootstrap_admin_client(
            self.data_dir,
            record,
            &bundle,
            self.cluster_key,
            unix_secs(now),
        ) {
            Ok(dir) => tracing::warn!(
                path = %dir.display(),
                "TLS bootstrap: made the bootstrap admin client certificate (cert.pem, key.pem, ca.pem; mode 0600); use it with --client-cert/--client-key until you made your own"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "TLS bootstrap: no bootstrap admin client certificate; restart this controller without --require-client-cert and make one with `berth operator cert create`"
            ),
        }
    }

    async fn write_bootstrap_tokens(&self, record: &CaRecord) {
        for role in
            [crate::store::deregister::AGENT_ROLE, crate::store::deregister::CONTROLLER_ROLE]
        {
            let made = super::service::new_join_token(
                record,
                role,
                None,
                "bootstrap join token",
                self.clock.now(),
            );
            let result = match made {
                Ok((token, text)) => {
                    let cmd = Command::Security(SecurityCommand::CreateJoinToken { token });
                    match self.proposer.propose(&cmd).await {
                        Ok(_) => {
                            let path = join_token_path(self.data_dir, role);
                            crate::auth::bootstrap::write_private(&path, &format!("{text}\n"))
                                .map(|_| path)
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(path) => tracing::warn!(
                    role,
                    path = %path.display(),
                    "TLS bootstrap: made a join token; its text is in this file (mode 0600)"
                ),
                Err(e) => {
                    tracing::error!(role, error = %e, "TLS bootstrap: no join token; create one with `berth operator token create`")
                }
            }
        }
    }
}
