//! The container observer: one poll loop per agent that lists this instance's containers (by the
//! `berth.instance-id` label), inspects the ones whose state changed, and publishes a numbered
//! snapshot that every task worker watches.
//!
//! Exit detection is by polling rather than Docker events: one list call per
//! [`POLL_INTERVAL`] per agent, whatever the task count, works the same against the simulated
//! runtime, and can never miss an event across a daemon or agent restart. Workers poke the
//! observer after each action so that steps do not wait for the next tick.
//!
//! A container is inspected again when its listed state changes, or when the list shows a health
//! verdict different from the inspected one (health changes while the state stays "running").

use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerState, LABEL_INSTANCE_ID, LABEL_TASK_ID,
};
use std::collections::HashMap;
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
    pub by_task: HashMap<String, Vec<ContainerInfo>>,
}

impl Snapshot {
    pub fn task(&self, task_id: &str) -> &[ContainerInfo] {
        self.by_task.get(task_id).map(Vec::as_slice).unwrap_or(&[])
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
        loop {
            let generation = started.fetch_add(1, Ordering::SeqCst) + 1;
            match poll(runtime.as_ref(), &instance_id, &mut cache).await {
                Ok(by_task) => {
                    if tx.send(Arc::new(Snapshot { generation, by_task })).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing containers failed; retrying"),
            }
            tokio::select! {
                _ = poke.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
    (handle, join)
}

async fn poll(
    runtime: &dyn ContainerRuntime,
    instance_id: &str,
    cache: &mut HashMap<String, ContainerInfo>,
) -> Result<HashMap<String, Vec<ContainerInfo>>, crate::runtime::RuntimeError> {
    let listed = runtime.list(LABEL_INSTANCE_ID, instance_id).await?;
    let mut by_task: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
    let mut seen = HashMap::new();
    for c in listed {
        // The list's health is a hint (`None` = not shown), so only a shown, different verdict
        // calls for a fresh inspect.
        let unchanged = |prev: &ContainerInfo| {
            prev.state == c.state
                && c.state != ContainerState::Other
                && (c.health.is_none() || c.health == prev.health)
        };
        let info = match cache.get(&c.id) {
            Some(prev) if unchanged(prev) => prev.clone(),
            _ => match runtime.inspect(&c.id).await {
                Ok(info) => info,
                // Removed between list and inspect: it is gone.
                Err(crate::runtime::RuntimeError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            },
        };
        seen.insert(info.id.clone(), info.clone());
        if let Some(task) = info.label(LABEL_TASK_ID) {
            by_task.entry(task.to_string()).or_default().push(info);
        }
    }
    *cache = seen;
    Ok(by_task)
}
