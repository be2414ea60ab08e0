//! Failover under load (issue 3, Proof #1): three real `berth-controller` processes
//! ([`ControllerCluster`]), four clients registering revisions of one task-definition family as
//! fast as they can, while the test `kill -9`s the leader, restarts it, kills another member and
//! restarts that one too.
//!
//! Each client writes a marker `c<client>-s<seq>` into an environment value and remembers the
//! revision every acknowledged write got. A client that sees an error moves to the next member
//! and keeps going (it does not retry the failed write: its outcome may be unknown). At the end:
//! * every acknowledged revision exists and carries the marker of the write acknowledged with it;
//! * no revision was acknowledged twice, and the family's revisions are exactly 1..=max;
//! * every member reports the same applied index and state digest.
//!
//! Phases advance on conditions (N more acknowledged writes, a new leader agreed, a restarted
//! member caught up), each with a deadline; nothing sleeps to synchronise.

use berth_proto::v1;
use berth_tests::cluster::{ControllerCluster, client_for};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const FAMILY: &str = "failover";
/// Small, so the log is compacted during the run and a restarted member may need a snapshot.
const SNAPSHOT_THRESHOLD: &str = "100";
const CLIENTS: usize = 4;
/// Acknowledged writes required between two faults: proof the group is serving again.
const PROGRESS: usize = 100;
/// Deadline for one phase (election after a crash, catch-up after a restart, progress).
const PHASE: Duration = Duration::from_secs(30);
/// Per-call timeout of the load clients: longer than an election, so a call that outlives it
/// is a hang, not a failover.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause of a client after an error before it tries the next member (a refused connection
/// fails at once; this keeps a dead member from turning the client into a busy loop).
const ERROR_BACKOFF: Duration = Duration::from_millis(20);

fn document(marker: &str) -> String {
    serde_json::json!({
        "family": FAMILY,
        "containerDefinitions": [{
            "name": "app", "image": "berth/httpd:1", "memory": 16,
            "environment": [{"name": "MARKER", "value": marker}]
        }]
    })
    .to_string()
}

fn marker_of(td: &Value) -> Option<String> {
    td["containerDefinitions"][0]["environment"]
        .as_array()?
        .iter()
        .find(|kv| kv["name"] == "MARKER")?["value"]
        .as_str()
        .map(str::to_string)
}

#[derive(Default)]
struct ClientReport {
    /// (revision, marker) of every acknowledged write.
    acked: Vec<(u64, String)>,
    /// gRPC code → count of failed calls.
    errors: BTreeMap<String, usize>,
}

async fn load_client(
    client: usize,
    endpoints: Vec<String>,
    mut stop: watch::Receiver<bool>,
    acked: Arc<AtomicUsize>,
) -> ClientReport {
    let apis: Vec<_> = endpoints.iter().map(|e| client_for(e, CALL_TIMEOUT)).collect();
    let mut target = client % apis.len();
    let mut report = ClientReport::default();
    for seq in 0.. {
        if *stop.borrow_and_update() {
            break;
        }
        let marker = format!("c{client}-s{seq}");
        let req =
            v1::RegisterTaskDefinitionRequest { document: document(&marker), ..Default::default() };
        match apis[target].clone().register_task_definition(req).await {
            Ok(reply) => {
                let td: Value = serde_json::from_str(&reply.into_inner().json).expect("json");
                let rev = td["revision"].as_u64().expect("revision in the reply");
                report.acked.push((rev, marker));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(status) => {
                *report.errors.entry(format!("{:?}", status.code())).or_default() += 1;
                // A sample of the messages (the first, then every 50th) for the log.
                if report.errors.values().sum::<usize>() % 50 == 1 {
                    eprintln!("client {client}: {:?}: {}", status.code(), status.message());
                }
                target = (target + 1) % apis.len();
                tokio::select! {
                    _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    report
}

/// Waits until `PROGRESS` more writes than now have been acknowledged.
async fn wait_progress(cluster: &ControllerCluster, acked: &AtomicUsize, phase: &str) {
    let target = acked.load(Ordering::SeqCst) + PROGRESS;
    let deadline = Instant::now() + PHASE;
    while acked.load(Ordering::SeqCst) < target {
        assert!(
            Instant::now() < deadline,
            "{phase}: only {} of {target} writes acknowledged within {PHASE:?}\n{}",
            acked.load(Ordering::SeqCst),
            cluster.log_tails(20)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Restarts `id` and waits until it has applied what the leader had applied at that moment.
async fn restart_and_catch_up(cluster: &mut ControllerCluster, id: u64) {
    cluster.restart(id);
    let leader = cluster.wait_leader(PHASE).await;
    let target = cluster.status(leader).await.map(|s| s.applied_index).unwrap_or(0);
    let deadline = Instant::now() + PHASE;
    loop {
        if cluster.status(id).await.is_some_and(|s| s.applied_index >= target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {id} did not catch up to {target} within {PHASE:?}\n{}",
            cluster.log_tails(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_under_load_loses_no_acknowledged_revision() {
    let started = Instant::now();
    let mut cluster =
        ControllerCluster::start_with_args(3, &["--snapshot-threshold", SNAPSHOT_THRESHOLD]);
    let first_leader = cluster.wait_leader(PHASE).await;

    let acked = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(load_client(c, cluster.endpoints(), stop_rx.clone(), acked.clone())))
        .collect();
    wait_progress(&cluster, &acked, "before any fault").await;

    // 1. kill -9 the leader; the other two elect a new one and keep acknowledging.
    cluster.crash(first_leader);
    let second_leader = cluster.wait_leader(PHASE).await;
    wait_progress(&cluster, &acked, "after killing the leader").await;
    // 2. bring it back; it rejoins from its data dir and catches up.
    restart_and_catch_up(&mut cluster, first_leader).await;
    wait_progress(&cluster, &acked, "after restarting the first victim").await;
    // 3. kill another member: the current leader if that is not the first victim again.
    let leader_now = cluster.wait_leader(PHASE).await;
    let victim = if leader_now != first_leader {
        leader_now
    } else {
        *cluster.ids().iter().find(|&&id| id != first_leader).expect("another member")
    };
    cluster.crash(victim);
    wait_progress(&cluster, &acked, "after killing the second victim").await;
    restart_and_catch_up(&mut cluster, victim).await;
    wait_progress(&cluster, &acked, "after restarting the second victim").await;

    stop_tx.send(true).expect("clients listening");
    let mut reports = Vec::new();
    for c in clients {
        reports.push(c.await.expect("client task"));
    }
    let status = cluster.wait_converged(PHASE).await;

    // What the group holds, read (linearizably) from the leader.
    let leader = cluster.wait_leader(PHASE).await;
    let client = cluster.client(leader, CALL_TIMEOUT);
    let req = v1::ListTaskDefinitionsRequest {
        family: FAMILY.into(),
        status: "ALL".into(),
        ..Default::default()
    };
    let items = berth_tests::paging::list_all(req, |r| {
        let mut c = client.clone();
        async move { c.list_task_definitions(r).await }
    })
    .await
    .expect("list task definitions");
    let mut stored: BTreeMap<u64, String> = BTreeMap::new();
    for item in &items {
        let td: Value = serde_json::from_str(item).expect("json");
        let rev = td["revision"].as_u64().expect("revision");
        let marker = marker_of(&td).expect("marker");
        assert!(stored.insert(rev, marker).is_none(), "revision {rev} listed twice");
    }
    let max = stored.keys().next_back().copied().unwrap_or(0);
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=max).collect::<Vec<_>>(),
        "revisions are not gapless 1..={max}"
    );

    let mut acked_revs = BTreeMap::new();
    for (client, report) in reports.iter().enumerate() {
        for (rev, marker) in &report.acked {
            if let Some(other) = acked_revs.insert(*rev, marker.clone()) {
                panic!("revision {rev} acknowledged twice: {other} and {marker} (client {client})");
            }
            assert_eq!(
                stored.get(rev),
                Some(marker),
                "acknowledged revision {rev} ({marker}) lost or holds another write"
            );
        }
    }
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &reports {
        for (code, n) in &r.errors {
            *errors.entry(code.as_str()).or_default() += n;
        }
    }
    println!(
        "failover: acknowledged={} stored_revisions={max} unacknowledged_but_stored={} client_errors={errors:?} leaders={first_leader}->{second_leader}->{leader} victims={first_leader},{victim} applied_index={} digest={} elapsed={:.1}s",
        acked_revs.len(),
        max as usize - acked_revs.len(),
        status.applied_index,
        status.state_digest,
        started.elapsed().as_secs_f64()
    );
    for id in cluster.ids() {
        cluster.stop(id);
    }
}
