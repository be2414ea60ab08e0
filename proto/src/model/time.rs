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

thread_local! {
    /// Set while [`IsoTimes`] serializes: timestamps come out as ISO-8601 strings.
    static ISO_TIMES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Serializes the wrapped value with every [`Timestamp`] in it as an ISO-8601 string with
/// milliseconds (`2017-04-13T21:37:28.932Z`), the way ECS events show times, instead of the
/// API's epoch seconds. The event log renders task and instance details straight to JSON text
/// with it (no `serde_json::Value` in between).
pub struct IsoTimes<'a, T: Serialize>(pub &'a T);

impl<T: Serialize> Serialize for IsoTimes<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let was = ISO_TIMES.with(|f| f.replace(true));
        let out = self.0.serialize(s);
        ISO_TIMES.with(|f| f.set(was));
        out
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if ISO_TIMES.with(std::cell::Cell::get) {
            return s.serialize_str(&super::event::iso8601_millis(*self));
        }
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
    fn iso_times_apply_only_inside_the_wrapper() {
        #[derive(Serialize)]
        struct T {
            at: Timestamp,
            maybe: Option<Timestamp>,
        }
        let t = T { at: Timestamp(1_492_119_448_932), maybe: None };
        assert_eq!(
            serde_json::to_string(&IsoTimes(&t)).unwrap(),
            r#"{"at":"2017-04-13T21:37:28.932Z","maybe":null}"#
        );
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"at":1492119448.932,"maybe":null}"#);
    }

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
