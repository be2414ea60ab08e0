//! `random`: a uniformly random candidate, drawn from the pass's seeded stream.
//!
//! Every candidate gets an independent random score, so `random` leaves no ties and any
//! strategy listed after it has no effect (as in ECS).

use crate::rng::SeededRng;
use crate::strategy::{RankStrategy, Victim};
use crate::view::{ClusterState, TaskRequest};

/// The `random` strategy (no field).
pub(crate) struct Random;

impl Random {
    fn scores(n: usize, rng: &mut SeededRng) -> Vec<i64> {
        // Shift to keep every score away from the sentinels other strategies use.
        (0..n).map(|_| (rng.next_u64() >> 1) as i64).collect()
    }
}

impl RankStrategy for Random {
    fn score_placement(
        &self,
        _: &ClusterState,
        _: &TaskRequest,
        candidates: &[usize],
        rng: &mut SeededRng,
    ) -> Vec<i64> {
        Self::scores(candidates.len(), rng)
    }

    fn score_victims(
        &self,
        _: &ClusterState,
        victims: &[Victim<'_>],
        rng: &mut SeededRng,
    ) -> Vec<i64> {
        Self::scores(victims.len(), rng)
    }
}
