//! Client certificates (`berth://client/<name>`): what a person or automation presents to the
//! client listener with the CLI's `--client-cert` / `--client-key`, required by controllers
//! started with `--require-client-cert` (`tls/require_cert.rs`).
//!
//! * [`issue`] — the pure issuing decision of `BerthSecurity.IssueClientCertificate` (admin):
//!   checks the name ([`berth_security::check_client_name`]), the CSR and the lifetime
//!   ([`client_cert_ttl`]: default [`DEFAULT_CLIENT_CERT_TTL`], [`MIN_CLIENT_CERT_TTL`] to
//!   [`MAX_CLIENT_CERT_TTL`]), then signs with the active root (`SecurityState::ca`, as joins
//!   and renewals do). The key never leaves the client: only its CSR comes in.
//! * [`renewal_ttl`] — a client certificate renews itself with `RenewCertificate`
//!   (`crate::renewal`): same name, the lifetime it was issued with (not the node `--cert-ttl`).
//! * [`write_bootstrap_admin_client`] — the first controller with `--require-client-cert` (the
//!   one that creates the CA) writes `<data-dir>/bootstrap/admin-client/{cert,key,ca}.pem`
//!   (files 0600, dirs 0700) for [`BOOTSTRAP_CLIENT_NAME`], beside `admin.token`, so the first
//!   admin can connect at all; it is a certificate only — the admin token still decides.
//!
//! A client certificate authenticates the connection; it never grants a role (API tokens do)
//! and is refused wherever a controller or an agent is expected (peer listener, agent
//! sessions, controller joins), since those check the certificate's role.

use crate::crypto::ClusterKey;
use crate::error::{Error, Result};
use crate::store::security::CaRecord;
use berth_proto::v1;
use berth_security::{Identity, IssuedCert, NodeKey, Role};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::Status;

/// Lifetime of a client certificate when the request names none (`ttl_secs` 0).
pub const DEFAULT_CLIENT_CERT_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Longest client certificate lifetime: one year (there is no revocation list for clients
/// yet, so a stolen one must lapse within a bounded time).
pub const MAX_CLIENT_CERT_TTL: Duration = Duration::from_secs(365 * 86_400);
/// Shortest: the same floor as node certificates (`--cert-ttl`).
pub const MIN_CLIENT_CERT_TTL: Duration = Duration::from_secs(60);
/// Longest accepted CSR (PEM).
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// The name of the bootstrap admin's client certificate.
pub const BOOTSTRAP_CLIENT_NAME: &str = "bootstrap-admin";

fn invalid(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("InvalidParameterException: {field}: {message}"))
}

/// The lifetime for `ttl_secs` (0: the default), or the refusal naming the field.
pub fn client_cert_ttl(ttl_secs: u64) -> std::result::Result<Duration, Status> {
    let ttl = match ttl_secs {
        0 => DEFAULT_CLIENT_CERT_TTL,
        s => Duration::from_secs(s),
    };
    if ttl < MIN_CLIENT_CERT_TTL || ttl > MAX_CLIENT_CERT_TTL {
        return Err(invalid(
            "ttlSecs",
            format!(
                "{ttl_secs} is out of range: at least {} (60 seconds), at most {} (one year); 0 means 30 days",
                MIN_CLIENT_CERT_TTL.as_secs(),
                MAX_CLIENT_CERT_TTL.as_secs()
            ),
        ));
    }
    Ok(ttl)
}

/// The `IssueClientCertificate` decision: the checks in the module doc, then a certificate for
/// `berth://client/<name>` from the active root in `record` (opened with `cluster_key`).
pub fn issue(
    record: &CaRecord,
    cluster_key: &ClusterKey,
    req: &v1::IssueClientCertificateRequest,
    now_secs: i64,
) -> std::result::Result<IssuedCert, Status> {
    let identity = Identity::client(&req.name).map_err(|e| invalid("name", e))?;
    if req.csr_pem.trim().is_empty() || req.csr_pem.len() > MAX_CSR_BYTES {
        return Err(invalid(
            "csrPem",
            format!("must be a PEM certificate signing request of at most {MAX_CSR_BYTES} bytes"),
        ));
    }
    let ttl = client_cert_ttl(req.ttl_secs)?;
    let ca = super::bootstrap::open_ca(record, cluster_key).map_err(Status::from)?;
    ca.sign_csr(&req.csr_pem, &identity, now_secs, ttl).map_err(|e| invalid("csrPem", e))
}

/// The lifetime a renewed certificate gets: a client's keeps the one it was issued with (its
/// validity minus the backdating, within the client bounds); nodes get `cert_ttl`.
pub fn renewal_ttl(
    identity: &Identity,
    presented_leaf: Option<&[u8]>,
    cert_ttl: Duration,
) -> Duration {
    if identity.role() != Role::Client {
        return cert_ttl;
    }
    let lifetime = presented_leaf
        .and_then(|der| berth_security::cert_validity(der).ok())
        .map(|(not_before, not_after)| {
            let secs = not_after
                .saturating_sub(not_before)
                .saturating_sub(berth_security::ca::BACKDATE.as_secs() as i64);
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        })
        .unwrap_or(DEFAULT_CLIENT_CERT_TTL);
    lifetime.clamp(MIN_CLIENT_CERT_TTL, MAX_CLIENT_CERT_TTL)
}

/// `<data-dir>/bootstrap/admin-client`.
pub fn bootstrap_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("bootstrap").join("admin-client")
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes [`bootstrap_dir`]`/{cert.pem,key.pem,ca.pem}` (0600; the directories 0700) for
/// [`BOOTSTRAP_CLIENT_NAME`] with a fresh key, a certificate of [`DEFAULT_CLIENT_CERT_TTL`]
/// from the active root, and `bundle_pem`. Returns the directory.
pub fn write_bootstrap_admin_client(
    data_dir: &Path,
    record: &CaRecord,
    bundle_pem: &str,
    cluster_key: &ClusterKey,
    now_secs: i64,
) -> Result<PathBuf> {
    let tls = |e: berth_security::SecurityError| Error::Config(format!("TLS: {e}"));
    let key = NodeKey::generate().map_err(tls)?;
    let req = v1::IssueClientCertificateRequest {
        name: BOOTSTRAP_CLIENT_NAME.into(),
        csr_pem: key.csr_pem().map_err(tls)?,
        ttl_secs: 0,
    };
    let issued = issue(record, cluster_key, &req, now_secs).map_err(|s| {
        Error::Config(format!("TLS: bootstrap client certificate: {}", s.message()))
    })?;
    let dir = bootstrap_dir(data_dir);
    let io = |e: std::io::Error| Error::Config(format!("{}: {e}", dir.display()));
    if let Some(parent) = dir.parent() {
        private_dir(parent).map_err(io)?;
    }
    private_dir(&dir).map_err(io)?;
    for (name, text) in [
        (berth_security::tls::KEY_FILE, key.key_pem()),
        (berth_security::tls::CERT_FILE, issued.cert_pem),
        (berth_security::tls::CA_FILE, bundle_pem.to_string()),
    ] {
        crate::auth::bootstrap::write_private(&dir.join(name), &text).map_err(io)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::Timestamp;

    fn ca() -> (CaRecord, ClusterKey) {
        let key = ClusterKey::generate().expect("cluster key");
        let clock = crate::clock::ManualClock::new(Timestamp(1_800_000_000_000));
        let record =
            crate::tls::bootstrap::new_ca_record("default", &key, clock.as_ref()).expect("ca");
        (record, key)
    }

    fn request(name: &str, ttl_secs: u64) -> v1::IssueClientCertificateRequest {
        let key = NodeKey::generate().expect("key");
        v1::IssueClientCertificateRequest {
            name: name.into(),
            csr_pem: key.csr_pem().expect("csr"),
            ttl_secs,
        }
    }

    #[test]
    fn client_certificates_default_to_30_days_within_60_seconds_and_a_year() {
        assert_eq!(client_cert_ttl(0).expect("default"), DEFAULT_CLIENT_CERT_TTL);
        assert_eq!(client_cert_ttl(60).expect("min"), Duration::from_secs(60));
        assert_eq!(client_cert_ttl(365 * 86_400).expect("max"), MAX_CLIENT_CERT_TTL);
        for bad in [59, 365 * 86_400 + 1] {
            let err = client_cert_ttl(bad).expect_err("out of range");
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().starts_with("InvalidParameterException: ttlSecs: "), "{err:?}");
        }
    }

    #[test]
    fn issuing_signs_the_csr_for_the_client_name_with_the_active_root() {
        let (record, key) = ca();
        let now = 1_800_000_000;
        let issued = issue(&record, &key, &request("ci.deploy-1", 3600), now).expect("issue");
        assert_eq!(issued.identity, Identity::client("ci.deploy-1").expect("id"));
        assert_eq!(issued.not_after, now + 3600);
        let back = Identity::from_der(&issued.cert_der).expect("identity");
        assert_eq!(back.uri(), "berth://client/ci.deploy-1");
        let err = issue(&record, &key, &request("Ops/1", 0), now).expect_err("name");
        assert!(err.message().starts_with("InvalidParameterException: name: "), "{err:?}");
        let mut empty = request("ops", 0);
        empty.csr_pem.clear();
        let err = issue(&record, &key, &empty, now).expect_err("csr");
        assert!(err.message().starts_with("InvalidParameterException: csrPem: "), "{err:?}");
        let mut garbage = request("ops", 0);
        garbage.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n".into();
        assert_eq!(
            issue(&record, &key, &garbage, now).expect_err("bad").code(),
            tonic::Code::InvalidArgument
        );
        let err = issue(&record, &key, &request("ops", 30), now).expect_err("ttl");
        assert!(err.message().contains("ttlSecs"), "{err:?}");
    }

    #[test]
    fn a_renewed_client_certificate_keeps_its_lifetime_and_nodes_get_the_node_ttl() {
        let (record, key) = ca();
        let now = 1_800_000_000;
        let issued = issue(&record, &key, &request("ops", 7 * 86_400), now).expect("issue");
        let client = Identity::client("ops").expect("id");
        let node_ttl = Duration::from_secs(3600);
        assert_eq!(
            renewal_ttl(&client, Some(&issued.cert_der), node_ttl),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(renewal_ttl(&client, None, node_ttl), DEFAULT_CLIENT_CERT_TTL);
        let agent = Identity::agent("0123456789abcdef0123456789abcdef").expect("agent");
        assert_eq!(renewal_ttl(&agent, Some(&issued.cert_der), node_ttl), node_ttl);
    }

    #[test]
    fn the_bootstrap_admin_client_is_written_private() {
        let (record, key) = ca();
        let dir = tempfile::tempdir().expect("dir");
        let out = write_bootstrap_admin_client(
            dir.path(),
            &record,
            &record.cert_pem,
            &key,
            1_800_000_000,
        )
        .expect("write");
        assert_eq!(out, dir.path().join("bootstrap/admin-client"));
        let material = berth_security::TlsMaterial::load_dir(&out).expect("load");
        let id = material.identity().expect("cert").expect("identity");
        assert_eq!(id, Identity::client(BOOTSTRAP_CLIENT_NAME).expect("id"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&out.join("key.pem")), 0o600);
            assert_eq!(mode(&out), 0o700);
            assert_eq!(mode(&dir.path().join("bootstrap")), 0o700);
        }
    }

    fn open_record(record: &CaRecord, key: &ClusterKey) -> berth_security::CertificateAuthority {
        crate::tls::bootstrap::open_ca(record, key).expect("open")
    }

    /// Material with a certificate for `identity` from `ca` (valid now).
    fn material(
        ca: &berth_security::CertificateAuthority,
        identity: &Identity,
    ) -> berth_security::TlsMaterial {
        let key = NodeKey::generate().expect("key");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let csr = key.csr_pem().expect("csr");
        let issued = ca.sign_csr(&csr, identity, now, Duration::from_secs(3600)).expect("sign");
        berth_security::TlsMaterial::from_pem(
            ca.cert_pem(),
            Some((&issued.cert_pem, &key.key_pem())),
        )
        .expect("material")
    }

    /// Whether the server side of a loopback handshake between `server` and `client` succeeds.
    async fn server_accepts(
        server: std::sync::Arc<berth_security::rustls::ServerConfig>,
        client: &berth_security::TlsMaterial,
    ) -> bool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            berth_security::tokio_rustls::TlsAcceptor::from(server).accept(tcp).await.is_ok()
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = berth_security::rustls::pki_types::ServerName::try_from(
            berth_security::CONTROLLER_SERVER_NAME,
        )
        .expect("name");
        let connector = berth_security::tokio_rustls::TlsConnector::from(
            client.client_config().expect("config"),
        );
        let _client = connector.connect(name, tcp).await;
        tokio::time::timeout(Duration::from_secs(10), accept).await.expect("in time").expect("task")
    }

    /// The peer listener (Raft) admits controllers only: a client certificate — even one whose
    /// name looks like a node id — is refused at the handshake. The client listener accepts it
    /// (and a certificate-less joining node).
    #[tokio::test]
    async fn a_client_certificate_is_refused_by_the_peer_listener_and_accepted_by_the_client_listener()
     {
        let now = 1_800_000_000;
        let ca = berth_security::CertificateAuthority::create(
            "t",
            now - 60,
            berth_security::DEFAULT_CA_TTL,
        )
        .expect("ca");
        let controller = material(&ca, &Identity::controller(1).expect("id"));
        let client = material(&ca, &Identity::client("1").expect("id"));
        let nobody = berth_security::TlsMaterial::from_pem(ca.cert_pem(), None).expect("trust");
        let peer = crate::peer::PeerTls::new(&controller, None).expect("peer tls");
        assert!(server_accepts(peer.server.current(), &controller).await, "a controller");
        assert!(
            !server_accepts(peer.server.current(), &client).await,
            "a client on the peer listener"
        );
        assert!(!server_accepts(peer.server.current(), &nobody).await, "no certificate");
        let shared = crate::store::SharedState::new(crate::store::state::State::default());
        let listener =
            crate::tls::bootstrap::client_listener_config(&controller, &shared).expect("config");
        assert!(server_accepts(listener.clone(), &client).await, "a client on the client listener");
        assert!(
            server_accepts(listener.clone(), &nobody).await,
            "a joining node without a certificate"
        );
        // What IssueClientCertificate signs chains to the record's (active) root.
        let (record, key) = super::tests::ca();
        let key_pair = NodeKey::generate().expect("key");
        let req = v1::IssueClientCertificateRequest {
            name: "ops".into(),
            csr_pem: key_pair.csr_pem().expect("csr"),
            ttl_secs: 3600,
        };
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let issued = issue(&record, &key, &req, unix_now).expect("issue");
        let issued_material = berth_security::TlsMaterial::from_pem(
            &record.cert_pem,
            Some((&issued.cert_pem, &key_pair.key_pem())),
        )
        .expect("material");
        let active = open_record(&record, &key);
        let active_controller = material(&active, &Identity::controller(1).expect("id"));
        let active_listener =
            crate::tls::bootstrap::client_listener_config(&active_controller, &shared)
                .expect("config");
        assert!(server_accepts(active_listener, &issued_material).await, "from the active root");
        assert!(!server_accepts(listener, &issued_material).await, "not from another CA");
    }
}
