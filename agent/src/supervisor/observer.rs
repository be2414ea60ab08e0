//! The container observer: one poll loop per agent that lists this instance's containers (by the
//! `berth.instance-id` label), inspects the ones whose state changed, and publishes a numbered
//! snapshot that every task worker watches.
//!
//! Changes are noticed three ways, so no step waits on a fixed interval: workers poke the
//! observer after each action; the runtime's change stream ([`ContainerRuntime::watch`], Docker's
//! events filtered by this instance's label) pokes it when a container exits or changes health
//! on its own; and one list call per [`POLL_INTERVAL`] stays as the safety net (it works the
//! same against the simulated runtime and cannot miss a change across a daemon or agent
//! restart, or while the event stream is being re-opened). Events only trigger polls; the
//! snapshot always comes from a list, so it never depends on an event being delivered. A
//! container named by an event is inspected at the next poll even when its listed state looks
//! unchanged (Docker emits `die` before its list view shows the container exited).
//!
//! A container is inspected again when its listed state changes, or when the list shows a health
//! verdict different from the inspected one (health changes while the state stays "running").

use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerState, LABEL_INSTANCE_ID, LABEL_TASK_ID,
};
use futures::FutureExt;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often the observer lists containers when nobody pokes it. One second bounds how late a
/// container exit is noticed (ECS notices through Docker events within about a second), at the
/// cost of one cheap list call per second per agent.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the runtime showed at one poll.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Poll number; a poll that started after [`ObserverHandle::next_gen`] returned `g` has
    /// `gen >= g`.
    pub generation: u64,
    /// A task's containers; the very same `Arc` as in the previous snapshot while none of them
    /// changed (so a worker can tell at once that its task's view did not move).
    pub by_task: HashMap<String, Arc<Vec<ContainerInfo>>>,
}

impl Snapshot {
    pub fn task(&self, task_id: &str) -> &[ContainerInfo] {
        self.by_task.get(task_id).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// True when `task_id`'s containers are unchanged between `self` and `other`.
    pub fn same_task(&self, other: &Snapshot, task_id: &str) -> bool {
        match (self.by_task.get(task_id), other.by_task.get(task_id)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// Shared handle to the observer loop.
#[derive(Clone)]
pub struct ObserverHandle {
    started: Arc<AtomicU64>,
    poke: Arc<Notify>,
    rx: watch::Receiver<Arc<Snapshot>>,
}

impl ObserverHandle {
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }

    /// The generation that the next poll to start will carry.
    pub fn next_gen(&self) -> u64 {
        self.started.load(Ordering::SeqCst) + 1
    }

    /// Asks for a poll now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Waits for a snapshot taken after this call (pokes the observer first). Returns `None` if
    /// the observer has stopped.
    pub async fn fresh(&self, rx: &mut watch::Receiver<Arc<Snapshot>>) -> Option<Arc<Snapshot>> {
        let min = self.next_gen();
        self.poke();
        Self::wait_for(rx, min).await
    }

    /// Waits for the next regular poll (no poke): used after errors, as a backoff.
    pub async fn next_tick(
        &self,
        rx: &mut watch::Receiver<Arc<Snapshot>>,
    ) -> Option<Arc<Snapshot>> {
        let min = self.next_gen();
        Self::wait_for(rx, min).await
    }

    async fn wait_for(rx: &mut watch::Receiver<Arc<Snapshot>>, min: u64) -> Option<Arc<Snapshot>> {
        rx.wait_for(|s| s.generation >= min).await.ok().map(|s| s.clone())
    }
}

/// Spawns the poll loop for `instance_id`; it ends when the returned handle's task is aborted.
pub fn spawn(
    runtime: Arc<dyn ContainerRuntime>,
    instance_id: String,
    interval: Duration,
) -> (ObserverHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let started = Arc::new(AtomicU64::new(0));
    let poke = Arc::new(Notify::new());
    let handle = ObserverHandle { started: started.clone(), poke: poke.clone(), rx };
    let join = tokio::spawn(async move {
        // Inspected details by container id, reused while the listed state is unchanged.
        let mut cache: HashMap<String, ContainerInfo> = HashMap::new();
        let mut events = runtime.watch(LABEL_INSTANCE_ID, &instance_id);
        let watchable = events.is_some();
        // Containers with an event since the last poll: inspected whatever the list says (the
        // engine emits `die` before its list view shows the container exited).
        let mut dirty: HashSet<String> = HashSet::new();
        let mut last: Arc<Snapshot> = Arc::default();
        loop {
            let generation = started.fetch_add(1, Ordering::SeqCst) + 1;
            let inspect = std::mem::take(&mut dirty);
            match poll(runtime.as_ref(), &instance_id, &mut cache, &inspect, &last.by_task).await {
                Ok(by_task) => {
                    last = Arc::new(Snapshot { generation, by_task });
                    if tx.send(last.clone()).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing containers failed; retrying"),
            }
            tokio::select! {
                _ = poke.notified() => {}
                _ = tokio::time::sleep(interval) => {
                    if watchable && events.is_none() {
                        events = runtime.watch(LABEL_INSTANCE_ID, &instance_id);
                    }
                }
                e = next_event(&mut events) => match e {
                    // One poll for a burst: take every event already delivered.
                    Some(id) => {
                        dirty.insert(id);
                        while let Some(Some(id)) =
                            events.as_mut().and_then(|s| s.next().now_or_never())
                        {
                            dirty.insert(id);
                        }
                    }
                    None => {
                        tracing::debug!("container event stream ended; re-opened on the next tick");
                        events = None;
                    }
                },
            }
        }
    });
    (handle, join)
}

async fn next_event(events: &mut Option<BoxStream<'static, String>>) -> Option<String> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// One poll: list, inspect what changed, group by task. A task none of whose containers
/// changed keeps `previous`'s `Arc` (nothing cloned for it).
async fn poll(
    runtime: &dyn ContainerRuntime,
    instance_id: &str,
    cache: &mut HashMap<String, ContainerInfo>,
    dirty: &HashSet<String>,
    previous: &HashMap<String, Arc<Vec<ContainerInfo>>>,
) -> Result<HashMap<String, Arc<Vec<ContainerInfo>>>, crate::runtime::RuntimeError> {
    let listed = runtime.list(LABEL_INSTANCE_ID, instance_id).await?;
    let mut seen: HashMap<String, ContainerInfo> = HashMap::with_capacity(listed.len());
    // Task id → its container ids in list order, and whether any of them is new or changed.
    let mut tasks: HashMap<String, (Vec<String>, bool)> = HashMap::new();
    for c in listed {
        // The list's health is a hint (`None` = not shown), so only a shown, different verdict
        // calls for a fresh inspect.
        let unchanged = |prev: &ContainerInfo| {
            prev.state == c.state
                && c.state != ContainerState::Other
                && (c.health.is_none() || c.health == prev.health)
        };
        let (info, changed) = match cache.remove(&c.id) {
            Some(prev) if unchanged(&prev) && !dirty.contains(&c.id) => (prev, false),
            _ => match runtime.inspect(&c.id).await {
                Ok(info) => (info, true),
                // Removed between list and inspect: it is gone.
                Err(crate::runtime::RuntimeError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            },
        };
        if let Some(task) = info.label(LABEL_TASK_ID) {
            let entry = tasks.entry(task.to_string()).or_default();
            entry.0.push(info.id.clone());
            entry.1 |= changed;
        }
        seen.insert(info.id.clone(), info);
    }
    let mut by_task = HashMap::with_capacity(tasks.len());
    for (task, (ids, changed)) in tasks {
        let kept = previous.get(&task).filter(|prev| {
            !changed && prev.len() == ids.len() && prev.iter().zip(&ids).all(|(p, id)| p.id == *id)
        });
        let infos = match kept {
            Some(prev) => prev.clone(),
            None => Arc::new(ids.iter().filter_map(|id| seen.get(id).cloned()).collect()),
        };
        by_task.insert(task, infos);
    }
    *cache = seen;
    Ok(by_task)
}
