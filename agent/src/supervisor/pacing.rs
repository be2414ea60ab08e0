//! Engine work pacing: removing stopped containers is background work, so it waits while tasks
//! of this agent are starting (bounded by [`REMOVE_DEFER_MAX`]).
//!
//! During a rolling update the engine starts the new tasks and stops the old ones at the same
//! time; on a small host every removal competes with the starts for the same CPU. The STOPPED
//! report never waits for a removal (it is published before the step), so deferring removals
//! brings the new tasks to RUNNING sooner and costs nothing that is measured or relied on.
//!
//! * [`StartGate::starting`] — a guard a worker holds while its task is starting;
//! * [`StartGate::wait_idle`] — waits until no task is starting, or the bound passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// A removal waits at most this long for starts to finish; then it goes ahead.
pub const REMOVE_DEFER_MAX: Duration = Duration::from_secs(30);

/// Counts the tasks that are starting.
#[derive(Debug, Default)]
pub struct StartGate {
    starting: AtomicUsize,
    idle: Notify,
}

/// Held while one task is starting; dropping it may open the gate.
#[derive(Debug)]
pub struct Starting(Arc<StartGate>);

impl Drop for Starting {
    fn drop(&mut self) {
        if self.0.starting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl StartGate {
    pub fn starting(self: &Arc<Self>) -> Starting {
        self.starting.fetch_add(1, Ordering::SeqCst);
        Starting(self.clone())
    }

    pub fn starting_count(&self) -> usize {
        self.starting.load(Ordering::SeqCst)
    }

    /// Returns once no task is starting, or after `max`.
    pub async fn wait_idle(&self, max: Duration) {
        let _ = tokio::time::timeout(max, async {
            loop {
                let notified = self.idle.notified();
                if self.starting_count() == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn removals_wait_for_starts_then_go() {
        let gate = Arc::new(StartGate::default());
        let t = Instant::now();
        gate.wait_idle(Duration::from_secs(10)).await; // nothing starting: at once
        assert!(t.elapsed() < Duration::from_secs(5));
        let a = gate.starting();
        let b = gate.starting();
        assert_eq!(gate.starting_count(), 2);
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait_idle(Duration::from_secs(60)).await })
        };
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one task is still starting");
        let t = Instant::now();
        drop(b);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the last start ending opens the gate")
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        // The bound: a start that never ends holds a removal for `max` only.
        let _stuck = gate.starting();
        let t = Instant::now();
        gate.wait_idle(Duration::from_millis(300)).await;
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
