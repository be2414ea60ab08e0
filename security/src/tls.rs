//! rustls configurations for Berth's listeners and clients, swappable at runtime.
//!
//! * [`TlsMaterial`] — the trusted CA bundle (more than one root during a CA rotation) plus an
//!   optional own certificate chain and key; builds a [`ServerConfig`] or [`ClientConfig`].
//! * [`ServerTls`] — the server config behind a lock. [`ServerTls::incoming`] accepts TCP
//!   connections and completes TLS handshakes with whatever config is current *per
//!   connection*, so replacing it ([`ServerTls::set`], after renewal or rotation) needs no
//!   restart. It yields `tokio_rustls::server::TlsStream<TcpStream>`, for which tonic
//!   implements `Connected` with `TlsConnectInfo`: handlers read the client's certificate with
//!   `Request::peer_certs()` ([`peer_identity`]). A plaintext HTTP/2 client gets a GOAWAY
//!   `INADEQUATE_SECURITY` naming the fix instead of a broken handshake.
//! * [`ClientTls`] + [`TlsConnector`] — the same for clients: a tower `Service<Uri>` for
//!   `Endpoint::connect_with_connector` that reads the current config per connection.
//!   [`connect_channel`] dials `https://` URLs through it (and `http://` in plaintext).
//! * Servers verify clients against the CA bundle (required, or optional on the client-API
//!   listener where the CLI authenticates with API tokens); an [`IdentityFilter`] can refuse
//!   identities (revoked nodes) during the handshake. Clients verify the server against the CA
//!   bundle and the name [`CONTROLLER_SERVER_NAME`] (which only controller certificates carry),
//!   not against the address dialled.
//!
//! Only the ring provider is used (explicitly, never the process default). Session resumption
//! is off on both sides: every connection verifies the peer's certificate afresh (revocation,
//! rotation).

use crate::ca::CONTROLLER_SERVER_NAME;
use crate::error::{Result, SecurityError};
use crate::identity::Identity;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;

/// File names of a node's TLS material in its state directory.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
/// A TLS handshake must finish within this, or the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cfg_err(e: impl std::fmt::Display) -> SecurityError {
    SecurityError::Config(e.to_string())
}

/// Whether a server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Verified if presented (client-API listener: a CLI may have none, a joining node has
    /// none yet; the controller's `--require-client-cert` is enforced per call, not here).
    Optional,
    /// Refused without one (peer listener).
    Required,
}

/// Refuses identities during the handshake (true = refuse). Given the verified identity.
pub type IdentityFilter = Arc<dyn Fn(&Identity) -> bool + Send + Sync>;

/// Trusted roots and an optional own certificate.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    pub roots: Vec<CertificateDer<'static>>,
    /// Own chain (leaf first) and key.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Option<Arc<PrivateKeyDer<'static>>>,
}

impl TlsMaterial {
    /// From PEM: the CA bundle, and optionally the own certificate (chain) and key.
    pub fn from_pem(ca_pem: &str, cert_and_key: Option<(&str, &str)>) -> Result<TlsMaterial> {
        let roots = crate::pem::certs_from_pem(ca_pem)?;
        let (chain, key) = match cert_and_key {
            Some((cert, key)) => {
                (crate::pem::certs_from_pem(cert)?, Some(Arc::new(crate::pem::key_from_pem(key)?)))
            }
            None => (Vec::new(), None),
        };
        Ok(TlsMaterial { roots, chain, key })
    }

    /// Reads `ca.pem` and, if both exist, `cert.pem` + `key.pem` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<TlsMaterial> {
        let ca = crate::pem::read_file(&dir.join(CA_FILE))?;
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            let cert = crate::pem::read_file(&cert_path)?;
            let key = crate::pem::read_file(&key_path)?;
            TlsMaterial::from_pem(&ca, Some((&cert, &key)))
        } else {
            TlsMaterial::from_pem(&ca, None)
        }
    }

    /// The identity in the own certificate, if any.
    pub fn identity(&self) -> Option<Result<Identity>> {
        self.chain.first().map(|c| Identity::from_der(c))
    }

    fn root_store(&self) -> Result<Arc<RootCertStore>> {
        let mut store = RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone()).map_err(|e| cfg_err(format!("CA certificate: {e}")))?;
        }
        Ok(Arc::new(store))
    }

    fn own(&self) -> Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        match (&self.key, self.chain.is_empty()) {
            (Some(key), false) => Some((self.chain.clone(), key.clone_key())),
            _ => None,
        }
    }

    /// A server config presenting the own certificate (required) and verifying client
    /// certificates against the CA bundle; `deny` refuses identities at the handshake.
    pub fn server_config(
        &self,
        client_auth: ClientAuth,
        deny: Option<IdentityFilter>,
    ) -> Result<Arc<ServerConfig>> {
        let (chain, key) =
            self.own().ok_or_else(|| cfg_err("a server needs its own certificate and key"))?;
        let builder = WebPkiClientVerifier::builder_with_provider(self.root_store()?, provider());
        let builder = match client_auth {
            ClientAuth::Optional => builder.allow_unauthenticated(),
            ClientAuth::Required => builder,
        };
        let webpki = builder.build().map_err(cfg_err)?;
        let verifier = Arc::new(FilteringVerifier { inner: webpki, deny });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cfg_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(cfg_err)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        // No session resumption: a resumed session skips client certificate verification,
        // so a revoked identity could reconnect. Every connection does a full handshake.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// A client config trusting the CA bundle, presenting the own certificate if there is one.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cfg_err)?
            .with_root_certificates(self.root_store()?);
        let mut config = match self.own() {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(cfg_err)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}

/// WebPKI client verification, then the identity filter.
struct FilteringVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    deny: Option<IdentityFilter>,
}

impl std::fmt::Debug for FilteringVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilteringVerifier")
    }
}

impl ClientCertVerifier for FilteringVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let ok = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let identity =
            Identity::from_der(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        if let Some(deny) = &self.deny
            && deny(&identity)
        {
            tracing::warn!(%identity, "refused an identity at the TLS handshake (revoked, or not allowed on this listener)");
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
        }
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server config that can be replaced while serving.
#[derive(Clone)]
pub struct ServerTls {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ServerTls {
    pub fn new(config: Arc<ServerConfig>) -> ServerTls {
        ServerTls { current: Arc::new(RwLock::new(config)) }
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// New connections use `config`; open ones keep theirs.
    pub fn set(&self, config: Arc<ServerConfig>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Accepts on `listener` (TCP_NODELAY), handshakes each connection in its own task with
    /// the config current at accept time, and yields the established streams for
    /// `Server::serve_with_incoming[_shutdown]`. Failed handshakes are logged and dropped.
    /// Dropping the stream stops accepting and closes the listener.
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<TcpStream>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = tx.closed() => return,
                    a = listener.accept() => a,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(acceptor, tcp)).await {
                        Ok(Ok(Some(stream))) => {
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Ok(None)) => {
                            tracing::info!(%peer, "refused a plaintext connection on the TLS listener")
                        }
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}

/// The HTTP/2 client preface starts with this; a TLS ClientHello with 0x16.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";
/// Debug text of the GOAWAY a plaintext client gets.
pub const PLAINTEXT_REFUSED: &str =
    "this Berth listener requires TLS: use an https:// endpoint and --ca-cert (BERTH_CA_CERT)";

/// Whether the listener at `http://HOST:PORT` is a Berth TLS listener refusing plaintext: sends
/// the HTTP/2 preface and looks for [`PLAINTEXT_REFUSED`] in the GOAWAY it answers (bounded:
/// 2 s in all). For clients whose plaintext call failed with a generic
/// transport error (hyper may report the GOAWAY only as a cancelled request).
pub async fn refuses_plaintext(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(addr) = url.strip_prefix("http://").map(|a| a.trim_end_matches('/')) else {
        return false;
    };
    let probe = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.ok()?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while seen.len() < 8192 {
            let n = tcp.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(PLAINTEXT_REFUSED.len()).any(|w| w == PLAINTEXT_REFUSED.as_bytes()) {
                return Some(true);
            }
        }
        Some(false)
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Some(true)))
}

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
) -> std::io::Result<Option<tokio_rustls::server::TlsStream<TcpStream>>> {
    let mut first = [0u8; 14];
    let n = tcp.peek(&mut first).await?;
    if n > 0 && first[..n] == H2_PREFACE_START[..n] && first[0] == b'P' {
        refuse_plaintext(tcp).await;
        return Ok(None);
    }
    acceptor.accept(tcp).await.map(Some)
}

/// Server preface (empty SETTINGS) then GOAWAY(INADEQUATE_SECURITY, debug text), then close.
async fn refuse_plaintext(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut out = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let debug = PLAINTEXT_REFUSED.as_bytes();
    let len = 8 + debug.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, 0x7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x0c]);
    out.extend_from_slice(debug);
    let _ = tcp.write_all(&out).await;
    let _ = tcp.shutdown().await;
    // Drain what the client still sends until it closes (bounded): closing with unread data
    // would reset the connection before the client reads the GOAWAY.
    let drain = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// A client config that can be replaced while in use.
#[derive(Clone)]
pub struct ClientTls {
    current: Arc<RwLock<Arc<ClientConfig>>>,
}

impl ClientTls {
    pub fn new(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls { current: Arc::new(RwLock::new(config)) }
    }

    pub fn current(&self) -> Arc<ClientConfig> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// New connections use `config`.
    pub fn set(&self, config: Arc<ClientConfig>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn connector(&self) -> TlsConnector {
        TlsConnector { tls: self.clone() }
    }
}

/// tower `Service<Uri>` dialling TCP then TLS with the [`ClientTls`] current at connect time,
/// verifying the server as [`CONTROLLER_SERVER_NAME`]. For `Endpoint::connect_with_connector`
/// (give the endpoint an `http://` URI: TLS is done here, see [`connect_channel`]).
#[derive(Clone)]
pub struct TlsConnector {
    tls: ClientTls,
}

type Io = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower::Service<tonic::transport::Uri> for TlsConnector {
    type Response = Io;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, std::io::Result<Io>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::transport::Uri) -> Self::Future {
        let config = self.tls.current();
        Box::pin(async move {
            let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host, port)).await?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(CONTROLLER_SERVER_NAME)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// Error of [`connect_channel`].
pub type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// Connects to `url`: `https://` through [`TlsConnector`] (an error if `tls` is `None`),
/// `http://` in plaintext. `configure` adjusts the endpoint (timeouts, keepalive).
pub async fn connect_channel(
    url: &str,
    tls: Option<&ClientTls>,
    configure: impl FnOnce(tonic::transport::Endpoint) -> tonic::transport::Endpoint,
) -> std::result::Result<tonic::transport::Channel, ConnectError> {
    if let Some(rest) = url.strip_prefix("https://") {
        let tls = tls.ok_or_else(|| {
            cfg_err(format!(
                "{url} is an https:// endpoint but no CA certificate was given (--ca-cert)"
            ))
        })?;
        let endpoint =
            configure(tonic::transport::Endpoint::from_shared(format!("http://{rest}"))?);
        Ok(endpoint.connect_with_connector(tls.connector()).await?)
    } else {
        let endpoint = configure(tonic::transport::Endpoint::from_shared(url.to_string())?);
        Ok(endpoint.connect().await?)
    }
}

/// The verified identity in a request's client certificate: `None` without one (plaintext or
/// no client certificate), `Some(Err)` if the certificate carries no valid identity.
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<Result<Identity>> {
    let certs = request.peer_certs()?;
    certs.first().map(|c| Identity::from_der(c))
}
