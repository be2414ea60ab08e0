//! README's "three commands" (Security): a TLS cluster of 3 controllers bootstrapped with real
//! `berth-controller` processes over real sockets:
//! 1. the first controller (`--tls`, with a peer listener) creates the cluster CA and writes
//!    the bootstrap join tokens;
//! 2. two more controllers join with the controller join token (`--join https://… --join-token`):
//!    each gets its certificate and the cluster key (`<data-dir>/cluster.key`, 0600) and is
//!    added as a voter; the group converges (peer traffic over mTLS);
//! 3. the peer listeners refuse a plaintext client (raft payloads only from authenticated
//!    controllers);
//! 4. a controller that lost its data dir is refused while its id is a member; once removed,
//!    its old certificate no longer speaks Raft, and it joins again from an empty dir;
//! 5. the cluster keeps working when the first controller goes away.

use berth_tests::tls::{TlsNode as Node, cli_json as cli, read_trimmed};
use berth_tests::wait_until;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

#[test]
fn three_controllers_bootstrap_a_tls_cluster_with_join_tokens() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::new(root.path(), id)).collect();

    // 1. The first controller: CA, own certificate, bootstrap tokens.
    nodes[0].start(&[]);
    let data1 = nodes[0].dir.join("data");
    let (admin, controller_token) =
        wait_until("the first controller's bootstrap files", WAIT, || {
            Some((
                read_trimmed(&data1.join("bootstrap/admin.token"))?,
                read_trimmed(&data1.join("bootstrap/controller.join-token"))?,
            ))
        });
    let ca = data1.join("tls/ca.pem");
    assert!(controller_token.starts_with("BERTH-1-"), "{controller_token}");
    let first = nodes[0].url();
    wait_until("the first controller answers over TLS", WAIT, || {
        cli(&first, &ca, &admin, &["operator", "members", "list"]).ok()
    });

    // 2. Two controllers join with the controller join token, one after the other.
    for node in &mut nodes[1..3] {
        let token = controller_token.clone();
        node.start(&["--join", &first, "--join-token", &token]);
        let id = node.id;
        wait_until(&format!("controller {id} is a member"), WAIT, || {
            let members = cli(&first, &ca, &admin, &["operator", "members", "list"]).ok()?;
            members.as_array()?.iter().any(|m| m["nodeId"] == id).then_some(())
        });
        let key = node.dir.join("data/cluster.key");
        // (The leader lists it as a member before the joiner has the reply and writes files.)
        let kept = wait_until("the joiner's cluster key file", WAIT, || read_trimmed(&key));
        assert_eq!(Some(kept), read_trimmed(&data1.join("cluster.key")), "same cluster key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "cluster.key mode");
            let mode = std::fs::metadata(node.data()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "a joined controller's data dir is private");
        }
    }
    // Every member applies the same log: equal state digests at one applied index.
    let digests = wait_until("three members converged", WAIT, || {
        let statuses: Vec<Value> = nodes
            .iter()
            .map(|n| cli(&n.url(), &ca, &admin, &["operator", "status"]))
            .collect::<Result<_, _>>()
            .ok()?;
        let first = &statuses[0];
        statuses
            .iter()
            .all(|s| {
                s["stateDigest"] == first["stateDigest"]
                    && s["appliedIndex"] == first["appliedIndex"]
            })
            .then_some(statuses)
    });
    assert_eq!(digests.iter().filter(|s| s["role"] == "leader").count(), 1, "{digests:?}");
    let members = cli(&first, &ca, &admin, &["operator", "members", "list"]).unwrap();
    assert_eq!(members.as_array().map(Vec::len), Some(3), "{members}");

    // 3. The peer listener refuses plaintext: a raft peer call without TLS fails.
    let plain = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", nodes[1].peer))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect()
            .await;
        match channel {
            Err(e) => Err(e.to_string()),
            Ok(c) => {
                let mut client = berth_proto::v1::raft_peer_client::RaftPeerClient::new(c);
                let req = berth_proto::v1::ReadEventsRequest { from_index: 0, max: 1 };
                client.read_events(req).await.map(|_| ()).map_err(|s| s.to_string())
            }
        }
    });
    assert!(plain.is_err(), "a plaintext peer call succeeded");

    // 4. A controller that lost its data dir cannot rejoin under its old id while that id is a
    //    member (its empty log would be handed a commit index beyond it): refused, naming the fix.
    let saved_tls = root.path().join("c3-old-tls");
    nodes[2].kill();
    std::fs::rename(nodes[2].dir.join("data/tls"), &saved_tls).unwrap();
    std::fs::remove_dir_all(nodes[2].dir.join("data")).unwrap();
    nodes[2].start(&["--join", &first, "--join-token", &controller_token]);
    wait_until("the rejoin with a used id is refused", WAIT, || {
        let exited = nodes[2].child.as_mut()?.try_wait().ok()??;
        (!exited.success()).then_some(())
    });
    let log = nodes[2].log();
    assert!(log.contains("node 3 is already a member"), "{log}");
    assert!(log.contains("berth operator members remove 3"), "{log}");
    // Removed, its still-valid certificate no longer speaks Raft to the others.
    // Sent to a follower: the CLI takes it to the leader (only the leader changes membership).
    let follower_url = wait_until("a follower among 1 and 2", WAIT, || {
        nodes[..2]
            .iter()
            .find(|n| {
                cli(&n.url(), &ca, &admin, &["operator", "status"])
                    .is_ok_and(|s| s["role"] == "follower")
            })
            .map(Node::url)
    });
    cli(&follower_url, &ca, &admin, &["operator", "members", "remove", "3"])
        .expect("members remove 3 through a follower");
    let removed = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let material = berth_security::TlsMaterial::load_dir(&saved_tls).expect("old tls dir");
        let tls = berth_security::ClientTls::new(material.client_config().expect("config"));
        let url = format!("https://{}", nodes[1].peer);
        let channel = berth_security::connect_channel(&url, Some(&tls), |e| {
            e.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(5))
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut client = berth_proto::v1::raft_peer_client::RaftPeerClient::new(channel);
        let req = berth_proto::v1::ReadEventsRequest { from_index: 0, max: 1 };
        client.read_events(req).await.map(|_| ()).map_err(|s| s.message().to_string())
    });
    let err = removed.expect_err("a removed controller's certificate was admitted");
    assert!(err.contains("controller 3 is not a member"), "{err}");
    // Nor is it renewed.
    let renewed = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let material = berth_security::TlsMaterial::load_dir(&saved_tls).expect("old tls dir");
        let tls = berth_security::ClientTls::new(material.client_config().expect("config"));
        let channel = berth_security::connect_channel(&first, Some(&tls), |e| {
            e.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(5))
        })
        .await
        .map_err(|e| e.to_string())?;
        let csr_pem = berth_security::NodeKey::generate().unwrap().csr_pem().unwrap();
        let mut client = berth_proto::v1::berth_security_client::BerthSecurityClient::new(channel);
        let req = berth_proto::v1::RenewCertificateRequest { csr_pem };
        client.renew_certificate(req).await.map(|_| ()).map_err(|s| s.message().to_string())
    });
    let err = renewed.expect_err("a removed controller's certificate was renewed");
    assert!(err.contains("is not a member of the controller group"), "{err}");
    // Removed first, it joins again from an empty data dir.
    std::fs::remove_dir_all(nodes[2].dir.join("data")).unwrap();
    nodes[2].start(&["--join", &first, "--join-token", &controller_token]);
    wait_until("controller 3 is a member again", WAIT, || {
        let members = cli(&first, &ca, &admin, &["operator", "members", "list"]).ok()?;
        let list = members.as_array()?;
        (list.len() == 3 && list.iter().any(|m| m["nodeId"] == 3)).then_some(())
    });
    wait_until("controller 3 caught up", WAIT, || {
        let a = cli(&first, &ca, &admin, &["operator", "status"]).ok()?;
        let b = cli(&nodes[2].url(), &ca, &admin, &["operator", "status"]).ok()?;
        (a["stateDigest"] == b["stateDigest"] && a["appliedIndex"] == b["appliedIndex"])
            .then_some(())
    });

    // A write through a joined controller, then the first one goes away: the other two keep
    // a quorum over mTLS and still serve.
    let second = nodes[1].url();
    cli(&second, &ca, &admin, &["cluster", "create", "tlsprod"]).expect("cluster create");
    nodes[0].kill();
    wait_until("the remaining two serve writes", WAIT, || {
        cli(&second, &ca, &admin, &["cluster", "create", "tlsprod2"]).ok()
    });
    let logs: String = nodes.iter().map(|n| n.log()).collect();
    assert!(!logs.contains("panicked"), "{logs}");
}
