//! `--require-client-cert`: every connection to the client listener must present a
//! certificate of the cluster CA, except for the two calls a node makes *before* it has one.
//!
//! Design: rustls decides per connection, not per method, and a joining agent or controller
//! calls `BerthSecurity.GetCaBundle` and `JoinCluster` without a certificate (it is getting
//! one). So the listener's handshake keeps client certificates optional but *verified* (a
//! certificate of another CA, or a revoked identity, is refused at the handshake:
//! `tls/bootstrap.rs` `client_listener_config`), and [`RequireClientCertLayer`] — a tower layer
//! on the client listener, outside the API-token layer — answers every other request of a
//! connection without a certificate with `Unauthenticated`, naming the fix, before any service
//! runs. The requirement lives here, not in the rustls config, so the config swaps of renewal
//! and CA rotation cannot drop it.
//!
//! The certificate is an extra factor: API tokens are still checked (`crate::auth`) and still
//! decide what a caller may do, whichever role the certificate names.

use axum::http;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// Methods served to connections without a client certificate (a joining node has none yet).
pub const CERTLESS_METHODS: &[&str] =
    &["/berth.v1.BerthSecurity/GetCaBundle", "/berth.v1.BerthSecurity/JoinCluster"];

/// What a connection without a client certificate is told.
pub const CLIENT_CERT_REQUIRED: &str = "this controller requires a client certificate of the cluster CA (--require-client-cert): give the CLI --client-cert FILE --client-key FILE (BERTH_CLIENT_CERT, BERTH_CLIENT_KEY); an admin makes one with `berth operator cert create NAME --out DIR` (the first one is in the first controller's <data-dir>/bootstrap/admin-client/). An agent presents its own certificate once it joined with --join-token";

/// The refusal for a request to `path` on a connection with (`has_cert`) or without a client
/// certificate; `None`: let it through.
pub fn refusal(path: &str, has_cert: bool) -> Option<tonic::Status> {
    if has_cert || CERTLESS_METHODS.contains(&path) {
        return None;
    }
    Some(tonic::Status::unauthenticated(CLIENT_CERT_REQUIRED))
}

/// The layer; does nothing unless `enabled` (`--tls --require-client-cert`).
#[derive(Clone, Copy, Debug)]
pub struct RequireClientCertLayer {
    enabled: bool,
}

impl RequireClientCertLayer {
    pub fn new(enabled: bool) -> Self {
        RequireClientCertLayer { enabled }
    }
}

impl<S> tower::Layer<S> for RequireClientCertLayer {
    type Service = RequireClientCert<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireClientCert { inner, enabled: self.enabled }
    }
}

#[derive(Clone, Debug)]
pub struct RequireClientCert<S> {
    inner: S,
    enabled: bool,
}

/// Whether the connection a request came on presented a (verified) client certificate.
fn has_client_cert<B>(request: &http::Request<B>) -> bool {
    request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .is_some_and(|certs| !certs.is_empty())
}

impl<S, B, R> tower::Service<http::Request<B>> for RequireClientCert<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if self.enabled
            && let Some(status) = refusal(request.uri().path(), has_client_cert(&request))
        {
            tracing::debug!(path = %request.uri().path(), "refused a call without a client certificate");
            return Box::pin(async move { Ok(status.into_http::<R>()) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, ServiceExt as _};

    #[test]
    fn only_the_join_methods_are_served_without_a_certificate() {
        assert!(refusal("/berth.v1.BerthSecurity/GetCaBundle", false).is_none());
        assert!(refusal("/berth.v1.BerthSecurity/JoinCluster", false).is_none());
        for path in [
            "/berth.v1.Berth/ListClusters",
            "/berth.v1.BerthSecurity/RenewCertificate",
            "/berth.v1.BerthSecurity/IssueClientCertificate",
            "/berth.v1.AgentDispatch/Session",
            "/berth.v1.BerthAcl/WhoAmI",
            "/berth.v1.BerthSecurity/JoinClusterX",
        ] {
            let status = refusal(path, false).expect(path);
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(status.message().contains("--client-cert"), "{}", status.message());
            assert!(
                status.message().contains("berth operator cert create"),
                "{}",
                status.message()
            );
            assert!(refusal(path, true).is_none(), "{path} with a certificate");
        }
    }

    #[tokio::test]
    async fn the_layer_answers_a_certless_call_itself_and_is_off_unless_enabled() {
        let inner = tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::from("served")))
        });
        let call = |enabled: bool, path: &'static str| {
            let svc = RequireClientCertLayer::new(enabled).layer(inner);
            async move {
                let req = http::Request::builder().uri(path).body(()).expect("request");
                svc.oneshot(req).await.expect("infallible")
            }
        };
        let refused = call(true, "/berth.v1.Berth/ListClusters").await;
        assert_eq!(refused.body(), "", "answered by the layer");
        let grpc_status = refused.headers().get("grpc-status").expect("grpc-status");
        assert_eq!(grpc_status, &format!("{}", tonic::Code::Unauthenticated as i32));
        assert_eq!(call(true, "/berth.v1.BerthSecurity/JoinCluster").await.body(), "served");
        assert_eq!(call(false, "/berth.v1.Berth/ListClusters").await.body(), "served");
    }
}
