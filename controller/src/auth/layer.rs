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
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !self.auth.enabled() {
            return Box::pin(self.inner.call(request));
        }
        let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        match self.auth.check(request.uri().path(), header) {
            Ok(principal) => {
                if let Some(p) = principal {
                    request.extensions_mut().insert(p);
                }
                Box::pin(self.inner.call(request))
            }
            Err(denial) => {
                let status: tonic::Status = denial.into();
                let response = status.into_http::<R>();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
