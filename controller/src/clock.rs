//! Injected time. The state machine never reads a clock: proposers stamp commands with
//! `Clock::now()`; tests use `ManualClock`.

use berth_proto::model::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub use berth_proto::model::{Clock, SystemClock};

/// A clock tests move by hand.
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(start.0)))
    }
    pub fn advance_millis(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// A fresh 32-hex id (task, instance, event ids): random, chosen by the proposer.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
