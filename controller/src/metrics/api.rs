//! [`ApiMetricsLayer`]: a tower layer on the tonic server that counts client API requests
//! (`berth.v1.Berth` only; agent sessions are long-lived streams, not requests) by method and
//! gRPC code, and times them.
//!
//! The code is the response's `grpc-status` header: a failed unary call answers it there
//! ("trailers-only"); a successful one puts `OK` in the trailers, so a response without the
//! header counts as `OK`. A stream is timed to its response headers and counted `OK` if it
//! started (an error in the middle of it is not seen here). An unknown method counts as
//! `unknown`, so clients cannot grow the label set.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http;

use super::Metrics;

/// Path prefix of the client API's methods.
const API_PREFIX: &str = "/berth.v1.Berth/";

#[derive(Clone)]
pub struct ApiMetricsLayer {
    metrics: Metrics,
}

impl ApiMetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        ApiMetricsLayer { metrics }
    }
}

impl<S> tower::Layer<S> for ApiMetricsLayer {
    type Service = ApiMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiMetricsService { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct ApiMetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> tower::Service<http::Request<B>> for ApiMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().strip_prefix(API_PREFIX).map(str::to_string);
        let future = self.inner.call(request);
        let Some(method) = method else { return Box::pin(future) };
        let metrics = self.metrics.clone();
        let started = Instant::now();
        Box::pin(async move {
            let result = future.await;
            if let Ok(response) = &result {
                let code = response_code(response.headers());
                let method = if code == tonic::Code::Unimplemented { "unknown" } else { &method };
                metrics.api_request(method, &code_name(code), started.elapsed());
            }
            result
        })
    }
}

/// The gRPC code a response's headers carry (`Ok` without one).
pub fn response_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .map(|v| tonic::Code::from_bytes(v.as_bytes()))
        .unwrap_or(tonic::Code::Ok)
}

/// The status name of METRICS.md: `OK`, else the code's name (`NotFound`, `Unavailable`, …).
pub fn code_name(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_in_the_contract() {
        let mut h = http::HeaderMap::new();
        assert_eq!(code_name(response_code(&h)), "OK");
        h.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(code_name(response_code(&h)), "NotFound");
        h.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(code_name(response_code(&h)), "Unavailable");
    }
}
