//! The crate's one error type.

/// Everything that can go wrong in `berth-security`. Messages name the field or file and the rule.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SecurityError {
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("the certificate signing request is invalid: {0}")]
    Csr(String),
    #[error("the certificate is invalid: {0}")]
    Certificate(String),
    #[error("the private key is invalid: {0}")]
    Key(String),
    #[error("identity {0}")]
    Identity(String),
    #[error("join token {0}")]
    Token(String),
    #[error(
        "the CA certificate's SHA-256 digest {actual} does not match the join token's {expected}: refusing to trust it"
    )]
    CaDigestMismatch { expected: String, actual: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

pub type Result<T, E = SecurityError> = std::result::Result<T, E>;
