//! Raft under faults, in process (issue 3, Proof #2–#4): N [`RaftNode`]s on a [`MemNetwork`],
//! each on its own [`MemBackend`] (which outlives a crash), time driven only by manual ticks.
//!
//! * [`Ledger`]  — the test state machine: an append-only list of `(index, write id)`; a write
//!   answers its log index, a read (also a log entry, so it is linearizable by construction)
//!   answers the ids applied before it. It counts snapshot restores.
//! * [`Sim`]     — the cluster: start / crash (abort the loop between Readies, drop its inbox) /
//!   restart from the same backend / partition / drop filters / heal; `tick` ticks every live
//!   node and lets the runtime run until the messages of that tick have flowed.
//! * [`History`] — every client operation with logical invoke/complete times and its outcome
//!   (acked, definitely failed, unknown).
//! * the checks — after healing and converging: every node applied the same log; no id is
//!   applied twice; every acked write is in that log at the index it was acked with; no
//!   definitely-failed write is; every read saw a prefix of the log (a log read: exactly the
//!   prefix before its own entry) and every write
//!   acked before the read was invoked (no stale read); a write acked before another was
//!   invoked is applied before it; never two leaders in one term.
//!
//! Determinism: `#[tokio::test]` runs on one thread, ticks are explicit and waiting is by
//! yielding to the runtime, never by sleeping, so a seed replays the same faults and workload.
//! raft-rs draws its randomized election timeouts from its own RNG, so elections may still
//! differ between runs of one seed. The seed is printed at the start and again on failure;
//! `BERTH_FAULT_SEED=S cargo test -p berth-controller --test faults` replays it.
//!
//! Reads come in two kinds: log reads (a read command through Raft) and ReadIndex reads
//! ([`RaftHandle::read_barrier`] on any node, then that node's local state). A plain
//! leader-local read is not used: it may be stale under partition (an isolated leader keeps its
//! role until check_quorum), which is what the barrier is for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use berth_controller::raft::MemNetwork;
use berth_controller::raft::{RaftConfig, RaftError, RaftHandle, RaftNode, StateMachine};
use berth_controller::storage::MemBackend;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

/// Yields to the runtime after each tick: enough for a message chain of a few hops
/// (tick → heartbeat → ack → append → ack → commit → apply) to run to its end.
const SETTLE_YIELDS: usize = 64;
/// Ticks allowed for the cluster to converge after the faults stop (elections take 10–20).
const CONVERGE_TICKS: usize = 600;
/// Seeds run when `BERTH_FAULT_SEED` is not set.
const DEFAULT_SEEDS: [u64; 3] = [1, 7, 42];

// ---------------------------------------------------------------------------------------------
// The state machine

#[derive(Clone, Default)]
struct Ledger {
    applied: Arc<Mutex<Vec<(u64, String)>>>,
    restores: Arc<AtomicUsize>,
}

impl Ledger {
    fn entries(&self) -> Vec<(u64, String)> {
        self.applied.lock().expect("ledger lock").clone()
    }
}

impl StateMachine for Ledger {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let cmd = String::from_utf8_lossy(command).into_owned();
        let mut applied = self.applied.lock().expect("ledger lock");
        if let Some(id) = cmd.strip_prefix("w:") {
            applied.push((index, id.to_string()));
            index.to_string().into_bytes()
        } else {
            let ids: Vec<&str> = applied.iter().map(|(_, id)| id.as_str()).collect();
            format!("{index}|{}", ids.join(",")).into_bytes()
        }
    }
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.applied.lock().expect("ledger lock")).expect("encode")
    }
    fn restore(&mut self, data: &[u8]) {
        *self.applied.lock().expect("ledger lock") = serde_json::from_slice(data).expect("decode");
        self.restores.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

struct Node {
    backend: Arc<MemBackend>,
    ledger: Ledger,
    running: Option<(RaftHandle, JoinHandle<Result<(), RaftError>>)>,
}

struct Sim {
    ids: Vec<u64>,
    config: RaftConfig,
    network: MemNetwork,
    nodes: BTreeMap<u64, Node>,
    /// term → the one node seen leading it.
    leaders_by_term: HashMap<u64, u64>,
}

impl Sim {
    fn new(n: u64, snapshot_threshold: u64) -> Self {
        let ids: Vec<u64> = (1..=n).collect();
        let config = RaftConfig {
            peers: ids.clone(),
            tick_interval: None,
            snapshot_threshold,
            ..RaftConfig::default()
        };
        let mut sim = Sim {
            ids: ids.clone(),
            config,
            network: MemNetwork::new(),
            nodes: BTreeMap::new(),
            leaders_by_term: HashMap::new(),
        };
        for id in ids {
            sim.nodes.insert(
                id,
                Node {
                    backend: Arc::new(MemBackend::new()),
                    ledger: Ledger::default(),
                    running: None,
                },
            );
            sim.start(id);
        }
        sim
    }

    /// Starts `id` on its backend with a fresh state machine (restored from its snapshot).
    fn start(&mut self, id: u64) {
        let config = RaftConfig { id, ..self.config.clone() };
        let node = self.nodes.get_mut(&id).expect("known node");
        assert!(node.running.is_none(), "node {id} already running");
        let restores = node.ledger.restores.clone();
        node.ledger = Ledger { applied: Arc::default(), restores };
        let (handle, task) = RaftNode::spawn(
            config,
            node.backend.clone(),
            node.ledger.clone(),
            Arc::new(self.network.transport(id)),
        )
        .expect("spawn raft node");
        self.network.register(id, handle.clone());
        node.running = Some((handle, task));
    }

    /// Kills `id` between two Readies (its task only awaits on its inbox): whatever it had
    /// flushed stays in its backend, its pending proposals see `Stopped`.
    async fn crash(&mut self, id: u64) {
        self.network.unregister(id);
        let node = self.nodes.get_mut(&id).expect("known node");
        if let Some((_, task)) = node.running.take() {
            task.abort();
            let _ = task.await;
        }
    }

    fn live(&self) -> Vec<u64> {
        self.nodes.iter().filter(|(_, n)| n.running.is_some()).map(|(id, _)| *id).collect()
    }

    fn crashed(&self) -> Vec<u64> {
        self.nodes.iter().filter(|(_, n)| n.running.is_none()).map(|(id, _)| *id).collect()
    }

    fn handle(&self, id: u64) -> Option<RaftHandle> {
        self.nodes.get(&id)?.running.as_ref().map(|(h, _)| h.clone())
    }

    fn handles(&self) -> HashMap<u64, RaftHandle> {
        self.ids.iter().filter_map(|&id| Some((id, self.handle(id)?))).collect()
    }

    /// The live node that is leader in the highest term, if any.
    fn leader(&self) -> Option<u64> {
        self.live()
            .into_iter()
            .filter_map(|id| {
                let role = *self.handle(id)?.role().borrow();
                role.is_leader().then_some((role.term, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    async fn settle(&mut self) {
        for _ in 0..SETTLE_YIELDS {
            tokio::task::yield_now().await;
        }
        self.check_one_leader_per_term();
    }

    /// One tick on every live node, then let the messages flow.
    async fn tick(&mut self) {
        for id in self.live() {
            if let Some(h) = self.handle(id) {
                let _ = h.tick();
            }
        }
        self.settle().await;
    }

    fn check_one_leader_per_term(&mut self) {
        for id in self.live() {
            let Some(h) = self.handle(id) else { continue };
            let role = *h.role().borrow();
            if role.is_leader() {
                let first = *self.leaders_by_term.entry(role.term).or_insert(id);
                assert_eq!(first, id, "two leaders in term {}: {first} and {id}", role.term);
            }
        }
    }

    /// Ticks until `cond` holds, at most `max_ticks` times.
    async fn tick_until(&mut self, what: &str, max_ticks: usize, cond: impl Fn(&Sim) -> bool) {
        for _ in 0..max_ticks {
            if cond(self) {
                return;
            }
            self.tick().await;
        }
        assert!(cond(self), "not reached within {max_ticks} ticks: {what}; {}", self.describe());
    }

    /// Role, term, leader and applied index of every node, for failure messages.
    fn describe(&self) -> String {
        let mut out = Vec::new();
        for &id in &self.ids {
            match self.handle(id) {
                Some(h) => {
                    let r = *h.role().borrow();
                    out.push(format!(
                        "node {id}: {:?} term {} leader {:?} applied {}",
                        r.role,
                        r.term,
                        r.leader_id,
                        *h.applied().borrow()
                    ));
                }
                None => out.push(format!("node {id}: down")),
            }
        }
        out.join("; ")
    }

    fn applied(&self, id: u64) -> u64 {
        self.handle(id).map(|h| *h.applied().borrow()).unwrap_or(0)
    }

    async fn shutdown(&mut self) {
        for id in self.live() {
            if let Some(h) = self.handle(id) {
                h.shutdown().await.expect("shutdown");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and the history

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Pending,
    /// Acknowledged at logical time `at`, applied at log `index`.
    Acked {
        at: u64,
        index: u64,
    },
    /// Never entered the log (`NotLeader`).
    Failed,
    /// May or may not be applied (leadership lost, node stopped).
    Unknown,
}

#[derive(Debug)]
struct WriteOp {
    id: String,
    invoked: u64,
    outcome: Outcome,
}

#[derive(Debug)]
struct ReadOp {
    invoked: u64,
    result: Option<ReadResult>,
}

#[derive(Debug)]
struct ReadResult {
    /// Log index of the read entry (a log read); `None` for a ReadIndex read of local state.
    log_index: Option<u64>,
    /// The write ids the read saw, in log order.
    seen: Vec<String>,
}

#[derive(Default)]
struct History {
    clock: u64,
    writes: Vec<WriteOp>,
    reads: Vec<ReadOp>,
}

type SharedHistory = Arc<Mutex<History>>;

fn now(h: &mut History) -> u64 {
    h.clock += 1;
    h.clock
}

/// Proposes on `first`, following `NotLeader` hints (a definite failure, safe to redirect) at
/// most a few hops. Anything else is final.
async fn propose_following(
    handles: &HashMap<u64, RaftHandle>,
    first: u64,
    command: Vec<u8>,
) -> Result<Vec<u8>, RaftError> {
    let mut target = first;
    for _ in 0..3 {
        let Some(h) = handles.get(&target) else { return Err(RaftError::Stopped) };
        match h.propose(command.clone()).await {
            Err(RaftError::NotLeader { leader: Some(l) }) if l != target => target = l,
            other => return other,
        }
    }
    Err(RaftError::NotLeader { leader: None })
}

fn spawn_write(sim: &Sim, history: &SharedHistory, id: String, target: u64) -> JoinHandle<()> {
    let handles = sim.handles();
    let history = history.clone();
    let pos = {
        let mut h = history.lock().expect("history lock");
        let invoked = now(&mut h);
        h.writes.push(WriteOp { id: id.clone(), invoked, outcome: Outcome::Pending });
        h.writes.len() - 1
    };
    tokio::spawn(async move {
        let result = propose_following(&handles, target, format!("w:{id}").into_bytes()).await;
        let mut h = history.lock().expect("history lock");
        let at = now(&mut h);
        h.writes[pos].outcome = match result {
            Ok(bytes) => {
                let index = String::from_utf8_lossy(&bytes).parse().expect("index answer");
                Outcome::Acked { at, index }
            }
            Err(RaftError::NotLeader { .. }) => Outcome::Failed,
            Err(_) => Outcome::Unknown,
        };
    })
}

fn spawn_read(sim: &Sim, history: &SharedHistory, target: u64, tag: String) -> JoinHandle<()> {
    let handles = sim.handles();
    let history = history.clone();
    let pos = invoke_read(&history);
    tokio::spawn(async move {
        let result = propose_following(&handles, target, format!("r:{tag}").into_bytes()).await;
        let mut h = history.lock().expect("history lock");
        if let Ok(bytes) = result {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let (index, ids) = text.split_once('|').expect("index|ids");
            let seen = ids.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
            let log_index = Some(index.parse().expect("read index"));
            h.reads[pos].result = Some(ReadResult { log_index, seen });
        }
    })
}

fn invoke_read(history: &SharedHistory) -> usize {
    let mut h = history.lock().expect("history lock");
    let invoked = now(&mut h);
    h.reads.push(ReadOp { invoked, result: None });
    h.reads.len() - 1
}

/// A ReadIndex read on `target` (leader or follower): [`RaftHandle::read_barrier`], then the
/// node's local state. Its timeout is wall-clock (`leader_wait`); a timed-out read has no result.
fn spawn_barrier_read(sim: &Sim, history: &SharedHistory, target: u64) -> JoinHandle<()> {
    let history = history.clone();
    let pos = invoke_read(&history);
    let node = &sim.nodes[&target];
    let (handle, ledger) = (node.running.as_ref().map(|(h, _)| h.clone()), node.ledger.clone());
    tokio::spawn(async move {
        let Some(handle) = handle else { return };
        if handle.read_barrier().await.is_ok() {
            let seen = ledger.entries().into_iter().map(|(_, id)| id).collect();
            let mut h = history.lock().expect("history lock");
            h.reads[pos].result = Some(ReadResult { log_index: None, seen });
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The randomized run

/// Prints the seed again if the test panics while this is alive.
struct SeedReport(u64, &'static str);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "FAILED {} with seed {} — replay: BERTH_FAULT_SEED={} cargo test -p berth-controller --test faults {}",
                self.1, self.0, self.0, self.1
            );
        }
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("BERTH_FAULT_SEED") {
        Ok(s) => vec![s.trim().parse().expect("BERTH_FAULT_SEED must be a u64")],
        Err(_) => DEFAULT_SEEDS.to_vec(),
    }
}

/// What one run counted, printed at its end.
#[derive(Debug, Default)]
struct RunStats {
    crashes: usize,
    partitions: usize,
    drop_filters: usize,
    acked: usize,
    failed: usize,
    unknown: usize,
    log_reads: usize,
    index_reads: usize,
    snapshot_restores: usize,
    final_len: usize,
}

async fn randomized_run(n: u64, seed: u64, rounds: usize) -> RunStats {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sim = Sim::new(n, 25);
    let history: SharedHistory = Arc::default();
    let mut stats = RunStats::default();
    let mut ops = Vec::new();
    let max_down = ((n - 1) / 2) as usize;

    sim.tick_until("first leader", CONVERGE_TICKS, |s| s.leader().is_some()).await;
    for round in 0..rounds {
        match rng.gen_range(0..10) {
            0 | 1 if sim.crashed().len() < max_down => {
                let live = sim.live();
                // Crash the leader half of the time: that is where acked writes are at risk.
                let victim = match sim.leader() {
                    Some(l) if rng.gen_bool(0.5) => l,
                    _ => live[rng.gen_range(0..live.len())],
                };
                sim.crash(victim).await;
                stats.crashes += 1;
            }
            2 | 3 if !sim.crashed().is_empty() => {
                let crashed = sim.crashed();
                let id = crashed[rng.gen_range(0..crashed.len())];
                sim.start(id);
            }
            4 => {
                let mut ids = sim.ids.clone();
                for i in (1..ids.len()).rev() {
                    ids.swap(i, rng.gen_range(0..=i));
                }
                let cut = rng.gen_range(1..ids.len());
                sim.network.partition(&ids[..cut], &ids[cut..]);
                stats.partitions += 1;
            }
            5 => {
                let p = rng.gen_range(0.05..0.4);
                let filter_rng = Mutex::new(StdRng::seed_from_u64(rng.r#gen()));
                sim.network.add_drop_filter(move |_| {
                    filter_rng.lock().map(|mut r| r.gen_bool(p)).unwrap_or(false)
                });
                stats.drop_filters += 1;
            }
            6 | 7 => sim.network.heal(),
            _ => {}
        }
        let live = sim.live();
        for k in 0..rng.gen_range(1..=6) {
            let target = live[rng.gen_range(0..live.len())];
            ops.push(spawn_write(&sim, &history, format!("s{seed}-r{round}-w{k}"), target));
        }
        for k in 0..rng.gen_range(0..=2) {
            let target = live[rng.gen_range(0..live.len())];
            ops.push(spawn_read(&sim, &history, target, format!("r{round}-{k}")));
        }
        for _ in 0..rng.gen_range(0..=2) {
            let target = live[rng.gen_range(0..live.len())];
            ops.push(spawn_barrier_read(&sim, &history, target));
        }
        for _ in 0..rng.gen_range(2..=15) {
            sim.tick().await;
        }
    }

    // Stop the faults, bring everyone back, and converge on one log.
    sim.network.heal();
    for id in sim.crashed() {
        sim.start(id);
    }
    // ReadIndex requests a node dropped (no leader known) end only by their wall-clock
    // timeout (`leader_wait`), so this wait also lets real time pass.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for i in 0.. {
        if ops.iter().all(JoinHandle::is_finished) {
            break;
        }
        assert!(std::time::Instant::now() < give_up, "client operations still pending");
        sim.tick().await;
        if i > CONVERGE_TICKS {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    sim.tick_until("a leader after healing", CONVERGE_TICKS, |s| s.leader().is_some()).await;
    let leader = sim.leader().expect("leader");
    let barrier = sim.handles();
    let mut fin = tokio::spawn(async move {
        propose_following(&barrier, leader, b"w:final-barrier".to_vec()).await
    });
    let mut barrier_index = None;
    for _ in 0..CONVERGE_TICKS {
        if fin.is_finished() {
            let r = (&mut fin).await.expect("barrier task");
            barrier_index = Some(
                String::from_utf8_lossy(&r.expect("barrier write")).parse::<u64>().expect("index"),
            );
            break;
        }
        sim.tick().await;
    }
    let barrier_index = barrier_index.expect("the barrier write was acknowledged");
    sim.tick_until("every node applied the barrier", CONVERGE_TICKS, |s| {
        s.ids.iter().all(|&id| s.applied(id) >= barrier_index)
    })
    .await;

    check_history(&sim, &history.lock().expect("history lock"), &mut stats);
    stats.snapshot_restores =
        sim.nodes.values().map(|n| n.ledger.restores.load(Ordering::SeqCst)).sum();
    sim.shutdown().await;
    stats
}

fn check_history(sim: &Sim, history: &History, stats: &mut RunStats) {
    let logs: BTreeMap<u64, Vec<(u64, String)>> =
        sim.nodes.iter().map(|(id, n)| (*id, n.ledger.entries())).collect();
    let (first_id, reference) = logs.iter().next().expect("nodes");
    for (id, log) in &logs {
        assert_eq!(log, reference, "node {id} and node {first_id} applied different logs");
        assert!(log.windows(2).all(|w| w[0].0 < w[1].0), "node {id}: indices not increasing");
        let distinct: BTreeSet<&String> = log.iter().map(|(_, w)| w).collect();
        assert_eq!(distinct.len(), log.len(), "node {id}: a write was applied twice");
    }
    let at: HashMap<&str, u64> = reference.iter().map(|(i, w)| (w.as_str(), *i)).collect();
    stats.final_len = reference.len();

    for w in &history.writes {
        match &w.outcome {
            Outcome::Acked { index, .. } => {
                stats.acked += 1;
                assert_eq!(
                    at.get(w.id.as_str()),
                    Some(index),
                    "acknowledged write {} (index {index}) lost or moved",
                    w.id
                );
            }
            Outcome::Failed => {
                stats.failed += 1;
                assert!(!at.contains_key(w.id.as_str()), "write {} failed but was applied", w.id);
            }
            Outcome::Unknown => stats.unknown += 1,
            Outcome::Pending => panic!("write {} never completed", w.id),
        }
    }
    // Real-time order: a write acked before another was invoked sits earlier in the log.
    let acked: Vec<(u64, u64, u64, &str)> = history
        .writes
        .iter()
        .filter_map(|w| match w.outcome {
            Outcome::Acked { at, index } => Some((w.invoked, at, index, w.id.as_str())),
            _ => None,
        })
        .collect();
    for &(_, a_at, a_index, a_id) in &acked {
        for &(b_invoked, _, b_index, b_id) in &acked {
            assert!(
                a_at >= b_invoked || a_index < b_index,
                "write {a_id} was acked before {b_id} was invoked but applied after it"
            );
        }
    }
    for r in &history.reads {
        let Some(ReadResult { log_index, seen }) = &r.result else { continue };
        match log_index {
            Some(_) => stats.log_reads += 1,
            None => stats.index_reads += 1,
        }
        let expected: Vec<&String> = match log_index {
            // A log read sees exactly the entries before its own.
            Some(index) => reference.iter().filter(|(i, _)| i < index).map(|(_, w)| w).collect(),
            // A ReadIndex read sees a prefix of the log.
            None => reference.iter().take(seen.len()).map(|(_, w)| w).collect(),
        };
        assert_eq!(
            seen.iter().collect::<Vec<_>>(),
            expected,
            "read (log index {log_index:?}) did not see a prefix of the log"
        );
        let seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
        for w in &history.writes {
            if let Outcome::Acked { at, .. } = w.outcome {
                assert!(
                    at > r.invoked || seen.contains(w.id.as_str()),
                    "stale read ({}): invoked at t={} after write {} was acked at t={at}, missed it",
                    if log_index.is_some() { "log" } else { "ReadIndex" },
                    r.invoked,
                    w.id
                );
            }
        }
    }
}

#[tokio::test]
async fn randomized_faults_three_nodes_lose_no_acknowledged_write() {
    for seed in seeds() {
        println!("faults: n=3 seed={seed} (replay: BERTH_FAULT_SEED={seed})");
        let _report = SeedReport(seed, "randomized_faults_three_nodes_lose_no_acknowledged_write");
        let stats = randomized_run(3, seed, 150).await;
        println!("faults: n=3 seed={seed} {stats:?}");
        assert!(stats.acked > 0, "the run acknowledged nothing: {stats:?}");
    }
}

#[tokio::test]
async fn randomized_faults_five_nodes_lose_no_acknowledged_write() {
    for seed in seeds() {
        println!("faults: n=5 seed={seed} (replay: BERTH_FAULT_SEED={seed})");
        let _report = SeedReport(seed, "randomized_faults_five_nodes_lose_no_acknowledged_write");
        let stats = randomized_run(5, seed, 100).await;
        println!("faults: n=5 seed={seed} {stats:?}");
        assert!(stats.acked > 0, "the run acknowledged nothing: {stats:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Proof #2 and #3 as directed scenarios

/// Ticks only `id` until it leads (so the test chooses who campaigns).
async fn elect(sim: &mut Sim, id: u64) {
    for _ in 0..CONVERGE_TICKS {
        if sim.handle(id).is_some_and(|h| h.is_leader()) {
            return;
        }
        let _ = sim.handle(id).expect("running").tick();
        sim.settle().await;
    }
    panic!("node {id} did not become leader");
}

async fn write(sim: &mut Sim, on: u64, id: &str) -> u64 {
    let h = sim.handle(on).expect("running");
    let cmd = format!("w:{id}").into_bytes();
    let mut task = tokio::spawn(async move { h.propose(cmd).await });
    for _ in 0..CONVERGE_TICKS {
        if task.is_finished() {
            let bytes = (&mut task).await.expect("join").expect("write acknowledged");
            return String::from_utf8_lossy(&bytes).parse().expect("index");
        }
        sim.tick().await;
    }
    panic!("write {id} on node {on} not acknowledged");
}

#[tokio::test]
async fn isolated_leader_acknowledges_nothing_and_catches_up_after_heal() {
    let mut sim = Sim::new(3, 1000);
    elect(&mut sim, 1).await;
    write(&mut sim, 1, "before").await;
    sim.network.isolate(1);
    // A write on the isolated leader can never be committed.
    let h1 = sim.handle(1).expect("running");
    let stranded = tokio::spawn(async move { h1.propose(b"w:stranded".to_vec()).await });
    sim.tick_until("a new leader among 2 and 3", CONVERGE_TICKS, |s| {
        matches!(s.leader(), Some(2 | 3))
    })
    .await;
    let new_leader = sim.leader().expect("leader");
    write(&mut sim, new_leader, "after").await;
    // check_quorum makes the old leader step down; its stranded write fails, never acked.
    sim.tick_until("the old leader steps down", CONVERGE_TICKS, |s| {
        !s.handle(1).expect("running").is_leader()
    })
    .await;
    sim.tick_until("the stranded write is answered", CONVERGE_TICKS, |_| stranded.is_finished())
        .await;
    match stranded.await.expect("join") {
        Err(RaftError::LeadershipLost { .. }) => {}
        other => panic!("the isolated leader answered its write with {other:?}"),
    }
    sim.network.heal();
    let target = sim.applied(new_leader);
    sim.tick_until("node 1 catches up", CONVERGE_TICKS, |s| s.applied(1) >= target).await;
    let ids: Vec<String> = sim.nodes[&1].ledger.entries().into_iter().map(|(_, w)| w).collect();
    assert_eq!(ids, ["before", "after"], "old leader converged on the majority's log");
    sim.shutdown().await;
}

#[tokio::test]
async fn restarted_follower_installs_a_snapshot_and_converges() {
    const THRESHOLD: u64 = 10;
    let mut sim = Sim::new(3, THRESHOLD);
    elect(&mut sim, 1).await;
    write(&mut sim, 1, "w0").await;
    sim.tick_until("node 3 applied w0", CONVERGE_TICKS, |s| {
        s.nodes[&3].ledger.entries().len() == 1
    })
    .await;
    sim.crash(3).await;
    // Well past the threshold: the leader compacts the entries node 3 is missing.
    for i in 1..=(4 * THRESHOLD) {
        write(&mut sim, 1, &format!("w{i}")).await;
    }
    sim.start(3);
    // Counted after the start, which restores node 3's own stored snapshot (if any).
    let restores_before = sim.nodes[&3].ledger.restores.load(Ordering::SeqCst);
    let target = sim.applied(1);
    sim.tick_until("node 3 converges", CONVERGE_TICKS, |s| s.applied(3) >= target).await;
    assert_eq!(sim.nodes[&3].ledger.entries(), sim.nodes[&1].ledger.entries());
    let restores = sim.nodes[&3].ledger.restores.load(Ordering::SeqCst) - restores_before;
    assert!(restores >= 1, "node 3 caught up without installing a snapshot");
    sim.shutdown().await;
}
