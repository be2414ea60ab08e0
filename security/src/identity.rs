//! Node identities in certificates.
//!
//! An identity is a [`Role`] plus an id: a controller's Raft node id (decimal, non-zero), an
//! agent's container instance id (32 lowercase hex digits), or a client's name (a person or
//! automation using the CLI: 1–[`MAX_CLIENT_NAME`] characters of `[a-z0-9._-]`, see
//! [`check_client_name`]). A certificate carries it twice: as
//! the SAN URI `berth://<role>/<id>` (authoritative) and as the subject CN `<role>:<id>`
//! (for humans and `openssl x509 -text`). [`Identity::from_der`] reads it back from a peer's
//! DER certificate (the SAN URI; the CN is not trusted).

use crate::error::{Result, SecurityError};
use x509_parser::extensions::GeneralName;

/// What a certificate's holder may do: serve and join Raft, run tasks, or call the API as a
/// client (the CLI; what it may do there is still its API token's role). Code that admits
/// controllers or agents checks for its role, so a client certificate is never one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Controller,
    Agent,
    Client,
}

/// Longest client name (`berth://client/<name>`).
pub const MAX_CLIENT_NAME: usize = 64;

/// A client name: 1–[`MAX_CLIENT_NAME`] characters of `[a-z0-9._-]` (lowercase, so that two
/// spellings never name one client; no `/`, so the URI stays `berth://client/<name>`).
pub fn check_client_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLIENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SecurityError::Identity(format!(
            "client name '{name}' is invalid: expected 1-{MAX_CLIENT_NAME} characters of a-z, 0-9, '.', '_', '-'"
        )))
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Agent => "agent",
            Role::Client => "client",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = SecurityError;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "controller" => Ok(Role::Controller),
            "agent" => Ok(Role::Agent),
            "client" => Ok(Role::Client),
            other => Err(SecurityError::Identity(format!(
                "role '{other}' is invalid: expected controller, agent or client"
            ))),
        }
    }
}

/// A node identity: role + id, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    role: Role,
    id: String,
}

/// Prefix of the SAN URI that carries the identity.
pub const IDENTITY_URI_SCHEME: &str = "berth://";

impl Identity {
    /// Checks the id against the role's rule (controller: decimal non-zero u64; agent: 32 hex
    /// digits, stored lowercase; client: [`check_client_name`], kept as given).
    pub fn new(role: Role, id: &str) -> Result<Identity> {
        match role {
            Role::Controller => {
                let n: u64 = id.parse().map_err(|_| {
                    SecurityError::Identity(format!(
                        "controller id '{id}' is invalid: expected a non-zero node id"
                    ))
                })?;
                if n == 0 || n.to_string() != id {
                    return Err(SecurityError::Identity(format!(
                        "controller id '{id}' is invalid: expected a non-zero node id"
                    )));
                }
            }
            Role::Agent => {
                if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(SecurityError::Identity(format!(
                        "agent id '{id}' is invalid: expected 32 hex characters"
                    )));
                }
            }
            Role::Client => check_client_name(id)?,
        }
        Ok(Identity { role, id: id.to_ascii_lowercase() })
    }

    pub fn controller(node_id: u64) -> Result<Identity> {
        Identity::new(Role::Controller, &node_id.to_string())
    }

    pub fn agent(instance_id: &str) -> Result<Identity> {
        Identity::new(Role::Agent, instance_id)
    }

    /// `berth://client/<name>`.
    pub fn client(name: &str) -> Result<Identity> {
        Identity::new(Role::Client, name)
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `berth://agent/<id>`, `berth://controller/<id>` or `berth://client/<name>`.
    pub fn uri(&self) -> String {
        format!("{IDENTITY_URI_SCHEME}{}/{}", self.role, self.id)
    }

    /// The subject common name, `<role>:<id>`.
    pub fn common_name(&self) -> String {
        format!("{}:{}", self.role, self.id)
    }

    /// Parses [`Identity::uri`]'s format.
    pub fn from_uri(uri: &str) -> Result<Identity> {
        let rest = uri.strip_prefix(IDENTITY_URI_SCHEME).ok_or_else(|| {
            SecurityError::Identity(format!(
                "URI '{uri}' does not start with {IDENTITY_URI_SCHEME}"
            ))
        })?;
        let (role, id) = rest.split_once('/').ok_or_else(|| {
            SecurityError::Identity(format!("URI '{uri}' is not berth://ROLE/ID"))
        })?;
        Identity::new(role.parse()?, id)
    }

    /// The identity in a DER certificate's SAN URI (exactly one `berth://` URI is required).
    /// The caller must have verified the certificate's chain (rustls does, for peers).
    pub fn from_der(der: &[u8]) -> Result<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| SecurityError::Certificate(format!("cannot parse DER: {e}")))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| SecurityError::Certificate(format!("subjectAltName: {e}")))?
            .ok_or_else(|| {
                SecurityError::Certificate("no subjectAltName: not a Berth node certificate".into())
            })?;
        let mut found = None;
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && uri.starts_with(IDENTITY_URI_SCHEME)
            {
                if found.is_some() {
                    return Err(SecurityError::Certificate(
                        "more than one berth:// identity URI".into(),
                    ));
                }
                found = Some(Identity::from_uri(uri)?);
            }
        }
        found.ok_or_else(|| {
            SecurityError::Certificate(
                "no berth:// identity URI: not a Berth node certificate".into(),
            )
        })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.role, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_role_rules() {
        assert_eq!(Identity::controller(3).expect("ok").uri(), "berth://controller/3");
        let a = Identity::agent("ABCDEF0123456789abcdef0123456789").expect("ok");
        assert_eq!(a.id(), "abcdef0123456789abcdef0123456789");
        assert_eq!(a.common_name(), "agent:abcdef0123456789abcdef0123456789");
        assert!(Identity::controller(0).is_err());
        assert!(Identity::new(Role::Controller, "01").is_err());
        assert!(Identity::agent("xyz").is_err());
        assert_eq!(Identity::from_uri(&a.uri()).expect("parse"), a);
        assert!(Identity::from_uri("spiffe://agent/1").is_err());
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn client_names_are_1_to_64_lowercase_letters_digits_dots_underscores_dashes() {
        let c = Identity::client("ops-1.ci_bot").expect("ok");
        assert_eq!(c.uri(), "berth://client/ops-1.ci_bot");
        assert_eq!(c.common_name(), "client:ops-1.ci_bot");
        assert_eq!(Identity::from_uri(&c.uri()).expect("parse"), c);
        assert_eq!("client".parse::<Role>().expect("role"), Role::Client);
        assert!(Identity::client(&"a".repeat(64)).is_ok());
        for bad in ["", "Ops", "a/b", "a b", "é", "a:b", &"a".repeat(65)] {
            let err = Identity::client(bad).expect_err(bad).to_string();
            assert!(err.contains("a-z, 0-9"), "{bad}: {err}");
        }
        assert!(Identity::from_uri("berth://client/a/b").is_err());
        // A client is neither of the node roles.
        assert_ne!(c.role(), Role::Agent);
        assert_ne!(c.role(), Role::Controller);
    }
}
