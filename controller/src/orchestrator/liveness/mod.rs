//! Node liveness, a leader-only loop: agents that stop heartbeating are marked disconnected, and
//! the tasks of an instance that stays disconnected for `lost_after` are marked STOPPED so the
//! service reconciler replaces them elsewhere.
//!
//! Data flow: every controller's dispatcher records the heartbeats its sessions receive and
//! writes them in batches (`Command::RecordHeartbeats`, `dispatcher/heartbeats.rs`); a session
//! that closes marks its agent disconnected at once (`SetAgentConnected`). On the leader,
//! [`LivenessMonitor`] wakes every [`LivenessConfig::check_interval`], asks the pure
//! [`decide::decide`] over the state, `now` and the time it became leader, and proposes the
//! resulting commands; apply re-checks each against the current state.
//!
//! When a lost agent comes back it registers again, and its full assignment set (`dispatcher/`)
//! no longer holds the lost tasks (they are STOPPED), so the agent stops and removes their
//! containers: the service never keeps two copies where one was wanted.
//!
//! Must not touch: agent sessions (the dispatcher owns them), Docker.

pub mod decide;

use super::until_leader;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::propose::Proposer;
use crate::store::{Command, SharedState};
use berth_proto::model::Timestamp;
pub use decide::{LOST_STOP_CODE, LivenessPolicy, lost_reason};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Liveness knobs. Defaults follow SwarmKit: a 5 s heartbeat period, disconnected after three
/// periods without one; the tasks of a disconnected agent are lost a minute later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How often agents heartbeat: announced to each agent in `Registered`, which then beats at it.
    /// Dispatchers write received heartbeats to the store twice per interval.
    pub heartbeat_interval: Duration,
    /// No heartbeat for this long (or at once when the session closes) → disconnected.
    pub heartbeat_grace: Duration,
    /// Disconnected for this much longer → the instance's tasks are lost (STOPPED, replaced).
    pub lost_after: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_grace: Duration::from_secs(15),
            lost_after: Duration::from_secs(60),
        }
    }
}

/// Bounds of the leader's check period (a tenth of the shorter threshold): often enough to act
/// within 10 % of a threshold, never busier than 100 checks a second.
const CHECK_INTERVAL_MIN: Duration = Duration::from_millis(10);
const CHECK_INTERVAL_MAX: Duration = Duration::from_secs(1);

impl LivenessConfig {
    /// Checks the fields; the error names the field and the rule.
    pub fn validate(&self) -> Result<()> {
        for (name, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("heartbeat_grace", self.heartbeat_grace),
            ("lost_after", self.lost_after),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("liveness {name}: must be greater than zero")));
            }
        }
        // A heartbeat can reach the store up to 1.5 intervals after the one before it (agent
        // period plus half a period of batching); a shorter grace would flap healthy agents.
        if self.heartbeat_grace < self.heartbeat_interval * 2 {
            return Err(Error::Config(format!(
                "liveness heartbeat_grace ({:?}) must be at least twice heartbeat_interval ({:?})",
                self.heartbeat_grace, self.heartbeat_interval
            )));
        }
        Ok(())
    }

    pub fn policy(&self) -> LivenessPolicy {
        LivenessPolicy {
            heartbeat_grace_millis: millis(self.heartbeat_grace),
            lost_after_millis: millis(self.lost_after),
        }
    }

    /// How often a dispatcher writes the heartbeats it received: half an interval.
    pub fn record_interval(&self) -> Duration {
        (self.heartbeat_interval / 2).max(CHECK_INTERVAL_MIN)
    }

    /// How often the leader runs the decision.
    pub fn check_interval(&self) -> Duration {
        (self.heartbeat_grace.min(self.lost_after) / 10)
            .clamp(CHECK_INTERVAL_MIN, CHECK_INTERVAL_MAX)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The leader-only loop (see the module map).
pub struct LivenessMonitor {
    proposer: Proposer,
    shared: SharedState,
    clock: Arc<dyn Clock>,
    config: LivenessConfig,
    /// When this controller took office as leader (the start of its grace); `None` otherwise.
    since: watch::Sender<Option<Timestamp>>,
}

impl LivenessMonitor {
    /// `proposer` must not forward: a deposed leader's decisions must not reach its successor.
    pub fn new(
        proposer: Proposer,
        shared: SharedState,
        clock: Arc<dyn Clock>,
        config: LivenessConfig,
    ) -> Self {
        let (since, _) = watch::channel(None);
        LivenessMonitor { proposer, shared, clock, config, since }
    }

    /// Follows when the loop took office: `Some(time)` while leading, `None` otherwise.
    pub fn leader_since(&self) -> watch::Receiver<Option<Timestamp>> {
        self.since.subscribe()
    }

    /// Runs until shutdown: idle while a follower; while leader, a check every
    /// `check_interval`, counting the grace from the moment this controller became leader.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut role = self.proposer.raft().role();
        loop {
            if !until_leader(&mut role, &mut shutdown).await {
                return Ok(());
            }
            let leader_since = self.clock.now();
            self.since.send_replace(Some(leader_since));
            tracing::info!(
                grace = ?self.config.heartbeat_grace,
                lost_after = ?self.config.lost_after,
                "leader: node liveness started; no agent is declared disconnected within one grace"
            );
            let mut ticker = tokio::time::interval(self.config.check_interval());
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    r = role.changed() => {
                        if r.is_err() { return Ok(()); }
                        if !role.borrow_and_update().is_leader() { break; }
                    }
                    _ = ticker.tick() => {}
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
                if let Err(e) = self.check(leader_since).await {
                    tracing::warn!(error = %e, "liveness check failed; retrying on the next one");
                }
            }
            self.since.send_replace(None);
            tracing::info!("no longer leader: node liveness stopped");
        }
    }

    /// One check: decide at `now` and propose each command. Returns how many changed something.
    pub async fn check(&self, leader_since: Timestamp) -> Result<usize> {
        let now = self.clock.now();
        let commands =
            decide::decide(&self.shared.read(), now, leader_since, &self.config.policy());
        let mut changed = 0;
        for cmd in commands {
            let applied = self.proposer.propose(&cmd).await?;
            if applied.ids.is_empty() {
                continue; // the state moved on since the decision (the agent came back)
            }
            changed += 1;
            match &cmd {
                Command::MarkAgentDisconnected { instance_id, last_heartbeat, .. } => {
                    tracing::warn!(
                        instance_id = %instance_id,
                        silent_ms = now.millis() - last_heartbeat.millis(),
                        "no heartbeat within the grace: agent marked disconnected"
                    );
                }
                Command::MarkTasksLost(m) => {
                    tracing::warn!(
                        instance_id = %m.instance_id,
                        tasks = ?applied.ids,
                        "container instance lost: its tasks are marked STOPPED"
                    );
                    let events = decide::service_events(
                        &self.shared.read(),
                        &applied.ids,
                        now,
                        &mut crate::clock::new_id,
                    );
                    for event in events {
                        self.proposer.propose(&event).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_follow_swarmkit_and_validate_names_the_field() {
        let c = LivenessConfig::default();
        c.validate().expect("defaults are valid");
        assert_eq!(
            c.policy(),
            LivenessPolicy { heartbeat_grace_millis: 15_000, lost_after_millis: 60_000 }
        );
        assert_eq!(c.record_interval(), Duration::from_millis(2500));
        assert_eq!(c.check_interval(), Duration::from_secs(1));
        let quick = LivenessConfig {
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_grace: Duration::from_millis(300),
            lost_after: Duration::from_millis(200),
        };
        quick.validate().expect("quick config");
        assert_eq!(quick.check_interval(), Duration::from_millis(20));

        let zero = LivenessConfig { lost_after: Duration::ZERO, ..c.clone() };
        let err = zero.validate().expect_err("zero lost_after").to_string();
        assert!(err.contains("lost_after"), "{err}");
        let flappy = LivenessConfig { heartbeat_grace: Duration::from_secs(9), ..c };
        let err = flappy.validate().expect_err("grace below two intervals").to_string();
        assert!(err.contains("heartbeat_grace") && err.contains("twice"), "{err}");
    }
}
