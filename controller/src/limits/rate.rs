//! [`RateLimitLayer`]: per-token request rate limiting on the client listener (a tower layer
//! on the tonic server, inside the metrics layer so throttled calls are counted with code
//! `ResourceExhausted`).
//!
//! The key is the first 8 bytes of SHA-256 of the raw `authorization` metadata value (an API
//! token is never kept in memory in the clear), or of the peer IP when a request carries none.
//! The limiter is GCRA (`governor`): `rate` requests per second sustained, `burst` at once.
//! Agent sessions (`berth.v1.AgentDispatch`) are not limited; Raft peers have their own
//! listener. Keys idle long enough to be full again are dropped as the map grows, so random
//! tokens cannot grow it without bound.

use axum::http;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter as Gcra};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// The message of a throttled call (ECS's error type and text).
pub const THROTTLED_MESSAGE: &str = "ThrottlingException: Rate exceeded";
/// Path prefix of the methods that are never limited.
const UNLIMITED_PREFIXES: [&str; 2] = ["/berth.v1.AgentDispatch/", "/berth.v1.RaftPeer/"];
/// Idle keys are swept when the map holds more than this many.
const SWEEP_ABOVE: usize = 10_000;
/// ...checked once every this many requests.
const SWEEP_EVERY: u64 = 1024;

/// governor's keyed limiter, on hashed keys.
type Keyed<C> = Gcra<u64, DashMapStateStore<u64>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A keyed GCRA limiter (cheap to clone; one shared state).
pub struct RateLimiter<C: Clock = DefaultClock> {
    gcra: Arc<Keyed<C>>,
    calls: Arc<AtomicU64>,
}

impl<C: Clock> Clone for RateLimiter<C> {
    fn clone(&self) -> Self {
        RateLimiter { gcra: self.gcra.clone(), calls: self.calls.clone() }
    }
}

impl RateLimiter {
    /// `rate` per second with bursts of `burst`, on the system clock; `None` when `rate` is 0.
    pub fn new(rate: u32, burst: u32) -> Option<RateLimiter> {
        Self::with_clock(rate, burst, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// As [`RateLimiter::new`], on `clock` (tests inject a fake one).
    pub fn with_clock(rate: u32, burst: u32, clock: C) -> Option<RateLimiter<C>> {
        let rate = NonZeroU32::new(rate)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        let gcra = Gcra::new(quota, DashMapStateStore::default(), clock);
        Some(RateLimiter { gcra: Arc::new(gcra), calls: Arc::new(AtomicU64::new(0)) })
    }

    /// Takes one request from `key`'s allowance; false when over the limit.
    pub fn allow(&self, key: u64) -> bool {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SWEEP_EVERY) && self.gcra.len() > SWEEP_ABOVE {
            self.gcra.retain_recent();
            self.gcra.shrink_to_fit();
        }
        self.gcra.check_key(&key).is_ok()
    }

    /// Keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.gcra.len()
    }
}

/// Whether a bearer secret belongs to a token this controller knows (`None`: every
/// well-formed one counts).
pub type KnownToken = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The limiter's key for a request: the bearer secret in its `authorization` value when it is
/// a known token (parsed, so one token under any spelling of the header shares one bucket),
/// else its peer IP (so made-up or malformed credentials share the caller's address bucket).
pub fn key_of(
    authorization: Option<&[u8]>,
    peer: Option<std::net::IpAddr>,
    known: &dyn Fn(&str) -> bool,
) -> u64 {
    let secret = authorization.and_then(crate::auth::bearer_secret).filter(|s| known(s));
    let digest = match (secret, peer) {
        (Some(s), _) => ring::digest::digest(&ring::digest::SHA256, format!("auth:{s}").as_bytes()),
        (None, Some(ip)) => {
            ring::digest::digest(&ring::digest::SHA256, format!("peer:{ip}").as_bytes())
        }
        (None, None) => return 0,
    };
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// The tower layer; a `None` limiter passes everything.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Option<RateLimiter>,
    known: Option<KnownToken>,
}

impl RateLimitLayer {
    pub fn new(limiter: Option<RateLimiter>) -> Self {
        RateLimitLayer { limiter, known: None }
    }

    /// Only known tokens get buckets of their own ([`key_of`]).
    pub fn with_known_tokens(mut self, known: KnownToken) -> Self {
        self.known = Some(known);
        self
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService { inner, limiter: self.limiter.clone(), known: self.known.clone() }
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Option<RateLimiter>,
    known: Option<KnownToken>,
}

impl<S, B, R> tower::Service<http::Request<B>> for RateLimitService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(limiter) = &self.limiter
            && !UNLIMITED_PREFIXES.iter().any(|p| request.uri().path().starts_with(p))
        {
            let auth = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
            let peer = request
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|i| i.remote_addr())
                .map(|a| a.ip());
            let any = |_: &str| true;
            let known: &dyn Fn(&str) -> bool = match &self.known {
                Some(k) => k.as_ref(),
                None => &any,
            };
            if !limiter.allow(key_of(auth, peer, known)) {
                let mut status = tonic::Status::resource_exhausted(THROTTLED_MESSAGE);
                status.metadata_mut().insert(
                    "x-berth-error-type",
                    tonic::metadata::MetadataValue::from_static("ThrottlingException"),
                );
                return Box::pin(std::future::ready(Ok(status.into_http::<R>())));
            }
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::time::Duration;

    #[test]
    fn burst_then_steady_rate_then_recovery() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(10, 20, clock.clone()).expect("on");
        let k = key_of(Some(b"Bearer a"), None, &|_| true);
        assert_eq!((0..25).filter(|_| l.allow(k)).count(), 20, "the burst");
        assert!(!l.allow(k));
        clock.advance(Duration::from_millis(100));
        assert!(l.allow(k), "one cell per 100 ms at 10/s");
        assert!(!l.allow(k));
        clock.advance(Duration::from_secs(2));
        assert_eq!((0..25).filter(|_| l.allow(k)).count(), 20, "full again after idling");
    }

    #[test]
    fn keys_are_independent_and_zero_disables() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(1, 1, clock).expect("on");
        let a = key_of(Some(b"Bearer a"), None, &|_| true);
        let b = key_of(Some(b"Bearer b"), None, &|_| true);
        let ip = key_of(None, Some("10.0.0.1".parse().expect("ip")), &|_| true);
        assert!(l.allow(a) && !l.allow(a));
        assert!(l.allow(b), "another token has its own allowance");
        assert!(l.allow(ip), "a peer without a token has its own");
        assert_eq!(l.tracked_keys(), 3);
        assert!(RateLimiter::new(0, 10).is_none());
    }

    #[test]
    fn key_prefers_the_token_and_never_collides_token_with_ip() {
        let ip = Some("127.0.0.1".parse().expect("ip"));
        assert_eq!(
            key_of(Some(b"Bearer x"), ip, &|_| true),
            key_of(Some(b"Bearer x"), None, &|_| true)
        );
        assert_ne!(key_of(Some(b"Bearer 127.0.0.1"), None, &|_| true), key_of(None, ip, &|_| true));
        assert_eq!(
            key_of(Some(b""), ip, &|_| true),
            key_of(None, ip, &|_| true),
            "an empty value counts as none"
        );
        // One token under any spelling of the header: one bucket.
        let spellings: [&[u8]; 3] = [b"Bearer tok", b"bearer   tok ", b"BEARER tok"];
        let keys: std::collections::BTreeSet<u64> =
            spellings.iter().map(|h| key_of(Some(h), ip, &|_| true)).collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        // Made-up tokens share the caller's address bucket.
        let known = |s: &str| s == "tok";
        assert_eq!(key_of(Some(b"Bearer madeup1"), ip, &known), key_of(None, ip, &known));
        assert_eq!(key_of(Some(b"Bearer madeup2"), ip, &known), key_of(None, ip, &known));
        assert_ne!(key_of(Some(b"Bearer tok"), ip, &known), key_of(None, ip, &known));
    }

    #[tokio::test]
    async fn throttled_calls_get_resource_exhausted_and_agents_pass() {
        use tower::{Layer, Service, ServiceExt};
        let ok = tower::service_fn(|_r: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
        let mut svc = RateLimitLayer::new(RateLimiter::new(1, 1)).layer(ok);
        let call = |path: &str| http::Request::builder().uri(path).body(()).expect("request");
        let first = svc.ready().await.expect("ready").call(call("/berth.v1.Berth/ListTasks")).await;
        assert!(first.expect("ok").headers().get("grpc-status").is_none());
        let second =
            svc.ready().await.expect("ready").call(call("/berth.v1.Berth/ListTasks")).await;
        let second = second.expect("reply");
        assert_eq!(second.headers().get("grpc-status").map(|v| v.as_bytes()), Some(&b"8"[..]));
        let message = second.headers().get("grpc-message").expect("message");
        assert!(message.to_str().expect("ascii").contains("ThrottlingException"));
        for _ in 0..5 {
            let agent = svc.ready().await.expect("ready");
            let r = agent.call(call("/berth.v1.AgentDispatch/Session")).await.expect("reply");
            assert!(r.headers().get("grpc-status").is_none(), "agents are not limited");
        }
    }
}
