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

/// The material a controller has during a CA rotation: trusts both roots, presents
/// `[leaf from the new root, cross certificate]`.
fn transition_material(
    old: &CertificateAuthority,
    new: &Successor,
    identity: &Identity,
) -> TlsMaterial {
    let key = NodeKey::generate().expect("key");
    let cert = new
        .ca
        .sign_csr(&key.csr_pem().expect("csr"), identity, now(), DEFAULT_CERT_TTL)
        .expect("sign");
    let bundle = format!("{}{}", new.ca.cert_pem(), old.cert_pem());
    let chain = format!("{}{}", cert.cert_pem, new.cross_cert_pem);
    TlsMaterial::from_pem(&bundle, Some((&chain, &key.key_pem()))).expect("material")
}

#[tokio::test]
async fn a_cross_signed_server_verifies_under_the_old_root_only_and_the_new_root_only() {
    let old = CertificateAuthority::create("t", now(), DEFAULT_CA_TTL).expect("ca");
    let new = old.successor("t r2", now(), DEFAULT_CA_TTL, now() + 3600).expect("successor");
    assert_ne!(new.ca.digest(), old.digest());
    let controller = transition_material(&old, &new, &Identity::controller(1).expect("id"));
    let server =
        ServerTls::new(controller.server_config(ClientAuth::Optional, None).expect("server"));
    let url = format!("https://{}", serve(server).await);
    // A CLI with only the old ca.pem: leaf → cross certificate → old root.
    let old_only = TlsMaterial::from_pem(old.cert_pem(), None).expect("old");
    assert_eq!(who_am_i(&url, Some(&client(&old_only))).await.expect("old root only"), "none");
    // A node that already has only the new root: leaf → new root.
    let new_only = TlsMaterial::from_pem(new.ca.cert_pem(), None).expect("new");
    assert_eq!(who_am_i(&url, Some(&client(&new_only))).await.expect("new root only"), "none");
    // An agent still on an old-root certificate is accepted (the server trusts both roots),
    // and so is one renewed onto the new root.
    let old_agent = issue(&old, &Identity::agent(AGENT).expect("id"));
    assert_eq!(
        who_am_i(&url, Some(&client(&old_agent.material))).await.expect("old agent"),
        format!("berth://agent/{AGENT}")
    );
    let new_agent = transition_material(&old, &new, &Identity::agent(AGENT).expect("id"));
    assert!(who_am_i(&url, Some(&client(&new_agent))).await.is_ok(), "new agent");
    // Without the cross certificate in its chain, the server fails for old-root-only clients:
    // the check above can fail.
    let mut bare = controller.clone();
    bare.chain.truncate(1);
    let server = ServerTls::new(bare.server_config(ClientAuth::Optional, None).expect("server"));
    let url = format!("https://{}", serve(server).await);
    assert!(who_am_i(&url, Some(&client(&old_only))).await.is_err(), "no cross certificate");
    assert!(who_am_i(&url, Some(&client(&new_only))).await.is_ok());
    // A root unrelated to the old one does not pass through the cross certificate.
    let stranger = CertificateAuthority::create("x", now(), DEFAULT_CA_TTL).expect("ca");
    let stranger_only = TlsMaterial::from_pem(stranger.cert_pem(), None).expect("m");
    assert!(who_am_i(&url, Some(&client(&stranger_only))).await.is_err());
}

#[test]
fn a_successor_needs_its_own_subject_and_a_future_cross_expiry() {
    let old = CertificateAuthority::create("t", now(), DEFAULT_CA_TTL).expect("ca");
    let err = old.successor("t", now(), DEFAULT_CA_TTL, now() + 60).expect_err("same name");
    assert!(err.to_string().contains("subject"), "{err}");
    assert!(old.successor("t2", now(), DEFAULT_CA_TTL, now() - 1).is_err(), "cross in the past");
    let s = old.successor("t2", now(), DEFAULT_CA_TTL, now() + 60).expect("ok");
    let cross = crate::pem::certs_from_pem(&s.cross_cert_pem).expect("pem");
    let (_, not_after) = cert_validity(&cross[0]).expect("validity");
    assert_eq!(not_after, now() + 60);
    assert_eq!(cert_subject(&cross[0]).expect("subject"), s.ca.subject().expect("subject"));
}
