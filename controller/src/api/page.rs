//! Bounded list pagination, as ECS does it: `maxResults` (1–100; absent: the API's default) and
//! an opaque `nextToken`.
//!
//! A token names the sort key of the last item returned, so the next page starts strictly
//! after it: items added or removed between pages never make another item appear twice or be
//! skipped (an item is either before the cursor or after it). The token is
//! `hex(version ‖ kind ‖ key ‖ fnv64(version ‖ kind ‖ key))`: the checksum rejects a token that
//! was mangled, and `kind` one that another List API issued. It is not a secret and not signed —
//! all it can name is a position in a list the caller may read anyway.
//!
//! * [`Page::from_request`] validates `maxResults` / `nextToken`;
//! * [`paginate`] cuts one page from items sorted by key and makes the reply's token;
//! * [`encode`] / [`decode`] are the token codec.

use crate::error::{Error, Result};

/// The largest `maxResults` any ECS List API takes.
pub const MAX_RESULTS: i32 = 100;
/// The default page size of most ECS List APIs.
pub const DEFAULT_RESULTS: i32 = 100;
/// ECS ListServices answers 10 services unless asked for more.
pub const DEFAULT_SERVICE_RESULTS: i32 = 10;
/// Longest token accepted (a key is a name or an ARN; far below this).
const MAX_TOKEN_CHARS: usize = 4096;
const VERSION: u8 = 1;

/// Which List API issued a token (a token is only valid for the API that issued it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ListKind {
    Clusters = 1,
    TaskDefinitions = 2,
    Services = 3,
    Tasks = 4,
    ContainerInstances = 5,
}

/// One validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub kind: ListKind,
    pub max: usize,
    /// Sort key of the last item already returned.
    pub after: Option<String>,
}

impl Page {
    /// Validates the request's fields (`default` applies when `max_results` is absent).
    pub fn from_request(
        kind: ListKind,
        max_results: Option<i32>,
        next_token: &str,
        default: i32,
    ) -> Result<Page> {
        let max = max_results.unwrap_or(default);
        if !(1..=MAX_RESULTS).contains(&max) {
            return Err(Error::invalid(format!(
                "maxResults {max} is invalid: it must be between 1 and {MAX_RESULTS}."
            )));
        }
        let after = if next_token.is_empty() { None } else { Some(decode(kind, next_token)?) };
        Ok(Page { kind, max: max as usize, after })
    }
}

/// The page of `items` (sorted by their key, ascending) after `page.after`, and the token
/// for the next page when more remain.
pub fn paginate<T>(items: Vec<(String, T)>, page: &Page) -> (Vec<T>, String) {
    let mut rest = items
        .into_iter()
        .filter(|(k, _)| page.after.as_ref().is_none_or(|a| k.as_str() > a.as_str()))
        .peekable();
    let mut out = Vec::with_capacity(page.max.min(16));
    let mut last = None;
    while out.len() < page.max {
        let Some((k, v)) = rest.next() else { break };
        out.push(v);
        last = Some(k);
    }
    let token = match (rest.peek(), last) {
        (Some(_), Some(k)) => encode(page.kind, &k),
        _ => String::new(),
    };
    (out, token)
}

/// The token naming "after `key`" for list `kind`.
pub fn encode(kind: ListKind, key: &str) -> String {
    let mut bytes = Vec::with_capacity(key.len() + 10);
    bytes.push(VERSION);
    bytes.push(kind as u8);
    bytes.extend_from_slice(key.as_bytes());
    let sum = fnv64(&bytes);
    bytes.extend_from_slice(&sum.to_be_bytes());
    hex::encode(bytes)
}

/// The key a token names; any malformed, tampered or foreign token is `nextToken is invalid`.
pub fn decode(kind: ListKind, token: &str) -> Result<String> {
    let invalid = || Error::invalid("nextToken is invalid.");
    if token.len() > MAX_TOKEN_CHARS {
        return Err(invalid());
    }
    let bytes = hex::decode(token).map_err(|_| invalid())?;
    if bytes.len() < 10 {
        return Err(invalid());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let sum = u64::from_be_bytes(sum.try_into().map_err(|_| invalid())?);
    if fnv64(body) != sum || body[0] != VERSION || body[1] != kind as u8 {
        return Err(invalid());
    }
    String::from_utf8(body[2..].to_vec()).map_err(|_| invalid())
}

/// FNV-1a 64 (an integrity check against mangled tokens, not a MAC).
fn fnv64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// A sort key for a timestamp that orders as the number does (negative values too).
pub fn time_key(millis: i64) -> String {
    format!("{:020}", (millis as u64) ^ (1 << 63))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("k{i:04}"), i)).collect()
    }

    fn message(e: Error) -> String {
        tonic::Status::from(e).message().to_string()
    }

    #[test]
    fn token_round_trips_and_is_bound_to_its_list() {
        let t = encode(ListKind::Tasks, "arn:aws:ecs:r:1:task/default/abc");
        assert_eq!(
            decode(ListKind::Tasks, &t).expect("decode"),
            "arn:aws:ecs:r:1:task/default/abc"
        );
        assert!(decode(ListKind::Services, &t).is_err(), "another list's token");
        let mut bad = t.clone().into_bytes();
        let i = 6; // inside the key
        bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).expect("hex");
        assert!(decode(ListKind::Tasks, &bad).is_err(), "a flipped byte");
        for garbage in ["zz", "00", "not-a-token", &"ab".repeat(3000)] {
            let e = decode(ListKind::Tasks, garbage).expect_err(garbage);
            assert!(message(e).contains("nextToken is invalid"), "{garbage}");
        }
    }

    #[test]
    fn max_results_is_bounded_and_named() {
        for bad in [0, -1, 101] {
            let e = Page::from_request(ListKind::Clusters, Some(bad), "", 100).expect_err("bad");
            let m = message(e);
            assert!(m.contains("maxResults") && m.contains("between 1 and 100"), "{m}");
        }
        let p = Page::from_request(ListKind::Services, None, "", DEFAULT_SERVICE_RESULTS)
            .expect("default");
        assert_eq!(p.max, 10);
        assert_eq!(
            Page::from_request(ListKind::Services, Some(100), "", 10).expect("100").max,
            100
        );
    }

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let mut page = Page::from_request(ListKind::Tasks, Some(100), "", 100).expect("page");
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let (got, token) = paginate(items(250), &page);
            pages += 1;
            seen.extend(got);
            if token.is_empty() {
                break;
            }
            page = Page::from_request(ListKind::Tasks, Some(100), &token, 100).expect("next");
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..250).collect::<Vec<_>>());
        // An exact multiple of the page size ends without an empty trailing page.
        let p = Page::from_request(ListKind::Tasks, Some(5), "", 100).expect("page");
        assert_eq!(paginate(items(5), &p).1, "");
    }

    #[test]
    fn a_removed_cursor_item_skips_nothing() {
        let p = Page::from_request(ListKind::Tasks, Some(2), "", 100).expect("page");
        let (first, token) = paginate(items(5), &p);
        assert_eq!(first, vec![0, 1]);
        let next = Page::from_request(ListKind::Tasks, Some(2), &token, 100).expect("next");
        let without_1: Vec<_> = items(5).into_iter().filter(|(_, v)| *v != 1).collect();
        assert_eq!(paginate(without_1, &next).0, vec![2, 3]);
    }

    #[test]
    fn time_keys_sort_as_numbers() {
        let mut v = [5i64, -3, 0, i64::MAX, i64::MIN, 1_700_000_000_000];
        let mut keys: Vec<_> = v.iter().map(|t| time_key(*t)).collect();
        keys.sort();
        v.sort();
        assert_eq!(keys, v.iter().map(|t| time_key(*t)).collect::<Vec<_>>());
    }
}
