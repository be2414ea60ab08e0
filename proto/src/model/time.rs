//! Timestamps: epoch milliseconds inside, fractional epoch seconds in JSON (as the ECS API).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time as milliseconds since the Unix epoch. Chosen by a proposer (never read from a
/// clock inside the state machine), so applying a command is deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 1000.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Timestamp((secs * 1000.0).round() as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn timestamp_round_trips_as_fractional_seconds() {
        let t = Timestamp(1_621_198_756_207);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "1621198756.207");
        assert_eq!(serde_json::from_str::<Timestamp>(&s).unwrap(), t);
    }
}

/// Injected time: proposers stamp commands and agents stamp reports with `Clock::now()`, so
/// state machines never read a clock and tests can fix time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}
