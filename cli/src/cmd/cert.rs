//! `berth operator cert create NAME [--ttl 30d] --out DIR`: a client certificate for the CLI
//! (`berth://client/<NAME>`), what controllers started with `--require-client-cert` ask for.
//!
//! Flow: refuse if `DIR/{cert.pem,key.pem,ca.pem}` exist (nothing is overwritten) → make a key
//! here (`berth_security::NodeKey`) → send only its CSR to `BerthSecurity.IssueClientCertificate`
//! (admin) → write `DIR/cert.pem`, `DIR/key.pem` (0600) and `DIR/ca.pem` (the trust bundle).
//! The key never leaves this machine. Use the files with `--client-cert DIR/cert.pem
//! --client-key DIR/key.pem --ca-cert DIR/ca.pem` (and a token: the certificate grants no
//! role). JSON output (`-o json`) is [`CertView`].

use crate::client::Api;
use crate::error::CliError;
use crate::output::{Fields, Format};
use berth_proto::model::Timestamp;
use berth_proto::model::event::iso8601_seconds;
use berth_proto::v1;
use clap::Subcommand;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Make a client certificate (key made locally, only the CSR is sent; admin). Writes
    /// DIR/cert.pem, DIR/key.pem (0600) and DIR/ca.pem; refuses to overwrite them.
    Create {
        /// The client's name: 1-64 characters of a-z, 0-9, '.', '_', '-'
        /// (the certificate names berth://client/NAME).
        name: String,
        /// Lifetime: 90s, 30m, 12h, 30d (at least 60 s, at most 365d).
        #[arg(long, default_value = "30d", value_parser = parse_ttl)]
        ttl: u64,
        /// Directory for cert.pem, key.pem and ca.pem (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `90s`, `15m`, `12h`, `30d` → seconds (positive; the controller checks the range).
fn parse_ttl(s: &str) -> Result<u64, String> {
    let d = berth_controller::tls::parse_duration(s)?;
    Some(d.as_secs()).filter(|v| *v > 0).ok_or_else(|| format!("'{s}' must be positive"))
}

/// `cert create` as printed (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertView {
    pub name: String,
    pub identity: String,
    pub serial: String,
    pub not_after: String,
    pub cert_file: String,
    pub key_file: String,
    pub ca_file: String,
}

/// The three files `create` writes, in `dir`.
fn files(dir: &Path) -> [(PathBuf, bool); 3] {
    [
        (dir.join(berth_security::tls::CERT_FILE), false),
        (dir.join(berth_security::tls::KEY_FILE), true),
        (dir.join(berth_security::tls::CA_FILE), false),
    ]
}

/// Refuses when any of the files exists (before a key is made or anything is sent).
fn check_free(dir: &Path) -> Result<(), CliError> {
    for (path, _) in files(dir) {
        if path.exists() {
            return Err(CliError::Usage(format!(
                "--out {}: {} exists; choose another directory or remove it (nothing is overwritten)",
                dir.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

/// Creates `path` with `text`, failing if it exists; mode 0600 when `private`.
fn write_new(path: &Path, text: &str, private: bool) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let err = |e: std::io::Error| CliError::Usage(format!("--out: {}: {e}", path.display()));
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(err)
}

fn detail(v: &CertView) -> String {
    let mut f = Fields::default();
    f.add("Identity", v.identity.clone())
        .add("Serial", v.serial.clone())
        .add("NotAfter", v.not_after.clone())
        .add("Certificate", v.cert_file.clone())
        .add("Key", v.key_file.clone())
        .add("CA", v.ca_file.clone());
    f.render()
}

pub async fn run(cmd: CertCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let CertCmd::Create { name, ttl, out: dir } = cmd;
    check_free(&dir)?;
    berth_security::check_client_name(&name).map_err(|e| CliError::Usage(format!("NAME: {e}")))?;
    let key = berth_security::NodeKey::generate()?;
    let req = v1::IssueClientCertificateRequest {
        name: name.clone(),
        csr_pem: key.csr_pem()?,
        ttl_secs: ttl,
    };
    let reply =
        api.security().issue_client_certificate(req).await.map_err(CliError::from)?.into_inner();
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Usage(format!("--out {}: {e}", dir.display())))?;
    let [(cert, _), (key_path, _), (ca, _)] = files(&dir);
    write_new(&key_path, &key.key_pem(), true)?;
    write_new(&cert, &reply.cert_pem, false)?;
    write_new(&ca, &reply.ca_pem, false)?;
    let v = CertView {
        name,
        identity: reply.identity,
        serial: reply.serial,
        not_after: iso8601_seconds(Timestamp(reply.not_after.saturating_mul(1000))),
        cert_file: cert.display().to_string(),
        key_file: key_path.display().to_string(),
        ca_file: ca.display().to_string(),
    };
    let text = match out {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&v)?),
        Format::Table => format!(
            "{}(use: --client-cert {} --client-key {} --ca-cert {}, with your API token)\n",
            detail(&v),
            v.cert_file,
            v.key_file,
            v.ca_file
        ),
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_files_are_never_overwritten() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(check_free(dir.path()).is_ok());
        std::fs::write(dir.path().join("key.pem"), "old").expect("write");
        let err = check_free(dir.path()).expect_err("exists").to_string();
        assert!(err.contains("key.pem exists"), "{err}");
        let err = write_new(&dir.path().join("key.pem"), "new", true).expect_err("create_new");
        assert!(err.to_string().contains("key.pem"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("key.pem")).expect("read"), "old");
        write_new(&dir.path().join("cert.pem"), "x", false).expect("new file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            write_new(&dir.path().join("k2.pem"), "x", true).expect("private");
            let mode = std::fs::metadata(dir.path().join("k2.pem")).expect("meta").permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
    }
}
