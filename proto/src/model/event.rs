//! Cluster events in the ECS EventBridge shape (ECS-NOTES §5), plus Berth's global `index`.
//!
//! The envelope is EventBridge's (`version` "0", `id`, `detail-type`, `source` "aws.ecs",
//! `account`, `time`, `region`, `resources`, `detail`); `detail` is type-specific JSON. `index`
//! is Berth's: strictly increasing across the whole event log, with no gaps. Also the ISO-8601
//! time formatting the events use.

use super::Timestamp;
use serde::{Deserialize, Serialize};

pub const TASK_STATE_CHANGE: &str = "ECS Task State Change";
pub const INSTANCE_STATE_CHANGE: &str = "ECS Container Instance State Change";
pub const SERVICE_ACTION: &str = "ECS Service Action";
pub const DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";

/// The four detail-types, with the short names `berth events --type` takes.
pub const DETAIL_TYPES: [(&str, &str); 4] = [
    ("TASK", TASK_STATE_CHANGE),
    ("INSTANCE", INSTANCE_STATE_CHANGE),
    ("SERVICE", SERVICE_ACTION),
    ("DEPLOYMENT", DEPLOYMENT_STATE_CHANGE),
];

/// The (short, full) detail-type a name stands for: a short name or a full ECS name, any case.
pub fn detail_type(name: &str) -> Option<(&'static str, &'static str)> {
    let name = name.trim();
    DETAIL_TYPES
        .iter()
        .find(|(short, full)| name.eq_ignore_ascii_case(short) || name.eq_ignore_ascii_case(full))
        .copied()
}

/// One event of the cluster event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvent {
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub account: String,
    pub time: String,
    pub region: String,
    pub resources: Vec<String>,
    pub detail: serde_json::Value,
    /// Berth's global position in the event log (1, 2, 3, …).
    pub index: u64,
}

/// `2017-04-13T21:37:29Z` (the envelope's `time`: second precision).
pub fn iso8601_seconds(t: Timestamp) -> String {
    let (date, secs_of_day, _) = civil(t);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// `2017-04-13T21:37:28.932Z` (timestamps inside `detail`).
pub fn iso8601_millis(t: Timestamp) -> String {
    let (date, secs_of_day, ms) = civil(t);
    format!(
        "{date}T{:02}:{:02}:{:02}.{ms:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// Parses what [`iso8601_seconds`] and [`iso8601_millis`] write (UTC, `Z`), back to a time.
pub fn parse_iso8601(text: &str) -> Option<Timestamp> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, ms) = match time.split_once('.') {
        Some((hms, frac)) => (hms, format!("{frac:0<3}").get(..3)?.parse::<i64>().ok()?),
        None => (time, 0),
    };
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant), the inverse of `civil`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Timestamp(((days * 86_400 + h * 3600 + m * 60 + s) * 1000) + ms))
}

/// (`YYYY-MM-DD`, seconds of the day, milliseconds) in UTC, by Howard Hinnant's days-to-civil.
fn civil(t: Timestamp) -> (String, i64, i64) {
    let ms = t.millis().rem_euclid(1000);
    let secs = t.millis().div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), secs_of_day, ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_match_known_instants() {
        // 2017-04-13T21:37:29Z is 1492119449 s after the epoch.
        assert_eq!(iso8601_seconds(Timestamp(1_492_119_449_932)), "2017-04-13T21:37:29Z");
        assert_eq!(iso8601_millis(Timestamp(1_492_119_449_932)), "2017-04-13T21:37:29.932Z");
        assert_eq!(iso8601_seconds(Timestamp(0)), "1970-01-01T00:00:00Z");
        // A leap day and the end of a year.
        assert_eq!(iso8601_seconds(Timestamp(951_782_400_000)), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_millis(Timestamp(1_798_761_599_999)), "2026-12-31T23:59:59.999Z");
    }

    #[test]
    fn detail_types_are_found_by_short_or_full_name_in_any_case() {
        assert_eq!(detail_type(" task"), Some(("TASK", TASK_STATE_CHANGE)));
        assert_eq!(
            detail_type("ecs deployment state change"),
            Some(("DEPLOYMENT", DEPLOYMENT_STATE_CHANGE))
        );
        assert_eq!(detail_type("NODE"), None);
    }

    #[test]
    fn iso_times_parse_back() {
        for ms in [0, 951_782_400_000, 1_492_119_449_932, 1_798_761_599_999, 4_102_444_800_123] {
            assert_eq!(parse_iso8601(&iso8601_millis(Timestamp(ms))), Some(Timestamp(ms)));
            let secs = ms - ms % 1000;
            assert_eq!(parse_iso8601(&iso8601_seconds(Timestamp(ms))), Some(Timestamp(secs)));
        }
        assert_eq!(parse_iso8601("2017-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso8601("2017-01-01 00:00:00"), None);
    }

    #[test]
    fn an_event_serializes_with_the_eventbridge_field_names() {
        let e = ClusterEvent {
            version: "0".into(),
            id: "x".into(),
            detail_type: TASK_STATE_CHANGE.into(),
            source: "aws.ecs".into(),
            account: "000000000000".into(),
            time: iso8601_seconds(Timestamp(0)),
            region: "local".into(),
            resources: vec!["arn".into()],
            detail: serde_json::json!({"version": 1}),
            index: 7,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["detail-type"], "ECS Task State Change");
        assert_eq!(v["index"], 7);
        assert_eq!(serde_json::from_value::<ClusterEvent>(v).unwrap(), e);
    }
}
