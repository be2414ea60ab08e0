//! Replicated controllers in one process, over the real gRPC peer transport on 127.0.0.1:
//! election, forwarding from a follower, snapshot catch-up, membership changes, and
//! leadership transfer on stop. Every wait is a condition with a deadline.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use berth_controller::raft::RaftConfig;
use berth_controller::{Controller, ControllerConfig, RunningController};
use berth_proto::v1::ClusterRef;
use berth_proto::v1::berth_client::BerthClient;

const DEADLINE: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn cluster_map(ports: &[(u64, u16)]) -> BTreeMap<u64, String> {
    ports.iter().map(|(id, p)| (*id, format!("127.0.0.1:{p}"))).collect()
}

async fn start(
    id: u64,
    dir: &Path,
    peer_port: u16,
    cluster: &BTreeMap<u64, String>,
    join: bool,
    snapshot_threshold: u64,
) -> RunningController {
    let config = ControllerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        raft: RaftConfig {
            id,
            tick_interval: Some(Duration::from_millis(20)),
            snapshot_threshold,
            ..RaftConfig::default()
        },
        peer_listen: Some(format!("127.0.0.1:{peer_port}").parse().expect("addr")),
        initial_cluster: cluster.clone(),
        join,
        ..ControllerConfig::default()
    };
    Controller::start(config).await.expect("start controller")
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn digest(c: &RunningController) -> Vec<u8> {
    serde_json::to_vec(&*c.shared.read()).expect("state encodes")
}

fn leader_of(nodes: &[&RunningController]) -> Option<usize> {
    nodes.iter().position(|c| c.raft.is_leader())
}

async fn create_cluster(c: &RunningController, name: &str) {
    let mut client = BerthClient::connect(format!("http://{}", c.addr)).await.expect("connect");
    client
        .create_cluster(ClusterRef { cluster: name.to_string() })
        .await
        .unwrap_or_else(|e| panic!("create {name} via node {}: {e}", c.raft.id()));
}

/// Waits until every node applied as far as the first and holds the same state.
async fn converge(nodes: &[&RunningController]) {
    let status = || {
        nodes
            .iter()
            .map(|c| (c.raft.id(), *c.raft.applied().borrow(), c.raft.snapshots_installed()))
            .collect::<Vec<_>>()
    };
    let what = format!("members to converge (id, applied, snapshots) from {:?}", status());
    until(&what, || {
        let target = *nodes[0].raft.applied().borrow();
        nodes.iter().all(|c| *c.raft.applied().borrow() == target)
            && nodes.iter().all(|c| digest(c) == digest(nodes[0]))
    })
    .await;
}

struct Three {
    _dirs: Vec<tempfile::TempDir>,
    ports: Vec<(u64, u16)>,
    nodes: Vec<RunningController>,
}

async fn three(threshold: u64) -> Three {
    let ports: Vec<(u64, u16)> = (1..=3).map(|id| (id, free_port())).collect();
    let cluster = cluster_map(&ports);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let mut nodes = Vec::new();
    for (i, (id, port)) in ports.iter().enumerate() {
        nodes.push(start(*id, dirs[i].path(), *port, &cluster, false, threshold).await);
    }
    let refs: Vec<&RunningController> = nodes.iter().collect();
    until("a leader", || leader_of(&refs).is_some()).await;
    Three { _dirs: dirs, ports, nodes }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_forward_writes_and_apply_the_same_log() {
    let t = three(1000).await;
    let refs: Vec<&RunningController> = t.nodes.iter().collect();
    let leader = leader_of(&refs).expect("leader");
    let follower = &t.nodes[(leader + 1) % 3];
    for i in 0..5 {
        let name = format!("fwd-{i}");
        create_cluster(follower, &name).await;
        // Read-your-write on the follower that forwarded it.
        assert!(follower.shared.read().cluster_is_active(&name), "{name} visible at once");
    }
    follower.raft.read_barrier().await.expect("read barrier on a follower");
    converge(&refs).await;
    // Client addresses are announced once a leader exists.
    until("client addresses in the book", || {
        let members = t.nodes[0].raft.members();
        members.len() == 3 && members.iter().all(|m| m.client_address.is_some())
    })
    .await;
    let members = follower.raft.members();
    assert_eq!(members.iter().filter(|m| m.is_leader).count(), 1);
    for (id, port) in &t.ports {
        let m = members.iter().find(|m| m.node_id == *id).expect("member listed");
        assert_eq!(m.peer_address, format!("127.0.0.1:{port}"));
    }
    for n in t.nodes {
        n.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_follower_catches_up_by_snapshot_after_compaction() {
    let mut t = three(5).await;
    let refs: Vec<&RunningController> = t.nodes.iter().collect();
    let leader = leader_of(&refs).expect("leader");
    let lagging = (leader + 1) % 3;
    let (id, port) = t.ports[lagging];
    t.nodes.remove(lagging).stop().await.expect("stop follower");
    let leader = t.nodes.iter().position(|c| c.raft.is_leader()).expect("leader still leads");
    for i in 0..20 {
        create_cluster(&t.nodes[leader], &format!("snap-{i}")).await;
    }
    let cluster = cluster_map(&t.ports);
    let back = start(id, t._dirs[lagging].path(), port, &cluster, false, 5).await;
    let mut all: Vec<&RunningController> = t.nodes.iter().collect();
    all.insert(0, &t.nodes[leader]);
    all.push(&back);
    converge(&all).await;
    assert!(back.raft.snapshots_installed() >= 1, "the restarted follower installed a snapshot");
    assert!(back.shared.read().cluster_is_active("snap-19"));
    back.stop().await.expect("stop");
    for n in t.nodes {
        n.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_member_catches_up_removal_applies_and_restart_keeps_the_book() {
    let mut t = three(5).await;
    let leader = t.nodes.iter().position(|c| c.raft.is_leader()).expect("leader");
    for i in 0..8 {
        create_cluster(&t.nodes[leader], &format!("pre-{i}")).await;
    }
    // Node 4 starts empty, knowing the existing members' peer addresses.
    let dir4 = tempfile::tempdir().expect("tempdir");
    let port4 = free_port();
    let existing = cluster_map(&t.ports);
    let n4 = start(4, dir4.path(), port4, &existing, true, 5).await;
    let client4 = format!("http://{}", n4.addr);
    let lead = &t.nodes[leader];
    lead.raft
        .add_member(4, format!("127.0.0.1:{port4}"), Some(client4.clone()))
        .await
        .expect("add member 4");
    {
        let refs = [lead, &n4];
        converge(&refs).await;
    }
    assert!(n4.raft.snapshots_installed() >= 1, "the new member was caught up by snapshot");
    assert!(n4.shared.read().cluster_is_active("pre-7"));

    // Remove a follower other than the leader; a second change while one is pending or the
    // same id twice is refused.
    let victim = t.nodes.iter().position(|c| !c.raft.is_leader()).expect("follower");
    let victim_id = t.nodes[victim].raft.id();
    let lead = t.nodes.iter().find(|c| c.raft.is_leader()).expect("leader");
    lead.raft.remove_member(victim_id).await.expect("remove");
    assert!(lead.raft.remove_member(victim_id).await.is_err(), "not a member any more");
    let ids: Vec<u64> = lead.raft.members().iter().map(|m| m.node_id).collect();
    assert!(!ids.contains(&victim_id) && ids.contains(&4), "{ids:?}");
    t.nodes.remove(victim).stop().await.expect("stop removed member");

    // Restart node 4 from its data dir with no addresses given: the book is in its storage.
    n4.stop().await.expect("stop 4");
    let n4 = start(4, dir4.path(), port4, &BTreeMap::new(), true, 5).await;
    until("node 4 rejoins", || n4.raft.leader_id().is_some()).await;
    let members = n4.raft.members();
    let me = members.iter().find(|m| m.node_id == 4).expect("4 listed");
    assert_eq!(me.peer_address, format!("127.0.0.1:{port4}"));
    assert_eq!(me.client_address.as_deref(), Some(client4.as_str()));
    assert_eq!(members.len(), 3, "{members:?}");
    let lead = t.nodes.iter().find(|c| c.raft.is_leader()).expect("leader");
    create_cluster(lead, "after-restart").await;
    let refs = [lead, &n4];
    converge(&refs).await;
    n4.stop().await.expect("stop");
    for n in t.nodes {
        n.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_leader_hands_over_quickly_without_losing_writes() {
    let mut t = three(1000).await;
    let leader = t.nodes.iter().position(|c| c.raft.is_leader()).expect("leader");
    for i in 0..5 {
        create_cluster(&t.nodes[leader], &format!("ack-{i}")).await;
    }
    let old = t.nodes.remove(leader);
    let started = std::time::Instant::now();
    old.stop().await.expect("stop leader");
    let refs: Vec<&RunningController> = t.nodes.iter().collect();
    until("a new leader", || leader_of(&refs).is_some()).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "handover took {took:?}");
    let new = t.nodes.iter().find(|c| c.raft.is_leader()).expect("leader");
    new.raft.read_barrier().await.expect("read barrier");
    for i in 0..5 {
        assert!(new.shared.read().cluster_is_active(&format!("ack-{i}")));
    }
    create_cluster(new, "after-handover").await;
    for n in t.nodes {
        n.stop().await.expect("stop");
    }
}
