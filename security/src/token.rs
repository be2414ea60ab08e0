//! Join tokens, SwarmKit-style: `BERTH-1-<sha256 hex of the CA cert DER>-<secret>`.
//!
//! The digest lets a new node check the CA certificate it downloads (`GetCaBundle`) before it
//! trusts it (trust on first use, pinned by the token). The secret (32 hex digits or more)
//! proves the holder may join; the controller keeps only [`token_hash`] of the secret.

use crate::error::{Result, SecurityError};

/// Leading tag and format version.
pub const TOKEN_PREFIX: &str = "BERTH-1-";
/// Random bytes in a new token's secret (hex: twice as many characters).
pub const SECRET_BYTES: usize = 16;

/// SHA-256 of `data`, lowercase hex (the same function the controller uses for API tokens).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// The digest that pins a CA certificate (SHA-256 of its DER, lowercase hex).
pub fn ca_digest(ca_der: &[u8]) -> String {
    sha256_hex(ca_der)
}

/// What the store keeps for a token: the SHA-256 hex of its secret.
pub fn token_hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 hex of the CA certificate DER.
    pub ca_digest: String,
    /// The secret part (lowercase hex).
    pub secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinToken({TOKEN_PREFIX}{}-…)", self.ca_digest)
    }
}

impl JoinToken {
    /// A token with a fresh random secret for the CA whose DER is `ca_der`.
    pub fn generate(ca_der: &[u8]) -> Result<JoinToken> {
        use ring::rand::SecureRandom;
        let mut buf = [0u8; SECRET_BYTES];
        ring::rand::SystemRandom::new()
            .fill(&mut buf)
            .map_err(|_| SecurityError::Token("secret: the system RNG failed".into()))?;
        Ok(JoinToken { ca_digest: ca_digest(ca_der), secret: hex::encode(buf) })
    }

    /// Parses `BERTH-1-<64 hex>-<secret>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<JoinToken> {
        let text = text.trim();
        let rest = text.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            SecurityError::Token(format!(
                "must start with {TOKEN_PREFIX} (BERTH-1-<CA digest>-<secret>)"
            ))
        })?;
        let (digest, secret) = rest
            .split_once('-')
            .ok_or_else(|| SecurityError::Token("must be BERTH-1-<CA digest>-<secret>".into()))?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SecurityError::Token("CA digest must be 64 hex characters".into()));
        }
        if secret.len() < 32 || secret.len() > 128 || !secret.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(SecurityError::Token("secret must be 32 to 128 hex characters".into()));
        }
        Ok(JoinToken {
            ca_digest: digest.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }

    /// Refuses a CA certificate whose digest is not the token's.
    pub fn check_ca(&self, ca_der: &[u8]) -> Result<()> {
        let actual = ca_digest(ca_der);
        if actual != self.ca_digest {
            return Err(SecurityError::CaDigestMismatch {
                expected: self.ca_digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// The hash the controller stores and looks the token up by.
    pub fn hash(&self) -> String {
        token_hash(&self.secret)
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}-{}", self.ca_digest, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_pin_the_ca() {
        let t = JoinToken::generate(b"ca der").expect("token");
        let text = t.to_string();
        assert!(text.starts_with("BERTH-1-"));
        assert_eq!(text.len(), 8 + 64 + 1 + 32);
        let back = JoinToken::parse(&format!(" {text}\n")).expect("parse");
        assert_eq!(back, t);
        back.check_ca(b"ca der").expect("same CA");
        let err = back.check_ca(b"other").expect_err("other CA");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert_eq!(t.hash(), sha256_hex(t.secret.as_bytes()));
        assert!(!format!("{t:?}").contains(&t.secret));
        assert!(JoinToken::parse("SWMTKN-1-aa-bb").is_err());
        assert!(JoinToken::parse(&format!("BERTH-1-{}-short", "a".repeat(64))).is_err());
        assert!(
            JoinToken::parse(&format!("BERTH-1-{}-{}", "a".repeat(63), "b".repeat(32))).is_err()
        );
    }
}
