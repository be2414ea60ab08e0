//! TLS test harness shared by `tests/tests/tls*.rs`: real `berth-controller --tls` processes
//! with a peer listener ([`TlsNode`], killed on drop), the CLI over TLS with the admin token
//! ([`cli_json`]; with a client certificate and/or without a token: [`cli_json_with`]), and
//! small file readers.

use crate::cluster::controller_bin;
use crate::{berth_bin, free_port};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One `berth-controller --tls` on loopback with a client and a peer listener; its data dir
/// is `<dir>/data`, its log `<dir>/controller.log` (appended to across restarts).
pub struct TlsNode {
    pub id: u64,
    pub dir: PathBuf,
    pub listen: String,
    pub peer: String,
    pub child: Option<Child>,
}

impl TlsNode {
    /// Node `id` under `root/c<id>`, on fresh ports; not started.
    pub fn new(root: &Path, id: u64) -> TlsNode {
        TlsNode {
            id,
            dir: root.join(format!("c{id}")),
            listen: format!("127.0.0.1:{}", free_port()),
            peer: format!("127.0.0.1:{}", free_port()),
            child: None,
        }
    }

    /// `https://` URL of the client listener.
    pub fn url(&self) -> String {
        format!("https://{}", self.listen)
    }

    /// The data dir.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts it (`--node-id`, `--data-dir`, `--listen`, `--peer-listen`, `--tls`, then `extra`).
    pub fn start(&mut self, extra: &[&str]) {
        std::fs::create_dir_all(&self.dir).expect("node dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("controller.log"))
            .expect("controller log");
        let child = Command::new(controller_bin())
            .args(["--node-id", &self.id.to_string(), "--data-dir"])
            .arg(self.data())
            .args(["--listen", &self.listen, "--peer-listen", &self.peer, "--tls"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawning berth-controller");
        self.child = Some(child);
    }

    /// `<data-dir>/tls/<name>` (`ca.pem`, `cert.pem`, `key.pem`).
    pub fn tls_file(&self, name: &str) -> PathBuf {
        self.data().join("tls").join(name)
    }

    /// `<data-dir>/bootstrap/<name>` (`admin.token`, `agent.join-token`, …), once written.
    pub fn bootstrap(&self, name: &str) -> Option<String> {
        read_trimmed(&self.data().join("bootstrap").join(name))
    }

    /// Whether container instance `id` has a connected agent (`instance describe` with the
    /// bootstrap admin token).
    pub fn agent_connected(&self, id: &str) -> bool {
        let Some(admin) = self.bootstrap("admin.token") else { return false };
        cli_json(&self.url(), &self.tls_file("ca.pem"), &admin, &["instance", "describe", id])
            .is_ok_and(|v| v["agentConnected"] == true)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("controller.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `berth -o json ARGS` against `url`, trusting the roots in `ca`, with `token`; the error is
/// the CLI's stderr.
pub fn cli_json(url: &str, ca: &Path, token: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(berth_bin())
        .args(["--endpoint", url, "--ca-cert"])
        .arg(ca)
        .args(["--token", token, "-o", "json"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// A client certificate and key for the CLI's `--client-cert` / `--client-key`.
#[derive(Debug, Clone, Copy)]
pub struct ClientCert<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// [`cli_json`] with optional `--client-cert`/`--client-key` and an optional token (`None`:
/// no `--token`); the error is the CLI's stderr.
pub fn cli_json_with(
    url: &str,
    ca: &Path,
    client: Option<ClientCert<'_>>,
    token: Option<&str>,
    args: &[&str],
) -> Result<Value, String> {
    let mut cmd = Command::new(berth_bin());
    cmd.args(["--endpoint", url, "--ca-cert"]).arg(ca);
    if let Some(c) = client {
        cmd.arg("--client-cert").arg(c.cert).arg("--client-key").arg(c.key);
    }
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    // Keep the environment from adding flags behind the test's back.
    for var in ["BERTH_TOKEN", "BERTH_CLIENT_CERT", "BERTH_CLIENT_KEY", "BERTH_CA_CERT"] {
        cmd.env_remove(var);
    }
    let out = cmd.args(["-o", "json"]).args(args).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// A file's text, trimmed; `None` while it is absent or empty.
pub fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
