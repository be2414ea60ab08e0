//! PEM in and out (rustls-pki-types' parser), and the file helpers nodes use for their
//! `{ca.pem,cert.pem,key.pem}` (keys written mode 0600).

use crate::error::{Result, SecurityError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use std::path::Path;

/// Every certificate in a PEM text, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| SecurityError::Certificate(format!("PEM: {e}")))?;
    if certs.is_empty() {
        return Err(SecurityError::Certificate("PEM holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The private key in a PEM text (PKCS#8, SEC1 or PKCS#1).
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| SecurityError::Key(format!("PEM: {e}")))
}

/// The CSR in a PEM text, as DER bytes.
pub fn csr_from_pem(pem: &str) -> Result<Vec<u8>> {
    CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .map(|d| d.as_ref().to_vec())
        .map_err(|e| SecurityError::Csr(format!("PEM: {e}")))
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> SecurityError {
    SecurityError::File { path: path.display().to_string(), message: e.to_string() }
}

/// Reads a text file, naming it in the error.
pub fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| file_err(path, e))
}

/// Writes `text` to `path` atomically (temp file + rename), with mode 0600 when `private`
/// (0644 otherwise); creates the parent directory.
pub fn write_file(path: &Path, text: &str, private: bool) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(path, e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = options.open(&tmp).map_err(|e| file_err(path, e))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| file_err(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

/// Creates `dir` (and missing parents) with mode 0700 when it does not exist: a node's data
/// dir holds its key, its store and its bootstrap files. An existing dir keeps its mode.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| file_err(dir, e))
}
