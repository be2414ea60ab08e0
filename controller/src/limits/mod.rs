//! # limits — hardened input on the client listener
//!
//! * [`LimitsConfig`] / [`LimitFlags`]: the per-token request rate (`--api-rate-limit`,
//!   `--api-rate-burst`), the unary RPC deadline (`--rpc-timeout-secs`) and the client API's
//!   largest request (`--max-request-bytes`), shared by `berth-controller` and `berth dev`;
//! * `rate.rs` — [`RateLimitLayer`], the tower layer keyed by a hash of the `authorization`
//!   value (or the peer IP without one) that answers `ResourceExhausted` /
//!   `ThrottlingException: Rate exceeded` over the limit;
//! * request sizes per service: [`API_MAX_REQUEST_BYTES`] (client API, default),
//!   [`AGENT_MAX_MESSAGE_BYTES`] (agent sessions), [`PEER_MAX_MESSAGE_BYTES`] (Raft snapshots),
//!   [`HTTP_MAX_BODY_BYTES`] (the HTTP port).
//!
//! Unary deadlines are tonic's `Server::timeout`: it bounds the time to the response headers
//! (taking the shorter of it and the client's `grpc-timeout`), so a stream that has started
//! (SubscribeEvents, an agent session) is never cut by it (`tests/tests/hardening.rs`).
//!
//! Pagination of the List APIs lives with them (`crate::api::page`).

mod rate;

pub use rate::{RateLimitLayer, RateLimitService, RateLimiter, THROTTLED_MESSAGE};

use crate::error::{Error, Result};
use clap::Args;
use std::time::Duration;

/// Largest request the client API decodes by default (ECS-sized requests are far smaller; a
/// task definition document is at most 64 KiB in ECS).
pub const API_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Smallest `--max-request-bytes` accepted (a list or describe request must still fit).
pub const MIN_REQUEST_BYTES: usize = 16 * 1024;
/// Largest agent session message (a full report of every task on a big host).
pub const AGENT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest Raft peer message (a forwarded client command plus its envelope; snapshots travel
/// in chunks of `peer::SNAPSHOT_CHUNK_BYTES`).
pub const PEER_MAX_MESSAGE_BYTES: usize = crate::peer::PEER_MAX_MESSAGE_BYTES;
/// Largest request body on the HTTP port (`/v1/events` takes its pattern in the query).
pub const HTTP_MAX_BODY_BYTES: usize = 64 * 1024;

/// Default requests per second per token (or peer IP).
pub const DEFAULT_RATE: u32 = 200;
/// Default burst (requests a token may make at once after being idle).
pub const DEFAULT_BURST: u32 = 1000;
/// Default unary RPC deadline.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Hardened-input settings of the client listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Requests per second per key; 0: no rate limit.
    pub rate_limit: u32,
    /// Requests a key may make at once (the bucket size).
    pub rate_burst: u32,
    /// Server-side deadline of a unary RPC; `None`: only the client's `grpc-timeout`.
    pub rpc_timeout: Option<Duration>,
    /// Largest client API request (decoded message bytes).
    pub max_request_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_limit: DEFAULT_RATE,
            rate_burst: DEFAULT_BURST,
            rpc_timeout: Some(DEFAULT_RPC_TIMEOUT),
            max_request_bytes: API_MAX_REQUEST_BYTES,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rate_limit > 0 && self.rate_burst == 0 {
            return Err(Error::Config(
                "--api-rate-burst must be at least 1 when --api-rate-limit is on".into(),
            ));
        }
        if !(MIN_REQUEST_BYTES..=berth_proto::MAX_MESSAGE_BYTES).contains(&self.max_request_bytes) {
            return Err(Error::Config(format!(
                "--max-request-bytes {} is out of range: {MIN_REQUEST_BYTES}..={}",
                self.max_request_bytes,
                berth_proto::MAX_MESSAGE_BYTES
            )));
        }
        Ok(())
    }

    /// The limiter these settings describe (`None` when rate limiting is off).
    pub fn limiter(&self) -> Option<RateLimiter> {
        RateLimiter::new(self.rate_limit, self.rate_burst)
    }
}

/// The flags of [`LimitsConfig`] (flattened into `berth-controller` and `berth dev`).
#[derive(Debug, Clone, Args)]
pub struct LimitFlags {
    /// Client API requests per second per API token (or per peer IP without one); 0 disables.
    #[arg(long, default_value_t = DEFAULT_RATE, value_name = "N", env = "BERTH_API_RATE_LIMIT")]
    pub api_rate_limit: u32,
    /// Requests a token may make at once above the steady rate.
    #[arg(long, default_value_t = DEFAULT_BURST, value_name = "N", env = "BERTH_API_RATE_BURST")]
    pub api_rate_burst: u32,
    /// Server-side deadline of every unary RPC, in seconds (streams are not cut); 0: none
    /// beyond the client's own `grpc-timeout`.
    #[arg(long, default_value_t = DEFAULT_RPC_TIMEOUT.as_secs(), value_name = "SECONDS", env = "BERTH_RPC_TIMEOUT_SECS")]
    pub rpc_timeout_secs: u64,
    /// Largest client API request, in bytes (agent and Raft peer messages have their own).
    #[arg(long, default_value_t = API_MAX_REQUEST_BYTES, value_name = "BYTES", env = "BERTH_MAX_REQUEST_BYTES")]
    pub max_request_bytes: usize,
}

impl LimitFlags {
    /// Writes the flags into `config` (checked by `ControllerConfig::validate`).
    pub fn apply(&self, config: &mut LimitsConfig) {
        config.rate_limit = self.api_rate_limit;
        config.rate_burst = self.api_rate_burst;
        config.rpc_timeout =
            (self.rpc_timeout_secs > 0).then(|| Duration::from_secs(self.rpc_timeout_secs));
        config.max_request_bytes = self.max_request_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_generous() {
        let c = LimitsConfig::default();
        c.validate().expect("valid");
        assert_eq!((c.rate_limit, c.rate_burst), (200, 1000));
        assert_eq!(c.rpc_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.max_request_bytes, 4 * 1024 * 1024);
        assert!(c.limiter().is_some());
    }

    #[test]
    fn zero_disables_and_bad_values_are_named() {
        let off = LimitsConfig { rate_limit: 0, rate_burst: 0, ..Default::default() };
        off.validate().expect("off is valid");
        assert!(off.limiter().is_none());
        let e = LimitsConfig { rate_burst: 0, ..Default::default() }.validate().expect_err("burst");
        assert!(e.to_string().contains("--api-rate-burst"), "{e}");
        let e = LimitsConfig { max_request_bytes: 10, ..Default::default() }
            .validate()
            .expect_err("tiny");
        assert!(e.to_string().contains("--max-request-bytes"), "{e}");
    }

    #[test]
    fn flags_map_zero_timeout_to_none() {
        let flags = LimitFlags {
            api_rate_limit: 5,
            api_rate_burst: 7,
            rpc_timeout_secs: 0,
            max_request_bytes: MIN_REQUEST_BYTES,
        };
        let mut c = LimitsConfig::default();
        flags.apply(&mut c);
        assert_eq!(
            c,
            LimitsConfig {
                rate_limit: 5,
                rate_burst: 7,
                rpc_timeout: None,
                max_request_bytes: MIN_REQUEST_BYTES
            }
        );
    }
}
