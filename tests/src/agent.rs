//! A real `berth-agent` process beside a controller (e.g. a second node for `berth dev`), for e2e
//! tests that need more than one container instance on the one Docker engine.
//!
//! * [`agent_bin`] builds (once per process) and locates `target/<profile>/berth-agent`, as
//!   [`crate::berth_bin`] does for `berth`;
//! * [`AgentProcess::start`] runs it against an endpoint with its own data dir (so its own
//!   instance id) and log (`agent.log`); [`AgentProcess::kill`] is SIGKILL (no shutdown path
//!   runs, containers stay), [`AgentProcess::restart`] starts it again on the same data dir.
//!
//! On drop the process is killed and every container labelled with its instance id is removed.

use crate::docker_containers_with_label;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The `berth-agent` binary, built from the current sources once per test process.
pub fn agent_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::build_bin("berth-agent", "berth-agent", crate::test_release()))
}

/// One `berth-agent` process.
pub struct AgentProcess {
    pub endpoint: String,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl AgentProcess {
    /// Starts an agent for `endpoint` with its data (and `agent.log`) under `data_dir`.
    pub fn start(endpoint: &str, data_dir: &Path, extra: &[&str]) -> AgentProcess {
        let mut a = AgentProcess {
            endpoint: endpoint.to_string(),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.data_dir).expect("creating the agent data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("agent.log"))
            .expect("opening agent.log");
        let child = Command::new(agent_bin())
            .args(["--endpoint", &self.endpoint, "--data-dir"])
            .arg(&self.data_dir)
            // Several agents run at once in tests: no fixed API port (the default is 51678).
            .args(["--http-listen", "127.0.0.1:0"])
            // Nor for the task metadata endpoint (the default is 51679).
            .args(["--metadata-port", "0"])
            .args(&self.extra)
            .env("ECS_IMAGE_PULL_BEHAVIOR", "prefer-cached")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            // tracing writes to stdout: both streams go to agent.log.
            .stdout(log.try_clone().expect("cloning the agent.log handle"))
            .stderr(log)
            .spawn()
            .expect("spawning berth-agent");
        self.child = Some(child);
    }

    /// The instance id the controller gave this agent (empty until it registered once).
    pub fn instance_id(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("instance-id"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process has ended on its own (polls it; false once killed by [`kill`]).
    ///
    /// [`kill`]: AgentProcess::kill
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// SIGKILL: the agent vanishes without a word; its containers keep running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again on the same data dir (same instance id).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
        let id = self.instance_id();
        if !id.is_empty() {
            let ids = docker_containers_with_label("berth.instance-id", &id);
            if !ids.is_empty() {
                let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
            }
        }
    }
}
