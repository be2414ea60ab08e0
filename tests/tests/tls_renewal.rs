//! Certificate renewal (issue 9) with real processes: a `berth-controller --tls --cert-ttl 60s`
//! (the shortest lifetime it accepts) and a real `berth-agent` joined with the bootstrap agent
//! join token. Within about a minute and a half:
//! * the agent's `cert.pem` is replaced by one with a later expiry (renewed over mTLS with the
//!   old one, at 2/3 of its life: ~40 s after issue) and the controller's own
//!   `<data-dir>/tls/cert.pem` is renewed too;
//! * the agent stays connected through it, its session never fails, and the log says so;
//! * once the agent's *first* certificate has lapsed, the agent restarted without its token
//!   connects, as the same instance, with the renewed files;
//! * a second agent, stopped right after joining so that its certificate lapses unrenewed,
//!   refuses to start without a token (naming the file, the expiry and the fix) and with the
//!   token joins again as a new instance.
//!
//! Certificates are checked by the wall clock here (real processes); the renewal loop's own
//! clock is injected and tested in `agent/src/renew_tests.rs` and `security/src/renew.rs`.

use berth_security::TlsMaterial;
use berth_tests::agent::{AgentProcess, agent_bin};
use berth_tests::cluster::controller_bin;
use berth_tests::tls::TlsNode;
use berth_tests::{berth_bin, require_docker, wait_until};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `--cert-ttl`: the minimum (controller/src/tls/mod.rs), so renewals come ~40 s after issue.
const CERT_TTL: &str = "60s";
/// Longest wait for any one condition (a renewal is due 40 s after issue).
const WAIT: Duration = Duration::from_secs(90);

/// One `berth-controller --tls --cert-ttl 60s` (killed on drop), once its bootstrap files exist.
fn start_controller(dir: &Path) -> TlsNode {
    let mut ctl = TlsNode::new(dir, 1);
    ctl.start(&["--cert-ttl", CERT_TTL]);
    wait_until("the TLS bootstrap files", WAIT, || {
        (ctl.tls_file("ca.pem").exists()
            && ctl.tls_file("cert.pem").exists()
            && ctl.bootstrap("admin.token").is_some()
            && ctl.bootstrap("agent.join-token").is_some())
        .then_some(())
    });
    ctl
}

/// `(not_before, not_after)` of the leaf in a `cert.pem`, if it is readable.
fn validity(cert_pem: &Path) -> Option<(i64, i64)> {
    let text = std::fs::read_to_string(cert_pem).ok()?;
    let material = TlsMaterial::from_pem(&text, None).ok()?;
    berth_security::cert_validity(material.roots.first()?.as_ref()).ok()
}

fn wall() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Lines of an agent log that mean a session or a renewal went wrong.
fn trouble(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("session failed")
                || l.contains("controller closed the session")
                || l.contains("certificate renewal failed")
                || l.contains("ERROR")
        })
        .collect()
}

/// How many sessions registered in an agent log.
fn registrations(log: &str) -> usize {
    log.lines().filter(|l| l.contains(": registered ")).count()
}

#[test]
fn certificates_renew_in_place_and_an_agent_whose_certificate_lapsed_must_rejoin() {
    if !require_docker(
        "certificates_renew_in_place_and_an_agent_whose_certificate_lapsed_must_rejoin",
    ) {
        return;
    }
    // Build the binaries before any certificate exists: its 60 s start with the controller.
    let _ = (controller_bin(), agent_bin(), berth_bin());
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = start_controller(dir.path());
    let controller_first = validity(&ctl.tls_file("cert.pem")).expect("controller cert.pem");
    let token = ctl.bootstrap("agent.join-token").expect("agent join token");

    let agent_dir = dir.path().join("agent");
    let mut agent = AgentProcess::start(&ctl.url(), &agent_dir, &["--join-token", &token]);
    let id = wait_until("the agent joined", WAIT, || {
        Some(agent.instance_id()).filter(|id| !id.is_empty())
    });
    let agent_cert = agent_dir.join("cert.pem");
    let agent_first = validity(&agent_cert).expect("agent cert.pem");
    assert!(agent_first.1 - wall() <= 60, "a --cert-ttl 60s certificate: {agent_first:?}");
    wait_until("the agent is connected", WAIT, || ctl.agent_connected(&id).then_some(()));
    // A second agent joins and stops at once: its certificate lapses unrenewed.
    let lapsed_dir = dir.path().join("lapsed");
    let mut lapsed = AgentProcess::start(&ctl.url(), &lapsed_dir, &["--join-token", &token]);
    let lapsed_id = wait_until("the second agent joined", WAIT, || {
        Some(lapsed.instance_id()).filter(|id| !id.is_empty())
    });
    lapsed.kill();
    let lapsed_first = validity(&lapsed_dir.join("cert.pem")).expect("second agent cert.pem");

    // Both certificates are replaced by later ones before the first ones lapse.
    let agent_second = wait_until("the agent's cert.pem renewed", WAIT, || {
        validity(&agent_cert).filter(|v| v.1 > agent_first.1)
    });
    assert!(wall() < agent_first.1 + 5, "renewed before (or right at) the old expiry");
    let controller_second = wait_until("the controller's cert.pem renewed", WAIT, || {
        validity(&ctl.tls_file("cert.pem")).filter(|v| v.1 > controller_first.1)
    });
    assert!(controller_second.1 > controller_first.1);
    let log = agent.log();
    assert!(log.contains("agent certificate renewed"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "the log must not carry key material");

    // Past the agent's first certificate's expiry the agent is still connected, and its
    // session never ended.
    wait_until("the first agent certificates lapsed", WAIT, || {
        (wall() > agent_first.1.max(lapsed_first.1)).then_some(())
    });
    wait_until("the agent is still connected", WAIT, || ctl.agent_connected(&id).then_some(()));
    let log = agent.log();
    assert!(trouble(&log).is_empty(), "{:?}\n{log}", trouble(&log));
    assert_eq!(registrations(&log), 1, "one session throughout:\n{log}");

    // A restart without the token dials with the renewed files (with the first, lapsed ones
    // it would refuse to start).
    let before = log.len();
    agent.kill();
    let mut agent = AgentProcess::start(&ctl.url(), &agent_dir, &[]);
    wait_until("the restarted agent registered", WAIT, || {
        let log = agent.log();
        (registrations(&log[before.min(log.len())..]) == 1).then_some(())
    });
    wait_until("the restarted agent is connected", WAIT, || ctl.agent_connected(&id).then_some(()));
    assert_eq!(agent.instance_id(), id);
    let restarted = agent.log()[before..].to_string();
    assert!(!restarted.contains("expired"), "{restarted}");
    assert!(trouble(&restarted).is_empty(), "{restarted}");
    assert!(validity(&agent_cert).is_some_and(|v| v.1 >= agent_second.1));
    assert!(!ctl.log().contains("refused an identity at the TLS handshake"), "{}", ctl.log());
    agent.kill();

    // The stopped agent's certificate lapsed: without a token it refuses to start, naming the
    // file, the expiry and the fix…
    let mut refused = Command::new(agent_bin())
        .args(["--endpoint", &ctl.url(), "--data-dir"])
        .arg(&lapsed_dir)
        .args(["--http-listen", "127.0.0.1:0", "--metadata-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let status = wait_until("the agent with a lapsed certificate exits", WAIT, || {
        refused.try_wait().expect("try_wait")
    });
    assert!(!status.success());
    let mut stderr = String::new();
    use std::io::Read;
    refused.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    let cert = lapsed_dir.join("cert.pem");
    for part in
        [&cert.display().to_string(), "expired at", "berth operator token create --role agent"]
    {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    // …and with one it joins again, as a new instance.
    let mut rejoined = AgentProcess::start(&ctl.url(), &lapsed_dir, &["--join-token", &token]);
    let new_id = wait_until("the lapsed agent joined again", WAIT, || {
        Some(rejoined.instance_id()).filter(|id| !id.is_empty() && *id != lapsed_id)
    });
    wait_until("the rejoined agent is connected", WAIT, || {
        ctl.agent_connected(&new_id).then_some(())
    });
    assert!(rejoined.log().contains("joining again with --join-token"), "{}", rejoined.log());
    assert!(validity(&cert).is_some_and(|v| v.1 > wall()));
    rejoined.kill();

    // Renewals came when due, not in a loop (a 60 s certificate is due 40 s after issue; a
    // certificate due on arrival would renew again at once).
    let own = ctl.log().matches("new connections use it").count();
    assert!((1..=3).contains(&own), "{own} own renewals:\n{}", ctl.log());
    let agent_renewals = agent.log().matches("agent certificate renewed").count();
    assert!((1..=3).contains(&agent_renewals), "{agent_renewals} agent renewals");
}
