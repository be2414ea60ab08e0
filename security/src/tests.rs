//! End-to-end checks of the TLS configs over real sockets with tonic: mutual TLS, the peer
//! identity a handler sees, optional client auth, the identity filter, plaintext refusal,
//! swapping configs without restarting.

use crate::*;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

const NOW_OFFSET: i64 = 0;
const AGENT: &str = "0123456789abcdef0123456789abcdef";
const PATH: &str = "/berth.test.Echo/WhoAmI";

fn now() -> i64 {
    // Real TLS verification checks validity against the wall clock.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        + NOW_OFFSET
}

struct Node {
    material: TlsMaterial,
}

fn issue(ca: &CertificateAuthority, identity: &Identity) -> Node {
    let key = NodeKey::generate().expect("key");
    let cert =
        ca.sign_csr(&key.csr_pem().expect("csr"), identity, now(), DEFAULT_CERT_TTL).expect("sign");
    let material =
        TlsMaterial::from_pem(ca.cert_pem(), Some((&cert.cert_pem, &key.key_pem()))).expect("m");
    Node { material }
}

/// A one-method gRPC service answering with the caller's identity URI (or "none").
#[derive(Clone)]
struct Echo;

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "berth.test.Echo";
}

#[derive(Clone)]
struct WhoAmI;

impl tower::Service<tonic::Request<()>> for WhoAmI {
    type Response = tonic::Response<String>;
    type Error = tonic::Status;
    type Future = futures::future::Ready<Result<tonic::Response<String>, tonic::Status>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), tonic::Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: tonic::Request<()>) -> Self::Future {
        let answer = match peer_identity(&req) {
            None => "none".to_string(),
            Some(Ok(id)) => id.uri(),
            Some(Err(e)) => format!("bad: {e}"),
        };
        futures::future::ready(Ok(tonic::Response::new(answer)))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<String, ()>::default();
            Ok(tonic::server::Grpc::new(codec).unary(WhoAmI, req).await)
        })
    }
}

async fn serve(tls: ServerTls) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tls.incoming(listener);
    tokio::spawn(
        tonic::transport::Server::builder().add_service(Echo).serve_with_incoming(incoming),
    );
    addr
}

async fn who_am_i(url: &str, tls: Option<&ClientTls>) -> Result<String, String> {
    let channel =
        connect_channel(url, tls, |e| e.connect_timeout(std::time::Duration::from_secs(5)))
            .await
            .map_err(|e| root(&*e))?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|e| e.to_string())?;
    let codec = tonic_prost::ProstCodec::<(), String>::default();
    client
        .unary(tonic::Request::new(()), http::uri::PathAndQuery::from_static(PATH), codec)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{s} ({s:?})"))
}

fn root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    let mut text = cur.to_string();
    while let Some(next) = cur.source() {
        cur = next;
        text = format!("{text}: {cur}");
    }
    text
}

fn client(material: &TlsMaterial) -> ClientTls {
    ClientTls::new(material.client_config().expect("client config"))
}

#[tokio::test]
async fn mtls_gives_the_handler_the_peer_identity() {
    let ca = CertificateAuthority::create("t", now(), DEFAULT_CA_TTL).expect("ca");
    let controller = issue(&ca, &Identity::controller(1).expect("id"));
    let agent = issue(&ca, &Identity::agent(AGENT).expect("id"));
    let server = ServerTls::new(
        controller.material.server_config(ClientAuth::Optional, None).expect("server"),
    );
    let addr = serve(server).await;
    let url = format!("https://{addr}");
    assert_eq!(
        who_am_i(&url, Some(&client(&agent.material))).await.expect("agent call"),
        format!("berth://agent/{AGENT}")
    );
    // Optional client auth: a CLI with only the CA gets through, without an identity.
    let cli = TlsMaterial::from_pem(ca.cert_pem(), None).expect("cli");
    assert_eq!(who_am_i(&url, Some(&client(&cli))).await.expect("cli call"), "none");
    // A certificate from another CA is refused at the handshake.
    let other_ca = CertificateAuthority::create("other", now(), DEFAULT_CA_TTL).expect("ca");
    let mut stranger = issue(&other_ca, &Identity::agent(AGENT).expect("id")).material;
    stranger.roots = vec![ca.cert_der().clone()];
    assert!(who_am_i(&url, Some(&client(&stranger))).await.is_err(), "foreign client cert");
    // A client trusting only another CA does not accept the server.
    let wrong_roots = TlsMaterial::from_pem(other_ca.cert_pem(), None).expect("m");
    let err = who_am_i(&url, Some(&client(&wrong_roots))).await.expect_err("unknown server CA");
    assert!(err.contains("certificate"), "{err}");
    // An https URL without TLS configured is a clear error.
    let err = who_am_i(&url, None).await.expect_err("no CA");
    assert!(err.contains("--ca-cert"), "{err}");
}

#[tokio::test]
async fn an_agent_certificate_does_not_pass_as_a_server() {
    let ca = CertificateAuthority::create("t", now(), DEFAULT_CA_TTL).expect("ca");
    let agent = issue(&ca, &Identity::agent(AGENT).expect("id"));
    let server =
        ServerTls::new(agent.material.server_config(ClientAuth::Optional, None).expect("server"));
    let addr = serve(server).await;
    let cli = TlsMaterial::from_pem(ca.cert_pem(), None).expect("cli");
    let err = who_am_i(&format!("https://{addr}"), Some(&client(&cli))).await.expect_err("agent");
    assert!(err.contains("certificate") || err.contains("Certificate"), "{err}");
}

#[tokio::test]
async fn required_auth_and_the_identity_filter_refuse_at_the_handshake() {
    let ca = CertificateAuthority::create("t", now(), DEFAULT_CA_TTL).expect("ca");
    let controller = issue(&ca, &Identity::controller(1).expect("id"));
    let good = issue(&ca, &Identity::agent(AGENT).expect("id"));
    let revoked_id = Identity::agent("ffffffffffffffffffffffffffffffff").expect("id");
    let revoked = issue(&ca, &revoked_id);
    // Revoked only after its first connection: the second must verify again (no resumption).
    let revoked_now = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = revoked_now.clone();
    let deny: IdentityFilter = Arc::new(move |id: &Identity| {
        *id == revoked_id && flag.load(std::sync::atomic::Ordering::SeqCst)
    });
    let server = ServerTls::new(
        controller.material.server_config(ClientAuth::Required, Some(deny)).expect("server"),
    );
    let addr = serve(server).await;
    let url = format!("https://{addr}");
    assert!(who_am_i(&url, Some(&client(&good.material))).await.is_ok());
    let revoked_tls = client(&revoked.material);
    assert!(who_am_i(&url, Some(&revoked_tls)).await.is_ok(), "not yet revoked");
    revoked_now.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = who_am_i(&url, Some(&revoked_tls)).await.expect_err("revoked");
    assert!(err.contains("Revoked"), "{err}");
    let cli = TlsMaterial::from_pem(ca.cert_pem(), None).expect("cli");
    assert!(who_am_i(&url, Some(&client(&cli))).await.is_err(), "no client cert");
}

#[tokio::test]
async fn a_plaintext_client_is_told_to_use_tls() {
    let ca = CertificateAuthority::create("t", now(), DEFAULT_CA_TTL).expect("ca");
    let controller = issue(&ca, &Identity::controller(1).expect("id"));
    let server = ServerTls::new(
        controller.material.server_config(ClientAuth::Optional, None).expect("server"),
    );
    let addr = serve(server).await;
    let err = who_am_i(&format!("http://{addr}"), None).await.expect_err("plaintext");
    assert!(err.contains("requires TLS: use an https:// endpoint"), "{err}");
    assert!(err.contains("INADEQUATE_SECURITY"), "{err}");
}

#[tokio::test]
async fn configs_swap_without_restarting_the_listener() {
    let ca = CertificateAuthority::create("t", now(), DEFAULT_CA_TTL).expect("ca");
    let controller = issue(&ca, &Identity::controller(1).expect("id"));
    let server = ServerTls::new(
        controller.material.server_config(ClientAuth::Optional, None).expect("server"),
    );
    let addr = serve(server.clone()).await;
    let url = format!("https://{addr}");
    let agent = issue(&ca, &Identity::agent(AGENT).expect("id"));
    let tls = client(&agent.material);
    assert!(who_am_i(&url, Some(&tls)).await.is_ok());
    // Rotate to a new CA on the server: the old trust fails, the swapped client works.
    let ca2 = CertificateAuthority::create("t2", now(), DEFAULT_CA_TTL).expect("ca");
    let controller2 = issue(&ca2, &Identity::controller(1).expect("id"));
    server.set(controller2.material.server_config(ClientAuth::Optional, None).expect("server"));
    assert!(who_am_i(&url, Some(&tls)).await.is_err(), "old CA no longer matches");
    let agent2 = issue(&ca2, &Identity::agent(AGENT).expect("id"));
    tls.set(agent2.material.client_config().expect("client"));
    assert_eq!(
        who_am_i(&url, Some(&tls)).await.expect("after swap"),
        format!("berth://agent/{AGENT}")
    );
}
