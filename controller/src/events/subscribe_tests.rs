//! Subscriptions over an in-memory log: order, filters, ends, trimming, bounded memory.

use super::*;
use crate::store::events::EventCursor;
use berth_proto::model::{ClusterEvent, event};
use std::time::Duration;

/// Appends events `from..to`, alternating task and instance events; task events RUNNING on
/// even indexes.
fn append(log: &EventLog, from: u64, to: u64) {
    let events: Vec<ClusterEvent> = (from..to)
        .map(|i| ClusterEvent {
            version: "0".into(),
            id: format!("id-{i}"),
            detail_type: if i % 2 == 0 { event::TASK_STATE_CHANGE } else { event::INSTANCE_STATE_CHANGE }
                .into(),
            source: "aws.ecs".into(),
            account: "000000000000".into(),
            time: "2026-12-04T00:00:00Z".into(),
            region: "local".into(),
            resources: vec![format!("arn:{i}")],
            detail: serde_json::json!({"lastStatus": if i % 4 == 0 { "RUNNING" } else { "PENDING" }, "version": i, "pad": "x".repeat(200)}),
            index: i,
        })
        .collect();
    log.append(
        events,
        &EventCursor { next_index: to, first_index: log.tip().first, ..Default::default() },
    );
}

async fn next(rx: &mut mpsc::Receiver<Item>) -> Item {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the stream is open")
}

async fn indexes(rx: &mut mpsc::Receiver<Item>, n: usize) -> Vec<u64> {
    let mut out = vec![];
    for _ in 0..n {
        out.push(next(rx).await.unwrap().index);
    }
    out
}

fn all() -> Filter {
    Filter::new("", &[]).unwrap()
}

#[tokio::test]
async fn backlog_then_live_events_in_index_order() {
    let log = EventLog::in_memory();
    append(&log, 1, 6);
    let mut rx = subscribe(log.clone(), all(), Some(3), true).unwrap();
    assert_eq!(indexes(&mut rx, 3).await, [3, 4, 5]);
    append(&log, 6, 9);
    assert_eq!(indexes(&mut rx, 3).await, [6, 7, 8]);
    // Nothing more yet: the subscription waits.
    assert!(tokio::time::timeout(Duration::from_millis(100), rx.recv()).await.is_err());
}

#[tokio::test]
async fn without_follow_the_stream_ends_at_the_end_of_the_log_as_of_the_request() {
    let log = EventLog::in_memory();
    append(&log, 1, 5);
    let mut rx = subscribe(log.clone(), all(), None, false).unwrap();
    append(&log, 5, 7);
    assert_eq!(indexes(&mut rx, 4).await, [1, 2, 3, 4]);
    assert!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn filters_by_detail_type_and_pattern() {
    let log = EventLog::in_memory();
    append(&log, 1, 13);
    let tasks = Filter::new("", &["task".into()]).unwrap();
    let mut rx = subscribe(log.clone(), tasks, None, false).unwrap();
    assert_eq!(indexes(&mut rx, 6).await, [2, 4, 6, 8, 10, 12]);
    let running = Filter::new(r#"{"detail":{"lastStatus":["RUNNING"]}}"#, &[]).unwrap();
    let mut rx = subscribe(log.clone(), running, None, false).unwrap();
    assert_eq!(indexes(&mut rx, 3).await, [4, 8, 12]);
    assert!(rx.recv().await.is_none());
    let both = Filter::new(
        r#"{"detail":{"version":[{"numeric":[">",5]}]}}"#,
        &[event::INSTANCE_STATE_CHANGE.into()],
    )
    .unwrap();
    let mut rx = subscribe(log.clone(), both, None, false).unwrap();
    assert_eq!(indexes(&mut rx, 3).await, [7, 9, 11]);
    assert!(rx.recv().await.is_none());
}

#[test]
fn bad_filters_are_refused_with_the_rule() {
    let e = Filter::new(r#"{"detail":{"lastStatus":"RUNNING"}}"#, &[]).unwrap_err();
    assert!(e.to_string().contains("$.detail.lastStatus"), "{e}");
    let e = Filter::new("", &["TASKS".into()]).unwrap_err();
    assert!(e.to_string().contains("detail type 'TASKS' is not one of"), "{e}");
}

#[tokio::test]
async fn an_index_below_retention_is_refused_with_the_oldest_available() {
    let log = EventLog::in_memory();
    append(&log, 1, 11);
    log.set_cursor(&EventCursor { next_index: 11, first_index: 6, ..Default::default() }, false);
    let e = subscribe(log.clone(), all(), Some(2), true).unwrap_err();
    assert_eq!(e, SubscribeError::Trimmed { wanted: 2, oldest: 6 });
    assert!(e.to_string().contains("the oldest available index is 6"), "{e}");
    // Without an index: from the oldest kept.
    let mut rx = subscribe(log.clone(), all(), None, false).unwrap();
    assert_eq!(indexes(&mut rx, 5).await, [6, 7, 8, 9, 10]);
}

#[tokio::test]
async fn a_subscriber_overtaken_by_retention_is_told_where_to_resume() {
    let log = EventLog::in_memory();
    append(&log, 1, 2000);
    let mut rx = subscribe(log.clone(), all(), Some(1), true).unwrap();
    assert_eq!(next(&mut rx).await.unwrap().index, 1);
    // Retention drops everything below 1500 while the subscriber sits at its first batch.
    log.set_cursor(
        &EventCursor { next_index: 2000, first_index: 1500, ..Default::default() },
        false,
    );
    let mut last = 1;
    loop {
        match next(&mut rx).await {
            Ok(e) => {
                assert_eq!(e.index, last + 1, "no gap before the error");
                last = e.index;
            }
            Err(SubscribeError::Trimmed { wanted, oldest }) => {
                assert_eq!((wanted, oldest), (last + 1, 1500));
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

#[tokio::test]
async fn a_subscriber_that_reads_nothing_holds_a_bounded_number_of_events() {
    let log = EventLog::in_memory();
    let mut stalled = subscribe(log.clone(), all(), Some(1), true).unwrap();
    for start in (1..=10_000).step_by(100) {
        append(&log, start, start + 100);
        tokio::task::yield_now().await;
    }
    // Let the reader run as far as it can.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bound = memory_bound(1);
    let held = log.events_in_memory();
    assert!(held <= bound, "{held} events in memory, bound {bound}");
    // It still gets every event, in order, once it reads.
    let mut want = 1;
    while want <= 10_000 {
        let e = next(&mut stalled).await.unwrap();
        assert_eq!(e.index, want);
        want += 1;
    }
    assert!(log.events_in_memory() <= bound);
}

#[tokio::test]
async fn a_closing_log_ends_subscriptions_with_the_index_to_resume_from() {
    let log = EventLog::in_memory();
    append(&log, 1, 4);
    let mut rx = subscribe(log.clone(), all(), None, true).unwrap();
    assert_eq!(indexes(&mut rx, 3).await, [1, 2, 3]);
    log.close();
    assert_eq!(next(&mut rx).await.unwrap_err(), SubscribeError::Closing { next: 4 });
}
