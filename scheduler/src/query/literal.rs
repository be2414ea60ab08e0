//! Typed literals of the query language: agent versions and `registeredAt` dates.
//!
//! * [`Version`]: dot-separated numbers (`1.14.5`), an optional leading `v`, anything from the
//!   first `-` or `+` on ignored (`1.20.0-rc1` is `1.20.0`); missing parts count as zero, so
//!   `1.14` == `1.14.0`.
//! * [`DateRange`]: the formats ECS documents for `registeredAt` — `2018-06-18`,
//!   `2018-06-18T22:28:28`, `2018-06-18T22:28:28Z`, `2018-06-18T22:28:28+00:00` (also `+0000`
//!   and fractional seconds `…:28.250`). Times without an offset are UTC. A literal stands for
//!   the span it names — a whole day, a whole second, or one millisecond with a fraction — so
//!   `registeredAt == 2018-06-18` is true all that day, `< 2018-06-18` means before it starts and
//!   `> 2018-06-18` after it ends. Parsed here (Hinnant's days-from-civil) rather than with a
//!   date crate: the formats are fixed and UTC-only.

use std::cmp::Ordering;

/// A dotted version, compared part by part as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version(Vec<u64>);

impl Version {
    pub(crate) fn parse(text: &str) -> Option<Version> {
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let core = text.split(['-', '+']).next().unwrap_or("");
        if core.is_empty() {
            return None;
        }
        core.split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    part.parse().ok()
                }
            })
            .collect::<Option<Vec<u64>>>()
            .map(Version)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|k| {
                let a = self.0.get(k).copied().unwrap_or(0);
                let b = other.0.get(k).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

/// The half-open span `[start, end)` of epoch milliseconds a date literal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateRange {
    pub(crate) start: i64,
    pub(crate) end: i64,
}

const DAY_MS: i64 = 86_400_000;

impl DateRange {
    /// Parses one of the documented formats (module doc); `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<DateRange> {
        let b = text.as_bytes();
        let num = |from: usize, len: usize| -> Option<i64> {
            let s = b.get(from..from + len)?;
            if !s.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(s).ok()?.parse().ok()
        };
        let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
        if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
            return None;
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let midnight = days_from_civil(year, month, day) * DAY_MS;
        if b.len() == 10 {
            return Some(DateRange { start: midnight, end: midnight + DAY_MS });
        }
        if !matches!(b.get(10), Some(b'T' | b't'))
            || b.get(13) != Some(&b':')
            || b.get(16) != Some(&b':')
        {
            return None;
        }
        let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let mut at = 19;
        let mut millis = 0;
        let mut span = 1000;
        if b.get(at) == Some(&b'.') {
            let digits = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let frac = &text[at + 1..at + 1 + digits.min(3)];
            millis = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
            span = 1;
            at += 1 + digits;
        }
        let offset_minutes = match &b[at..] {
            [] | [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), ..] => {
                let rest = &text[at + 1..];
                let (h, m) = match rest.len() {
                    5 if rest.as_bytes()[2] == b':' => (num(at + 1, 2)?, num(at + 4, 2)?),
                    4 => (num(at + 1, 2)?, num(at + 3, 2)?),
                    _ => return None,
                };
                if h > 23 || m > 59 {
                    return None;
                }
                let total = h * 60 + m;
                if *sign == b'+' { total } else { -total }
            }
            _ => return None,
        };
        let start =
            midnight + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis;
        Some(DateRange { start, end: start + span })
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant, "chrono-compatible
/// low-level date algorithms").
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_with_missing_parts_as_zero() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("1.14.5") < v("1.14.10"));
        assert!(v("1.9") < v("1.10.0"));
        assert_eq!(v("1.14"), v("1.14"));
        assert_eq!(v("1.14").cmp(&v("1.14.0")), Ordering::Equal);
        assert_eq!(v("v1.20.0-rc1").cmp(&v("1.20.0")), Ordering::Equal);
        for bad in ["", "v", "1..2", "a.b", "1.x"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_parse_every_documented_format_as_utc_spans() {
        let day = DateRange::parse("2018-06-18").unwrap();
        assert_eq!(day.start, 1_529_280_000_000);
        assert_eq!(day.end - day.start, DAY_MS);
        let t = 1_529_360_908_000; // 2018-06-18T22:28:28Z
        for text in ["2018-06-18T22:28:28", "2018-06-18T22:28:28Z", "2018-06-18T22:28:28+00:00"] {
            assert_eq!(
                DateRange::parse(text),
                Some(DateRange { start: t, end: t + 1000 }),
                "{text}"
            );
        }
        assert_eq!(DateRange::parse("2018-06-19T00:28:28+02:00").unwrap().start, t);
        assert_eq!(DateRange::parse("2018-06-18T21:28:28-0100").unwrap().start, t);
        assert_eq!(
            DateRange::parse("2018-06-18T22:28:28.25Z"),
            Some(DateRange { start: t + 250, end: t + 251 })
        );
        assert_eq!(DateRange::parse("1970-01-01").unwrap().start, 0);
        assert_eq!(DateRange::parse("1969-12-31").unwrap().start, -DAY_MS);
        assert_eq!(DateRange::parse("2000-02-29").unwrap().start, 951_782_400_000);
    }

    #[test]
    fn dates_reject_malformed_and_impossible_values() {
        for bad in [
            "2018-6-18",
            "2018-02-30",
            "2019-02-29",
            "2018-13-01",
            "2018-06-18T24:00:00",
            "2018-06-18 22:28:28",
            "2018-06-18T22:28",
            "2018-06-18T22:28:28+5",
            "2018-06-18T22:28:28.",
            "2018-06-18T22:28:28Zjunk",
            "yesterday",
            "",
        ] {
            assert_eq!(DateRange::parse(bad), None, "{bad}");
        }
    }
}
