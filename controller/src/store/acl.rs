//! API (ACL) tokens: hashed secrets with roles.
//!
//! A token is known by its **accessor** (a public UUID, safe to show and log) and authenticates
//! with its **secret**, which the store never holds: only `sha256_hex(secret)` is kept
//! ([`AclToken::secret_hash`]). The secret is shown once, by `CreateAclToken`. A token has a
//! [`Role`] (`read-only` ⊂ `operator` ⊂ `admin`), an optional cluster scope, a description, a
//! creation time, an optional expiry and, once revoked, its revocation time (revoked tokens stay
//! listed so an audit can see them).
//!
//! Apply is deterministic: accessor, hash and timestamps come in the command (`auth/service.rs`
//! makes them). The permission decision over these records lives in `crate::auth`.

use super::apply::{Applied, ApplyResult};
use super::state::State;
use super::{RejectKind, Rejection};
use berth_proto::model::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a token may do. Ordered: `ReadOnly < Operator < Admin`, each including the ones below.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    #[serde(rename = "read-only")]
    ReadOnly,
    #[serde(rename = "operator")]
    Operator,
    #[serde(rename = "admin")]
    Admin,
}

impl Role {
    /// The role as the API and CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read-only" | "readonly" | "read" => Ok(Role::ReadOnly),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => {
                Err(format!("role '{other}' is invalid: expected admin, operator or read-only"))
            }
        }
    }
}

/// One API token. Never carries the secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclToken {
    /// Public id (a UUID).
    pub accessor: String,
    /// `crypto::sha256_hex(secret)`.
    pub secret_hash: String,
    pub role: Role,
    /// The one cluster this token acts on; `None`: every cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default)]
    pub description: String,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// Made by the leader at bootstrap (`<data-dir>/bootstrap/admin.token`).
    #[serde(default)]
    pub bootstrap: bool,
}

impl AclToken {
    /// Why this token cannot be used at `now`, or `None` when it can.
    pub fn unusable_reason(&self, now: Timestamp) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            return Some("revoked");
        }
        match self.expires_at {
            Some(at) if now >= at => Some("expired"),
            _ => None,
        }
    }
}

/// Replicated ACL state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AclState {
    /// Tokens by accessor.
    #[serde(default)]
    pub tokens: BTreeMap<String, AclToken>,
    /// Accessor by secret hash (kept in step with `tokens` by `apply`).
    #[serde(default)]
    pub by_hash: BTreeMap<String, String>,
}

impl AclState {
    /// The token whose secret hashes to `hash`.
    pub fn by_secret_hash(&self, hash: &str) -> Option<&AclToken> {
        self.by_hash.get(hash).and_then(|a| self.tokens.get(a))
    }
}

/// Commands on ACL state. Tagged `aclOp`: the enclosing `Command` already uses `op`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "aclOp", rename_all = "camelCase")]
pub enum AclCommand {
    /// Adds `token` (its `revoked_at` must be empty). With `only_if_empty`, refused when any
    /// token exists: how bootstrap stays at most one token even if two leaders race.
    CreateToken {
        token: AclToken,
        #[serde(default)]
        only_if_empty: bool,
    },
    /// Marks the token revoked at `now` (revoking twice keeps the first time).
    RevokeToken { accessor: String, now: Timestamp },
}

pub fn apply(state: &mut State, cmd: AclCommand) -> ApplyResult {
    let acl = &mut state.acl;
    match cmd {
        AclCommand::CreateToken { token, only_if_empty } => {
            if only_if_empty && !acl.tokens.is_empty() {
                return Err(Rejection::new(
                    RejectKind::FailedPrecondition,
                    "ClientException",
                    "ACL tokens already exist; bootstrap makes a token only in an empty store.",
                ));
            }
            if token.accessor.is_empty() || token.secret_hash.len() != 64 {
                return Err(Rejection::invalid(
                    "an ACL token needs an accessor and a 64-hex-digit secret hash.",
                ));
            }
            if acl.tokens.contains_key(&token.accessor)
                || acl.by_hash.contains_key(&token.secret_hash)
            {
                return Err(Rejection::new(
                    RejectKind::AlreadyExists,
                    "ClientException",
                    format!("ACL token {} already exists.", token.accessor),
                ));
            }
            let accessor = token.accessor.clone();
            acl.by_hash.insert(token.secret_hash.clone(), accessor.clone());
            acl.tokens.insert(accessor.clone(), AclToken { revoked_at: None, ..token });
            Ok(Applied { ids: vec![accessor], ..Default::default() })
        }
        AclCommand::RevokeToken { accessor, now } => {
            let token = acl.tokens.get_mut(&accessor).ok_or_else(|| {
                Rejection::new(
                    RejectKind::NotFound,
                    "ClientException",
                    format!("ACL token {accessor} not found."),
                )
            })?;
            if token.revoked_at.is_none() {
                token.revoked_at = Some(now);
            }
            Ok(Applied { ids: vec![accessor], ..Default::default() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::model::ArnScope;

    fn token(accessor: &str, hash_digit: char) -> AclToken {
        AclToken {
            accessor: accessor.into(),
            secret_hash: hash_digit.to_string().repeat(64),
            role: Role::Operator,
            cluster: None,
            description: "ci".into(),
            created_at: Timestamp(1_000),
            expires_at: Some(Timestamp(5_000)),
            revoked_at: None,
            bootstrap: false,
        }
    }

    #[test]
    fn create_revoke_and_lookup_by_hash() {
        let mut s = State::new(ArnScope::default());
        let create = |t| AclCommand::CreateToken { token: t, only_if_empty: false };
        apply(&mut s, create(token("a", '1'))).expect("create");
        let dup = apply(&mut s, create(token("a", '2'))).expect_err("same accessor");
        assert_eq!(dup.kind, RejectKind::AlreadyExists);
        let dup = apply(&mut s, create(token("b", '1'))).expect_err("same hash");
        assert_eq!(dup.kind, RejectKind::AlreadyExists);
        assert_eq!(s.acl.by_secret_hash(&"1".repeat(64)).map(|t| t.accessor.as_str()), Some("a"));
        let boot = AclCommand::CreateToken { token: token("c", '3'), only_if_empty: true };
        assert_eq!(
            apply(&mut s, boot).expect_err("not empty").kind,
            RejectKind::FailedPrecondition
        );

        apply(&mut s, AclCommand::RevokeToken { accessor: "a".into(), now: Timestamp(2_000) })
            .expect("revoke");
        apply(&mut s, AclCommand::RevokeToken { accessor: "a".into(), now: Timestamp(3_000) })
            .expect("revoke again");
        assert_eq!(s.acl.tokens["a"].revoked_at, Some(Timestamp(2_000)));
        let missing = AclCommand::RevokeToken { accessor: "zz".into(), now: Timestamp(1) };
        assert_eq!(apply(&mut s, missing).expect_err("missing").kind, RejectKind::NotFound);
    }

    #[test]
    fn usability_and_roles() {
        let t = token("a", '1');
        assert_eq!(t.unusable_reason(Timestamp(4_999)), None);
        assert_eq!(t.unusable_reason(Timestamp(5_000)), Some("expired"));
        let r = AclToken { revoked_at: Some(Timestamp(2)), ..t };
        assert_eq!(r.unusable_reason(Timestamp(3)), Some("revoked"));
        assert!(Role::ReadOnly < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!("READ-ONLY".parse::<Role>(), Ok(Role::ReadOnly));
        assert!("root".parse::<Role>().unwrap_err().contains("'root'"));
        assert_eq!(serde_json::to_string(&Role::ReadOnly).expect("json"), "\"read-only\"");
    }

    #[test]
    fn commands_round_trip_inside_a_command() {
        let cmd = super::super::Command::Acl(AclCommand::CreateToken {
            token: token("a", '1'),
            only_if_empty: true,
        });
        let back: super::super::Command = serde_json::from_slice(&cmd.encode()).expect("decodes");
        assert_eq!(back, cmd);
        let cmd = super::super::Command::Acl(AclCommand::RevokeToken {
            accessor: "a".into(),
            now: Timestamp(7),
        });
        assert_eq!(
            serde_json::from_slice::<super::super::Command>(&cmd.encode()).expect("decodes"),
            cmd
        );
    }

    #[test]
    fn state_round_trips_through_json_without_secrets() {
        let mut s = State::new(ArnScope::default());
        apply(&mut s, AclCommand::CreateToken { token: token("a", '1'), only_if_empty: true })
            .expect("create");
        let json = serde_json::to_string(&s.acl).expect("json");
        let back: AclState = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, s.acl);
    }
}
