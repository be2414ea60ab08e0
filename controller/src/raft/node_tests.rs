//! Behaviour of [`RaftNode`] end to end: single node on sled (propose, restart with snapshot and
//! replay), batching under concurrency, and three in-memory nodes electing and replicating.
//! Every wait is on a condition with a deadline; ticks are driven by hand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{MemNetwork, RaftConfig, RaftError, RaftHandle, RaftNode, RaftTransport, StateMachine};
use crate::storage::{KvBackend, MemBackend, SledBackend};

const DEADLINE: Duration = Duration::from_secs(10);

/// Test state machine: remembers `(index, command)` in order; answers `"index:command"`.
#[derive(Clone, Default)]
struct RecordingMachine {
    log: Arc<Mutex<Vec<(u64, String)>>>,
}

impl RecordingMachine {
    fn entries(&self) -> Vec<(u64, String)> {
        self.log.lock().expect("lock").clone()
    }
}

impl StateMachine for RecordingMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let cmd = String::from_utf8_lossy(command).into_owned();
        self.log.lock().expect("lock").push((index, cmd.clone()));
        format!("{index}:{cmd}").into_bytes()
    }
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.log.lock().expect("lock")).expect("encode")
    }
    fn restore(&mut self, data: &[u8]) {
        *self.log.lock().expect("lock") = serde_json::from_slice(data).expect("decode");
    }
}

/// A transport for a group of one: there is nobody to talk to.
struct NoPeers;
impl RaftTransport for NoPeers {
    fn send(&self, _msgs: Vec<raft::prelude::Message>) {}
}

fn single_config(snapshot_threshold: u64) -> RaftConfig {
    RaftConfig { tick_interval: None, snapshot_threshold, ..RaftConfig::default() }
}

async fn wait_leader(handle: &RaftHandle) {
    let mut role = handle.role();
    tokio::time::timeout(DEADLINE, role.wait_for(|r| r.is_leader()))
        .await
        .expect("leader before deadline")
        .expect("node running");
}

async fn wait_applied(handle: &RaftHandle, index: u64) {
    let mut applied = handle.applied();
    tokio::time::timeout(DEADLINE, applied.wait_for(|a| *a >= index))
        .await
        .expect("applied before deadline")
        .expect("node running");
}

fn parse_index(response: &[u8]) -> u64 {
    let text = std::str::from_utf8(response).expect("utf8");
    text.split(':').next().and_then(|i| i.parse().ok()).expect("index:command")
}

async fn propose_all(handle: &RaftHandle, names: impl Iterator<Item = String>) -> Vec<u64> {
    let mut indices = Vec::new();
    for name in names {
        let resp = handle.propose(name.clone().into_bytes()).await.expect("propose");
        assert!(resp.ends_with(name.as_bytes()), "response names the command");
        indices.push(parse_index(&resp));
    }
    indices
}

#[tokio::test]
async fn fresh_single_node_becomes_leader_and_answers_each_proposal() {
    let sm = RecordingMachine::default();
    let (handle, task) = RaftNode::spawn(
        single_config(1000),
        Arc::new(MemBackend::new()),
        sm.clone(),
        Arc::new(NoPeers),
    )
    .expect("spawn");
    wait_leader(&handle).await;
    assert_eq!(handle.leader_id(), Some(1));
    let indices = propose_all(&handle, (0..10).map(|i| format!("cmd-{i}"))).await;
    assert!(indices.windows(2).all(|w| w[1] == w[0] + 1), "{indices:?}");
    let applied: Vec<String> = sm.entries().into_iter().map(|(_, c)| c).collect();
    assert_eq!(applied, (0..10).map(|i| format!("cmd-{i}")).collect::<Vec<_>>());
    handle.shutdown().await.expect("shutdown");
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn committed_entries_beyond_one_ready_are_applied_without_another_input() {
    let sm = RecordingMachine::default();
    // No ticker: once the proposals are in, nothing else arrives on the node's inputs.
    let (handle, task) = RaftNode::spawn(
        single_config(1000),
        Arc::new(MemBackend::new()),
        sm.clone(),
        Arc::new(NoPeers),
    )
    .expect("spawn");
    wait_leader(&handle).await;
    let per_ready = super::node::MAX_APPLY_BYTES_PER_READY as usize;
    // Six entries of 40 % of the per-Ready budget: at least three Readies to apply them.
    let commands: Vec<String> =
        (0..6).map(|i| format!("{i}{}", "x".repeat(per_ready * 2 / 5))).collect();
    let proposals = commands.iter().map(|c| handle.propose(c.clone().into_bytes()));
    let results = tokio::time::timeout(DEADLINE, futures::future::join_all(proposals))
        .await
        .expect("every proposal answered without further inputs");
    let indices: Vec<u64> = results.iter().map(|r| parse_index(r.as_ref().expect("ok"))).collect();
    assert!(indices.windows(2).all(|w| w[1] == w[0] + 1), "{indices:?}");
    let applied: Vec<String> = sm.entries().into_iter().map(|(_, c)| c).collect();
    assert_eq!(applied, commands);
    handle.shutdown().await.expect("shutdown");
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn concurrent_proposals_all_complete_with_their_own_response() {
    let sm = RecordingMachine::default();
    let (handle, task) = RaftNode::spawn(
        single_config(50),
        Arc::new(MemBackend::new()),
        sm.clone(),
        Arc::new(NoPeers),
    )
    .expect("spawn");
    wait_leader(&handle).await;
    let proposals = (0..500).map(|i| {
        let h = handle.clone();
        async move { (i, h.propose(format!("c{i}").into_bytes()).await) }
    });
    let results = futures::future::join_all(proposals).await;
    let mut indices = Vec::new();
    for (i, result) in results {
        let resp = result.expect("every proposal succeeds");
        assert!(resp.ends_with(format!(":c{i}").as_bytes()));
        indices.push(parse_index(&resp));
    }
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 500, "each proposal applied at its own index");
    assert_eq!(sm.entries().len(), 500);
    handle.shutdown().await.expect("shutdown");
    task.await.expect("join").expect("clean stop");
}

/// Starts a single node on the sled database in `dir`.
fn start_on_sled(
    dir: &std::path::Path,
    threshold: u64,
) -> (RaftHandle, tokio::task::JoinHandle<Result<(), RaftError>>, RecordingMachine) {
    // A crashed (aborted) node's off-loop jobs — snapshot encoding, compaction — may still hold
    // the database for a moment: wait for its lock to be released, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let backend = loop {
        match SledBackend::open(dir) {
            Ok(b) => break b,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open sled: {e}"),
        }
    };
    let backend: Arc<dyn KvBackend> = Arc::new(backend);
    let sm = RecordingMachine::default();
    let (handle, task) =
        RaftNode::spawn(single_config(threshold), backend, sm.clone(), Arc::new(NoPeers))
            .expect("spawn");
    (handle, task, sm)
}

#[tokio::test]
async fn clean_restart_restores_state_from_snapshot_and_continues_indexing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, task, sm) = start_on_sled(dir.path(), 7);
    wait_leader(&handle).await;
    let first = propose_all(&handle, (0..23).map(|i| format!("a{i}"))).await;
    let before = sm.entries();
    handle.shutdown().await.expect("shutdown");
    task.await.expect("join").expect("clean stop");

    let (handle, task, sm) = start_on_sled(dir.path(), 7);
    wait_leader(&handle).await;
    assert_eq!(sm.entries(), before, "state identical after restart");
    let next = propose_all(&handle, std::iter::once("after".to_string())).await;
    assert!(next[0] > *first.last().expect("proposed"), "indices continue after the old log");
    assert_eq!(sm.entries().len(), before.len() + 1);
    handle.shutdown().await.expect("shutdown");
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn crash_restart_replays_log_after_last_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, task, sm) = start_on_sled(dir.path(), 5);
    wait_leader(&handle).await;
    // 23 commands with a threshold of 5: snapshots happen, and the last few entries are only
    // in the log, so a restart exercises snapshot restore AND replay.
    let first = propose_all(&handle, (0..23).map(|i| format!("b{i}"))).await;
    let before = sm.entries();
    // Crash: no shutdown snapshot. The loop only awaits on its inbox, so abort stops it
    // between Readies, as a killed process would.
    task.abort();
    let _ = task.await;
    drop(handle);

    let (handle, task, sm) = start_on_sled(dir.path(), 5);
    wait_leader(&handle).await;
    wait_applied(&handle, *first.last().expect("proposed")).await;
    assert_eq!(sm.entries(), before, "acknowledged commands survive a crash");
    let next = propose_all(&handle, std::iter::once("after-crash".to_string())).await;
    assert!(next[0] > *first.last().expect("proposed"));
    handle.shutdown().await.expect("shutdown");
    task.await.expect("join").expect("clean stop");
}

/// Three nodes on a [`MemNetwork`], ticks driven by the test.
struct Cluster {
    network: MemNetwork,
    handles: Vec<RaftHandle>,
    machines: Vec<RecordingMachine>,
}

impl Cluster {
    fn start(ids: &[u64]) -> Self {
        let network = MemNetwork::new();
        let mut handles = Vec::new();
        let mut machines = Vec::new();
        for &id in ids {
            let config = RaftConfig {
                id,
                peers: ids.to_vec(),
                tick_interval: None,
                ..RaftConfig::default()
            };
            let sm = RecordingMachine::default();
            let (handle, _task) = RaftNode::spawn(
                config,
                Arc::new(MemBackend::new()),
                sm.clone(),
                Arc::new(network.transport(id)),
            )
            .expect("spawn");
            network.register(id, handle.clone());
            handles.push(handle);
            machines.push(sm);
        }
        Self { network, handles, machines }
    }

    /// Ticks the nodes in `tickers` until one of the cluster is leader; returns its position.
    async fn elect(&self, tickers: &[usize]) -> usize {
        let all: Vec<usize> = (0..self.handles.len()).collect();
        self.elect_among(&all, tickers).await
    }

    /// Ticks the nodes in `tickers` until one of `candidates` is leader; returns its position.
    async fn elect_among(&self, candidates: &[usize], tickers: &[usize]) -> usize {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(&pos) = candidates.iter().find(|&&c| self.handles[c].is_leader()) {
                return pos;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader before deadline: {:?}",
                self.handles.iter().map(|h| *h.role().borrow()).collect::<Vec<_>>()
            );
            // A clone of the handle's receiver inherits its "seen" mark; reset it, or
            // `changed()` returns at once and the ticks outrun the messages.
            let mut role = self.handles[candidates[0]].role();
            role.borrow_and_update();
            for &t in tickers {
                self.handles[t].tick().expect("tick");
            }
            // Let the messages of this tick flow: wait for a role change, briefly.
            let _ = tokio::time::timeout(Duration::from_millis(5), role.changed()).await;
        }
    }

    async fn shutdown(&self) {
        for h in &self.handles {
            h.shutdown().await.expect("shutdown");
        }
    }
}

#[tokio::test]
async fn three_nodes_elect_a_leader_and_replicate_commands_to_all() {
    let cluster = Cluster::start(&[1, 2, 3]);
    // Only node 1 ticks, so it is the one that campaigns.
    let leader = cluster.elect(&[0]).await;
    assert_eq!(leader, 0);
    let follower = &cluster.handles[1];
    let mut role = follower.role();
    tokio::time::timeout(DEADLINE, role.wait_for(|r| r.leader_id == Some(1)))
        .await
        .expect("follower learns leader")
        .expect("running");
    match follower.propose(b"on-follower".to_vec()).await {
        Err(RaftError::NotLeader { leader }) => assert_eq!(leader, Some(1)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    let indices = propose_all(&cluster.handles[0], (0..5).map(|i| format!("r{i}"))).await;
    let last = *indices.last().expect("proposed");
    for h in &cluster.handles {
        wait_applied(h, last).await;
    }
    let expected = cluster.machines[0].entries();
    assert_eq!(expected.len(), 5);
    for m in &cluster.machines[1..] {
        assert_eq!(m.entries(), expected, "every replica applied the same log");
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn isolated_leader_is_replaced_and_the_majority_keeps_committing() {
    let cluster = Cluster::start(&[1, 2, 3]);
    assert_eq!(cluster.elect(&[0]).await, 0);
    propose_all(&cluster.handles[0], std::iter::once("before".to_string())).await;
    cluster.network.isolate(1);
    // Nodes 2 and 3 tick (a follower only grants votes once its own election timeout passed,
    // check_quorum); the isolated node 1 ticks too and must step down.
    let new_leader = cluster.elect_among(&[1, 2], &[0, 1, 2]).await;
    let idx = propose_all(&cluster.handles[new_leader], std::iter::once("after".to_string())).await;
    let other = if new_leader == 1 { 2 } else { 1 };
    wait_applied(&cluster.handles[other], idx[0]).await;
    assert_eq!(
        cluster.machines[other].entries().last().map(|(_, c)| c.clone()),
        Some("after".to_string())
    );
    let mut old = cluster.handles[0].role();
    tokio::time::timeout(DEADLINE, async {
        while old.borrow().is_leader() {
            cluster.handles[0].tick().expect("tick");
            let _ = tokio::time::timeout(Duration::from_millis(5), old.changed()).await;
        }
    })
    .await
    .expect("isolated leader steps down (check_quorum)");
    match cluster.handles[0].propose(b"stale".to_vec()).await {
        Err(RaftError::NotLeader { .. }) => {}
        other => panic!("expected NotLeader from the old leader, got {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn partitioned_leader_acknowledges_nothing_and_catches_up_after_heal() {
    let cluster = Cluster::start(&[1, 2, 3]);
    assert_eq!(cluster.elect(&[0]).await, 0);
    propose_all(&cluster.handles[0], std::iter::once("before".to_string())).await;
    cluster.network.isolate(1);
    let old = cluster.handles[0].clone();
    let lost = tokio::spawn(async move { old.propose(b"lost".to_vec()).await });
    let new_leader = cluster.elect_among(&[1, 2], &[0, 1, 2]).await;
    let idx = propose_all(&cluster.handles[new_leader], std::iter::once("after".to_string())).await;
    // The isolated leader steps down (check_quorum); its proposal is never acknowledged.
    let mut role = cluster.handles[0].role();
    tokio::time::timeout(DEADLINE, async {
        while role.borrow().is_leader() {
            cluster.handles[0].tick().expect("tick");
            let _ = tokio::time::timeout(Duration::from_millis(5), role.changed()).await;
        }
    })
    .await
    .expect("old leader steps down");
    let outcome = tokio::time::timeout(DEADLINE, lost).await.expect("answered").expect("join");
    assert!(matches!(outcome, Err(RaftError::LeadershipLost { .. })), "{outcome:?}");

    cluster.network.heal();
    tokio::time::timeout(DEADLINE, async {
        while *cluster.handles[0].applied().borrow() < idx[0] {
            cluster.handles[new_leader].tick().expect("tick");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("old leader catches up");
    let expected = cluster.machines[new_leader].entries();
    assert_eq!(cluster.machines[0].entries(), expected, "same log after heal");
    assert!(expected.iter().all(|(_, c)| c != "lost"), "unacknowledged write never applied");
    // A linearizable read through the old leader (now a follower) sees the write.
    let follower = cluster.handles[0].clone();
    let read = tokio::spawn(async move { follower.read_barrier().await });
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !read.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "read barrier answered");
        cluster.handles[new_leader].tick().expect("tick");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    read.await.expect("join").expect("read barrier on a follower");
    cluster.shutdown().await;
}
