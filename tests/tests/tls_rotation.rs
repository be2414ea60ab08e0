//! CA rotation (issue 9) with real processes: two `berth-controller --tls --cert-ttl 60s` (the
//! second joined with the controller join token, so every write crosses peer mTLS) and real
//! `berth-agent`s. `berth operator ca rotate`, then:
//! * `ca describe` lists two roots (new active, old retiring) and a second rotation is refused
//!   during the transition;
//! * both controllers serve a certificate from the new root (a CLI trusting *only* the new root
//!   gets through) while a CLI with *only* the old `ca.pem` still works (cross certificate);
//!   writes through the joined controller still commit (peer mTLS after the swap);
//! * the agent joined before the rotation stays connected — at most one new session (counted
//!   as "agent registered" lines in the controllers' logs) — and renews onto the new root
//!   (its `ca.pem` then holds both roots, new first);
//! * a join token from before the rotation is refused by the joining node's CA check; one made
//!   after joins a new agent, and the re-pinned bootstrap controller token a third controller.
//!
//! Certificates are checked against the wall clock (real processes); retirement after
//! `retire_at` is covered by the store and controller unit tests (`store/security.rs`,
//! `tls/rotation.rs`), as it comes 6 minutes after the rotation here.

use berth_security::{JoinToken, Role};
use berth_tests::agent::AgentProcess;
use berth_tests::require_docker;
use berth_tests::tls::{TlsNode as Node, cli_json as cli, read_trimmed};
use std::path::Path;
use std::time::Duration;

/// `--cert-ttl`: the minimum, so the agent renews ~40 s after it joined.
const CERT_TTL: &str = "60s";
/// Longest wait for one condition.
const WAIT: Duration = Duration::from_secs(90);

/// `berth_tests::wait_until`, logging how long each step took (shown on failure).
fn wait_until<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    let v = berth_tests::wait_until(what, timeout, f);
    eprintln!("[{:>5.1}s] {what}", start.elapsed().as_secs_f64());
    v
}

/// How many sessions `instance` started, over every controller's log.
fn registrations(nodes: &[Node], instance: &str) -> usize {
    nodes
        .iter()
        .map(|n| {
            n.log()
                .lines()
                .filter(|l| l.contains("agent registered") && l.contains(instance))
                .count()
        })
        .sum()
}

/// SHA-256 digests of the certificates in a PEM file, in order.
fn digests(path: &Path) -> Vec<String> {
    let pem = std::fs::read_to_string(path).unwrap_or_default();
    berth_security::pem::certs_from_pem(&pem)
        .map(|certs| certs.iter().map(|c| berth_security::ca_digest(c)).collect())
        .unwrap_or_default()
}

fn connected(url: &str, ca: &Path, admin: &str, id: &str) -> bool {
    cli(url, ca, admin, &["instance", "describe", id]).is_ok_and(|v| v["agentConnected"] == true)
}

#[test]
fn a_ca_rotation_keeps_agents_and_old_clients_connected() {
    if !require_docker("a_ca_rotation_keeps_agents_and_old_clients_connected") {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = (1..=2).map(|id| Node::new(root.path(), id)).collect();

    // A TLS cluster of two: the first creates the CA, the second joins with a token.
    nodes[0].start(&["--cert-ttl", CERT_TTL]);
    let data1 = nodes[0].data();
    let (admin, controller_token) = wait_until("the bootstrap files", WAIT, || {
        Some((
            read_trimmed(&data1.join("bootstrap/admin.token"))?,
            read_trimmed(&data1.join("bootstrap/controller.join-token"))?,
        ))
    });
    let agent_token = read_trimmed(&data1.join("bootstrap/agent.join-token")).expect("token");
    let old_ca = root.path().join("old-ca.pem");
    std::fs::copy(data1.join("tls/ca.pem"), &old_ca).expect("keep the old ca.pem");
    let first = nodes[0].url();
    wait_until("the first controller answers", WAIT, || {
        cli(&first, &old_ca, &admin, &["operator", "members", "list"]).ok()
    });
    nodes[1].start(&["--cert-ttl", CERT_TTL, "--join", &first, "--join-token", &controller_token]);
    let second = nodes[1].url();
    wait_until("controller 2 is a member and serves", WAIT, || {
        cli(&second, &old_ca, &admin, &["operator", "status"]).ok()
    });

    // An agent joined before the rotation.
    let agent_dir = root.path().join("agent-a");
    let _a = AgentProcess::start(&first, &agent_dir, &["--join-token", &agent_token]);
    let a_id = wait_until("agent A joined", WAIT, || read_trimmed(&agent_dir.join("instance-id")));
    wait_until("agent A connected", WAIT, || {
        connected(&first, &old_ca, &admin, &a_id).then_some(())
    });
    let sessions_before = registrations(&nodes, &a_id);
    assert!(sessions_before >= 1, "agent A registered");
    let old_digest = digests(&old_ca).first().cloned().expect("old root");

    // Rotate.
    // Through the joined controller (a follower unless leadership moved: then forwarded).
    let rotated = cli(&second, &old_ca, &admin, &["operator", "ca", "rotate"]).expect("rotate");
    let new_digest = rotated["digest"].as_str().expect("digest").to_string();
    assert_eq!(rotated["previousDigest"], old_digest.as_str(), "{rotated}");
    assert_ne!(new_digest, old_digest);
    assert!(rotated["retireAt"].is_string(), "{rotated}");
    let bundle = root.path().join("rotated-bundle.pem");
    std::fs::write(&bundle, rotated["caPem"].as_str().expect("caPem")).expect("write");
    assert_eq!(digests(&bundle), vec![new_digest.clone(), old_digest.clone()], "{rotated}");
    let described =
        cli(&second, &old_ca, &admin, &["operator", "ca", "describe"]).expect("describe");
    let roots = described["roots"].as_array().expect("roots").clone();
    assert_eq!(roots.len(), 2, "{described}");
    assert_eq!(
        (roots[0]["digest"].as_str(), roots[0]["state"].as_str()),
        (Some(new_digest.as_str()), Some("active"))
    );
    assert_eq!(
        (roots[1]["digest"].as_str(), roots[1]["state"].as_str()),
        (Some(old_digest.as_str()), Some("retiring"))
    );
    let again = cli(&first, &old_ca, &admin, &["operator", "ca", "rotate"]).expect_err("twice");
    assert!(again.contains("transition"), "{again}");

    // Both controllers move to the new root: a CLI trusting only it gets through.
    let new_only = root.path().join("new-ca.pem");
    std::fs::write(&new_only, roots[0]["certPem"].as_str().expect("pem")).expect("write");
    for n in &nodes {
        let url = n.url();
        wait_until(&format!("controller {} serves a new-root certificate", n.id), WAIT, || {
            cli(&url, &new_only, &admin, &["operator", "status"]).ok()
        });
        // Its files: the bundle (new root first) and leaf + cross certificate.
        assert_eq!(
            digests(&n.data().join("tls/ca.pem")),
            vec![new_digest.clone(), old_digest.clone()]
        );
        assert_eq!(digests(&n.data().join("tls/cert.pem")).len(), 2, "leaf + cross certificate");
        // A CLI with only the old ca.pem still works (through the cross certificate).
        cli(&url, &old_ca, &admin, &["cluster", "list"]).expect("old ca.pem after the rotation");
    }
    // Writes through the joined controller commit: peer mTLS works with the new chains.
    cli(&second, &new_only, &admin, &["cluster", "create", "after-rotation"]).expect("write via 2");

    // A token from before the rotation no longer joins; one made after it does.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stale = JoinToken::parse(&agent_token).expect("token");
    let err = rt
        .block_on(berth_security::join::join(&first, &stale, Role::Agent, |_| {}))
        .err()
        .expect("a pre-rotation token");
    assert!(err.message.contains("does not match"), "{err}");
    let repinned = wait_until("the bootstrap agent token re-pinned", WAIT, || {
        read_trimmed(&data1.join("bootstrap/agent.join-token")).filter(|t| t.contains(&new_digest))
    });
    assert!(repinned.ends_with(&stale.secret), "same secret, new digest");
    let made = cli(&first, &old_ca, &admin, &["operator", "token", "create", "--role", "agent"])
        .expect("token create");
    let fresh = made["token"].as_str().expect("token").to_string();
    assert!(fresh.contains(&new_digest), "{made}");
    let b_dir = root.path().join("agent-b");
    let _b = AgentProcess::start(&second, &b_dir, &["--join-token", &fresh]);
    let b_id = wait_until("agent B joined after the rotation", WAIT, || {
        read_trimmed(&b_dir.join("instance-id"))
    });
    wait_until("agent B connected", WAIT, || {
        connected(&first, &new_only, &admin, &b_id).then_some(())
    });
    assert_eq!(digests(&b_dir.join("ca.pem")), vec![new_digest.clone(), old_digest.clone()]);

    // A controller joins after the rotation with the re-pinned bootstrap controller token,
    // and serves (and commits writes) with the new root.
    let controller_token = wait_until("the bootstrap controller token re-pinned", WAIT, || {
        read_trimmed(&data1.join("bootstrap/controller.join-token"))
            .filter(|t| t.contains(&new_digest))
    });
    nodes.push(Node::new(root.path(), 3));
    nodes[2].start(&["--cert-ttl", CERT_TTL, "--join", &first, "--join-token", &controller_token]);
    let third = nodes[2].url();
    wait_until("controller 3 serves a new-root certificate", WAIT, || {
        cli(&third, &new_only, &admin, &["operator", "status"]).ok()
    });
    cli(&third, &old_ca, &admin, &["cluster", "create", "via-3"]).expect("write via 3");

    // Agent A renews onto the new root (~40 s after it joined) and stays connected.
    wait_until("agent A renewed onto the new root", WAIT, || {
        (digests(&agent_dir.join("ca.pem")).first() == Some(&new_digest)).then_some(())
    });
    assert!(
        nodes[0]
            .log()
            .lines()
            .chain(nodes[1].log().lines().collect::<Vec<_>>().into_iter())
            .any(|l| l.contains("certificate renewed") && l.contains(&a_id)),
        "a controller renewed agent A's certificate"
    );
    assert!(connected(&first, &new_only, &admin, &a_id), "agent A connected after renewal");
    let sessions_after = registrations(&nodes, &a_id);
    eprintln!(
        "agent A sessions: {sessions_before} before the rotation, {sessions_after} at the end"
    );
    assert!(
        sessions_after <= sessions_before + 1,
        "agent A reconnected more than once: {sessions_before} → {sessions_after} sessions"
    );
    let logs: String = nodes.iter().map(|n| n.log()).collect();
    assert!(!logs.contains("panicked"), "{logs}");
}
