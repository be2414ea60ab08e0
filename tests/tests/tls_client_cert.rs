//! Client certificates and `--require-client-cert` (issue 9: "mTLS everywhere off loopback",
//! CLI↔controller), with a real `berth-controller --tls --require-client-cert`, the real `berth`
//! CLI and a real (simulated-runtime) `berth-agent`, over sockets:
//! * the first controller writes the bootstrap admin's client certificate
//!   (`<data-dir>/bootstrap/admin-client/{cert,key,ca}.pem`, key 0600);
//! * the CLI with the admin token but no client certificate is refused, told about
//!   `--client-cert` and `berth operator cert create`; with the bootstrap certificate it works;
//! * `berth operator cert create` makes a client certificate (key local, 0600; never overwrites);
//!   it works with a token, and without a token it is refused: the certificate is an extra
//!   factor, roles still come from tokens;
//! * an agent joins with a join token (GetCaBundle + JoinCluster without a certificate) and
//!   connects; its certificate used as a CLI certificate still needs a token and cannot act
//!   beyond that token's role;
//! * a client certificate renews itself over RenewCertificate (same identity, its own
//!   lifetime), and RenewCertificate without a certificate is refused.

use berth_proto::v1;
use berth_security::{ClientTls, Identity, NodeKey, TlsMaterial};
use berth_tests::tls::{ClientCert, TlsNode, cli_json_with};
use berth_tests::{berth_bin, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Longest wait for any one condition.
const WAIT: Duration = Duration::from_secs(60);

/// A `berth-agent --simulate 1` process, killed on drop.
struct SimAgent(Child);

impl Drop for SimAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
}

fn certs(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("cert.pem"), dir.join("key.pem"))
}

#[test]
fn require_client_cert_refuses_certless_clients_and_keeps_tokens_and_joins_working() {
    // Build the binaries first, so that no wait below includes a build.
    let _ = berth_bin();
    let agent_bin = berth_tests::agent::agent_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ctl = TlsNode::new(dir.path(), 1);
    ctl.start(&["--require-client-cert"]);
    let boot = ctl.data().join("bootstrap").join("admin-client");
    wait_until("the TLS bootstrap files", WAIT, || {
        (ctl.tls_file("ca.pem").exists()
            && ctl.bootstrap("admin.token").is_some()
            && ctl.bootstrap("agent.join-token").is_some()
            && boot.join("key.pem").exists())
        .then_some(())
    });
    let (url, ca) = (ctl.url(), ctl.tls_file("ca.pem"));
    let admin = ctl.bootstrap("admin.token").expect("admin token");
    assert_eq!(mode(&boot.join("key.pem")), 0o600, "the bootstrap client key is private");
    assert_eq!(mode(&boot), 0o700);
    let boot_id = TlsMaterial::load_dir(&boot).expect("material").identity().expect("cert");
    assert_eq!(boot_id.expect("identity").uri(), "berth://client/bootstrap-admin");
    let (boot_cert, boot_key) = certs(&boot);
    let bootstrap = ClientCert { cert: &boot_cert, key: &boot_key };

    // A token alone is not enough any more, and the refusal says what to do.
    let err = cli_json_with(&url, &ca, None, Some(&admin), &["cluster", "list"])
        .expect_err("no client certificate");
    assert!(err.contains("--client-cert"), "{err}");
    assert!(err.contains("berth operator cert create"), "{err}");
    // Half a pair is a usage error before anything is dialled.
    let half = Command::new(berth_bin())
        .args(["--endpoint", &url, "--ca-cert"])
        .arg(&ca)
        .arg("--client-cert")
        .arg(&boot_cert)
        .args(["--token", &admin, "cluster", "list"])
        .env_remove("BERTH_CLIENT_KEY")
        .output()
        .expect("berth");
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(!half.status.success() && stderr.contains("give both or neither"), "{stderr}");

    // The bootstrap admin's certificate + the admin token work.
    let clusters = cli_json_with(&url, &ca, Some(bootstrap), Some(&admin), &["cluster", "list"])
        .expect("with the bootstrap client certificate");
    assert!(clusters.to_string().contains("default"), "{clusters}");

    // An admin issues a client certificate; only the CSR leaves the CLI.
    let ops_dir = dir.path().join("ops");
    let args = ["operator", "cert", "create", "ops", "--ttl", "2h", "--out"];
    let ops_out = ops_dir.to_str().expect("utf-8 path");
    let made =
        cli_json_with(&url, &ca, Some(bootstrap), Some(&admin), &[&args[..], &[ops_out]].concat())
            .expect("cert create");
    assert_eq!(made["identity"], "berth://client/ops", "{made}");
    assert_eq!(mode(&ops_dir.join("key.pem")), 0o600);
    assert!(ops_dir.join("ca.pem").exists() && ops_dir.join("cert.pem").exists());
    let again =
        cli_json_with(&url, &ca, Some(bootstrap), Some(&admin), &[&args[..], &[ops_out]].concat())
            .expect_err("the files exist");
    assert!(again.contains("exists"), "{again}");
    // Bad input is refused by the controller, naming the field.
    let bad = cli_json_with(
        &url,
        &ca,
        Some(bootstrap),
        Some(&admin),
        &[
            "operator",
            "cert",
            "create",
            "x",
            "--ttl",
            "30s",
            "--out",
            dir.path().join("x").to_str().expect("p"),
        ],
    )
    .expect_err("ttl too short");
    assert!(bad.contains("InvalidParameterException: ttlSecs"), "{bad}");

    let (ops_cert, ops_key) = certs(&ops_dir);
    let ops = ClientCert { cert: &ops_cert, key: &ops_key };
    let ops_ca = ops_dir.join("ca.pem");
    let who = cli_json_with(&url, &ops_ca, Some(ops), Some(&admin), &["operator", "acl", "whoami"])
        .expect("the new certificate with the admin token");
    assert_eq!(who["role"], "admin", "{who}");
    // The certificate grants nothing by itself: no token, no call.
    let err = cli_json_with(&url, &ops_ca, Some(ops), None, &["cluster", "list"])
        .expect_err("certificate without a token");
    assert!(!err.contains("--client-cert"), "refused for the token, not the certificate: {err}");
    // Issuing is admin-only.
    let reader = cli_json_with(
        &url,
        &ca,
        Some(ops),
        Some(&admin),
        &["operator", "acl", "token", "create", "--role", "read-only", "--description", "t"],
    )
    .expect("read-only token");
    let read_only = reader["secret"].as_str().expect("secret").to_string();
    let err = cli_json_with(
        &url,
        &ca,
        Some(ops),
        Some(&read_only),
        &[
            "operator",
            "cert",
            "create",
            "evil",
            "--out",
            dir.path().join("evil").to_str().expect("p"),
        ],
    )
    .expect_err("read-only cannot issue");
    assert!(err.contains("AccessDeniedException") || err.contains("lacks permission"), "{err}");

    // An agent joins (GetCaBundle + JoinCluster carry no certificate) and connects.
    let join = ctl.bootstrap("agent.join-token").expect("join token");
    let agent_dir = dir.path().join("agent");
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("agent log");
    let _agent = SimAgent(
        Command::new(agent_bin)
            .args(["--simulate", "1", "--endpoint", &url, "--data-dir"])
            .arg(&agent_dir)
            .env("BERTH_JOIN_TOKEN", &join)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .spawn()
            .expect("spawn berth-agent"),
    );
    let node = berth_agent::simulate::node_dir(&agent_dir, 0);
    let instance = wait_until("the agent's certificate", WAIT, || {
        TlsMaterial::load_dir(&node).ok()?.identity()?.ok()
    });
    assert_eq!(instance.role(), berth_security::Role::Agent);
    wait_until("the joined agent to connect", WAIT, || {
        let v = cli_json_with(
            &url,
            &ca,
            Some(ops),
            Some(&admin),
            &["instance", "describe", instance.id()],
        )
        .ok()?;
        (v["agentConnected"] == true).then_some(())
    });

    // The agent's certificate as a CLI certificate: still needs a token, and the token's role
    // is all it gets.
    let (agent_cert, agent_key) = certs(&node);
    let as_cli = ClientCert { cert: &agent_cert, key: &agent_key };
    assert!(cli_json_with(&url, &ca, Some(as_cli), None, &["cluster", "list"]).is_err());
    let listed = cli_json_with(&url, &ca, Some(as_cli), Some(&read_only), &["cluster", "list"])
        .expect("a read-only call with a read-only token");
    assert!(listed.to_string().contains("default"), "{listed}");
    let err =
        cli_json_with(&url, &ca, Some(as_cli), Some(&read_only), &["operator", "token", "list"])
            .expect_err("beyond the token's role");
    assert!(err.contains("AccessDeniedException") || err.contains("lacks permission"), "{err}");

    // A client certificate renews itself (RenewCertificate): same identity, its own 2 h
    // lifetime (not the node --cert-ttl of 24 h). Without a certificate, RenewCertificate is
    // refused by the requirement.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ca_pem = std::fs::read_to_string(&ca).expect("ca");
    let with = |cert: &Path, key: &Path| -> ClientTls {
        let cert = std::fs::read_to_string(cert).expect("cert");
        let key = std::fs::read_to_string(key).expect("key");
        let material = TlsMaterial::from_pem(&ca_pem, Some((&cert, &key))).expect("material");
        ClientTls::new(material.client_config().expect("config"))
    };
    let renew = |tls: ClientTls| {
        let url = url.clone();
        rt.block_on(async move {
            let channel = berth_security::connect_channel(&url, Some(&tls), |e| {
                e.timeout(Duration::from_secs(10))
            })
            .await
            .expect("connect");
            let csr = NodeKey::generate().expect("key").csr_pem().expect("csr");
            v1::berth_security_client::BerthSecurityClient::new(channel)
                .renew_certificate(v1::RenewCertificateRequest { csr_pem: csr })
                .await
                .map(|r| r.into_inner())
        })
    };
    let renewed = renew(with(&ops_cert, &ops_key)).expect("renewed");
    let leaf = TlsMaterial::from_pem(&renewed.cert_pem, None).expect("pem").roots[0].clone();
    assert_eq!(Identity::from_der(&leaf).expect("identity"), Identity::client("ops").expect("id"));
    let (not_before, not_after) = berth_security::cert_validity(&leaf).expect("validity");
    let lifetime = not_after - not_before - berth_security::ca::BACKDATE.as_secs() as i64;
    assert!((7190..=7210).contains(&lifetime), "kept its 2 h lifetime: {lifetime}");
    let nobody = ClientTls::new(
        TlsMaterial::from_pem(&ca_pem, None).expect("trust").client_config().expect("config"),
    );
    let err = renew(nobody).expect_err("no certificate");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("--client-cert"), "{}", err.message());

    // A CA rotation swaps the listener's TLS config; the requirement stays. The old-root
    // client certificate works through the transition, a new one comes from the new root.
    let rotated = cli_json_with(&url, &ca, Some(ops), Some(&admin), &["operator", "ca", "rotate"])
        .expect("rotate");
    let new_digest = rotated["digest"].as_str().expect("digest").to_string();
    wait_until("the controller serves the rotated material", WAIT, || {
        let pem = std::fs::read_to_string(&ca).ok()?;
        let roots = TlsMaterial::from_pem(&pem, None).ok()?.roots;
        (roots.len() == 2 && berth_security::ca_digest(&roots[0]) == new_digest).then_some(())
    });
    let err = cli_json_with(&url, &ca, None, Some(&admin), &["cluster", "list"])
        .expect_err("still required after the rotation");
    assert!(err.contains("--client-cert"), "{err}");
    cli_json_with(&url, &ca, Some(ops), Some(&admin), &["cluster", "list"])
        .expect("the old-root client certificate during the transition");
    let after_dir = dir.path().join("after");
    let after = cli_json_with(
        &url,
        &ca,
        Some(ops),
        Some(&admin),
        &["operator", "cert", "create", "after", "--out", after_dir.to_str().expect("p")],
    )
    .expect("cert create after the rotation");
    assert_eq!(after["identity"], "berth://client/after", "{after}");
    let (after_cert, after_key) = certs(&after_dir);
    let new = ClientCert { cert: &after_cert, key: &after_key };
    cli_json_with(&url, &after_dir.join("ca.pem"), Some(new), Some(&admin), &["cluster", "list"])
        .expect("the new-root client certificate");
}

/// A controller joins a cluster whose controllers require client certificates (its
/// GetCaBundle + JoinCluster carry none), then serves the CLI with the bootstrap client
/// certificate; the peer (Raft) listener refuses a client certificate.
#[test]
fn a_controller_joins_under_require_client_cert_and_the_peer_listener_refuses_client_certs() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut first = TlsNode::new(root.path(), 1);
    first.start(&["--require-client-cert"]);
    let boot = first.data().join("bootstrap").join("admin-client");
    let (admin, join) = wait_until("the first controller's bootstrap files", WAIT, || {
        boot.join("key.pem").exists().then_some(())?;
        Some((first.bootstrap("admin.token")?, first.bootstrap("controller.join-token")?))
    });
    let ca = first.tls_file("ca.pem");
    let (cert, key) = certs(&boot);
    let client = ClientCert { cert: &cert, key: &key };
    let mut second = TlsNode::new(root.path(), 2);
    second.start(&["--require-client-cert", "--join", &first.url(), "--join-token", &join]);
    wait_until("the joiner serves the CLI", WAIT, || {
        let members = cli_json_with(
            &second.url(),
            &ca,
            Some(client),
            Some(&admin),
            &["operator", "members", "list"],
        )
        .ok()?;
        (members.as_array()?.len() == 2).then_some(())
    });
    assert!(
        !second.data().join("bootstrap/admin-client").exists(),
        "only the controller that made the CA writes the bootstrap client certificate"
    );
    let err = cli_json_with(&second.url(), &ca, None, Some(&admin), &["cluster", "list"])
        .expect_err("the joiner requires client certificates too");
    assert!(err.contains("--client-cert"), "{err}");

    // The peer listener admits controllers only: the client certificate is refused, the first
    // controller's own certificate (the control) is not.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ca_pem = std::fs::read_to_string(&ca).expect("ca");
    let peer_call = |cert: &Path, key: &Path| {
        let cert = std::fs::read_to_string(cert).expect("cert");
        let key = std::fs::read_to_string(key).expect("key");
        let material = TlsMaterial::from_pem(&ca_pem, Some((&cert, &key))).expect("material");
        let tls = ClientTls::new(material.client_config().expect("config"));
        let peer_url = format!("https://{}", first.peer);
        rt.block_on(async move {
            let channel = berth_security::connect_channel(&peer_url, Some(&tls), |e| {
                e.timeout(Duration::from_secs(5))
            })
            .await
            .map_err(|e| e.to_string())?;
            let req = v1::ReadEventsRequest { from_index: 0, max: 1 };
            v1::raft_peer_client::RaftPeerClient::new(channel)
                .read_events(req)
                .await
                .map(|_| ())
                .map_err(|s| s.to_string())
        })
    };
    let own = (first.tls_file("cert.pem"), first.tls_file("key.pem"));
    peer_call(&own.0, &own.1).expect("a controller certificate speaks RaftPeer");
    assert!(peer_call(&cert, &key).is_err(), "a client certificate spoke RaftPeer");
}
