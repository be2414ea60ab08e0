//! A group of real `berth-controller` processes on loopback, for e2e tests and the bench.
//!
//! * [`controller_bin`] builds (once per process) and locates `target/<profile>/berth-controller`,
//!   as [`crate::berth_bin`] does for `berth` (`BERTH_TEST_RELEASE=1` → release);
//!   [`build_controller`] builds a chosen profile (the bench uses release);
//! * [`ControllerCluster::start`] picks free loopback ports (client gRPC + Raft peer) for N
//!   members, gives each a data dir under one directory (`member-N/`, log in `member-N.log`)
//!   and starts them with one `--initial-cluster`; `start_with_args` / `start_in` /
//!   `start_with` add controller flags, a kept directory, another binary;
//! * per member: [`ControllerCluster::crash`] (`kill -9`), [`ControllerCluster::stop`]
//!   (SIGTERM, wait for the exit), [`ControllerCluster::restart`] (same data dir and ports);
//! * async views over gRPC: [`ControllerCluster::status`] (GetStatus),
//!   [`ControllerCluster::wait_leader`], [`ControllerCluster::wait_converged`] (every running
//!   member reports the same applied index and state digest), each with a deadline.
//!
//! Every member still running when the cluster is dropped is killed. Must not touch the
//! controller's internals: everything goes through the binary and the public gRPC API.

use berth_proto::model::ControllerStatus;
use berth_proto::v1::{self, berth_client::BerthClient};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

use crate::free_port;

/// Time a stopped member gets between SIGTERM and exit (it transfers leadership and
/// snapshots first) before the harness calls it hung.
pub const GRACEFUL_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// One GetStatus call: a member that does not answer within this counts as down.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Interval between two polls of a condition (not a synchronisation: every wait has a deadline).
const POLL: Duration = Duration::from_millis(50);

/// The `berth-controller` binary, built from the current sources once per process (release
/// when `BERTH_TEST_RELEASE=1`).
pub fn controller_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_controller(crate::test_release()))
}

/// Builds `berth-controller` (`cargo build -q -p berth-controller`) and returns its path.
pub fn build_controller(release: bool) -> PathBuf {
    crate::build_bin("berth-controller", "berth-controller", release)
}

/// One member: its addresses, data dir and (while running) its process.
pub struct Member {
    pub id: u64,
    /// host:port of the client gRPC listener.
    pub listen: String,
    /// `http://` + `listen`.
    pub endpoint: String,
    /// host:port of the Raft peer listener.
    pub peer_listen: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

/// N controller processes forming one Raft group.
pub struct ControllerCluster {
    pub members: Vec<Member>,
    bin: PathBuf,
    initial_cluster: String,
    extra_args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl ControllerCluster {
    /// Starts `n` members in a fresh temp dir (removed on drop).
    pub fn start(n: usize) -> Self {
        Self::start_with_args(n, &[])
    }

    /// [`ControllerCluster::start`], passing `extra_args` to every member.
    pub fn start_with_args(n: usize, extra_args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut c = Self::start_in(tmp.path(), n, extra_args);
        c._tmp = Some(tmp);
        c
    }

    /// Starts `n` members with data under `dir` (kept), passing `extra_args` to each.
    pub fn start_in(dir: &Path, n: usize, extra_args: &[&str]) -> Self {
        Self::start_with(controller_bin().to_path_buf(), dir, n, extra_args)
    }

    /// [`ControllerCluster::start_in`] with the binary at `bin` (e.g. a release build).
    pub fn start_with(bin: PathBuf, dir: &Path, n: usize, extra_args: &[&str]) -> Self {
        let members: Vec<Member> = (1..=n as u64)
            .map(|id| {
                let listen = format!("127.0.0.1:{}", free_port());
                Member {
                    id,
                    endpoint: format!("http://{listen}"),
                    listen,
                    peer_listen: format!("127.0.0.1:{}", free_port()),
                    data_dir: dir.join(format!("member-{id}")),
                    log_path: dir.join(format!("member-{id}.log")),
                    child: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.id, m.peer_listen))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = ControllerCluster {
            members,
            bin,
            initial_cluster,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _tmp: None,
        };
        for id in c.ids() {
            c.spawn(id);
        }
        c
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    pub fn member(&self, id: u64) -> &Member {
        self.members.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("no member {id}"))
    }

    fn member_mut(&mut self, id: u64) -> &mut Member {
        self.members.iter_mut().find(|m| m.id == id).unwrap_or_else(|| panic!("no member {id}"))
    }

    /// Client endpoints (`http://…`) of every member, in id order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint.clone()).collect()
    }

    fn spawn(&mut self, id: u64) {
        let initial_cluster = self.initial_cluster.clone();
        let extra = self.extra_args.clone();
        let bin = self.bin.clone();
        let m = self.member_mut(id);
        assert!(m.child.is_none(), "member {id} is already running");
        std::fs::create_dir_all(&m.data_dir).expect("creating the data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .expect("opening the member log");
        let child = Command::new(&bin)
            .args(["--node-id", &id.to_string(), "--data-dir"])
            .arg(&m.data_dir)
            .args(["--listen", &m.listen, "--peer-listen", &m.peer_listen])
            .args(["--initial-cluster", &initial_cluster])
            .args(&extra)
            .env("RUST_LOG", std::env::var("BERTH_CONTROLLER_LOG").unwrap_or("info".into()))
            .stdin(Stdio::null())
            // The controller logs to stderr; stdout (nothing today) goes into the member log too.
            .stdout(log.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .stderr(log)
            .spawn()
            .expect("spawning berth-controller");
        m.child = Some(child);
    }

    /// The OS process id of member `id`, while it runs (e.g. to sample its memory).
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.member(id).child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.member(id).child.is_some()
    }

    /// Ids of the members whose process the harness started and has not stopped.
    pub fn running(&self) -> Vec<u64> {
        self.members.iter().filter(|m| m.child.is_some()).map(|m| m.id).collect()
    }

    /// `kill -9`: no shutdown path runs.
    pub fn crash(&mut self, id: u64) {
        if let Some(mut child) = self.member_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (up to [`GRACEFUL_STOP_TIMEOUT`]) for the process to exit. Panics
    /// (after killing it) if it does not, or if it exits with a failure status.
    pub fn stop(&mut self, id: u64) {
        let Some(mut child) = self.member_mut(id).child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + GRACEFUL_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "member {id} exited with {status} after SIGTERM");
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("member {id} did not exit within {GRACEFUL_STOP_TIMEOUT:?} of SIGTERM");
    }

    /// Starts a stopped or crashed member again on the same data dir and ports.
    pub fn restart(&mut self, id: u64) {
        if self.is_running(id) {
            self.stop(id);
        }
        self.spawn(id);
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.member(id).log_path).unwrap_or_default()
    }

    /// The last `lines` lines of every member's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for m in &self.members {
            let log = self.log(m.id);
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            out.push_str(&format!("--- member {} ({}) ---\n", m.id, m.log_path.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// A client for member `id` (connects lazily; calls time out after `timeout`).
    pub fn client(&self, id: u64, timeout: Duration) -> BerthClient<Channel> {
        client_for(&self.member(id).endpoint, timeout)
    }

    /// GetStatus of member `id`, or `None` if it does not answer in time.
    pub async fn status(&self, id: u64) -> Option<ControllerStatus> {
        if !self.is_running(id) {
            return None;
        }
        let mut api = self.client(id, STATUS_TIMEOUT);
        let reply = api.get_status(v1::StatusRequest {}).await.ok()?.into_inner();
        serde_json::from_str(&reply.json).ok()
    }

    /// Statuses of every running member that answers.
    pub async fn statuses(&self) -> Vec<ControllerStatus> {
        let mut out = Vec::new();
        for id in self.running() {
            if let Some(s) = self.status(id).await {
                out.push(s);
            }
        }
        out
    }

    /// Waits until a running member says it is leader and every other answering member
    /// agrees on it (same leader id); returns the leader's id.
    pub async fn wait_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.statuses().await;
            let leader = last.iter().find(|s| s.role == "leader").map(|s| (s.node_id, s.term));
            if let Some((id, term)) = leader
                && last.iter().all(|s| s.leader_id == Some(id) && s.term == term)
            {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?}; statuses: {last:?}\n{}",
                self.log_tails(15)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running member answers with the same applied index and state digest;
    /// returns that status (of the lowest id).
    pub async fn wait_converged(&self, timeout: Duration) -> ControllerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.statuses().await;
            let expected = self.running().len();
            if all.len() == expected
                && let Some(first) = all.first()
                && all.iter().all(|s| {
                    s.applied_index == first.applied_index && s.state_digest == first.state_digest
                })
            {
                return first.clone();
            }
            assert!(
                Instant::now() < deadline,
                "members did not converge within {timeout:?} ({expected} running); statuses: {all:?}\n{}",
                self.log_tails(15)
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for ControllerCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A lazily connecting client for `endpoint` whose calls time out after `timeout`.
pub fn client_for(endpoint: &str, timeout: Duration) -> BerthClient<Channel> {
    let channel = Endpoint::from_shared(endpoint.to_string())
        .expect("a valid endpoint URL")
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .connect_lazy();
    let max = berth_proto::MAX_MESSAGE_BYTES;
    BerthClient::new(channel).max_decoding_message_size(max).max_encoding_message_size(max)
}
