//! Renewal and expiry against a fake controller: a real TLS gRPC server (tonic over
//! `ServerTls`) answering only the `BerthSecurity` calls an agent makes, signing with a real
//! CA, and recording the client certificate of every call. Time is a fake `RenewClock`.

use super::*;
use crate::AgentConfig;
use berth_proto::v1;
use berth_security::renew::{RenewClock, renew_at};
use berth_security::{CertificateAuthority, ClientAuth, DEFAULT_CA_TTL, ServerTls};
use std::sync::Mutex;
use tonic::codegen::http;

fn wall() -> i64 {
    berth_security::renew::SystemClock.now()
}

/// A clock the test moves: `sleep_until` jumps to its target if it is within `limit` and
/// otherwise waits (for the test to end).
struct FakeClock {
    now: AtomicI64,
    limit: AtomicI64,
    raised: tokio::sync::Notify,
}

impl FakeClock {
    fn new(now: i64, limit: i64) -> Arc<FakeClock> {
        Arc::new(FakeClock {
            now: AtomicI64::new(now),
            limit: AtomicI64::new(limit),
            raised: tokio::sync::Notify::new(),
        })
    }
}

impl RenewClock for FakeClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep_until(&self, at: i64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            while at > self.limit.load(Ordering::SeqCst) {
                self.raised.notified().await;
            }
            self.now.fetch_max(at, Ordering::SeqCst);
        })
    }
}

/// The fake controller's CA and what it saw.
struct FakeController {
    ca: CertificateAuthority,
    /// What it returns as the CA bundle: its root and a second one (as during a CA rotation).
    bundle: String,
    /// The client certificate of each call (`None`: none presented), in order.
    peers: Mutex<Vec<(String, Option<Vec<u8>>)>>,
    /// Certificates issued by `RenewCertificate`.
    renewed: Mutex<Vec<Vec<u8>>>,
}

const SECURITY: &str = "/berth.v1.BerthSecurity/";

impl FakeController {
    fn peer<T>(&self, method: &str, request: &tonic::Request<T>) -> Option<Identity> {
        let cert = request.peer_certs().and_then(|c| c.first().map(|c| c.as_ref().to_vec()));
        self.peers.lock().unwrap().push((method.to_string(), cert));
        berth_security::peer_identity(request).and_then(|r| r.ok())
    }

    fn get_ca_bundle(
        &self,
        request: tonic::Request<v1::GetCaBundleRequest>,
    ) -> Result<v1::GetCaBundleReply, tonic::Status> {
        self.peer("GetCaBundle", &request);
        let digest = berth_security::ca_digest(self.ca.cert_der());
        Ok(v1::GetCaBundleReply { ca_pem: self.bundle.clone(), digest })
    }

    fn join_cluster(
        &self,
        request: tonic::Request<v1::JoinClusterRequest>,
    ) -> Result<v1::JoinClusterReply, tonic::Status> {
        self.peer("JoinCluster", &request);
        let id = Identity::agent("feedfacefeedfacefeedfacefeedface").unwrap();
        let issued = self
            .ca
            .sign_csr(&request.get_ref().csr_pem, &id, wall(), Duration::from_secs(86_400))
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        Ok(v1::JoinClusterReply {
            cert_pem: issued.cert_pem,
            ca_pem: self.bundle.clone(),
            id: id.id().to_string(),
            not_after: issued.not_after,
            ..Default::default()
        })
    }

    fn renew_certificate(
        &self,
        request: tonic::Request<v1::RenewCertificateRequest>,
    ) -> Result<v1::RenewCertificateReply, tonic::Status> {
        let identity = self
            .peer("RenewCertificate", &request)
            .ok_or_else(|| tonic::Status::unauthenticated("no client certificate"))?;
        let issued = self
            .ca
            .sign_csr(&request.get_ref().csr_pem, &identity, wall(), Duration::from_secs(86_400))
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        self.renewed.lock().unwrap().push(issued.cert_der.clone());
        Ok(v1::RenewCertificateReply {
            cert_pem: issued.cert_pem,
            ca_pem: self.bundle.clone(),
            not_after: issued.not_after,
        })
    }
}

/// The fake controller as a tonic service: routes by path, without implementing the whole
/// generated `BerthSecurity` trait (so new RPCs in the proto do not touch this test).
#[derive(Clone)]
struct FakeService(Arc<FakeController>);

impl tonic::server::NamedService for FakeService {
    const NAME: &'static str = "berth.v1.BerthSecurity";
}

/// One unary call handled by a closure.
struct Unary<F>(Option<F>);

impl<Req, Resp, F> tonic::server::UnaryService<Req> for Unary<F>
where
    F: FnOnce(tonic::Request<Req>) -> Result<Resp, tonic::Status> + Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<'static, Result<tonic::Response<Resp>, tonic::Status>>;
    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let result = match self.0.take() {
            Some(f) => f(request).map(tonic::Response::new),
            None => Err(tonic::Status::internal("called twice")),
        };
        Box::pin(async move { result })
    }
}

async fn unary<Req, Resp, F>(
    request: http::Request<tonic::body::Body>,
    f: F,
) -> http::Response<tonic::body::Body>
where
    Req: tonic_prost::prost::Message + Default + Send + 'static,
    Resp: tonic_prost::prost::Message + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Result<Resp, tonic::Status> + Send + 'static,
{
    let codec = tonic_prost::ProstCodec::<Resp, Req>::default();
    tonic::server::Grpc::new(codec).unary(Unary(Some(f)), request).await
}

impl tower::Service<http::Request<tonic::body::Body>> for FakeService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let c = self.0.clone();
        let method = request.uri().path().strip_prefix(SECURITY).unwrap_or("").to_string();
        Box::pin(async move {
            Ok(match method.as_str() {
                "GetCaBundle" => unary(request, move |r| c.get_ca_bundle(r)).await,
                "JoinCluster" => unary(request, move |r| c.join_cluster(r)).await,
                "RenewCertificate" => unary(request, move |r| c.renew_certificate(r)).await,
                other => tonic::Status::unimplemented(other.to_string()).into_http(),
            })
        })
    }
}

/// A running fake controller: its `https://` URL.
async fn start_controller(ca: CertificateAuthority) -> (Arc<FakeController>, String) {
    let other_root = CertificateAuthority::create("next root", wall(), DEFAULT_CA_TTL).unwrap();
    let bundle = format!("{}{}", ca.cert_pem(), other_root.cert_pem());
    let key = NodeKey::generate().unwrap();
    let cert = ca
        .sign_csr(&key.csr_pem().unwrap(), &Identity::controller(1).unwrap(), wall(), DEFAULT_TTL)
        .unwrap();
    let material =
        TlsMaterial::from_pem(ca.cert_pem(), Some((&cert.cert_pem, &key.key_pem()))).unwrap();
    let server = ServerTls::new(material.server_config(ClientAuth::Optional, None).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let controller =
        Arc::new(FakeController { ca, bundle, peers: Mutex::default(), renewed: Mutex::default() });
    let service = FakeService(controller.clone());
    let incoming = server.incoming(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (controller, url)
}

const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

/// An `https://` URL nothing listens on.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// An agent certificate from `ca` issued at `now` for `ttl`, written to `dir` as the join
/// would: the agent's state after joining.
fn joined_agent(ca: &CertificateAuthority, dir: &std::path::Path, now: i64, ttl: u64) {
    let key = NodeKey::generate().unwrap();
    let id = Identity::agent("0123456789abcdef0123456789abcdef").unwrap();
    let cert = ca.sign_csr(&key.csr_pem().unwrap(), &id, now, Duration::from_secs(ttl)).unwrap();
    berth_security::join::write_node_files(dir, ca.cert_pem(), &cert.cert_pem, &key.key_pem())
        .unwrap();
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tls_config(endpoints: Vec<String>, dir: &std::path::Path) -> AgentConfig {
    AgentConfig { endpoints, data_dir: dir.to_path_buf(), ..AgentConfig::default() }
}

fn read_cert_der(dir: &std::path::Path) -> Vec<u8> {
    let material = TlsMaterial::load_dir(dir).unwrap();
    material.chain[0].as_ref().to_vec()
}

#[tokio::test]
async fn the_agent_certificate_is_renewed_at_two_thirds_and_new_connections_present_it() {
    let start = wall();
    let ca = CertificateAuthority::create("renew test", start, DEFAULT_CA_TTL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Short-lived (450 s, backdated 300 s): its renewal point (start + 300 s) is where the
    // fake clock jumps; the fake controller signs by the wall clock.
    joined_agent(&ca, dir.path(), start, 450);
    let (controller, url) = start_controller(ca).await;
    // The first endpoint is dead: renewal moves on to the next.
    let cfg = tls_config(vec![dead_url().await, url.clone()], dir.path());
    let clock = FakeClock::new(start, start + 449);
    let tls = crate::join::prepare(&cfg, clock.as_ref()).await.unwrap().expect("TLS");
    let first_der = read_cert_der(dir.path());
    let first_config = tls.client.current();
    let renewal = AgentRenewal {
        endpoints: cfg.endpoints.clone(),
        data_dir: dir.path().to_path_buf(),
        tls: tls.client.clone(),
        identity: tls.identity.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let looped = spawn(renewal, tls.validity, clock.clone(), async move {
        let _ = stop_rx.await;
    });

    wait_for("a renewal", || !controller.renewed.lock().unwrap().is_empty()).await;
    wait_for("the new config in use", || !Arc::ptr_eq(&tls.client.current(), &first_config)).await;
    assert_eq!(clock.now(), renew_at(tls.validity.0, tls.validity.1), "renewed when due");
    assert_eq!(clock.now(), start + 300);
    // It dialled with the old certificate (mTLS), and wrote the new one.
    let peers = controller.peers.lock().unwrap().clone();
    assert_eq!(peers[0], ("RenewCertificate".to_string(), Some(first_der.clone())));
    let second_der = controller.renewed.lock().unwrap()[0].clone();
    assert_eq!(read_cert_der(dir.path()), second_der);
    let (_, second_after) = berth_security::cert_validity(&second_der).unwrap();
    assert!(second_after > tls.validity.1, "a later expiry");
    let on_disk = TlsMaterial::load_dir(dir.path()).unwrap();
    assert_eq!(on_disk.roots.len(), 2, "every root of the bundle is kept");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The next connection through the same ClientTls presents the new certificate; so does
    // one from the files as a restart loads them (the handshake proves key.pem matches).
    let reloaded = crate::join::prepare(&cfg, clock.as_ref()).await.unwrap().expect("TLS");
    assert_eq!(reloaded.validity.1, second_after);
    for client_tls in [&tls.client, &reloaded.client] {
        let channel = berth_security::connect_channel(&url, Some(client_tls), |e| e).await;
        let mut client = v1::berth_security_client::BerthSecurityClient::new(channel.unwrap());
        client.get_ca_bundle(v1::GetCaBundleRequest {}).await.unwrap();
        let last = controller.peers.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last, ("GetCaBundle".to_string(), Some(second_der.clone())));
    }

    let _ = stop_tx.send(());
    looped.await.unwrap();
    assert_eq!(controller.renewed.lock().unwrap().len(), 1, "the next one is 16 h away");
}

#[tokio::test]
async fn a_renewal_that_no_endpoint_answers_names_each_and_keeps_the_old_files() {
    let start = wall();
    let ca = CertificateAuthority::create("renew test", start, DEFAULT_CA_TTL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    joined_agent(&ca, dir.path(), start, 450);
    let before = read_cert_der(dir.path());
    let (a, b) = (dead_url().await, dead_url().await);
    let cfg = tls_config(vec![a.clone(), b.clone()], dir.path());
    let tls = crate::join::prepare(&cfg, &berth_security::renew::SystemClock).await.unwrap();
    let tls = tls.expect("TLS");
    let renewal = AgentRenewal {
        endpoints: cfg.endpoints.clone(),
        data_dir: dir.path().to_path_buf(),
        tls: tls.client.clone(),
        identity: tls.identity.clone(),
    };
    let err = renew_once(&renewal).await.expect_err("no endpoint answers").to_string();
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    assert_eq!(read_cert_der(dir.path()), before);
}

#[tokio::test]
async fn an_expired_certificate_without_a_join_token_fails_naming_the_file_and_the_fix() {
    let start = wall();
    let ca = CertificateAuthority::create("expiry test", start, DEFAULT_CA_TTL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    joined_agent(&ca, dir.path(), start, 450);
    let cfg = tls_config(vec![dead_url().await], dir.path());
    // Still valid one second before expiry…
    let clock = FakeClock::new(start + 449, i64::MAX);
    assert!(crate::join::prepare(&cfg, clock.as_ref()).await.is_ok());
    // …not at it.
    clock.now.store(start + 450, Ordering::SeqCst);
    let err = crate::join::prepare(&cfg, clock.as_ref()).await.err().expect("expired");
    let text = err.to_string();
    let cert = dir.path().join("cert.pem");
    assert!(text.contains(&cert.display().to_string()), "{text}");
    assert!(text.contains(&format!("expired at {}", crate::join::utc(start + 450))), "{text}");
    assert!(text.contains("berth operator token create --role agent"), "{text}");
    assert!(text.contains("--join-token"), "{text}");
}

#[tokio::test]
async fn an_expired_certificate_with_a_join_token_joins_again() {
    let start = wall();
    let ca = CertificateAuthority::create("rejoin test", start, DEFAULT_CA_TTL).unwrap();
    let digest = berth_security::ca_digest(ca.cert_der());
    let dir = tempfile::tempdir().unwrap();
    joined_agent(&ca, dir.path(), start, 450);
    let old = read_cert_der(dir.path());
    let (controller, url) = start_controller(ca).await;
    let mut cfg = tls_config(vec![url], dir.path());
    cfg.join_token = Some(berth_security::JoinToken { ca_digest: digest, secret: "ab".repeat(16) });
    let clock = FakeClock::new(start + 451, i64::MAX);
    let tls = crate::join::prepare(&cfg, clock.as_ref()).await.unwrap().expect("TLS");
    assert_eq!(tls.instance_id, "feedfacefeedfacefeedfacefeedface", "the id JoinCluster chose");
    let calls: Vec<String> =
        controller.peers.lock().unwrap().iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(calls, ["GetCaBundle", "JoinCluster"]);
    assert_ne!(read_cert_der(dir.path()), old);
    assert_eq!(crate::session::register::read_instance_id(dir.path()).unwrap(), tls.instance_id);
    assert!(tls.validity.1 > clock.now());
}

#[test]
fn a_failure_after_the_certificate_lapsed_says_to_join_again() {
    let e = || renew_err("RenewCertificate failed on every endpoint: x");
    assert_eq!(explain(e(), 99, 100).to_string(), e().to_string(), "still valid: as is");
    let text = explain(e(), 100, 100).to_string();
    assert!(text.starts_with(&e().to_string()), "{text}");
    assert!(text.contains(&format!("expired at {}", crate::join::utc(100))), "{text}");
    assert!(text.contains("--join-token") && text.contains("--role agent"), "{text}");
}
