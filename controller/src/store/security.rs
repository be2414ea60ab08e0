//! Cluster CA, join tokens, issued node certificates and revoked node identities (replicated).
//!
//! * [`CaRecord`] — the root CA: certificate PEM (public) and private key sealed with the
//!   cluster key (`crate::crypto::ClusterKey`, context [`CA_KEY_CONTEXT`]): a copy of the store
//!   alone cannot sign certificates. Set once by [`SecurityCommand::InitCa`] (refused when a CA
//!   exists, so two racing leaders cannot both install one).
//! * [`JoinTokenRecord`] — join tokens by id; only the SHA-256 of the secret is kept.
//!   [`SecurityCommand::UseJoinToken`] checks hash, role and expiry against the command's `now`
//!   and records the certificate issued with it ([`NodeCertRecord`]).
//! * `revoked_identities` — written by `store/deregister.rs` (and a revoke command of H6);
//!   read by registration and the TLS identity filter (`SecurityState::is_revoked`).
//!
//! Deterministic like all of `apply`: ids, hashes, ciphertext and times come in the command.

use super::apply::{Applied, ApplyResult};
use super::state::State;
use super::{RejectKind, Rejection};
use berth_proto::model::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Associated data of the sealed CA key (`ClusterKey::seal`).
pub const CA_KEY_CONTEXT: &[u8] = b"berth-ca-key";
/// Most join tokens kept at once.
pub const MAX_JOIN_TOKENS: usize = 1000;

/// Replicated security state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecurityState {
    /// Revoked node identities by `role/id` (H6, `store/deregister.rs`: written by
    /// DeregisterContainerInstance; `SecurityState::is_revoked` reads it). Keep this field when
    /// replacing this module: registration and TLS connections refuse these identities.
    #[serde(default)]
    pub revoked_identities: BTreeMap<String, super::deregister::RevokedIdentity>,
    /// The cluster root CA (TLS mode).
    #[serde(default)]
    pub ca: Option<CaRecord>,
    /// Join tokens by id.
    #[serde(default)]
    pub join_tokens: BTreeMap<String, JoinTokenRecord>,
    /// The newest certificate issued through a join token, by identity key `role/id`.
    #[serde(default)]
    pub node_certs: BTreeMap<String, NodeCertRecord>,
}

/// The cluster CA as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaRecord {
    pub cert_pem: String,
    /// The PKCS#8 PEM key sealed with the cluster key, hex.
    pub sealed_key_hex: String,
    /// SHA-256 hex of the certificate DER (what join tokens pin).
    pub digest: String,
    pub created_at: Timestamp,
}

/// A join token, secret hashed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenRecord {
    /// Public id (16 hex), what `token list` / `token revoke` name.
    pub id: String,
    /// `agent` or `controller`.
    pub role: String,
    /// SHA-256 hex of the secret.
    pub secret_hash: String,
    pub created_at: Timestamp,
    /// `None`: never expires.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub description: String,
    /// Certificates issued with it.
    #[serde(default)]
    pub uses: u64,
}

/// A certificate issued to a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertRecord {
    pub role: String,
    pub id: String,
    /// Serial, hex.
    pub serial: String,
    pub issued_at: Timestamp,
    /// Unix seconds.
    pub not_after: i64,
    /// The join token it was issued with.
    pub token_id: String,
}

/// Commands on security state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "securityOp", rename_all = "camelCase")]
pub enum SecurityCommand {
    /// Installs the cluster CA; refused if one exists.
    InitCa { ca: CaRecord },
    /// Adds a join token (refused: duplicate id or hash, bad role, too many tokens).
    CreateJoinToken { token: JoinTokenRecord },
    /// Removes a join token: it can no longer be used.
    RevokeJoinToken { id: String },
    /// Spends a join token for `cert` (checked: a token with this hash and role, not expired
    /// at `now`, identity not revoked); counts the use and records the certificate.
    UseJoinToken { secret_hash: String, role: String, now: Timestamp, cert: NodeCertRecord },
}

fn precondition(message: impl Into<String>) -> Rejection {
    Rejection::new(RejectKind::FailedPrecondition, "ClientException", message)
}

fn denied(message: impl Into<String>) -> Rejection {
    Rejection::new(RejectKind::FailedPrecondition, "AccessDeniedException", message)
}

impl SecurityState {
    /// The token whose secret hashes to `hash`.
    pub fn token_by_hash(&self, hash: &str) -> Option<&JoinTokenRecord> {
        self.join_tokens.values().find(|t| t.secret_hash == hash)
    }
}

fn valid_role(role: &str) -> bool {
    role == super::deregister::AGENT_ROLE || role == super::deregister::CONTROLLER_ROLE
}

pub fn apply(state: &mut State, cmd: SecurityCommand) -> ApplyResult {
    let sec = &mut state.security;
    match cmd {
        SecurityCommand::InitCa { ca } => {
            if sec.ca.is_some() {
                return Err(precondition("the cluster CA already exists."));
            }
            if ca.cert_pem.is_empty() || ca.sealed_key_hex.is_empty() || ca.digest.len() != 64 {
                return Err(Rejection::invalid(
                    "a CA needs a certificate, a sealed key and a 64-hex-digit digest.",
                ));
            }
            let digest = ca.digest.clone();
            sec.ca = Some(ca);
            Ok(Applied { ids: vec![digest], ..Default::default() })
        }
        SecurityCommand::CreateJoinToken { token } => {
            if !valid_role(&token.role) {
                return Err(Rejection::invalid(format!(
                    "role '{}' is invalid: expected agent or controller.",
                    token.role
                )));
            }
            if token.id.is_empty() || token.secret_hash.len() != 64 {
                return Err(Rejection::invalid(
                    "a join token needs an id and a 64-hex-digit secret hash.",
                ));
            }
            if sec.join_tokens.len() >= MAX_JOIN_TOKENS {
                return Err(precondition(format!(
                    "too many join tokens ({MAX_JOIN_TOKENS}); revoke some first."
                )));
            }
            if sec.join_tokens.contains_key(&token.id)
                || sec.token_by_hash(&token.secret_hash).is_some()
            {
                return Err(Rejection::new(
                    RejectKind::AlreadyExists,
                    "ClientException",
                    format!("join token {} already exists.", token.id),
                ));
            }
            let id = token.id.clone();
            sec.join_tokens.insert(id.clone(), JoinTokenRecord { uses: 0, ..token });
            Ok(Applied { ids: vec![id], ..Default::default() })
        }
        SecurityCommand::RevokeJoinToken { id } => {
            if sec.join_tokens.remove(&id).is_none() {
                return Err(Rejection::new(
                    RejectKind::NotFound,
                    "ClientException",
                    format!("join token {id} not found."),
                ));
            }
            Ok(Applied { ids: vec![id], ..Default::default() })
        }
        SecurityCommand::UseJoinToken { secret_hash, role, now, cert } => {
            let revoked = sec.is_revoked(&cert.role, &cert.id);
            let token = sec
                .join_tokens
                .values_mut()
                .find(|t| t.secret_hash == secret_hash)
                .ok_or_else(|| denied("the join token is unknown or was revoked."))?;
            if token.role != role || cert.role != role {
                return Err(denied(format!(
                    "the join token is for role {}, not {role}.",
                    token.role
                )));
            }
            if token.expires_at.is_some_and(|e| e <= now) {
                return Err(denied(format!("join token {} has expired.", token.id)));
            }
            if revoked {
                return Err(denied(format!("identity {}/{} was revoked.", cert.role, cert.id)));
            }
            token.uses += 1;
            let id = token.id.clone();
            let key = super::deregister::identity_key(&cert.role, &cert.id);
            sec.node_certs.insert(key.clone(), NodeCertRecord { token_id: id, ..cert });
            Ok(Applied { ids: vec![key], ..Default::default() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use crate::store::apply::apply as apply_cmd;

    fn token(id: &str, hash: char, role: &str, expires: Option<i64>) -> JoinTokenRecord {
        JoinTokenRecord {
            id: id.into(),
            role: role.into(),
            secret_hash: hash.to_string().repeat(64),
            created_at: Timestamp(1_000),
            expires_at: expires.map(Timestamp),
            description: String::new(),
            uses: 7,
        }
    }

    fn cert(role: &str, id: &str) -> NodeCertRecord {
        NodeCertRecord {
            role: role.into(),
            id: id.into(),
            serial: "01".into(),
            issued_at: Timestamp(0),
            not_after: 0,
            token_id: String::new(),
        }
    }

    fn run(st: &mut State, c: SecurityCommand) -> ApplyResult {
        apply_cmd(st, Command::Security(c))
    }

    #[test]
    fn the_ca_is_installed_once() {
        let mut st = State::default();
        let ca = CaRecord {
            cert_pem: "pem".into(),
            sealed_key_hex: "00".into(),
            digest: "a".repeat(64),
            created_at: Timestamp(1),
        };
        run(&mut st, SecurityCommand::InitCa { ca: ca.clone() }).expect("first");
        let again = CaRecord { cert_pem: "other".into(), ..ca.clone() };
        let err = run(&mut st, SecurityCommand::InitCa { ca: again }).expect_err("second");
        assert_eq!(err.kind, RejectKind::FailedPrecondition);
        assert_eq!(st.security.ca, Some(ca));
    }

    #[test]
    fn join_tokens_check_role_expiry_and_revocation() {
        let mut st = State::default();
        run(
            &mut st,
            SecurityCommand::CreateJoinToken { token: token("t1", 'a', "agent", Some(5_000)) },
        )
        .expect("create");
        assert_eq!(st.security.join_tokens["t1"].uses, 0, "uses start at zero");
        let dup = run(
            &mut st,
            SecurityCommand::CreateJoinToken { token: token("t2", 'a', "agent", None) },
        );
        assert_eq!(dup.expect_err("same hash").kind, RejectKind::AlreadyExists);
        let bad = run(
            &mut st,
            SecurityCommand::CreateJoinToken { token: token("t3", 'c', "admin", None) },
        );
        assert!(bad.expect_err("role").message.contains("role 'admin'"));
        let use_it = |now: i64, role: &str, c: NodeCertRecord| SecurityCommand::UseJoinToken {
            secret_hash: "a".repeat(64),
            role: role.into(),
            now: Timestamp(now),
            cert: c,
        };
        let a = "0123456789abcdef0123456789abcdef";
        let err =
            run(&mut st, use_it(1_000, "controller", cert("controller", "2"))).expect_err("role");
        assert!(err.message.contains("for role agent"), "{}", err.message);
        run(&mut st, use_it(1_000, "agent", cert("agent", a))).expect("use");
        assert_eq!(st.security.join_tokens["t1"].uses, 1);
        assert_eq!(st.security.node_certs[&format!("agent/{a}")].token_id, "t1");
        let err = run(&mut st, use_it(5_000, "agent", cert("agent", a))).expect_err("expired");
        assert!(err.message.contains("expired"), "{}", err.message);
        let wrong = SecurityCommand::UseJoinToken {
            secret_hash: "b".repeat(64),
            role: "agent".into(),
            now: Timestamp(1),
            cert: cert("agent", a),
        };
        assert!(run(&mut st, wrong).expect_err("unknown").message.contains("unknown"));
        run(&mut st, SecurityCommand::RevokeJoinToken { id: "t1".into() }).expect("revoke");
        assert!(run(&mut st, use_it(1_000, "agent", cert("agent", a))).is_err(), "revoked token");
        let gone = run(&mut st, SecurityCommand::RevokeJoinToken { id: "t1".into() });
        assert_eq!(gone.expect_err("twice").kind, RejectKind::NotFound);
    }
}
