//! One conformance suite for every [`KvBackend`]: the same tests, generated per backend by
//! `kv_conformance!`, so the fake can never drift from the real thing.

use super::{KeyRange, KvBackend, KvError, KvPair, MemBackend, SledBackend, WriteBatch};

/// A backend under test plus whatever must outlive it (the sled temp dir).
struct Fixture {
    backend: Box<dyn KvBackend>,
    _dir: Option<tempfile::TempDir>,
}

fn mem_fixture() -> Fixture {
    Fixture { backend: Box::new(MemBackend::new()), _dir: None }
}

fn sled_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = SledBackend::open(dir.path()).expect("open sled");
    Fixture { backend: Box::new(backend), _dir: Some(dir) }
}

fn put(b: &dyn KvBackend, tree: &str, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(tree, key, value);
    b.write(batch).expect("write");
}

fn scan(b: &dyn KvBackend, tree: &str, range: KeyRange) -> Vec<KvPair> {
    b.scan(tree, range).expect("scan").collect::<Result<Vec<_>, KvError>>().expect("scan items")
}

fn keys(pairs: &[KvPair]) -> Vec<Vec<u8>> {
    pairs.iter().map(|(k, _)| k.clone()).collect()
}

pub(super) fn get_of_missing_key_is_none(b: &dyn KvBackend) {
    assert_eq!(b.get("t", b"nope").expect("get"), None);
}

pub(super) fn put_then_get_returns_latest_value(b: &dyn KvBackend) {
    put(b, "t", b"k", b"v1");
    put(b, "t", b"k", b"v2");
    assert_eq!(b.get("t", b"k").expect("get"), Some(b"v2".to_vec()));
}

pub(super) fn trees_are_independent_key_spaces(b: &dyn KvBackend) {
    put(b, "a", b"k", b"in-a");
    put(b, "b", b"k", b"in-b");
    assert_eq!(b.get("a", b"k").expect("get"), Some(b"in-a".to_vec()));
    assert_eq!(b.get("b", b"k").expect("get"), Some(b"in-b".to_vec()));
    assert_eq!(b.get("c", b"k").expect("get"), None);
}

pub(super) fn scan_is_ordered_by_bytes_and_bounded(b: &dyn KvBackend) {
    for i in [5u64, 1, 300, 2, 256] {
        put(b, "t", &i.to_be_bytes(), b"x");
    }
    let all = scan(b, "t", KeyRange::all());
    let expected: Vec<Vec<u8>> =
        [1u64, 2, 5, 256, 300].iter().map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(keys(&all), expected);

    let mid = scan(b, "t", KeyRange::between(2u64.to_be_bytes(), 256u64.to_be_bytes()));
    assert_eq!(keys(&mid), expected[1..3].to_vec());

    let tail = scan(b, "t", KeyRange::from(256u64.to_be_bytes()));
    assert_eq!(keys(&tail), expected[3..].to_vec());

    let last =
        b.scan("t", KeyRange::all()).expect("scan").next_back().expect("non-empty").expect("item");
    assert_eq!(last.0, 300u64.to_be_bytes().to_vec());
}

pub(super) fn scan_of_empty_or_inverted_range_is_empty(b: &dyn KvBackend) {
    put(b, "t", b"b", b"x");
    assert!(scan(b, "t", KeyRange::between(b"c".to_vec(), b"a".to_vec())).is_empty());
    assert!(scan(b, "t", KeyRange::between(b"b".to_vec(), b"b".to_vec())).is_empty());
    assert!(scan(b, "missing-tree", KeyRange::all()).is_empty());
}

pub(super) fn batch_applies_ops_in_order_across_trees(b: &dyn KvBackend) {
    put(b, "a", b"gone", b"x");
    let mut batch = WriteBatch::new();
    batch.put("a", b"k1".to_vec(), b"v1".to_vec());
    batch.put("b", b"k2".to_vec(), b"v2".to_vec());
    batch.delete("a", b"gone".to_vec());
    batch.put("a", b"k1".to_vec(), b"v1-later".to_vec());
    b.write(batch).expect("write");
    assert_eq!(b.get("a", b"k1").expect("get"), Some(b"v1-later".to_vec()));
    assert_eq!(b.get("b", b"k2").expect("get"), Some(b"v2".to_vec()));
    assert_eq!(b.get("a", b"gone").expect("get"), None);
}

pub(super) fn delete_range_removes_exactly_the_half_open_range(b: &dyn KvBackend) {
    for i in 1u64..=6 {
        put(b, "t", &i.to_be_bytes(), b"x");
    }
    put(b, "other", &3u64.to_be_bytes(), b"kept");
    let mut batch = WriteBatch::new();
    batch.delete_range("t", KeyRange::between(2u64.to_be_bytes(), 5u64.to_be_bytes()));
    b.write(batch).expect("write");
    let left: Vec<Vec<u8>> = [1u64, 5, 6].iter().map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(keys(&scan(b, "t", KeyRange::all())), left);
    assert_eq!(b.get("other", &3u64.to_be_bytes()).expect("get"), Some(b"kept".to_vec()));
}

pub(super) fn delete_range_sees_earlier_puts_of_the_same_batch(b: &dyn KvBackend) {
    put(b, "t", b"b", b"old");
    let mut batch = WriteBatch::new();
    batch.put("t", b"c".to_vec(), b"new-then-deleted".to_vec());
    batch.delete_range("t", KeyRange::from(b"b".to_vec()));
    batch.put("t", b"d".to_vec(), b"after".to_vec());
    b.write(batch).expect("write");
    assert_eq!(scan(b, "t", KeyRange::all()), vec![(b"d".to_vec(), b"after".to_vec())]);
}

pub(super) fn empty_batch_and_flush_succeed(b: &dyn KvBackend) {
    b.write(WriteBatch::new()).expect("empty write");
    put(b, "t", b"k", b"v");
    b.flush().expect("flush");
    assert_eq!(b.get("t", b"k").expect("get"), Some(b"v".to_vec()));
}

macro_rules! kv_conformance {
    ($module:ident, $fixture:ident) => {
        mod $module {
            use super::*;
            kv_conformance!(@tests $fixture,
                get_of_missing_key_is_none,
                put_then_get_returns_latest_value,
                trees_are_independent_key_spaces,
                scan_is_ordered_by_bytes_and_bounded,
                scan_of_empty_or_inverted_range_is_empty,
                batch_applies_ops_in_order_across_trees,
                delete_range_removes_exactly_the_half_open_range,
                delete_range_sees_earlier_puts_of_the_same_batch,
                empty_batch_and_flush_succeed,
            );
        }
    };
    (@tests $fixture:ident, $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let f = $fixture();
                super::$name(f.backend.as_ref());
            }
        )*
    };
}

kv_conformance!(mem, mem_fixture);
kv_conformance!(sled, sled_fixture);

#[test]
fn sled_data_survives_reopen_after_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let b = SledBackend::open(dir.path()).expect("open");
        put(&b, "t", b"k", b"durable");
        b.flush().expect("flush");
    }
    let b = SledBackend::open(dir.path()).expect("reopen");
    assert_eq!(b.get("t", b"k").expect("get"), Some(b"durable".to_vec()));
}
