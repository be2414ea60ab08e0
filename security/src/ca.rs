//! The cluster CA and node keys (rcgen, ECDSA P-256). No clock inside: every signing call takes
//! `now` as Unix seconds, so tests and the replicated store decide time.
//!
//! * [`CertificateAuthority`] — a self-signed root ([`CertificateAuthority::create`]) or one
//!   loaded from PEM; signs a node's CSR for an [`Identity`] ([`CertificateAuthority::sign_csr`]).
//!   Whatever names or extensions the CSR asks for are ignored: the CA writes the identity
//!   (SAN URI + CN), the validity and the key usages itself; the CSR only supplies the public
//!   key (and proves possession of the private key by its signature).
//! * [`CertificateAuthority::successor`] — CA rotation: a new self-signed root plus a
//!   *cross certificate* for the new root's key and subject signed by this (old) root
//!   ([`Successor`]). A server presenting `[leaf from the new root, cross cert]` verifies for
//!   clients trusting only the old root (leaf → cross → old root) and for clients trusting the
//!   new root (leaf → new root); client certificates from either root verify against a bundle
//!   holding both.
//! * [`NodeKey`] — a node's own key pair and its CSR ([`NodeKey::csr_pem`]).
//! * [`cert_validity`] — a certificate's not-before / not-after (for renewal decisions);
//!   [`cert_subject`] — its subject.

use crate::error::{Result, SecurityError};
use crate::identity::{Identity, Role};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use std::time::Duration;

/// Default node certificate lifetime (`--cert-ttl`).
pub const DEFAULT_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default root CA lifetime.
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start this long before `now`, for clock skew between nodes.
pub const BACKDATE: Duration = Duration::from_secs(300);
/// DNS name every controller certificate carries; clients verify the server against it (not
/// against the address they dialled), so a controller is reachable under any address, and a
/// certificate for an agent never passes as a controller.
pub const CONTROLLER_SERVER_NAME: &str = "controller.berth";

fn gen_err(e: rcgen::Error) -> SecurityError {
    SecurityError::Generate(e.to_string())
}

fn at(unix: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| SecurityError::Generate(format!("time {unix}: {e}")))
}

fn plus(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn random_serial() -> Result<(SerialNumber, String)> {
    use ring::rand::SecureRandom;
    let mut buf = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| SecurityError::Generate("the system RNG failed".into()))?;
    buf[0] &= 0x7f; // positive INTEGER
    Ok((SerialNumber::from_slice(&buf), hex::encode(buf)))
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)
}

/// A signed node certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// Serial number, lowercase hex.
    pub serial: String,
    pub identity: Identity,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// The cluster's root CA: certificate plus private key. `Debug` hides the key.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateAuthority(digest {})", self.digest())
    }
}

/// A rotated-to root and its cross certificate ([`CertificateAuthority::successor`]).
#[derive(Debug)]
pub struct Successor {
    /// The new self-signed root (signs everything from the rotation on).
    pub ca: CertificateAuthority,
    /// PEM: the new root's subject and key, issued by the old root (an intermediate CA under
    /// it), valid until the `cross_not_after` given.
    pub cross_cert_pem: String,
}

/// A root's parameters: `Berth CA <name>`, a CA for end-entity certificates only.
fn root_params(name: &str, not_before: i64, not_after: i64) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Berth CA {name}"));
    dn.push(DnType::OrganizationName, "Berth");
    params.distinguished_name = dn;
    // Path length 0: no CA below it. (webpki ignores a trust anchor's own constraints, so a
    // cross certificate under an old root verifies; the cross certificate itself has 0 too.)
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = at(not_before)?;
    params.not_after = at(not_after)?;
    params.serial_number = Some(random_serial()?.0);
    Ok(params)
}

impl CertificateAuthority {
    /// A new self-signed root named `Berth CA <name>`, valid from `now` for `ttl`.
    pub fn create(name: &str, now: i64, ttl: Duration) -> Result<CertificateAuthority> {
        let key = new_key()?;
        let params =
            root_params(name, now.saturating_sub(BACKDATE.as_secs() as i64), plus(now, ttl))?;
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Ok(CertificateAuthority { cert_pem: cert.pem(), cert_der: cert.der().clone(), key })
    }

    /// CA rotation: a new root `Berth CA <name>` (valid from `now` for `ttl`; give it a name
    /// other than this root's, so the two subjects differ) and a cross certificate for it
    /// signed by this root, valid from `now - BACKDATE` to `cross_not_after`.
    pub fn successor(
        &self,
        name: &str,
        now: i64,
        ttl: Duration,
        cross_not_after: i64,
    ) -> Result<Successor> {
        let not_before = now.saturating_sub(BACKDATE.as_secs() as i64);
        if cross_not_after <= now {
            return Err(SecurityError::Generate("the cross certificate must end after now".into()));
        }
        let ca = CertificateAuthority::create(name, now, ttl)?;
        if ca.subject()? == self.subject()? {
            return Err(SecurityError::Generate(format!(
                "the new root needs a subject other than the old root's ({name})"
            )));
        }
        let mut params = root_params(name, not_before, cross_not_after.min(plus(now, ttl)))?;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key).map_err(gen_err)?;
        let cross = params.signed_by(&ca.key, &issuer).map_err(gen_err)?;
        Ok(Successor { ca, cross_cert_pem: cross.pem() })
    }

    /// The certificate's subject, as text.
    pub fn subject(&self) -> Result<String> {
        cert_subject(&self.cert_der)
    }

    /// Loads a CA from its certificate and PKCS#8 private key (both PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| SecurityError::Key(e.to_string()))?;
        let der = crate::pem::certs_from_pem(cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| SecurityError::Certificate("CA PEM holds no certificate".into()))?;
        if !public_key_matches(&der, &key)? {
            return Err(SecurityError::Key(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        Ok(CertificateAuthority { cert_pem: cert_pem.to_string(), cert_der: der, key })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The private key as PKCS#8 PEM. Secret: seal it before storing it anywhere.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// SHA-256 hex of the certificate DER (what join tokens pin).
    pub fn digest(&self) -> String {
        crate::token::ca_digest(&self.cert_der)
    }

    /// Signs the public key of `csr_pem` (whose self-signature is verified) for `identity`,
    /// valid from `now - BACKDATE` to `now + ttl`. Controllers get server + client auth and the
    /// DNS name [`CONTROLLER_SERVER_NAME`]; agents client auth only.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &Identity,
        now: i64,
        ttl: Duration,
    ) -> Result<IssuedCert> {
        let der = crate::pem::csr_from_pem(csr_pem)?;
        self.sign_csr_der(&der, identity, now, ttl)
    }

    /// [`CertificateAuthority::sign_csr`] for a DER-encoded CSR.
    pub fn sign_csr_der(
        &self,
        csr_der: &[u8],
        identity: &Identity,
        now: i64,
        ttl: Duration,
    ) -> Result<IssuedCert> {
        let der = rustls_pki_types::CertificateSigningRequestDer::from(csr_der);
        let mut csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| SecurityError::Csr(e.to_string()))?;
        if ttl.is_zero() {
            return Err(SecurityError::Generate("certificate ttl must be positive".into()));
        }
        let (serial, serial_hex) = random_serial()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.common_name());
        dn.push(DnType::OrganizationName, "Berth");
        params.distinguished_name = dn;
        let uri = identity.uri().try_into().map_err(gen_err)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if identity.role() == Role::Controller {
            let dns = CONTROLLER_SERVER_NAME.try_into().map_err(gen_err)?;
            params.subject_alt_names.push(SanType::DnsName(dns));
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        let not_before = now.saturating_sub(BACKDATE.as_secs() as i64);
        let not_after = plus(now, ttl);
        params.not_before = at(not_before)?;
        params.not_after = at(not_after)?;
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        csr.params = params;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key).map_err(gen_err)?;
        let cert = csr.signed_by(&issuer).map_err(gen_err)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            serial: serial_hex,
            identity: identity.clone(),
            not_before,
            not_after,
        })
    }
}

fn public_key_matches(cert_der: &[u8], key: &KeyPair) -> Result<bool> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| SecurityError::Certificate(format!("cannot parse DER: {e}")))?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

/// A node's own key pair (ECDSA P-256). `Debug` hides the key.
pub struct NodeKey {
    key: KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(…)")
    }
}

impl NodeKey {
    pub fn generate() -> Result<NodeKey> {
        Ok(NodeKey { key: new_key()? })
    }

    pub fn from_pem(key_pem: &str) -> Result<NodeKey> {
        Ok(NodeKey {
            key: KeyPair::from_pem(key_pem).map_err(|e| SecurityError::Key(e.to_string()))?,
        })
    }

    /// PKCS#8 PEM (keep it mode 0600).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A CSR for this key. It names nothing: the CA decides the identity.
    pub fn csr_pem(&self) -> Result<String> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.serialize_request(&self.key).and_then(|csr| csr.pem()).map_err(gen_err)
    }

    /// True if `cert_der` certifies this key.
    pub fn matches(&self, cert_der: &[u8]) -> Result<bool> {
        public_key_matches(cert_der, &self.key)
    }
}

/// Subject of a DER certificate, as text (`CN=…, O=…`).
pub fn cert_subject(der: &[u8]) -> Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| SecurityError::Certificate(format!("cannot parse DER: {e}")))?;
    Ok(cert.subject().to_string())
}

/// Validity of a DER certificate as `(not_before, not_after)` Unix seconds.
pub fn cert_validity(der: &[u8]) -> Result<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| SecurityError::Certificate(format!("cannot parse DER: {e}")))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_csr_is_signed_for_the_identity_the_ca_chooses() {
        let ca = CertificateAuthority::create("test", NOW, DEFAULT_CA_TTL).expect("ca");
        let node = NodeKey::generate().expect("key");
        let id = Identity::agent("0123456789abcdef0123456789abcdef").expect("id");
        let issued =
            ca.sign_csr(&node.csr_pem().expect("csr"), &id, NOW, DEFAULT_CERT_TTL).expect("sign");
        assert_eq!(Identity::from_der(&issued.cert_der).expect("identity"), id);
        assert_eq!(cert_validity(&issued.cert_der).expect("validity"), (NOW - 300, NOW + 86_400));
        assert_eq!((issued.not_before, issued.not_after), (NOW - 300, NOW + 86_400));
        assert!(node.matches(&issued.cert_der).expect("match"));
        assert!(!NodeKey::generate().expect("k").matches(&issued.cert_der).expect("match"));
        assert_eq!(issued.serial.len(), 32);
        // The CA survives a PEM round trip and keeps signing.
        let again = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).expect("load");
        assert_eq!(again.digest(), ca.digest());
        let other = CertificateAuthority::create("other", NOW, DEFAULT_CA_TTL).expect("ca");
        assert!(CertificateAuthority::from_pem(ca.cert_pem(), &other.key_pem()).is_err());
        assert!(ca.sign_csr("not a csr", &id, NOW, DEFAULT_CERT_TTL).is_err());
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let ca = CertificateAuthority::create("test", NOW, DEFAULT_CA_TTL).expect("ca");
        let csr = NodeKey::generate().expect("key").csr_pem().expect("csr");
        let der = crate::pem::csr_from_pem(&csr).expect("pem");
        let id = Identity::controller(1).expect("id");
        ca.sign_csr_der(&der, &id, NOW, DEFAULT_CERT_TTL).expect("untouched CSR signs");
        let mut bad = der.clone();
        let n = bad.len() - 3;
        bad[n] ^= 0x55;
        let err = ca.sign_csr_der(&bad, &id, NOW, DEFAULT_CERT_TTL).expect_err("tampered");
        assert!(err.to_string().contains("signing request"), "{err}");
    }
}
