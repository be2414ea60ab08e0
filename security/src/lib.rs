//! # berth-security — the TLS core shared by controller, agent and CLI
//!
//! * `ca`       — [`CertificateAuthority`] (create a root, load it from PEM, sign a node's CSR
//!   for an [`Identity`] with `now` given as Unix seconds), [`NodeKey`] (a node's key and CSR),
//!   [`cert_validity`]; CA rotation: [`CertificateAuthority::successor`] (a new root and a
//!   cross certificate for it signed by the old root, [`Successor`]). ECDSA P-256 via rcgen + ring. Default node lifetime [`DEFAULT_CERT_TTL`]
//!   (24 h).
//! * `identity` — [`Role`] (controller | agent | client) + id, carried as the SAN URI
//!   `berth://<role>/<id>` and CN `<role>:<id>`; [`Identity::from_der`] reads a peer's.
//! * `token`    — join tokens `BERTH-1-<sha256 hex of the CA cert DER>-<secret>`
//!   ([`JoinToken`]; `check_ca` pins the CA a node downloads), [`sha256_hex`], [`token_hash`]
//!   (what the store keeps).
//! * `tls`      — [`TlsMaterial`] → rustls server / client configs; [`ServerTls`] (swappable
//!   server config + a TLS `incoming` for tonic, per-connection config, peer certs via
//!   `Request::peer_certs()` / [`peer_identity`]); [`ClientTls`] + [`TlsConnector`] +
//!   [`connect_channel`] (swappable client config for `Endpoint::connect_with_connector`).
//! * `join`     — node side of joining: [`join::fetch_ca`] (GetCaBundle, unverified, then the
//!   token's digest check) and [`join::join`] (key + CSR + JoinCluster; [`join::Joined::write`]
//!   keeps `{ca.pem,cert.pem,key.pem}`).
//! * `renew`    — when to renew (2/3 of the lifetime, pure) and the renewal loop on an
//!   injected clock, swapping new material into the running configs.
//! * `pem`      — PEM parsing and the 0600 file writer for `{ca.pem,cert.pem,key.pem}`.
//! * `error`    — [`SecurityError`], the crate's one error type.
//!
//! ## How the pieces fit (for renewal and rotation)
//! A node keeps a [`TlsMaterial`] (CA bundle + own cert + key). To renew, make a new
//! [`NodeKey`], get the CSR signed, build a new material and call `ServerTls::set` /
//! `ClientTls::set`: new connections use it, open ones keep theirs, nothing restarts. For CA
//! rotation (`CertificateAuthority::successor`) put both roots in `TlsMaterial::roots` during
//! the transition and present `[leaf from the new root, cross certificate]` as the own chain: a
//! peer that still trusts only the old root then verifies it through the cross certificate.
//! Server verification is by CA bundle + the DNS name [`CONTROLLER_SERVER_NAME`] (only controller certificates carry
//! it), so addresses need not be in certificates. `tls::IdentityFilter` refuses revoked
//! identities at the handshake.
//!
//! No clock and no I/O in `ca`, `identity`, `token`; only ring (never aws-lc).

pub mod ca;
pub mod error;
pub mod identity;
pub mod join;
pub mod pem;
pub mod renew;
pub mod tls;
pub mod token;

/// The rustls and tokio-rustls this crate builds on (ring provider), for callers' types.
pub use rustls;
pub use tokio_rustls;

pub use ca::{
    CONTROLLER_SERVER_NAME, CertificateAuthority, DEFAULT_CA_TTL, DEFAULT_CERT_TTL, IssuedCert,
    NodeKey, Successor, cert_subject, cert_validity,
};
pub use error::{Result, SecurityError};
pub use identity::{Identity, MAX_CLIENT_NAME, Role, check_client_name};
pub use tls::{
    ClientAuth, ClientTls, IdentityFilter, ServerTls, TlsConnector, TlsMaterial, connect_channel,
    peer_identity,
};
pub use token::{JoinToken, ca_digest, sha256_hex, token_hash};

#[cfg(test)]
mod tests;
