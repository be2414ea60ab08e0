//! [`AuthLayer`]: a tower layer on the tonic server. For each request it reads the method path
//! and the `authorization` header, asks [`Auth::check`], and either answers the refusal at once
//! (a trailers-only gRPC error; the request never reaches a service) or inserts the
//! [`Principal`] into the request's extensions (tonic hands them to the handler).

use super::Auth;
use axum::http;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Clone)]
pub struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    pub fn new(auth: Auth) -> Self {
        AuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, auth: self.auth.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Auth,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.auth.enabled() {
            return Box::pin(self.inner.call(request));
        }
        let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        if self.auth.may_be_stale(header) {
            // Perhaps a token made a moment ago on another member: catch up, then decide. The
            // ready service is taken for this call; its clone stays for the next poll_ready.
            let auth = self.auth.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            return Box::pin(async move {
                auth.catch_up().await;
                match admit(&auth, request) {
                    Ok(request) => inner.call(request).await,
                    Err(response) => Ok(response),
                }
            });
        }
        match admit(&self.auth, request) {
            Ok(request) => Box::pin(self.inner.call(request)),
            Err(response) => Box::pin(async move { Ok(response) }),
        }
    }
}

/// The request with its [`Principal`](super::Principal) inserted, or the refusal as a
/// trailers-only gRPC response.
fn admit<B, R: Default>(
    auth: &Auth,
    mut request: http::Request<B>,
) -> Result<http::Request<B>, http::Response<R>> {
    let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
    match auth.check(request.uri().path(), header) {
        Ok(principal) => {
            if let Some(p) = principal {
                request.extensions_mut().insert(p);
            }
            Ok(request)
        }
        Err(denial) => Err(tonic::Status::from(denial).into_http::<R>()),
    }
}
