//! # berth-tests — the end-to-end harness
//!
//! Tests here run Berth the way a user does: the real `berth` binary (`berth dev`: a one-node Raft
//! controller plus an agent driving the real Docker engine), real gRPC over loopback, the CLI's
//! `-o json` output as the ECS shapes. Helpers:
//! * [`berth_bin`] builds (once per test binary) and locates `target/<profile>/berth`;
//! * [`Dev`] starts/stops a `berth dev` process on a free port with its own data dir;
//! * [`docker_available`] / [`require_docker`] decide whether Docker tests run (CI sets
//!   `BERTH_REQUIRE_DOCKER=1`, so a missing daemon fails there instead of skipping);
//! * [`ensure_images`] builds the local images (`scripts/build-images.sh`; no registry needed);
//! * [`wait_until`] polls a condition with a deadline (tests never sleep to synchronise);
//! * [`http_status`] does a raw HTTP/1.0 GET on loopback;
//! * [`agent::AgentProcess`] runs an extra real `berth-agent` (a second container instance);
//! * [`tls::TlsNode`] runs a `berth-controller --tls` with a peer listener, [`tls::cli_json`] the
//!   CLI against it.
//!
//! The bench binary (`src/bin/bench.rs`) shares this harness; its larger suites live here
//! ([`bench_scheduler`], [`bench_events`], [`bench_e2e`]).

pub mod agent;
pub mod bench_e2e;
pub mod bench_events;
pub mod bench_scheduler;
pub mod bench_sim;
pub mod cluster;
pub mod paging;
pub mod tls;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `../shared/fixtures` beside the checkout, if present.
pub fn fixtures_dir() -> Option<PathBuf> {
    let p = workspace_root().join("../shared/fixtures");
    p.is_dir().then_some(p)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Whether tests use release binaries (`BERTH_TEST_RELEASE=1`).
pub fn test_release() -> bool {
    std::env::var("BERTH_TEST_RELEASE").is_ok_and(|v| v == "1")
}

/// Builds binary `bin` of workspace package `package` (`cargo build -q`, `--release` when
/// `release`) and returns its path under the target dir.
pub fn build_bin(package: &str, bin: &str, release: bool) -> PathBuf {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root()).args(["build", "-q", "-p", package, "--bin", bin]);
    // Under `cargo run` / `cargo test` this process carries the variables cargo sets for a
    // running crate (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, …). Build scripts that watch them
    // (ring's `rerun-if-env-changed`) would see them change and rebuild half the tree on every
    // call, then again on the next outer build; the inner cargo must see the user's env only.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_BIN_")
            || matches!(
                k.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            cmd.env_remove(&key);
        }
    }
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("running cargo build for {bin}: {e}"));
    assert!(status.success(), "cargo build -p {package} --bin {bin} failed");
    target_dir().join(if release { "release" } else { "debug" }).join(bin)
}

/// The `berth` binary, built from the current sources once per test process.
pub fn berth_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("berth-cli", "berth", test_release()))
}

/// Seconds since the Unix epoch, as the `-o json` timestamps are written.
pub fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The instance id (last ARN segment) a task JSON object is placed on.
pub fn instance_of(task: &Value) -> String {
    task["containerInstanceArn"]
        .as_str()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_string()
}

/// True when a Docker daemon answers `docker info`.
pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether Docker tests should run. Without a daemon they skip (printing why), unless
/// `BERTH_REQUIRE_DOCKER=1` (set by `.ci/run`), where a missing daemon is a failure.
pub fn require_docker(test: &str) -> bool {
    if docker_available() {
        return true;
    }
    if std::env::var("BERTH_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!("{test}: BERTH_REQUIRE_DOCKER=1 but no Docker daemon answers `docker info`");
    }
    eprintln!(
        "SKIP {test}: no Docker daemon answers `docker info` (set BERTH_REQUIRE_DOCKER=1 to make this an error)"
    );
    false
}

/// Build the local test images once per test process (idempotent script).
pub fn ensure_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(workspace_root().join("scripts/build-images.sh"))
            .output()
            .expect("running scripts/build-images.sh");
        assert!(
            out.status.success(),
            "build-images.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// HTTP status code of `GET /` on 127.0.0.1:port, if it answers.
pub fn http_status(port: u16) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A `berth dev` process with its own data dir and port.
pub struct Dev {
    child: Option<Child>,
    pub endpoint: String,
    pub listen: String,
    pub data_dir: PathBuf,
    extra: Vec<String>,
}

impl Dev {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Dev {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut dev = Dev {
            child: None,
            endpoint: format!("http://{listen}"),
            listen,
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        dev.spawn();
        dev
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.data_dir).expect("creating the data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("dev.log"))
            .expect("opening dev.log");
        let child = Command::new(berth_bin())
            .args(["dev", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen", &self.listen])
            // Parallel tests each run a `berth dev`: no fixed HTTP port (the default is 7602).
            .args(["--http-listen", "127.0.0.1:0"])
            // Nor for the agent's API (the default is 7603); it registers the port it got.
            .args(["--agent-http-listen", "127.0.0.1:0"])
            // Nor for the task metadata endpoint (the default is 51679, as on ECS); the agent keeps
            // the port it picked in its data dir, so a restart binds the same one.
            .args(["--metadata-port", "0"])
            .args(&self.extra)
            .env("ECS_IMAGE_PULL_BEHAVIOR", "prefer-cached")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning berth dev");
        self.child = Some(child);
        let ep = self.endpoint.clone();
        wait_until("berth dev answers and its agent is connected", Duration::from_secs(60), || {
            let v = berth_json(&ep, &["instance", "list"]).ok()?;
            v.as_array()?.iter().any(|i| i["agentConnected"] == Value::Bool(true)).then_some(())
        });
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth dev did not exit within 30 s of SIGTERM");
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        berth(&self.endpoint, args)
    }

    /// Run a CLI command with `-o json`, panicking (with stderr) if it fails.
    pub fn json(&self, args: &[&str]) -> Value {
        berth_json(&self.endpoint, args).unwrap_or_else(|e| panic!("berth {args:?} failed: {e}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("dev.log")).unwrap_or_default()
    }
}

impl Drop for Dev {
    /// Kills the process if still running, then removes every container its agent started
    /// (by the agent's instance id), so tests leave nothing behind on a shared Docker engine.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let id =
            std::fs::read_to_string(self.data_dir.join("agent/instance-id")).unwrap_or_default();
        let id = id.trim();
        if !id.is_empty() {
            let ids = docker_containers_with_label("berth.instance-id", id);
            if !ids.is_empty() {
                let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
            }
        }
    }
}

pub fn berth(endpoint: &str, args: &[&str]) -> Output {
    Command::new(berth_bin())
        .args(["--endpoint", endpoint])
        .args(args)
        .output()
        .expect("running berth")
}

pub fn berth_json(endpoint: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(berth_bin())
        .args(["--endpoint", endpoint, "-o", "json"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Ids of Docker containers (all states) carrying a label `key=value`.
pub fn docker_containers_with_label(key: &str, value: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter", &format!("label={key}={value}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Host ports of a task's network bindings.
pub fn host_ports(task: &Value) -> Vec<u16> {
    task["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["networkBindings"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["hostPort"].as_u64().and_then(|p| u16::try_from(p).ok()))
        .collect()
}

pub fn task_id(task: &Value) -> String {
    task["taskArn"].as_str().and_then(|a| a.rsplit('/').next()).unwrap_or_default().to_string()
}
