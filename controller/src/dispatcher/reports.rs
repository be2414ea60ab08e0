//! Batching of agent task reports: every session of this controller hands its reports to one
//! [`ReportBatcher`], which proposes whatever has queued as one `ReportTaskStatuses` command
//! (about [`MAX_BATCH`] reports at most), with up to [`IN_FLIGHT`] commands in flight. A session
//! submits a group (the reports that arrived while its previous group was in flight) and waits
//! for it before submitting the next, so one agent's reports apply in the order it sent them
//! (a group is never split); under load batches grow instead of the Raft log (thousands of
//! agents cost a few commands per round trip, not one command per report).
//!
//! The loop starts with the first report (inside the server's runtime) and ends when the
//! dispatcher (the last sender) is dropped.

use crate::clock::Clock;
use crate::propose::Proposer;
use crate::store::Command;
use crate::store::command::InstanceReport;
use berth_proto::model::TaskStatusReport;
use std::sync::{Arc, OnceLock};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most reports in one command (a report is a few hundred bytes of JSON).
pub const MAX_BATCH: usize = 512;
/// Commands of reports proposed and not yet applied, at most.
pub const IN_FLIGHT: usize = 4;
/// Reports waiting for a batch, at most (sessions wait beyond it: back-pressure).
const QUEUE: usize = 16 * 1024;

/// How a report fared: applied (possibly changing nothing), refused by the state machine (the
/// task is on another instance), or not recorded (the proposal failed; the message says why).
#[derive(Debug, Clone, PartialEq)]
pub enum ReportOutcome {
    Applied,
    Refused,
    Failed(String),
}

struct Pending {
    reports: Vec<InstanceReport>,
    done: oneshot::Sender<Vec<ReportOutcome>>,
}

/// Shared by every session of one dispatcher; cheap to clone.
#[derive(Clone)]
pub struct ReportBatcher {
    proposer: Proposer,
    clock: Arc<dyn Clock>,
    tx: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

impl ReportBatcher {
    pub fn new(proposer: Proposer, clock: Arc<dyn Clock>) -> Self {
        ReportBatcher { proposer, clock, tx: Arc::default() }
    }

    /// Queues a group of one agent's reports and waits until its batch is applied (or failed);
    /// one outcome per report, in order.
    pub async fn submit(
        &self,
        instance_id: &str,
        reports: Vec<TaskStatusReport>,
    ) -> Vec<ReportOutcome> {
        let n = reports.len();
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(self.proposer.clone(), self.clock.clone(), rx));
            tx
        });
        let (done, outcome) = oneshot::channel();
        let reports = reports
            .into_iter()
            .map(|report| InstanceReport { instance_id: instance_id.to_string(), report })
            .collect();
        let failed = |m: &str| vec![ReportOutcome::Failed(m.to_string()); n];
        if tx.send(Pending { reports, done }).await.is_err() {
            return failed("the report batcher stopped");
        }
        outcome.await.unwrap_or_else(|_| failed("the report batch was dropped"))
    }
}

async fn run(proposer: Proposer, clock: Arc<dyn Clock>, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut size = first.reports.len();
        let mut batch = vec![first];
        while size < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => {
                    size += p.reports.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let proposer = proposer.clone();
        let now = clock.now();
        tokio::spawn(async move {
            let mut reports = Vec::with_capacity(size);
            let mut waiters = Vec::with_capacity(batch.len());
            for p in batch {
                let ids: Vec<String> = p.reports.iter().map(|r| r.report.task_id.clone()).collect();
                reports.extend(p.reports);
                waiters.push((ids, p.done));
            }
            let result = proposer.propose(&Command::ReportTaskStatuses { reports, now }).await;
            drop(slot);
            match result {
                Ok(applied) => {
                    let refused: std::collections::HashSet<&str> =
                        applied.rejected.iter().map(String::as_str).collect();
                    for (ids, done) in waiters {
                        let outcomes = ids
                            .iter()
                            .map(|id| {
                                if refused.contains(id.as_str()) {
                                    ReportOutcome::Refused
                                } else {
                                    ReportOutcome::Applied
                                }
                            })
                            .collect();
                        let _ = done.send(outcomes);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (ids, done) in waiters {
                        let _ = done.send(vec![ReportOutcome::Failed(message.clone()); ids.len()]);
                    }
                }
            }
        });
    }
}
