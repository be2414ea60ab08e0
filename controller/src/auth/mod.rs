//! # auth — API tokens on the client listener and the HTTP port
//!
//! With `ControllerConfig.acl` on (`--acl`, `BERTH_ACL`), every call carries
//! `authorization: Bearer <secret>`; the secret is hashed (SHA-256) and looked up among the
//! tokens in the replicated state (`store/acl.rs`), then the pure decision in [`permissions`]
//! allows it (inserting a [`Principal`] into the request's extensions) or refuses it
//! (`Unauthenticated` / `PermissionDenied`). With ACL off nothing is checked and no principal is
//! inserted.
//!
//! * [`permissions`] — the table by gRPC method path and `decide(method, token, now)`.
//! * [`layer`]       — [`AuthLayer`], the tower layer on the tonic server (every service on the
//!   client listener; AgentDispatch and the token-free security methods pass unchecked).
//! * [`scoped`]      — [`ScopedBerth`], the `berth.v1.Berth` service wrapped with the
//!   cluster-scope checks that need the decoded request (the cluster it names).
//! * [`service`]     — [`AclApi`], the `berth.v1.BerthAcl` service (create/list/revoke/whoami).
//! * [`bootstrap`]   — the first admin token, written to `<data-dir>/bootstrap/admin.token`.
//!
//! Must not touch: secrets at rest (only hashes reach the store; a secret is shown once).

pub mod bootstrap;
pub mod layer;
pub mod permissions;
pub mod scoped;
pub mod service;

pub use layer::AuthLayer;
pub use permissions::{Denial, Principal};
pub use scoped::ScopedBerth;
pub use service::AclApi;

use crate::clock::Clock;
use crate::store::SharedState;
use permissions::Presented;
use std::sync::Arc;

/// Bytes of randomness in a token secret (64 hex digits).
pub const SECRET_BYTES: usize = 32;

/// Longest wait for the read barrier before an unknown token is refused.
pub const STALE_TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks tokens against the replicated state. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    enabled: bool,
    shared: SharedState,
    clock: Arc<dyn Clock>,
    /// For a read barrier before refusing an unknown token ([`Auth::with_raft`]).
    raft: Option<crate::raft::RaftHandle>,
}

impl Auth {
    pub fn new(enabled: bool, shared: SharedState, clock: Arc<dyn Clock>) -> Auth {
        Auth { enabled, shared, clock, raft: None }
    }

    /// Before refusing a token this controller does not know, catch up with the leader (a
    /// ReadIndex barrier): a token made a moment ago on another member may not be applied
    /// here yet.
    pub fn with_raft(mut self, raft: crate::raft::RaftHandle) -> Auth {
        self.raft = Some(raft);
        self
    }

    /// True when `authorization` holds a well-formed secret this controller does not know and
    /// a read barrier could change that.
    pub fn may_be_stale(&self, authorization: Option<&[u8]>) -> bool {
        let Some(secret) = authorization.and_then(bearer_secret) else { return false };
        self.enabled && self.raft.is_some() && {
            let hash = crate::crypto::sha256_hex(secret.as_bytes());
            self.shared.read().acl.by_secret_hash(&hash).is_none()
        }
    }

    /// Waits (bounded by [`STALE_TOKEN_WAIT`]) until this controller applied what the leader
    /// had committed.
    pub async fn catch_up(&self) {
        if let Some(raft) = &self.raft {
            let _ = tokio::time::timeout(STALE_TOKEN_WAIT, raft.read_barrier()).await;
        }
    }

    /// Whether tokens are enforced.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The tower layer for the tonic server.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }

    /// The decision for `method` given the raw `authorization` header value. `Ok(None)`: ACL
    /// off, or a method without token checks.
    pub fn check(
        &self,
        method: &str,
        authorization: Option<&[u8]>,
    ) -> Result<Option<Principal>, Denial> {
        if !self.enabled {
            return Ok(None);
        }
        let secret = authorization.map(bearer_secret);
        let state = self.shared.read();
        let presented = match secret {
            None => Presented::Missing,
            Some(None) => Presented::Malformed,
            Some(Some(secret)) => {
                let hash = crate::crypto::sha256_hex(secret.as_bytes());
                match state.acl.by_secret_hash(&hash) {
                    Some(t) => Presented::Token(t),
                    None => Presented::Unknown,
                }
            }
        };
        permissions::decide(method, presented, self.clock.now())
    }
}

/// The secret of `Bearer <secret>` (scheme case-insensitive), or `None` when malformed.
pub fn bearer_secret(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, secret) = text.split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parses() {
        assert_eq!(bearer_secret(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_secret(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer_secret(b"Basic abc"), None);
        assert_eq!(bearer_secret(b"Bearer"), None);
        assert_eq!(bearer_secret(b"Bearer "), None);
        assert_eq!(bearer_secret(&[0xff, 0x20, 0x61]), None);
    }
}
