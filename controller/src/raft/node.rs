//! [`RaftNode`]: the one task that owns the `RawNode` (its client is [`RaftHandle`]).
//!
//! Loop (RUST-STACK §8): wait for an input, drain up to [`MAX_INPUTS_PER_READY`] more, then
//! handle one Ready:
//! 1. send `messages` (leader appends/heartbeats: they don't depend on local state);
//! 2. install a received snapshot (log store + `StateMachine::restore` + address book);
//! 3. stage entries + hard state, write them as ONE batch and flush (one fsync per Ready);
//! 4. only then send `persisted_messages` (votes, append acks);
//! 5. answer read-index waiters; apply committed entries in order (at most
//!    [`MAX_APPLY_BYTES_PER_READY`] a Ready: the rest comes with the next turn, taken without
//!    waiting for an input), answering proposers; `advance`; repeat for the `LightReady`;
//!    `advance_apply`;
//! 6. snapshot the state machine every `snapshot_threshold` applied entries and compact
//!    (encoding off the loop when the state machine defers it: `node_snapshot.rs`).
//!
//! A proposal is answered only from step 5, i.e. after its entry is committed, durable on a
//! quorum (including here) and applied. Membership changes, reads and leadership transfer are
//! in `node_membership.rs` (same type, second `impl` block).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use raft::eraftpb::{ConfState, Entry, EntryType, Snapshot};
use raft::prelude::Message;
use raft::{RawNode, StateRole, Storage};
use slog::Drain as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::handle::{IndexReply, Input, ProposalReply, RaftHandle};
use super::log_store::LogStore;
use super::members::{
    ANNOUNCE_CONTEXT, AddressBook, MemberAddress, MembershipView, decode_envelope, encode_envelope,
};
use super::{RaftConfig, RaftError, RaftTransport, Role, RoleState, StateMachine};
use crate::storage::KvBackend;

/// Capacity of a node's input channel. Large enough to absorb a burst of client proposals
/// plus a round of raft messages from every peer; when full, proposers wait (backpressure)
/// and inbound raft messages are dropped (raft retransmits).
pub const INPUT_CHANNEL_CAPACITY: usize = 4096;

/// Inputs handled before one Ready. Every proposal drained here shares the Ready's single
/// fsync, which is where Raft write throughput comes from; the cap bounds the latency of the
/// first proposal in a batch and the size of one write batch.
pub const MAX_INPUTS_PER_READY: usize = 1024;

/// Bytes of committed entries applied per Ready (raft's `max_committed_size_per_ready`; one
/// entry always goes, however large). A Ready with more leaves the rest to the next turn of the
/// loop, which first sends heartbeats, handles ticks and messages: a burst of large commands
/// (placements of 1,000 tasks, batches of 512 reports) no longer holds the loop for seconds,
/// which made leaders miss heartbeats and lose their quorum under load.
pub const MAX_APPLY_BYTES_PER_READY: u64 = 256 * 1024;

/// Index and term of the snapshot every initial member of a fresh group starts from. It holds
/// the initial membership and address book, so a member that joins later is always caught up
/// by a snapshot (there is no log entry before it that it could miss).
pub const BOOTSTRAP_INDEX: u64 = 1;

/// Proposal id carried in the entry context, matching an applied entry to its waiter.
pub(super) type ProposalId = [u8; 16];

/// The Raft node: owns the `RawNode`, the state machine and the pending proposals.
pub struct RaftNode<S: StateMachine> {
    pub(super) config: RaftConfig,
    pub(super) raw: RawNode<LogStore>,
    pub(super) state_machine: S,
    transport: Arc<dyn RaftTransport>,
    inputs: mpsc::Receiver<Input>,
    /// For the ticker: does not keep the channel open on its own.
    pub(super) weak_inputs: mpsc::WeakSender<Input>,
    role_tx: watch::Sender<RoleState>,
    applied_tx: watch::Sender<u64>,
    members_tx: watch::Sender<MembershipView>,
    pub(super) pending: HashMap<ProposalId, ProposalReply>,
    /// The one membership change in flight, proposed here.
    pub(super) pending_conf: Option<(ProposalId, IndexReply)>,
    /// Read requests received since the last Ready: they share one ReadIndex round.
    pub(super) read_batch: Vec<IndexReply>,
    /// ReadIndex rounds in flight, by request context.
    pub(super) read_waiters: HashMap<u64, Vec<IndexReply>>,
    pub(super) read_seq: u64,
    /// Membership as of `applied` (the log store keeps the one as of its snapshot).
    pub(super) conf_state: ConfState,
    /// Address book as of `applied`.
    pub(super) book: AddressBook,
    pub(super) applied: u64,
    /// A deferred snapshot is being encoded off the loop; at most one at a time.
    pub(super) snapshot_in_flight: bool,
    /// A deferred snapshot that finished encoding, to be stored after the next Ready.
    pub(super) encoded_snapshot: Option<super::node_snapshot::EncodedSnapshot>,
    pub(super) ticks: u64,
    /// A tick is waiting in `inputs`: the ticker sends no other until it is handled, so a loop
    /// that was busy does not catch up with a burst of ticks (which would expire election and
    /// quorum timeouts at once, measured in time the loop could not have used anyway).
    tick_queued: Arc<AtomicBool>,
    snapshots_installed: Arc<AtomicU64>,
    /// Shared with the handles: the commit index, for readiness.
    commit: Arc<AtomicU64>,
    last_term: u64,
    stop_waiters: Vec<oneshot::Sender<()>>,
}

impl<S: StateMachine> RaftNode<S> {
    /// Opens the log in `backend`, restores `state_machine` from the latest snapshot, and
    /// builds the node; raft replays committed entries after the snapshot on its first Ready.
    /// Fresh storage with `peers` is bootstrapped from a snapshot at [`BOOTSTRAP_INDEX`]
    /// holding that membership and `config.addresses`. A fresh single-voter group campaigns
    /// at once.
    pub fn new(
        config: RaftConfig,
        backend: Arc<dyn KvBackend>,
        mut state_machine: S,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<(Self, RaftHandle), RaftError> {
        config.validate()?;
        let mut store = LogStore::open(backend)?;
        if !store.is_initialized() && !config.peers.is_empty() {
            let book: AddressBook = config
                .addresses
                .iter()
                .filter(|(id, _)| config.peers.contains(id))
                .map(|(id, peer)| (*id, MemberAddress { peer: peer.clone(), client: None }))
                .collect();
            let mut snapshot = Snapshot::default();
            let meta = snapshot.mut_metadata();
            meta.index = BOOTSTRAP_INDEX;
            meta.term = 1;
            meta.set_conf_state(ConfState::from((config.peers.clone(), Vec::new())));
            snapshot.data = encode_envelope(&book, &state_machine.snapshot()).into();
            store.apply_snapshot(&snapshot)?;
            store.commit(true)?;
        }
        let applied = store.snapshot_index();
        let mut book = AddressBook::new();
        if let Some(snapshot) = store.latest_snapshot()? {
            let (snap_book, state) = decode_envelope(&snapshot.data)?;
            state_machine.restore(state);
            book = snap_book;
        }
        let conf_state = store.conf_state().clone();
        let sole_voter = conf_state.voters == [config.id] && conf_state.learners.is_empty();
        let conf_change_pending = Self::log_has_conf_change(&store)?;

        let logger = slog::Logger::root(slog_stdlog::StdLog.fuse(), slog::o!());
        let mut raw = RawNode::new(&config.to_raft_config(applied), store, &logger)?;
        if sole_voter && !conf_change_pending {
            raw.campaign()?;
        }

        let (tx, rx) = mpsc::channel(INPUT_CHANNEL_CAPACITY);
        let role = role_of(&raw);
        let (role_tx, role_rx) = watch::channel(role);
        let (applied_tx, applied_rx) = watch::channel(applied);
        let (members_tx, members_rx) = watch::channel(MembershipView::default());
        let snapshots_installed = Arc::new(AtomicU64::new(0));
        let commit = Arc::new(AtomicU64::new(raw.raft.raft_log.committed));
        let handle = RaftHandle {
            commit: commit.clone(),
            metrics: config.metrics.clone(),
            id: config.id,
            inputs: tx.clone(),
            role: role_rx,
            applied: applied_rx,
            members: members_rx,
            snapshots_installed: snapshots_installed.clone(),
            leader_wait: config.leader_wait(),
        };
        let mut node = Self {
            config,
            raw,
            state_machine,
            transport,
            inputs: rx,
            weak_inputs: tx.downgrade(),
            role_tx,
            applied_tx,
            members_tx,
            pending: HashMap::new(),
            pending_conf: None,
            read_batch: Vec::new(),
            read_waiters: HashMap::new(),
            read_seq: 0,
            conf_state,
            book,
            applied,
            snapshot_in_flight: false,
            encoded_snapshot: None,
            ticks: 0,
            tick_queued: Arc::new(AtomicBool::new(false)),
            snapshots_installed,
            commit,
            last_term: role.term,
            stop_waiters: Vec::new(),
        };
        node.fill_address_hints();
        node.publish();
        Ok((node, handle))
    }

    /// [`RaftNode::new`], then runs the node on a tokio task until [`RaftHandle::shutdown`].
    pub fn spawn(
        config: RaftConfig,
        backend: Arc<dyn KvBackend>,
        state_machine: S,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<(RaftHandle, JoinHandle<Result<(), RaftError>>), RaftError> {
        let (node, handle) = Self::new(config, backend, state_machine, transport)?;
        let task = tokio::spawn(node.run(std::future::pending()));
        Ok((handle, task))
    }

    /// A group of one (`peers` is forced to `[config.id]`), run on a thread of its own
    /// ([`RaftNode::run_on_own_thread`]) with no transport; the node stops, ticker included, on
    /// [`RaftHandle::shutdown`]. A fresh group is leader on return.
    pub async fn start_single(
        config: RaftConfig,
        backend: Arc<dyn KvBackend>,
        state_machine: S,
    ) -> Result<RaftHandle, RaftError> {
        let config = RaftConfig { peers: vec![config.id], ..config };
        let id = config.id;
        let (node, handle) = Self::new(config, backend, state_machine, Arc::new(NoPeers))?;
        let task = node.run_on_own_thread()?;
        tokio::spawn(async move {
            // Nobody joins this task: report a failed loop here (proposers see `Stopped`).
            if let Ok(Err(e)) = task.await {
                tracing::error!(id, error = %e, "raft node stopped with an error");
            }
        });
        Ok(handle)
    }

    /// Runs the node until [`RaftHandle::shutdown`] (or every handle is dropped) on an OS thread
    /// of its own, `raft-loop`, driving a single-threaded tokio runtime; the returned task ends
    /// with the loop's result. A controller's tokio workers also serve thousands of agent
    /// sessions and API calls: as one task among them the loop waited its turn behind them on
    /// every Ready (commits of a 50,000-task scale-up took seconds, `bench -- sim`); as a thread
    /// the kernel schedules it beside the workers. Whatever the loop spawns (ticker, snapshot
    /// jobs) runs on that runtime; the gRPC transport spawns its peer senders on the runtime it
    /// was made on.
    pub fn run_on_own_thread(self) -> Result<JoinHandle<Result<(), RaftError>>, RaftError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("raft-loop-io")
            .build()
            .map_err(|e| RaftError::Spawn(format!("runtime: {e}")))?;
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("raft-loop".into())
            .spawn(move || {
                let result = runtime.block_on(self.run(std::future::pending()));
                // Its snapshot and compaction jobs hold the storage: the loop has stopped once
                // they have too (dropping the runtime waits for them), so the data dir can be
                // opened again at once.
                drop(runtime);
                let _ = done_tx.send(result);
            })
            .map_err(|e| RaftError::Spawn(format!("thread: {e}")))?;
        Ok(tokio::spawn(async move { done_rx.await.unwrap_or(Err(RaftError::Stopped)) }))
    }

    /// Drives the node until `shutdown` resolves, a [`RaftHandle::shutdown`] arrives, or every
    /// handle is dropped. A clean stop snapshots the state machine and flushes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RaftError> {
        if let Some(interval) = self.config.tick_interval {
            let queued = self.tick_queued.clone();
            tokio::spawn(run_ticker(self.weak_inputs.clone(), interval, queued));
        }
        let mut shutdown = std::pin::pin!(shutdown);
        let result = self.drive(&mut shutdown).await;
        let result = result.and_then(|()| self.take_snapshot());
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(RaftError::Stopped));
        }
        let waiters = std::mem::take(&mut self.stop_waiters);
        // Release the storage (e.g. the sled lock) before telling anyone we have stopped.
        drop(self);
        for w in waiters {
            let _ = w.send(());
        }
        result
    }

    async fn drive(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), RaftError> {
        // A restarted sole voter campaigned in `new`: commit its no-op and replay the log now,
        // not on the first input, which may be a long time coming.
        self.on_ready()?;
        self.publish();
        loop {
            // Committed entries left over by the last Ready (`MAX_APPLY_BYTES_PER_READY`) are
            // applied without waiting for an input.
            let mut drained = 0;
            if !self.raw.has_ready() {
                let first = tokio::select! {
                    biased;
                    input = self.inputs.recv() => input,
                    () = shutdown.as_mut() => None,
                };
                let Some(first) = first else { return Ok(()) };
                self.handle_input(first);
                drained = 1;
            }
            for _ in drained..MAX_INPUTS_PER_READY {
                match self.inputs.try_recv() {
                    Ok(input) => self.handle_input(input),
                    Err(_) => break,
                }
            }
            self.start_read_round();
            self.on_ready()?;
            if self.raw.store().take_snapshot_request() {
                self.take_snapshot()?;
            } else if !self.snapshot_in_flight
                && self.applied
                    >= self.raw.store().snapshot_index() + self.config.snapshot_threshold
            {
                self.start_periodic_snapshot()?;
            }
            if let Some(encoded) = self.encoded_snapshot.take() {
                self.store_encoded_snapshot(encoded)?;
            }
            self.publish();
            if !self.stop_waiters.is_empty() {
                return Ok(());
            }
        }
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Tick => {
                self.tick_queued.store(false, Ordering::Release);
                self.raw.tick();
                self.ticks += 1;
                if self.ticks.is_multiple_of(self.config.election_tick as u64) {
                    self.announce_client_address();
                }
            }
            Input::Step(msg) => {
                if let Err(e) = self.raw.step(*msg) {
                    tracing::debug!(id = self.config.id, error = %e, "raft message rejected");
                }
            }
            Input::Propose { command, reply } => self.propose(command, reply),
            Input::ChangeMembership { change, reply } => self.change_membership(change, reply),
            Input::ReadIndex { reply } => self.read_batch.push(reply),
            Input::TransferLeader { reply } => {
                let _ = reply.send(self.transfer_leader());
            }
            Input::ReportSnapshot { to, ok } => {
                let status =
                    if ok { raft::SnapshotStatus::Finish } else { raft::SnapshotStatus::Failure };
                self.raw.report_snapshot(to, status);
            }
            Input::Unreachable(to) => self.raw.report_unreachable(to),
            Input::Shutdown(done) => self.stop_waiters.push(done),
            Input::SnapshotEncoded(encoded) => {
                self.snapshot_in_flight = false;
                self.encoded_snapshot = Some(encoded);
            }
        }
    }

    fn propose(&mut self, command: Vec<u8>, reply: ProposalReply) {
        if self.raw.raft.state != StateRole::Leader {
            let leader = known_leader(&self.raw);
            let _ = reply.send(Err(RaftError::NotLeader { leader }));
            return;
        }
        let id: ProposalId = *uuid::Uuid::new_v4().as_bytes();
        match self.raw.propose(id.to_vec(), command) {
            Ok(()) => {
                self.pending.insert(id, reply);
            }
            // Dropped by a leader only while it transfers leadership away.
            Err(raft::Error::ProposalDropped) => {
                let _ = reply.send(Err(RaftError::NotLeader { leader: None }));
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), RaftError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        self.transport.send(ready.take_messages());

        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let (book, state) = decode_envelope(&snapshot.data)?;
            self.raw.mut_store().apply_snapshot(&snapshot)?;
            self.state_machine.restore(state);
            self.book = book;
            self.fill_address_hints();
            self.applied = snapshot.get_metadata().index;
            self.conf_state = snapshot.get_metadata().get_conf_state().clone();
            self.snapshots_installed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(id = self.config.id, index = self.applied, "installed snapshot");
        }
        let store = self.raw.mut_store();
        store.append(ready.entries())?;
        if let Some(hs) = ready.hs() {
            store.set_hard_state(hs.clone())?;
        }
        // One batch, one fsync: entries, hard state and any snapshot become durable together.
        store.commit(true)?;

        self.transport.send(ready.take_persisted_messages());
        self.answer_reads(ready.take_read_states());
        self.apply_committed(ready.take_committed_entries())?;

        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            // Not flushed here: every entry up to `commit` is already durable, and raft
            // re-learns a lost commit index from the quorum (or, alone, by re-committing its
            // own log on re-election). It becomes durable with the next Ready or snapshot.
            let store = self.raw.mut_store();
            store.set_commit(commit)?;
            store.commit(false)?;
        }
        self.transport.send(light.take_messages());
        self.apply_committed(light.take_committed_entries())?;
        self.raw.advance_apply();
        Ok(())
    }

    fn apply_committed(&mut self, entries: Vec<Entry>) -> Result<(), RaftError> {
        for entry in entries {
            self.applied = entry.index;
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    // A new leader's no-op has neither data nor a proposal id.
                    if entry.data.is_empty() && entry.context.is_empty() {
                        continue;
                    }
                    if entry.context[..] == *ANNOUNCE_CONTEXT {
                        self.apply_announcement(&entry);
                        continue;
                    }
                    let response = self.state_machine.apply(entry.index, &entry.data);
                    let waiter = ProposalId::try_from(&entry.context[..])
                        .ok()
                        .and_then(|id| self.pending.remove(&id));
                    if let Some(reply) = waiter {
                        let _ = reply.send(Ok((response, entry.index)));
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change_entry(&entry)?;
                }
            }
        }
        Ok(())
    }

    /// Snapshots the state machine at `applied`, stores it and compacts the log up to it.
    fn take_snapshot(&mut self) -> Result<(), RaftError> {
        let index = self.applied;
        if index <= self.raw.store().snapshot_index() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let term = self.raw.store().term(index)?;
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        snapshot.data = encode_envelope(&self.book, &self.state_machine.snapshot()).into();
        let store = self.raw.mut_store();
        store.save_snapshot_and_compact(&snapshot)?;
        store.commit(true)?;
        self.config.metrics.snapshot_taken(started.elapsed());
        tracing::debug!(id = self.config.id, index, term, "state machine snapshot stored");
        Ok(())
    }

    /// Publishes role, applied index and membership; fails proposals whose leader stepped
    /// down and reads of an older term.
    fn publish(&mut self) {
        let role = role_of(&self.raw);
        self.observe(&role);
        if !role.is_leader() {
            for (_, reply) in self.pending.drain() {
                let _ = reply.send(Err(RaftError::LeadershipLost { term: role.term }));
            }
            if let Some((_, reply)) = self.pending_conf.take() {
                let _ = reply.send(Err(RaftError::LeadershipLost { term: role.term }));
            }
        }
        if role.term != self.last_term {
            self.last_term = role.term;
            for (_, waiters) in self.read_waiters.drain() {
                for w in waiters {
                    let _ = w.send(Err(RaftError::NotLeader { leader: role.leader_id }));
                }
            }
        }
        self.role_tx.send_if_modified(|r| {
            let changed = *r != role;
            *r = role;
            changed
        });
        let applied = self.applied;
        self.applied_tx.send_if_modified(|a| {
            let changed = *a != applied;
            *a = applied;
            changed
        });
        let view = MembershipView {
            voters: self.conf_state.voters.clone(),
            learners: self.conf_state.learners.clone(),
            addresses: self.book.clone(),
        };
        self.members_tx.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
    }

    /// Updates the Raft series and the shared commit index (before `role_tx` changes).
    fn observe(&self, role: &RoleState) {
        let m = &self.config.metrics;
        let commit = self.raw.raft.raft_log.committed;
        self.commit.store(commit, Ordering::Relaxed);
        m.term.set(role.term as i64);
        m.commit_index.set(commit as i64);
        m.applied_index.set(self.applied as i64);
        let store = self.raw.store();
        if let (Ok(first), Ok(last)) = (store.first_index(), store.last_index()) {
            m.log_entries.set((last + 1).saturating_sub(first) as i64);
        }
        if self.role_tx.borrow().leader_id != role.leader_id {
            m.leader_changes.inc();
        }
    }

    /// Peer addresses from the config fill the gaps of the replicated book (a restarted member
    /// may be given addresses the log never carried; the book wins where both know a node).
    fn fill_address_hints(&mut self) {
        for (id, peer) in &self.config.addresses {
            self.book
                .entry(*id)
                .or_insert_with(|| MemberAddress { peer: peer.clone(), client: None });
        }
    }

    /// True if the log after the snapshot holds a membership change, which a restarted sole
    /// voter must replay before it may assume it is alone.
    fn log_has_conf_change(store: &LogStore) -> Result<bool, RaftError> {
        let (first, last) = (store.first_index()?, store.last_index()?);
        if last < first {
            return Ok(false);
        }
        let entries =
            store.entries(first, last + 1, None, raft::GetEntriesContext::empty(false))?;
        Ok(entries.iter().any(|e| e.get_entry_type() != EntryType::EntryNormal))
    }
}

/// Transport of a group of one: there is nobody to send to.
struct NoPeers;

impl RaftTransport for NoPeers {
    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            tracing::warn!(count = msgs.len(), "single-node raft dropped messages to peers");
        }
    }
}

pub(super) fn known_leader(raw: &RawNode<LogStore>) -> Option<u64> {
    let id = raw.raft.leader_id;
    (id != raft::INVALID_ID).then_some(id)
}

fn role_of(raw: &RawNode<LogStore>) -> RoleState {
    RoleState {
        role: if raw.raft.state == StateRole::Leader { Role::Leader } else { Role::Follower },
        term: raw.raft.term,
        leader_id: known_leader(raw),
    }
}

/// Sends a tick every `interval` while the node runs. Skips a tick while the previous one is
/// still `queued` (unhandled) or the inbox is full (raft only needs ticks to be roughly
/// periodic, and a tick the loop was too busy to take is time it could not have used).
async fn run_ticker(
    inputs: mpsc::WeakSender<Input>,
    interval: std::time::Duration,
    queued: Arc<AtomicBool>,
) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let Some(tx) = inputs.upgrade() else { return };
        if queued.swap(true, Ordering::AcqRel) {
            continue;
        }
        match tx.try_send(Input::Tick) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => queued.store(false, Ordering::Release),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
