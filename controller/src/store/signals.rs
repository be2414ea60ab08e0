//! [`InstanceSignals`]: wakes the agent sessions of the container instances an applied command
//! touched, and only those.
//!
//! A session used to wake on every applied index and look at its instance: with 5,000 agents
//! connected each applied command cost 5,000 task wake-ups and 15,000 lock acquisitions
//! (`bench -- sim`), although one command touches a handful of instances. Now the state machine
//! collects the instances a command touched ([`super::index::TaskIndex::take_touched`]: a task
//! on it added, changed or removed, or the instance record changed — its session, connection or
//! identity) and signals them after the apply; a restored snapshot signals every session.
//!
//! A signal is a [`Notify`] permit per session: one that arrives while the session is busy is
//! kept, so no change is missed, and several coalesce into one wake-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Sessions waiting for changes, by instance id.
#[derive(Default)]
pub struct InstanceSignals {
    waiting: Mutex<HashMap<String, Vec<Arc<Notify>>>>,
}

/// One session's subscription: wakes when its instance is touched; unsubscribes on drop.
pub struct Signal {
    signals: Arc<InstanceSignals>,
    instance_id: String,
    notify: Arc<Notify>,
}

impl Signal {
    /// Resolves once the instance was touched since the last call (at once if it was meanwhile).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        let mut waiting = self.signals.lock();
        if let Some(list) = waiting.get_mut(&self.instance_id) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if list.is_empty() {
                waiting.remove(&self.instance_id);
            }
        }
    }
}

impl InstanceSignals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<Notify>>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A subscription to `instance_id`'s changes (taken before reading the state it compares).
    pub fn subscribe(self: &Arc<Self>, instance_id: &str) -> Signal {
        let notify = Arc::new(Notify::new());
        self.lock().entry(instance_id.to_string()).or_default().push(notify.clone());
        Signal { signals: self.clone(), instance_id: instance_id.to_string(), notify }
    }

    /// Wakes the sessions of `instance_ids` (repeats are fine).
    pub fn notify(&self, instance_ids: &[String]) {
        if instance_ids.is_empty() {
            return;
        }
        let waiting = self.lock();
        for id in instance_ids {
            for n in waiting.get(id).into_iter().flatten() {
                n.notify_one();
            }
        }
    }

    /// Wakes every session (the whole state was replaced).
    pub fn notify_all(&self) {
        for n in self.lock().values().flatten() {
            n.notify_one();
        }
    }

    /// Sessions subscribed (for tests and metrics).
    pub fn subscribed(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn woke(s: &Signal) -> bool {
        tokio::time::timeout(Duration::from_millis(50), s.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn only_touched_instances_wake_and_a_signal_is_kept_until_taken() {
        let signals = Arc::new(InstanceSignals::default());
        let a = signals.subscribe("a");
        let b = signals.subscribe("b");
        signals.notify(&["a".to_string(), "a".to_string()]);
        assert!(woke(&a).await, "a was touched");
        assert!(!woke(&a).await, "two touches before the wake coalesce into one");
        assert!(!woke(&b).await, "b was not touched");
        signals.notify_all();
        assert!(woke(&a).await && woke(&b).await);
    }

    #[tokio::test]
    async fn two_sessions_of_one_instance_both_wake_and_drop_unsubscribes() {
        let signals = Arc::new(InstanceSignals::default());
        let old = signals.subscribe("i");
        let new = signals.subscribe("i");
        assert_eq!(signals.subscribed(), 2);
        signals.notify(&["i".to_string()]);
        assert!(woke(&old).await && woke(&new).await);
        drop(old);
        assert_eq!(signals.subscribed(), 1);
        drop(new);
        assert_eq!(signals.subscribed(), 0);
        assert!(signals.lock().is_empty(), "no empty entry is left behind");
    }
}
