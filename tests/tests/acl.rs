//! API tokens with roles end to end (issue 9): a real `berth-controller --acl` process, the real
//! `berth` CLI with `--token`, real gRPC and the real HTTP port.
//!
//! * the leader writes the bootstrap admin token to `<data-dir>/bootstrap/admin.token` (0600);
//! * no token → Unauthenticated; read-only lists and describes but cannot scale a service
//!   (PermissionDenied naming `operator` and the method); operator scales but cannot make
//!   tokens; admin can; a token scoped to one cluster cannot touch another and lists only its
//!   own; a revoked token and an expired one stop working;
//! * `/v1/events` needs a token (401 / 200), `/healthz` and `/metrics` stay open;
//! * no secret appears anywhere in the data dir (sled store, Raft log, snapshots) outside the
//!   bootstrap file, while their SHA-256 hashes do.

use berth_tests::cluster::ControllerCluster;
use berth_tests::{berth_bin, free_port, wait_until, workspace_root};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `berth --endpoint EP [--token T] ARGS…`.
fn berth(endpoint: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(berth_bin());
    cmd.args(["--endpoint", endpoint]).env_remove("BERTH_TOKEN").env_remove("BERTH_CLUSTER");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    cmd.args(args).output().expect("running berth")
}

/// The command succeeds; its stdout as JSON (`-o json` is added).
fn ok_json(endpoint: &str, token: &str, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let out = berth(endpoint, Some(token), &all);
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The command fails; its stderr.
fn fails(endpoint: &str, token: Option<&str>, args: &[&str]) -> String {
    let out = berth(endpoint, token, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "berth {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// `GET path` (HTTP/1.0) with an optional bearer token: status and body.
fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

fn create_token(endpoint: &str, admin: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["operator", "acl", "token", "create"];
    all.extend_from_slice(args);
    let v = ok_json(endpoint, admin, &all);
    let accessor = v["accessor"].as_str().expect("accessor").to_string();
    let secret = v["secret"].as_str().expect("secret").to_string();
    assert_eq!(secret.len(), 64, "{v}");
    (accessor, secret)
}

/// Every file under `dir` (recursively) except those under `skip`.
fn files(dir: &Path, skip: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.starts_with(skip) {
            continue;
        }
        if p.is_dir() {
            files(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_with_roles_end_to_end() {
    let http_port = free_port();
    let http = format!("127.0.0.1:{http_port}");
    // A low snapshot threshold, so the state is also written whole as a snapshot.
    let cluster = ControllerCluster::start_with_args(
        1,
        &["--acl", "--http-listen", &http, "--snapshot-threshold", "5"],
    );
    let member = cluster.member(1);
    let ep = member.endpoint.clone();
    let token_file = member.data_dir.join("bootstrap/admin.token");
    let admin = wait_until("the bootstrap admin token file", WAIT, || {
        let text = std::fs::read_to_string(&token_file).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let log = std::fs::read_to_string(&member.log_path).unwrap_or_default();
    assert!(log.contains("admin.token"), "the log names the path:\n{log}");
    assert!(!log.contains(&admin), "the log must not hold the secret");

    // No token, or a wrong one: Unauthenticated.
    let e = fails(&ep, None, &["cluster", "list"]);
    assert!(
        e.contains("UnrecognizedClientException") && e.contains("requires an API token"),
        "{e}"
    );
    let e = fails(&ep, Some("0123456789abcdef"), &["cluster", "list"]);
    assert!(e.contains("not known"), "{e}");

    let me = ok_json(&ep, &admin, &["operator", "acl", "whoami"]);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["aclEnabled"], true);

    // Setup as admin: a second cluster, a task definition, a service in `default`.
    ok_json(&ep, &admin, &["cluster", "create", "prod"]);
    let taskdef = workspace_root().join("examples/web.json");
    let taskdef = taskdef.to_str().expect("utf-8 path");
    ok_json(&ep, &admin, &["taskdef", "register", taskdef]);
    ok_json(&ep, &admin, &["service", "create", "web", "--taskdef", "web", "--desired-count", "0"]);

    let (ro_accessor, ro) =
        create_token(&ep, &admin, &["--role", "read-only", "--description", "dashboards"]);
    let (_, op) = create_token(&ep, &admin, &["--role", "operator"]);
    let (_, prod_op) = create_token(&ep, &admin, &["--role", "operator", "--cluster", "prod"]);

    // read-only: list and describe, not scale.
    let services = ok_json(&ep, &ro, &["service", "list"]);
    assert_eq!(services.as_array().map(Vec::len), Some(1), "{services}");
    let web = ok_json(&ep, &ro, &["service", "describe", "web"]);
    assert_eq!(web["serviceName"], "web");
    let e = fails(&ep, Some(&ro), &["service", "update", "web", "--desired-count", "2"]);
    assert!(
        e.contains(&format!(
            "AccessDeniedException: token {ro_accessor} (role read-only) lacks permission 'operator' for berth.v1.Berth/UpdateService"
        )),
        "{e}"
    );
    let me = ok_json(&ep, &ro, &["operator", "acl", "whoami"]);
    assert_eq!(
        (me["role"].as_str(), me["accessor"].as_str()),
        (Some("read-only"), Some(ro_accessor.as_str()))
    );

    // operator: scale, but no tokens.
    let web = ok_json(&ep, &op, &["service", "update", "web", "--desired-count", "2"]);
    assert_eq!(web["desiredCount"], 2);
    let e = fails(&ep, Some(&op), &["operator", "acl", "token", "create", "--role", "read-only"]);
    assert!(e.contains("lacks permission 'admin' for berth.v1.BerthAcl/CreateAclToken"), "{e}");
    let e = fails(&ep, Some(&op), &["operator", "acl", "token", "list"]);
    assert!(e.contains("lacks permission 'admin'"), "{e}");

    // admin lists tokens: no secret, no hash.
    let listed = ok_json(&ep, &admin, &["operator", "acl", "token", "list"]);
    let text = listed.to_string();
    assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
    assert!(listed.as_array().into_iter().flatten().any(|t| t["bootstrap"] == true), "{listed}");
    for secret in [&admin, &ro, &op, &prod_op] {
        assert!(!text.contains(secret.as_str()), "a secret is listed: {text}");
        let hash = berth_controller::crypto::sha256_hex(secret.as_bytes());
        assert!(!text.contains(&hash), "a hash is listed: {text}");
    }

    // A token scoped to `prod` acts there only.
    ok_json(
        &ep,
        &prod_op,
        &[
            "--cluster",
            "prod",
            "service",
            "create",
            "api",
            "--taskdef",
            "web",
            "--desired-count",
            "0",
        ],
    );
    let e = fails(&ep, Some(&prod_op), &["service", "update", "web", "--desired-count", "3"]);
    assert!(
        e.contains("scoped to cluster 'prod' and lacks permission for cluster 'default'"),
        "{e}"
    );
    let e = fails(&ep, Some(&prod_op), &["service", "list"]);
    assert!(e.contains("AccessDeniedException"), "{e}");
    let clusters = ok_json(&ep, &prod_op, &["cluster", "list"]);
    let names: Vec<_> =
        clusters.as_array().into_iter().flatten().map(|c| c["clusterName"].clone()).collect();
    assert_eq!(names, vec![Value::from("prod")], "{clusters}");
    let all = ok_json(&ep, &admin, &["cluster", "list"]);
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let me = ok_json(&ep, &prod_op, &["operator", "acl", "whoami"]);
    assert_eq!(me["cluster"], "prod");

    // The HTTP port: /v1/events needs a token; probes and metrics do not.
    let (status, body) = get(&http, "/v1/events", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("UnrecognizedClientException"), "{body}");
    let (status, body) = get(&http, "/v1/events", Some(&ro));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ECS Service Action") || body.contains("\"detail-type\""), "{body}");
    let (status, prod_events) = get(&http, "/v1/events", Some(&prod_op));
    assert_eq!(status, 200);
    assert!(!prod_events.contains("cluster/default"), "prod sees only prod: {prod_events}");
    assert_eq!(get(&http, "/healthz", None).0, 200);
    assert_eq!(get(&http, "/metrics", None).0, 200);

    // Revocation and expiry.
    let revoked = ok_json(&ep, &admin, &["operator", "acl", "token", "revoke", &ro_accessor]);
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    let e = fails(&ep, Some(&ro), &["service", "list"]);
    assert!(e.contains(&format!("API token {ro_accessor} is revoked")), "{e}");
    assert_eq!(get(&http, "/v1/events", Some(&ro)).0, 401);
    let (_, short) = create_token(&ep, &admin, &["--role", "read-only", "--ttl", "1s"]);
    wait_until("the 1 s token to expire", WAIT, || {
        let out = berth(&ep, Some(&short), &["service", "list"]);
        String::from_utf8_lossy(&out.stderr).contains("is expired").then_some(())
    });

    // Stored hashed: no secret in any file of the data dir but the bootstrap file; hashes are.
    let mut paths = Vec::new();
    files(&member.data_dir, &member.data_dir.join("bootstrap"), &mut paths);
    assert!(!paths.is_empty());
    let mut hashes_seen = 0;
    for p in &paths {
        let bytes = std::fs::read(p).unwrap_or_default();
        for secret in [&admin, &ro, &op, &prod_op, &short] {
            assert!(!contains(&bytes, secret.as_bytes()), "{} holds a secret", p.display());
        }
        let hash = berth_controller::crypto::sha256_hex(op.as_bytes());
        hashes_seen += usize::from(contains(&bytes, hash.as_bytes()));
    }
    assert!(hashes_seen > 0, "the operator token's hash is stored somewhere in {paths:?}");
    let log = std::fs::read_to_string(&member.log_path).unwrap_or_default();
    for secret in [&admin, &ro, &op, &prod_op, &short] {
        assert!(!log.contains(secret.as_str()), "the log holds a secret");
    }
    drop(cluster);
}

/// In a group of three: only the member that led first writes the bootstrap file, and a token
/// made through one member works at once on every other (an unknown token makes a follower
/// catch up with the leader before refusing it).
#[tokio::test(flavor = "multi_thread")]
async fn a_replicated_group_bootstraps_once_and_every_member_knows_new_tokens() {
    let cluster = ControllerCluster::start_with_args(3, &["--acl"]);
    let files: Vec<_> =
        cluster.members.iter().map(|m| m.data_dir.join("bootstrap/admin.token")).collect();
    let (maker, admin) = wait_until("one member's bootstrap admin token file", WAIT, || {
        files.iter().enumerate().find_map(|(i, f)| {
            let text = std::fs::read_to_string(f).ok()?;
            Some((i, text.trim().to_string())).filter(|(_, t)| !t.is_empty())
        })
    });
    let ep = cluster.members[maker].endpoint.clone();
    for m in &cluster.members {
        // Every member answers the admin token once it has applied the bootstrap entry.
        wait_until("every member knows the admin token", WAIT, || {
            berth(&m.endpoint, Some(&admin), &["operator", "acl", "whoami"])
                .status
                .success()
                .then_some(())
        });
    }
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            f.exists(),
            i == maker,
            "only member {} has the file ({})",
            maker + 1,
            f.display()
        );
    }
    for m in &cluster.members {
        let (accessor, ro) = create_token(&ep, &admin, &["--role", "read-only"]);
        // At once, no retry: the member catches up before it would refuse the token.
        let me = ok_json(&m.endpoint, &ro, &["operator", "acl", "whoami"]);
        assert_eq!(me["accessor"].as_str(), Some(accessor.as_str()), "member {}", m.id);
        let e = fails(&m.endpoint, Some(&ro), &["cluster", "create", "x"]);
        assert!(e.contains("lacks permission 'operator' for berth.v1.Berth/CreateCluster"), "{e}");
    }
    let listed = ok_json(
        &cluster.members[(maker + 1) % 3].endpoint,
        &admin,
        &["operator", "acl", "token", "list"],
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
}
