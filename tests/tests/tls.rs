//! TLS mode (issue 9), with real `berth-controller` / `berth-agent` / `berth` processes and real
//! gRPC over sockets:
//! * a fresh `--tls` controller creates the CA, its own certificate and the bootstrap files;
//!   a plaintext client gets a clear error; the CLI works with `https://`, `--ca-cert`, `--token`;
//! * an agent session without a certificate is refused; joining needs a valid, unrevoked join
//!   token for this CA; a certificate for instance X cannot register as another instance;
//! * (Docker) an agent process joins with a token, runs a task, restarts without the token; a
//!   certificate for another instance cannot report that task's state; a deregistered
//!   (revoked) identity can no longer connect;
//! * a non-loopback `--listen` without TLS is refused, accepted with `--insecure`; a TLS
//!   `--initial-cluster` of several fresh members is refused.

use berth_proto::v1::{self, agent_dispatch_client::AgentDispatchClient};
use berth_security::{ClientTls, JoinToken, Role, TlsMaterial};
use berth_tests::agent::AgentProcess;
use berth_tests::cluster::controller_bin;
use berth_tests::{
    berth, berth_bin, ensure_images, free_port, require_docker, task_id, wait_until,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// One `berth-controller --tls` process (killed on drop).
struct TlsController {
    data_dir: PathBuf,
    addr: String,
    log: PathBuf,
    child: Child,
}

fn spawn_controller(data_dir: &Path, log: &Path, args: &[&str]) -> Child {
    // The controller creates its data dir (mode 0700): only the parent is made here.
    if let Some(parent) = data_dir.parent() {
        std::fs::create_dir_all(parent).expect("data dir parent");
    }
    let file = std::fs::File::create(log).expect("log file");
    Command::new(controller_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file)
        .spawn()
        .expect("spawning berth-controller")
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl TlsController {
    fn start(dir: &Path) -> TlsController {
        let addr = format!("127.0.0.1:{}", free_port());
        let data_dir = dir.join("controller");
        let log = dir.join("controller.log");
        let child = spawn_controller(&data_dir, &log, &["--tls", "--listen", &addr]);
        let c = TlsController { data_dir, addr, log, child };
        wait_until("the TLS bootstrap files", WAIT, || {
            (c.ca_cert().exists() && c.admin_token().is_some() && c.join_token("agent").is_some())
                .then_some(())
        });
        c
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn ca_cert(&self) -> PathBuf {
        self.data_dir.join("tls").join("ca.pem")
    }

    fn admin_token(&self) -> Option<String> {
        read_trimmed(&self.data_dir.join("bootstrap").join("admin.token"))
    }

    fn join_token(&self, role: &str) -> Option<String> {
        read_trimmed(&self.data_dir.join("bootstrap").join(format!("{role}.join-token")))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `berth` over TLS with the admin token.
    fn cli(&self, args: &[&str]) -> Output {
        let ca = self.ca_cert();
        let token = self.admin_token().expect("admin token");
        Command::new(berth_bin())
            .args(["--endpoint", &self.url(), "--ca-cert"])
            .arg(&ca)
            .args(["--token", &token])
            .args(args)
            .output()
            .expect("running berth")
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(out.status.success(), "berth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    fn ca_tls(&self) -> ClientTls {
        let pem = std::fs::read_to_string(self.ca_cert()).expect("ca.pem");
        let config = TlsMaterial::from_pem(&pem, None).and_then(|m| m.client_config());
        ClientTls::new(config.expect("client config"))
    }
}

impl Drop for TlsController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn register_msg(instance_id: &str) -> v1::AgentMessage {
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::Register(v1::RegisterAgent {
            cluster: "default".into(),
            instance_id: instance_id.into(),
            cpu: 1024,
            memory: 1024,
            agent_version: "test".into(),
            ..Default::default()
        })),
    }
}

/// An open agent session: the sender for more messages and the controller's stream.
type Session =
    (tokio::sync::mpsc::Sender<v1::AgentMessage>, tonic::Streaming<v1::ControllerMessage>);

/// Opens `AgentDispatch/Session` over TLS with `tls` and registers as `instance_id`.
async fn open_session(
    url: &str,
    tls: &ClientTls,
    instance_id: &str,
) -> Result<Session, tonic::Status> {
    let channel = berth_security::connect_channel(url, Some(tls), |e| {
        e.connect_timeout(Duration::from_secs(5))
    })
    .await
    .map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(register_msg(instance_id)).await.expect("queue register");
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut client = AgentDispatchClient::new(channel);
    let mut inbound = client.session(stream).await?.into_inner();
    let first = inbound.message().await?.ok_or_else(|| tonic::Status::aborted("no reply"))?;
    match first.msg {
        Some(v1::controller_message::Msg::Registered(r)) if !r.instance_id.is_empty() => {
            Ok((tx, inbound))
        }
        other => Err(tonic::Status::internal(format!("unexpected first message {other:?}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_controller_bootstraps_and_binds_agents_to_their_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = TlsController::start(dir.path());
    let url = ctl.url();

    // Bootstrap files: join tokens and the own key are private.
    let agent_token_file = ctl.data_dir.join("bootstrap").join("agent.join-token");
    assert_eq!(mode(&agent_token_file), 0o600);
    assert_eq!(mode(&ctl.data_dir.join("bootstrap").join("controller.join-token")), 0o600);
    assert_eq!(mode(&ctl.data_dir.join("tls").join("key.pem")), 0o600);
    assert_eq!(mode(&ctl.data_dir), 0o700, "the data dir is private");
    let log = ctl.log();
    let agent_token = ctl.join_token("agent").expect("agent token");
    assert!(!log.contains(&agent_token), "the log must not carry join token secrets");

    // A plaintext client is told what to do.
    let out = berth(&format!("http://{}", ctl.addr), &["cluster", "list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requires TLS: use an https:// endpoint and --ca-cert"), "{stderr}");
    // So is a plaintext agent (simulated: the same session code, no Docker needed).
    let agent_log = dir.path().join("plain-agent.log");
    let log_file = std::fs::File::create(&agent_log).expect("agent log");
    let mut plain_agent = Command::new(berth_tests::agent::agent_bin())
        .args(["--simulate", "1", "--endpoint", &format!("http://{}", ctl.addr), "--data-dir"])
        .arg(dir.path().join("plain-agent"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn agent");
    wait_until("the plaintext agent is told to use TLS", WAIT, || {
        let log = std::fs::read_to_string(&agent_log).ok()?;
        log.contains("this controller requires TLS: use its https:// endpoint").then_some(())
    });
    let _ = plain_agent.kill();
    let _ = plain_agent.wait();

    // The CLI over TLS (API tokens are on in TLS mode).
    let clusters = ctl.cli_json(&["cluster", "list"]);
    assert!(clusters.to_string().contains("default"), "{clusters}");
    let no_token = Command::new(berth_bin())
        .args(["--endpoint", &url, "--ca-cert"])
        .arg(ctl.ca_cert())
        .args(["operator", "token", "list"])
        .output()
        .expect("berth");
    assert!(!no_token.status.success(), "join tokens are admin-only");

    // Join tokens: create, list (no secrets), revoke.
    let created = ctl.cli_json(&["operator", "token", "create", "--role", "agent", "--ttl", "1h"]);
    let token_text = created["token"].as_str().expect("token").to_string();
    let token_id = created["id"].as_str().expect("id").to_string();
    assert!(token_text.starts_with("BERTH-1-"), "{created}");
    assert_eq!(created["role"], "agent");
    assert!(created["expiresAt"].is_string(), "{created}");
    let listed = ctl.cli_json(&["operator", "token", "list"]);
    let tokens = listed.as_array().expect("list");
    assert_eq!(tokens.len(), 3, "two bootstrap tokens and the new one: {listed}");
    assert!(!listed.to_string().contains("BERTH-1-"), "list shows no secrets: {listed}");
    let token = JoinToken::parse(&token_text).expect("parse");

    // No client certificate: no session.
    let ca_only = ctl.ca_tls();
    let err = open_session(&url, &ca_only, "").await.expect_err("refused without a cert");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    assert!(err.message().contains("--join-token"), "{err}");

    // Joining needs a token of this CA that the store knows.
    let forged = JoinToken { ca_digest: token.ca_digest.clone(), secret: "0".repeat(32) };
    let err =
        berth_security::join::join(&url, &forged, Role::Agent, |_| {}).await.err().expect("forged");
    assert!(!err.retry && err.message.contains("unknown or was revoked"), "{err}");
    let other_ca = JoinToken { ca_digest: "ab".repeat(32), secret: token.secret.clone() };
    let err =
        berth_security::join::join(&url, &other_ca, Role::Agent, |_| {}).await.err().expect("ca");
    assert!(err.message.contains("does not match"), "{err}");
    let err =
        berth_security::join::join(&url, &token, Role::Controller, |r| r.node_id = "2".into())
            .await
            .err()
            .expect("role");
    assert!(err.message.contains("for role agent"), "{err}");

    // A valid token: a certificate whose identity the controller chose.
    let x = berth_security::join::join(&url, &token, Role::Agent, |_| {}).await.expect("join");
    let x_id = x.identity.id().to_string();
    assert_eq!(x_id.len(), 32);
    let x_tls = ClientTls::new(x.material.client_config().expect("client config"));
    // Registering as another instance with it is refused, naming both ids.
    let other = "0123456789abcdef0123456789abcdef";
    let err = open_session(&url, &x_tls, other).await.expect_err("other id");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(err.message().contains(other) && err.message().contains(&x_id), "{err}");
    // With no id, the session is the certificate's instance.
    let (_tx, _rx) = open_session(&url, &x_tls, "").await.expect("registered");
    let instances = ctl.cli_json(&["instance", "list"]);
    assert!(instances.to_string().contains(&x_id), "{instances}");

    // A revoked token no longer joins.
    let revoked = ctl.cli(&["operator", "token", "revoke", &token_id]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let err =
        berth_security::join::join(&url, &token, Role::Agent, |_| {}).await.err().expect("revoked");
    assert!(err.message.contains("unknown or was revoked"), "{err}");
    let uses = ctl.cli_json(&["operator", "token", "list"]);
    assert!(!uses.to_string().contains(&token_id), "{uses}");
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn describe(ctl: &TlsController, id: &str) -> Option<Value> {
    let out = ctl.cli(&["-o", "json", "task", "describe", id]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_joins_with_a_token_and_reports_only_for_its_own_tasks() {
    if !require_docker("an_agent_joins_with_a_token_and_reports_only_for_its_own_tasks") {
        return;
    }
    ensure_images();
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = TlsController::start(dir.path());
    let url = ctl.url();
    let token = ctl.join_token("agent").expect("agent token");

    // Without a token (and no certificate yet) the agent refuses to start.
    let mut no_token = Command::new(berth_tests::agent::agent_bin())
        .args(["--endpoint", &url, "--data-dir"])
        .arg(dir.path().join("no-token"))
        .args(["--http-listen", "127.0.0.1:0", "--metadata-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let status = wait_exit(&mut no_token, WAIT);
    assert!(!status.success());
    let mut stderr = String::new();
    use std::io::Read;
    no_token.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read");
    assert!(stderr.contains("no --join-token"), "{stderr}");

    // With the token: it joins, keeps its certificate, registers as the certificate's id.
    let agent_dir = dir.path().join("agent");
    let mut agent = AgentProcess::start(&url, &agent_dir, &["--join-token", &token]);
    let a_id = wait_until("the agent joined", WAIT, || {
        Some(agent.instance_id()).filter(|id| !id.is_empty())
    });
    assert_eq!(mode(&agent_dir.join("key.pem")), 0o600);
    let material = TlsMaterial::load_dir(&agent_dir).expect("ca.pem, cert.pem, key.pem");
    let identity = material.identity().expect("cert").expect("identity");
    assert_eq!(identity.id(), a_id);
    assert!(!agent.log().contains(&token), "the agent log must not carry its join token");
    wait_until("the agent is connected", WAIT, || {
        let v = ctl.cli_json(&["instance", "describe", &a_id]);
        (v["agentConnected"] == true).then_some(())
    });

    // It runs a task.
    let td = serde_json::json!({
        "family": "sleeper",
        "containerDefinitions": [{"name": "main", "image": "busybox:latest", "memory": 16,
            "essential": true, "stopTimeout": 1, "command": ["sleep", "600"]}],
    });
    let td_path = dir.path().join("sleeper.json");
    std::fs::write(&td_path, td.to_string()).expect("write taskdef");
    ctl.cli_json(&["taskdef", "register", &td_path.to_string_lossy()]);
    let run = ctl.cli_json(&["task", "run", "--taskdef", "sleeper"]);
    let task = task_id(&run["tasks"][0]);
    wait_until("the task RUNNING", WAIT, || {
        describe(&ctl, &task).filter(|t| t["lastStatus"] == "RUNNING")
    });

    // Another agent's certificate cannot report that task's state.
    let join = JoinToken::parse(&token).expect("token");
    let x = berth_security::join::join(&url, &join, Role::Agent, |_| {}).await.expect("join X");
    let x_id = x.identity.id().to_string();
    let x_tls = ClientTls::new(x.material.client_config().expect("config"));
    let err = open_session(&url, &x_tls, &a_id).await.expect_err("X as A");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    let (tx, _inbound) = open_session(&url, &x_tls, "").await.expect("X registered");
    let report = serde_json::json!({"taskId": task, "lastStatus": "STOPPED",
        "stopCode": "EssentialContainerExited", "stoppedReason": "forged by X"});
    tx.send(v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::TaskStatus(v1::TaskStatusReport {
            task_id: task.clone(),
            json: report.to_string(),
        })),
    })
    .await
    .expect("send report");
    wait_until("the controller refused X's report", WAIT, || {
        let log = ctl.log();
        log.lines()
            .any(|l| l.contains("task report refused") && l.contains(&task) && l.contains(&x_id))
            .then_some(())
    });
    let t = describe(&ctl, &task).expect("describe");
    assert_eq!(t["lastStatus"], "RUNNING", "{t}");
    assert!(!t.to_string().contains("forged by X"), "{t}");

    // Revoking X's identity (deregister --force): its next connection fails.
    drop(tx);
    let out = ctl.cli(&["instance", "deregister", &x_id, "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // (With TLS 1.3 the client learns of the refused certificate after its side of the
    // handshake: as a `Revoked` alert, the connection closing or a broken pipe, depending on
    // timing; the controller's log is what says why.)
    let err = open_session(&url, &x_tls, "").await.expect_err("revoked X");
    assert_ne!(err.code(), tonic::Code::Ok, "{err:?}");
    wait_until("the controller refused X at the TLS handshake", WAIT, || {
        ctl.log().contains("refused an identity at the TLS handshake (revoked").then_some(())
    });

    // A restart reuses the certificate, without the token.
    agent.kill();
    let mut again = AgentProcess::start(&url, &agent_dir, &[]);
    wait_until("the restarted agent is connected and the task still runs", WAIT, || {
        let v = ctl.cli_json(&["instance", "describe", &a_id]);
        let t = describe(&ctl, &task)?;
        (v["agentConnected"] == true && t["lastStatus"] == "RUNNING").then_some(())
    });
    assert_eq!(again.instance_id(), a_id);
    again.kill();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read")
}

#[test]
fn plaintext_off_loopback_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut refused =
        spawn_controller(&dir.path().join("a"), &dir.path().join("a.log"), &["--listen", &listen]);
    assert!(!wait_exit(&mut refused, WAIT).success());
    let log = read(&dir.path().join("a.log"));
    assert!(log.contains(&format!("--listen {listen} is not a loopback address")), "{log}");
    assert!(log.contains("--insecure"), "{log}");

    // The HTTP port too (events, metrics).
    let http = format!("0.0.0.0:{}", free_port());
    let mut refused = spawn_controller(
        &dir.path().join("h"),
        &dir.path().join("h.log"),
        &["--listen", &format!("127.0.0.1:{}", free_port()), "--http-listen", &http],
    );
    assert!(!wait_exit(&mut refused, WAIT).success());
    let log = read(&dir.path().join("h.log"));
    assert!(log.contains(&format!("--http-listen {http} is not a loopback address")), "{log}");
    assert!(log.contains("read the event stream"), "{log}");

    let mut accepted = spawn_controller(
        &dir.path().join("b"),
        &dir.path().join("b.log"),
        &["--listen", &listen, "--insecure"],
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_until("the --insecure controller answers", WAIT, || {
        berth(&endpoint, &["cluster", "list"]).status.success().then_some(())
    });
    let log = read(&dir.path().join("b.log"));
    assert!(log.contains("--insecure:") && log.contains("WARN"), "{log}");
    let _ = accepted.kill();
    let _ = accepted.wait();

    // berth dev is plaintext: the same rule.
    let out = Command::new(berth_bin())
        .args(["dev", "--data-dir"])
        .arg(dir.path().join("dev"))
        .args(["--listen", &listen])
        .output()
        .expect("berth dev");
    assert!(!out.status.success());
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("is not a loopback address"), "{text}");

    // A TLS cluster starts with one member.
    let mut many = spawn_controller(
        &dir.path().join("c"),
        &dir.path().join("c.log"),
        &[
            "--tls",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--peer-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--initial-cluster",
            "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3",
        ],
    );
    assert!(!wait_exit(&mut many, WAIT).success());
    let log = read(&dir.path().join("c.log"));
    assert!(log.contains("a TLS cluster starts with one controller"), "{log}");

    // The agent's operator API off loopback needs --insecure; a mistyped join token is refused
    // without being echoed.
    let agent = |args: &[&str]| {
        let out = Command::new(berth_tests::agent::agent_bin())
            .args(["--endpoint", "https://127.0.0.1:1", "--data-dir"])
            .arg(dir.path().join("agent"))
            .args(["--metadata-port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("berth-agent");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (ok, err) = agent(&["--http-listen", &format!("0.0.0.0:{}", free_port())]);
    assert!(
        !ok && err.contains("is not a loopback address") && err.contains("--insecure"),
        "{err}"
    );
    let (ok, err) = agent(&["--http-listen", "127.0.0.1:0", "--join-token", "BERTH-1-xyzSECRET"]);
    assert!(!ok && err.contains("--join-token"), "{err}");
    assert!(!err.contains("xyzSECRET"), "the token was echoed: {err}");

    // A TLS controller's data dir restarted without --tls: refused (it would serve plaintext
    // with API tokens off).
    let tls_dir = dir.path().join("d").join("tls");
    std::fs::create_dir_all(&tls_dir).expect("mkdir");
    std::fs::write(tls_dir.join("cert.pem"), "kept by an earlier --tls start").expect("write");
    let mut restarted = spawn_controller(
        &dir.path().join("d"),
        &dir.path().join("d.log"),
        &["--listen", &format!("127.0.0.1:{}", free_port())],
    );
    assert!(!wait_exit(&mut restarted, WAIT).success());
    let log = read(&dir.path().join("d.log"));
    assert!(log.contains("this data dir belongs to a TLS cluster. Start with --tls"), "{log}");
}
