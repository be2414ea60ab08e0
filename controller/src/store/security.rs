//! Cluster CA, join tokens, issued node certificates and revoked node identities (replicated).
//!
//! * [`CaRecord`] — the root CA: certificate PEM (public) and private key sealed with the
//!   cluster key (`crate::crypto::ClusterKey`, context [`CA_KEY_CONTEXT`]): a copy of the store
//!   alone cannot sign certificates. Set once by [`SecurityCommand::InitCa`] (refused when a CA
//!   exists, so two racing leaders cannot both install one); replaced by
//!   [`SecurityCommand::RotateCa`].
//! * [`CaRotation`] — CA rotation (`berth operator ca rotate`): `ca` is the *active* root (signs
//!   everything from the rotation on); the previous root stays trusted until `retire_at` (the
//!   rotation time + the certificate TTL + [`ROTATION_MARGIN`]: by then every certificate it
//!   signed has expired or been renewed), together with the cross certificate (new root's key
//!   and subject, signed by the old root) that controllers add to their chain meanwhile. A
//!   second rotation is refused while one is in its transition (see `RotateCa`). The trust
//!   bundle is a pure function of the state and `now`: [`SecurityState::trusted_roots`],
//!   [`SecurityState::ca_bundle_pem`], [`SecurityState::cross_cert_pem`].
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
/// How much longer than the certificate TTL the previous root stays trusted after a rotation:
/// covers a follower that signs with the old root for a moment before it applies the rotation,
/// and clock skew between nodes (the same 5 minutes certificates are backdated by).
pub const ROTATION_MARGIN: std::time::Duration = berth_security::ca::BACKDATE;

/// Replicated security state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecurityState {
    /// Revoked node identities by `role/id` (H6, `store/deregister.rs`: written by
    /// DeregisterContainerInstance; `SecurityState::is_revoked` reads it). Keep this field when
    /// replacing this module: registration and TLS connections refuse these identities.
    #[serde(default)]
    pub revoked_identities: BTreeMap<String, super::deregister::RevokedIdentity>,
    /// The cluster root CA (TLS mode): the active root, which signs every certificate.
    #[serde(default)]
    pub ca: Option<CaRecord>,
    /// The last CA rotation (previous root, cross certificate, retire time); `None` before the
    /// first. Kept after `retire_at` (then it no longer counts) until the next rotation.
    #[serde(default)]
    pub rotation: Option<CaRotation>,
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

/// A CA rotation as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaRotation {
    /// The root that was active before; only its certificate (its key is no longer needed).
    pub previous: RetiringRoot,
    /// PEM: the active root's subject and key, issued by `previous` (an intermediate under it).
    pub cross_cert_pem: String,
    pub rotated_at: Timestamp,
    /// Until then `previous` is trusted and controllers present the cross certificate.
    pub retire_at: Timestamp,
}

/// A previous root (certificate only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetiringRoot {
    pub cert_pem: String,
    pub digest: String,
    pub created_at: Timestamp,
}

/// One root of the trust bundle at some `now` ([`SecurityState::trusted_roots`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedRoot<'a> {
    pub cert_pem: &'a str,
    pub digest: &'a str,
    /// `None`: the active root; `Some(t)`: a previous root trusted until `t`.
    pub retire_at: Option<Timestamp>,
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
    /// Makes `new` the active root (leader-generated, key sealed); the current one stays
    /// trusted until `retire_at`, with `cross_cert_pem` (new root signed by the old). Refused
    /// without a CA, for the same root, when `retire_at <= now`, and while an earlier rotation
    /// is still in its transition at `now` (its old root would otherwise be dropped while its
    /// certificates are still in use, or need a chain of cross certificates).
    RotateCa { new: CaRecord, cross_cert_pem: String, now: Timestamp, retire_at: Timestamp },
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

    /// The rotation whose transition is under way at `now` (previous root still trusted).
    pub fn transition(&self, now: Timestamp) -> Option<&CaRotation> {
        self.rotation.as_ref().filter(|r| r.retire_at > now)
    }

    /// Every root trusted at `now`: the active one first, then the previous one until its
    /// `retire_at`. Empty without a CA.
    pub fn trusted_roots(&self, now: Timestamp) -> Vec<TrustedRoot<'_>> {
        let Some(ca) = &self.ca else { return Vec::new() };
        let mut roots =
            vec![TrustedRoot { cert_pem: &ca.cert_pem, digest: &ca.digest, retire_at: None }];
        if let Some(r) = self.transition(now) {
            roots.push(TrustedRoot {
                cert_pem: &r.previous.cert_pem,
                digest: &r.previous.digest,
                retire_at: Some(r.retire_at),
            });
        }
        roots
    }

    /// The trust bundle at `now` as PEM (active root first): what GetCaBundle,
    /// RenewCertificate and `<data-dir>/tls/ca.pem` hold. `None` without a CA.
    pub fn ca_bundle_pem(&self, now: Timestamp) -> Option<String> {
        let roots = self.trusted_roots(now);
        if roots.is_empty() {
            return None;
        }
        let mut pem = String::new();
        for r in roots {
            pem.push_str(r.cert_pem.trim_end());
            pem.push('\n');
        }
        Some(pem)
    }

    /// The cross certificate a controller adds after its leaf at `now` (in a transition).
    pub fn cross_cert_pem(&self, now: Timestamp) -> Option<&str> {
        self.transition(now).map(|r| r.cross_cert_pem.as_str())
    }
}

fn check_ca_record(ca: &CaRecord) -> Result<(), Rejection> {
    if ca.cert_pem.is_empty() || ca.sealed_key_hex.is_empty() || ca.digest.len() != 64 {
        return Err(Rejection::invalid(
            "a CA needs a certificate, a sealed key and a 64-hex-digit digest.",
        ));
    }
    Ok(())
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
            check_ca_record(&ca)?;
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
        SecurityCommand::RotateCa { new, cross_cert_pem, now, retire_at } => {
            let Some(current) = sec.ca.clone() else {
                return Err(precondition(
                    "this cluster has no CA (the controllers run without --tls): nothing to rotate.",
                ));
            };
            if let Some(r) = sec.transition(now) {
                return Err(precondition(format!(
                    "a CA rotation is in its transition until {}: the previous root {} is still trusted; rotate again after it retires.",
                    berth_proto::model::event::iso8601_seconds(r.retire_at),
                    r.previous.digest
                )));
            }
            check_ca_record(&new)?;
            if new.digest == current.digest {
                return Err(Rejection::invalid("the new root is the active root."));
            }
            if cross_cert_pem.is_empty() {
                return Err(Rejection::invalid("a CA rotation needs a cross certificate."));
            }
            if retire_at <= now {
                return Err(Rejection::invalid("retire_at must be after now."));
            }
            let digest = new.digest.clone();
            sec.rotation = Some(CaRotation {
                previous: RetiringRoot {
                    cert_pem: current.cert_pem,
                    digest: current.digest,
                    created_at: current.created_at,
                },
                cross_cert_pem,
                rotated_at: now,
                retire_at,
            });
            sec.ca = Some(new);
            Ok(Applied { ids: vec![digest], ..Default::default() })
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

    fn ca(tag: char) -> CaRecord {
        CaRecord {
            cert_pem: format!("-----PEM {tag}-----\n"),
            sealed_key_hex: "00".into(),
            digest: tag.to_string().repeat(64),
            created_at: Timestamp(1),
        }
    }

    fn rotate(new: char, now: i64, retire_at: i64) -> SecurityCommand {
        SecurityCommand::RotateCa {
            new: ca(new),
            cross_cert_pem: format!("cross {new}"),
            now: Timestamp(now),
            retire_at: Timestamp(retire_at),
        }
    }

    #[test]
    fn a_rotation_trusts_the_previous_root_until_retire_at() {
        let mut st = State::default();
        let err = run(&mut st, rotate('b', 1_000, 5_000)).expect_err("no CA");
        assert_eq!(err.kind, RejectKind::FailedPrecondition);
        run(&mut st, SecurityCommand::InitCa { ca: ca('a') }).expect("init");
        let sec = &st.security;
        let before: Vec<_> = sec.trusted_roots(Timestamp(1_000)).iter().map(|r| r.digest).collect();
        assert_eq!(before, vec!["a".repeat(64)]);
        assert_eq!(sec.cross_cert_pem(Timestamp(1_000)), None);
        assert_eq!(
            run(&mut st, rotate('a', 1_000, 5_000)).expect_err("same").kind,
            RejectKind::InvalidParameter
        );
        assert!(run(&mut st, rotate('b', 1_000, 1_000)).is_err(), "retire_at not after now");
        let applied = run(&mut st, rotate('b', 1_000, 5_000)).expect("rotate");
        assert_eq!(applied.ids, vec!["b".repeat(64)]);
        let sec = &st.security;
        assert_eq!(sec.ca.as_ref().map(|c| c.digest.clone()), Some("b".repeat(64)));
        // During the transition: active first, previous until retire_at, cross cert presented.
        let during = sec.trusted_roots(Timestamp(4_999));
        assert_eq!(during.len(), 2);
        assert_eq!((during[0].digest, during[0].retire_at), ("b".repeat(64).as_str(), None));
        assert_eq!(
            (during[1].digest, during[1].retire_at),
            ("a".repeat(64).as_str(), Some(Timestamp(5_000)))
        );
        assert_eq!(
            sec.ca_bundle_pem(Timestamp(4_999)).as_deref(),
            Some("-----PEM b-----\n-----PEM a-----\n")
        );
        assert_eq!(sec.cross_cert_pem(Timestamp(4_999)), Some("cross b"));
        // At retire_at the previous root and the cross certificate are gone.
        assert_eq!(sec.ca_bundle_pem(Timestamp(5_000)).as_deref(), Some("-----PEM b-----\n"));
        assert_eq!(sec.cross_cert_pem(Timestamp(5_000)), None);
        // A second rotation is refused during the transition, accepted after it.
        let err = run(&mut st, rotate('c', 4_999, 9_000)).expect_err("in transition");
        assert_eq!(err.kind, RejectKind::FailedPrecondition);
        assert!(err.message.contains("transition"), "{}", err.message);
        run(&mut st, rotate('c', 5_000, 9_000)).expect("after retirement");
        let roots: Vec<_> = st
            .security
            .trusted_roots(Timestamp(5_000))
            .iter()
            .map(|r| r.digest.to_string())
            .collect();
        assert_eq!(roots, vec!["c".repeat(64), "b".repeat(64)]);
    }

    #[test]
    fn a_state_from_before_rotation_deserializes() {
        // The shape stores had before `rotation` existed.
        let old = serde_json::json!({
            "revokedIdentities": {},
            "ca": {"certPem": "pem", "sealedKeyHex": "00", "digest": "a".repeat(64), "createdAt": 1},
            "joinTokens": {},
            "nodeCerts": {}
        });
        let st: SecurityState = serde_json::from_value(old).expect("old format");
        assert_eq!(st.rotation, None);
        assert_eq!(st.ca_bundle_pem(Timestamp(0)).as_deref(), Some("pem\n"));
        let empty: SecurityState = serde_json::from_value(serde_json::json!({})).expect("empty");
        assert_eq!(empty.ca_bundle_pem(Timestamp(0)), None);
        // And a rotated state round-trips.
        let mut s = State::default();
        run(&mut s, SecurityCommand::InitCa { ca: ca('a') }).expect("init");
        run(&mut s, rotate('b', 1_000, 5_000)).expect("rotate");
        let text = serde_json::to_string(&s.security).expect("ser");
        let back: SecurityState = serde_json::from_str(&text).expect("de");
        assert_eq!(back, s.security);
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
