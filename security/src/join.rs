//! Joining a cluster with a join token, node side (agents; controllers joining a group):
//!
//! 1. [`fetch_ca`]: `GetCaBundle` over TLS *without* verifying the server (the node trusts
//!    nothing yet), then [`JoinToken::check_ca`]: the bundle's first certificate must have the
//!    digest in the token, or the node refuses it (a man in the middle cannot substitute a CA).
//! 2. [`join`]: a fresh [`NodeKey`], its CSR, and `JoinCluster` over TLS verified against that
//!    CA; the reply's certificate must certify the key. [`Joined::write`] keeps
//!    `{ca.pem,cert.pem,key.pem}` (key 0600) in the node's state directory, which
//!    [`TlsMaterial::load_dir`] reads on later starts (no token needed then);
//!    [`write_node_files`] is the writer (renewal uses it too).

use crate::error::{Result, SecurityError};
use crate::tls::{CA_FILE, CERT_FILE, ClientTls, KEY_FILE, TlsMaterial, connect_channel};
use crate::{Identity, JoinToken, NodeKey, Role};
use berth_proto::v1;
use berth_proto::v1::berth_security_client::BerthSecurityClient;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Connect timeout of the join calls.
pub const JOIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one join call.
pub const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a join failed: `retry` is true for transport problems and an unavailable controller
/// (try again or another endpoint), false when retrying cannot help (bad or revoked token, CA
/// digest mismatch, refused request).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinError {
    pub message: String,
    pub retry: bool,
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JoinError {}

fn fatal(message: impl Into<String>) -> JoinError {
    JoinError { message: message.into(), retry: false }
}

fn from_status(what: &str, s: tonic::Status) -> JoinError {
    use tonic::Code;
    let retry = matches!(
        s.code(),
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Internal
    );
    JoinError { message: format!("{what}: {}", s.message()), retry }
}

fn from_connect(e: crate::tls::ConnectError) -> JoinError {
    let mut cur: &(dyn std::error::Error + 'static) = &*e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    JoinError { message: format!("connect: {cur}"), retry: true }
}

/// Accepts any server certificate. Only for fetching the CA bundle, which is then checked
/// against the join token's digest; never for anything else.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn unverified_client() -> Result<ClientTls> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ClientTls::new(Arc::new(config)))
}

fn configure(e: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    e.connect_timeout(JOIN_CONNECT_TIMEOUT).timeout(JOIN_CALL_TIMEOUT)
}

/// Step 1: the CA bundle of the controller at `url` (`https://`), checked against `token`.
pub async fn fetch_ca(url: &str, token: &JoinToken) -> std::result::Result<String, JoinError> {
    if !url.starts_with("https://") {
        return Err(fatal(format!("{url}: joining with a token needs an https:// endpoint")));
    }
    let tls = unverified_client().map_err(|e| fatal(e.to_string()))?;
    let channel = connect_channel(url, Some(&tls), configure).await.map_err(from_connect)?;
    let reply = BerthSecurityClient::new(channel)
        .get_ca_bundle(v1::GetCaBundleRequest {})
        .await
        .map_err(|s| from_status("GetCaBundle", s))?
        .into_inner();
    let certs = crate::pem::certs_from_pem(&reply.ca_pem).map_err(|e| fatal(e.to_string()))?;
    let first = certs.first().ok_or_else(|| fatal("GetCaBundle returned no certificate"))?;
    token.check_ca(first).map_err(|e| fatal(e.to_string()))?;
    Ok(reply.ca_pem)
}

/// A node that joined: its key, certificate and CA bundle.
pub struct Joined {
    pub key: NodeKey,
    pub reply: v1::JoinClusterReply,
    pub identity: Identity,
    pub material: TlsMaterial,
}

impl Joined {
    /// Writes `{ca.pem,cert.pem,key.pem}` into `dir` (key 0600).
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_node_files(dir, &self.reply.ca_pem, &self.reply.cert_pem, &self.key.key_pem())
    }
}

/// Writes a node's `{ca.pem,cert.pem,key.pem}` into `dir` (key 0600), after joining or
/// renewing. Each file is replaced atomically (temp file + rename); the three renames follow
/// each other, so only a crash between them can leave a certificate without its key.
pub fn write_node_files(dir: &Path, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<()> {
    crate::pem::write_file(&dir.join(CA_FILE), ca_pem, false)?;
    crate::pem::write_file(&dir.join(KEY_FILE), key_pem, true)?;
    crate::pem::write_file(&dir.join(CERT_FILE), cert_pem, false)
}

/// Steps 1 and 2 against `url`: fetch and check the CA, then `JoinCluster` as `role` with a
/// fresh key. `fill` sets the role-specific request fields (`node_id`, addresses).
pub async fn join(
    url: &str,
    token: &JoinToken,
    role: Role,
    fill: impl FnOnce(&mut v1::JoinClusterRequest),
) -> std::result::Result<Joined, JoinError> {
    let ca_pem = fetch_ca(url, token).await?;
    let trust = TlsMaterial::from_pem(&ca_pem, None)
        .and_then(|m| m.client_config())
        .map_err(|e| fatal(e.to_string()))?;
    let channel = connect_channel(url, Some(&ClientTls::new(trust)), configure)
        .await
        .map_err(from_connect)?;
    let key = NodeKey::generate().map_err(|e| fatal(e.to_string()))?;
    let mut request = v1::JoinClusterRequest {
        token: token.to_string(),
        role: role.as_str().to_string(),
        csr_pem: key.csr_pem().map_err(|e| fatal(e.to_string()))?,
        ..Default::default()
    };
    fill(&mut request);
    let reply = BerthSecurityClient::new(channel)
        .join_cluster(request)
        .await
        .map_err(|s| from_status("JoinCluster", s))?
        .into_inner();
    let material = TlsMaterial::from_pem(&reply.ca_pem, Some((&reply.cert_pem, &key.key_pem())))
        .map_err(|e| fatal(format!("JoinCluster reply: {e}")))?;
    let leaf =
        material.chain.first().ok_or_else(|| fatal("JoinCluster returned no certificate"))?;
    if !key.matches(leaf).map_err(|e| fatal(e.to_string()))? {
        return Err(fatal("JoinCluster returned a certificate for another key"));
    }
    let identity = Identity::from_der(leaf).map_err(|e| fatal(e.to_string()))?;
    if identity.role() != role {
        return Err(fatal(format!("JoinCluster certified {identity}, not a {role}")));
    }
    Ok(Joined { key, reply, identity, material })
}
