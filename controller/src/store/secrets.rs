//! Per-task secrets, sealed with the cluster key before they are proposed.
//!
//! A [`StoredSecret`] holds the name, the sealed value (`ClusterKey::seal(b"secret:<name>",
//! value)`, made by the API handler: the Raft log, snapshots and this state hold ciphertext
//! only), a description, a version (1 on creation, + 1 per put) and the creation / update times.
//! Its ARN is derived, never stored: `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`.
//!
//! * [`SecretCommand::Put`] creates or replaces; [`SecretCommand::Delete`] removes.
//! * [`SecretState::resolve`] — a container's `valueFrom` → the stored secret (see
//!   `berth_proto::secrets::SecretRef` for the accepted forms).
//!
//! Apply is deterministic: ciphertext and timestamps come in the command. Secrets make no
//! events (`store/events.rs`).

use super::apply::{Applied, ApplyResult};
use super::state::State;
use super::{RejectKind, Rejection};
use berth_proto::model::{ArnScope, Timestamp};
use berth_proto::secrets::{SecretRef, check_secret_name};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sealed bytes, serialized as hex.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sealed(pub Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sealed, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map(Sealed).map_err(serde::de::Error::custom)
    }
}

/// One secret. Never holds the plaintext.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredSecret {
    pub name: String,
    /// `ClusterKey::seal(berth_proto::secrets::seal_context(name), value)`.
    pub sealed: Sealed,
    #[serde(default)]
    pub description: String,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl StoredSecret {
    /// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`.
    pub fn arn(&self, scope: &ArnScope) -> String {
        secret_arn(scope, &self.name)
    }
}

/// The ARN of secret `name` in `scope`.
pub fn secret_arn(scope: &ArnScope, name: &str) -> String {
    format!("arn:aws:secretsmanager:{}:{}:secret:{name}", scope.region, scope.account)
}

/// Replicated secrets, by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretState {
    #[serde(default)]
    pub secrets: BTreeMap<String, StoredSecret>,
}

impl SecretState {
    /// The secret a parsed `valueFrom` names (first candidate that exists).
    pub fn resolve(&self, r: &SecretRef) -> Option<&StoredSecret> {
        r.candidates.iter().find_map(|n| self.secrets.get(n))
    }
}

/// Commands on secrets. Tagged `secretOp` (not `op`: `Command` already uses that tag and this
/// enum's fields are flattened into the same JSON object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "secretOp", rename_all = "camelCase")]
pub enum SecretCommand {
    /// Creates `name` (version 1) or replaces its value (version + 1). `description: None`
    /// keeps the current one.
    Put {
        name: String,
        sealed: Sealed,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        now: Timestamp,
    },
    /// Removes `name`.
    Delete { name: String },
}

fn not_found(name: &str) -> Rejection {
    Rejection::new(
        RejectKind::NotFound,
        "ResourceNotFoundException",
        format!("Secret {name} not found."),
    )
}

pub fn apply(state: &mut State, cmd: SecretCommand) -> ApplyResult {
    let secrets = &mut state.secrets.secrets;
    match cmd {
        SecretCommand::Put { name, sealed, description, now } => {
            check_secret_name(&name).map_err(Rejection::invalid)?;
            if sealed.0.is_empty() {
                return Err(Rejection::invalid("a secret needs a sealed value."));
            }
            match secrets.get_mut(&name) {
                Some(s) => {
                    s.sealed = sealed;
                    if let Some(d) = description {
                        s.description = d;
                    }
                    s.version += 1;
                    s.updated_at = now;
                }
                None => {
                    secrets.insert(
                        name.clone(),
                        StoredSecret {
                            name: name.clone(),
                            sealed,
                            description: description.unwrap_or_default(),
                            version: 1,
                            created_at: now,
                            updated_at: now,
                        },
                    );
                }
            }
            Ok(Applied { ids: vec![name], ..Default::default() })
        }
        SecretCommand::Delete { name } => {
            secrets.remove(&name).ok_or_else(|| not_found(&name))?;
            Ok(Applied { ids: vec![name], ..Default::default() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ClusterKey;
    use berth_proto::secrets::seal_context;

    fn put(name: &str, sealed: &[u8], description: Option<&str>, now: i64) -> SecretCommand {
        SecretCommand::Put {
            name: name.into(),
            sealed: Sealed(sealed.to_vec()),
            description: description.map(str::to_string),
            now: Timestamp(now),
        }
    }

    #[test]
    fn commands_round_trip_through_the_command_encoding() {
        for cmd in
            [put("a/b", b"\x01\x02", Some("d"), 5), SecretCommand::Delete { name: "a".into() }]
        {
            let wrapped = crate::store::Command::Secret(cmd);
            let back: crate::store::Command =
                serde_json::from_slice(&wrapped.encode()).expect("decode");
            assert_eq!(back, wrapped);
        }
    }

    #[test]
    fn put_creates_then_replaces_with_a_new_version() {
        let mut st = State::new(ArnScope::default());
        let out = apply(&mut st, put("db", b"c1", Some("the db"), 10)).expect("create");
        assert_eq!(out.ids, vec!["db"]);
        apply(&mut st, put("db", b"c2", None, 20)).expect("replace");
        let s = &st.secrets.secrets["db"];
        assert_eq!(s.sealed, Sealed(b"c2".to_vec()));
        assert_eq!((s.version, s.created_at, s.updated_at), (2, Timestamp(10), Timestamp(20)));
        assert_eq!(s.description, "the db", "no description keeps the old one");
        apply(&mut st, put("db", b"c3", Some("new"), 30)).expect("replace");
        assert_eq!(st.secrets.secrets["db"].description, "new");
        assert_eq!(st.secrets.secrets["db"].version, 3);
        assert_eq!(
            st.secrets.secrets["db"].arn(&st.scope),
            "arn:aws:secretsmanager:local:000000000000:secret:db".to_string()
        );
    }

    #[test]
    fn bad_names_and_empty_values_are_refused_and_delete_needs_the_secret() {
        let mut st = State::new(ArnScope::default());
        let e = apply(&mut st, put("a b", b"c", None, 1)).expect_err("bad name");
        assert!(e.message.contains("secret name 'a b' is invalid"), "{}", e.message);
        let e = apply(&mut st, put("a", b"", None, 1)).expect_err("empty sealed");
        assert!(e.message.contains("sealed value"), "{}", e.message);
        let e = apply(&mut st, SecretCommand::Delete { name: "nope".into() }).expect_err("none");
        assert_eq!((e.kind, e.message.as_str()), (RejectKind::NotFound, "Secret nope not found."));
        apply(&mut st, put("a", b"c", None, 1)).expect("put");
        apply(&mut st, SecretCommand::Delete { name: "a".into() }).expect("delete");
        assert!(st.secrets.secrets.is_empty());
    }

    #[test]
    fn resolve_follows_value_from_and_state_json_holds_ciphertext_only() {
        let key = ClusterKey::generate().expect("key");
        let sealed = key.seal(&seal_context("app/db"), b"hunter2-plaintext").expect("seal");
        let mut st = State::new(ArnScope::default());
        apply(
            &mut st,
            SecretCommand::Put {
                name: "app/db".into(),
                sealed: Sealed(sealed),
                description: None,
                now: Timestamp(1),
            },
        )
        .expect("put");
        for vf in [
            "app/db",
            "arn:aws:secretsmanager:us-east-1:123:secret:app/db",
            "arn:aws:ssm:us-east-1:123:parameter/app/db",
        ] {
            let r = SecretRef::parse(vf).expect(vf);
            let s = st.secrets.resolve(&r).expect(vf);
            let plain = key.open(&seal_context(&s.name), &s.sealed.0).expect("open");
            assert_eq!(plain, b"hunter2-plaintext");
        }
        assert!(st.secrets.resolve(&SecretRef::parse("other").expect("parse")).is_none());
        let json = serde_json::to_string(&st).expect("json");
        assert!(!json.contains("hunter2"), "{json}");
        let back: State = serde_json::from_str(&json).expect("back");
        assert_eq!(back.secrets, st.secrets);
        assert!(!format!("{:?}", st.secrets).contains("hunter2"));
    }
}
