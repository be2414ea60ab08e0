//! The benchmark harness: `cargo run --release -p berth-tests --bin bench -- SUITE [OPTIONS]`.
//!
//! Every measure prints one line `BENCH <name> key=value …` (scripts parse these). Suites:
//! * `list`          — the suites.
//! * `api-write`     — RegisterTaskDefinition through real gRPC into a one-node controller (real
//!   Raft on sled, every write flushed before "ok"), from `--clients` concurrent clients for
//!   `--seconds`: throughput and latency percentiles.
//! * `service-start` — create a service of `--tasks` real Docker containers (berth/httpd:1, built by
//!   `scripts/build-images.sh`) on a local agent and time until all are RUNNING, then until all
//!   are STOPPED after scaling to 0. Needs a Docker daemon.
//! * `raft`          — 3 `berth-controller` processes against a 3-member etcd
//!   (`../shared/anchors/etcd-cluster.sh`), both on loopback, same write workload (see
//!   [`raft`]): write throughput and p99 per client count, then leader-failover time.
//! * `scheduler`     — `berth_scheduler::place_with` on 1k/10k/100k tasks over 100/1k/10k nodes
//!   (3 zones, 5 instance types, spread by zone then binpack memory, memberOf m5.*), one core:
//!   see `berth_tests::bench_scheduler`.
//! * `events`        — 3 controller processes, simulated agents (a fake runtime), producers
//!   looping RunTask/StopTask, `--subscribers` followers with mixed filters: events appended per
//!   second and end-to-end delivery latency; see `berth_tests::bench_events`.
//! * `sim`           — 3 controller processes and `berth-agent --simulate --nodes` (SIMULATED
//!   instances, a fake engine): time from desired count 0 to `--tasks` RUNNING and the
//!   controllers' peak RSS; see `berth_tests::bench_sim`.
//! * `e2e`           — on the local Docker engine, Berth (controller + agent in process) from 0
//!   to `--tasks` busybox tasks and a rolling update of them, beside the engine floor
//!   (`../shared/anchors/engine-floor.py`) and Docker Swarm (`../shared/anchors/swarm-scale.sh`);
//!   see `berth_tests::bench_e2e`.
//! * `agent`         — a real `berth-agent` process running `--tasks` tasks: RSS and idle CPU.

use anyhow::{Context, Result, bail};
use berth_agent::PullBehavior;
use berth_controller::{Controller, ControllerConfig, RunningController};
use berth_proto::v1::{self, berth_client::BerthClient};
use berth_tests::bench_e2e::{self, LocalBerth, arg, wait_for};
use berth_tests::cluster::{ControllerCluster, build_controller, client_for};
use std::time::{Duration, Instant};

async fn controller(dir: &std::path::Path) -> Result<RunningController> {
    let config = ControllerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        ..Default::default()
    };
    let c = Controller::start(config).await?;
    c.wait_leader(Duration::from_secs(10)).await?;
    Ok(c)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

const WEB: &str = r#"{"family": "bench", "containerDefinitions": [
  {"name": "web", "image": "berth/httpd:1", "cpu": 16, "memory": 16,
   "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"],
   "portMappings": [{"containerPort": 8080, "hostPort": 0}]}]}"#;

async fn api_write(args: &[String]) -> Result<()> {
    let clients: usize = arg(args, "--clients", 16)?;
    let seconds: f64 = arg(args, "--seconds", 5.0)?;
    let dir = tempfile::tempdir()?;
    let c = controller(dir.path()).await?;
    let endpoint = format!("http://{}", c.addr);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut handles = vec![];
    for _ in 0..clients {
        let endpoint = endpoint.clone();
        handles.push(tokio::spawn(async move {
            let mut api = BerthClient::connect(endpoint).await?;
            let mut lat = vec![];
            while Instant::now() < deadline {
                let t = Instant::now();
                api.register_task_definition(v1::RegisterTaskDefinitionRequest {
                    document: WEB.into(),
                    ..Default::default()
                })
                .await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let start = Instant::now();
    let mut all = vec![];
    for h in handles {
        all.extend(h.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    println!(
        "BENCH api-write clients={clients} ops={} seconds={elapsed:.2} ops_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    );
    c.stop().await?;
    Ok(())
}

/// Tasks of the `bench` service with this desired and last status.
async fn count_tasks(
    api: &BerthClient<tonic::transport::Channel>,
    desired: &str,
    last: &str,
) -> Result<usize> {
    Ok(bench_e2e::count_tasks(api, "bench", desired, last).await?.values().sum())
}

async fn service_start(args: &[String]) -> Result<()> {
    let tasks: usize = arg(args, "--tasks", 10)?;
    let dir = tempfile::tempdir()?;
    let berth = LocalBerth::start(dir.path(), PullBehavior::PreferCached, None).await?;
    let api = berth.api.clone();
    api.clone()
        .register_task_definition(v1::RegisterTaskDefinitionRequest {
            document: WEB.into(),
            ..Default::default()
        })
        .await?;
    api.clone()
        .create_service(v1::CreateServiceRequest {
            service_name: "bench".into(),
            task_definition: "bench".into(),
            desired_count: tasks as i64,
            ..Default::default()
        })
        .await?;
    let up = wait_for("all tasks RUNNING", Duration::from_secs(300), async || {
        Ok(count_tasks(&api, "RUNNING", "RUNNING").await? == tasks)
    })
    .await?;
    println!(
        "BENCH service-start tasks={tasks} seconds={:.2} tasks_per_sec={:.1}",
        up.as_secs_f64(),
        tasks as f64 / up.as_secs_f64()
    );
    api.clone()
        .update_service(v1::UpdateServiceRequest {
            service: "bench".into(),
            desired_count: Some(0),
            ..Default::default()
        })
        .await?;
    let down = wait_for("all tasks STOPPED", Duration::from_secs(300), async || {
        Ok(count_tasks(&api, "STOPPED", "STOPPED").await? == tasks)
    })
    .await?;
    println!(
        "BENCH service-stop tasks={tasks} seconds={:.2} tasks_per_sec={:.1}",
        down.as_secs_f64(),
        tasks as f64 / down.as_secs_f64()
    );
    api.clone()
        .delete_service(v1::DeleteServiceRequest {
            service: "bench".into(),
            force: true,
            ..Default::default()
        })
        .await?;
    berth.stop().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// raft: 3 Berth controllers vs a 3-member etcd

/// Bytes of payload in one write, on both systems.
const RAFT_VALUE_BYTES: usize = 256;
/// Per-call timeout in the write workload: a call slower than this is an error, not a sample.
const RAFT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-call timeout of the failover client: it moves to the next member after this.
const FAILOVER_CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// A 256-byte printable value, different per client and sequence number.
fn raft_value(client: usize, seq: u64) -> String {
    let head = format!("c{client}-s{seq}-");
    format!("{head}{}", "x".repeat(RAFT_VALUE_BYTES - head.len()))
}

/// A Berth write: RegisterTaskDefinition of a one-container document whose only environment
/// value is the 256-byte payload (one Raft command, acknowledged after a quorum fsync).
fn berth_document(client: usize, seq: u64) -> String {
    serde_json::json!({
        "family": format!("raft-bench-{client}"),
        "containerDefinitions": [{
            "name": "app", "image": "berth/httpd:1", "memory": 16,
            "environment": [{"name": "V", "value": raft_value(client, seq)}]
        }]
    })
    .to_string()
}

/// The slice of etcd's `etcdserverpb.KV/Put` this bench needs, as prost messages (the
/// `etcd-client` crate compiles etcd's protos with a system `protoc`, which this machine lacks).
mod etcd {
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic::transport::Channel;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        #[prost(uint64, tag = "1")]
        pub cluster_id: u64,
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
        #[prost(int64, tag = "3")]
        pub revision: i64,
        #[prost(uint64, tag = "4")]
        pub raft_term: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }

    #[derive(Clone)]
    pub struct KvClient(tonic::client::Grpc<Channel>);

    impl KvClient {
        pub fn new(channel: Channel) -> Self {
            KvClient(tonic::client::Grpc::new(channel))
        }

        pub async fn put(&mut self, req: PutRequest) -> Result<PutResponse, tonic::Status> {
            self.0
                .ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("etcd not ready: {e}")))?;
            let codec = tonic_prost::ProstCodec::default();
            let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
            Ok(self.0.unary(tonic::Request::new(req), path, codec).await?.into_inner())
        }
    }
}

/// A 3-member etcd started by the shared anchor script; stopped (and its dir removed) on drop.
struct EtcdAnchor {
    script: std::path::PathBuf,
    dir: std::path::PathBuf,
    endpoints: Vec<String>,
}

impl EtcdAnchor {
    fn start(dir: &std::path::Path) -> Result<Self> {
        let script = berth_tests::workspace_root().join("../shared/anchors/etcd-cluster.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir)
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(eps) = stdout.lines().find_map(|l| l.strip_prefix("ENDPOINTS=")) else {
            bail!(
                "etcd-cluster.sh start did not print ENDPOINTS=: {}{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let endpoints = eps.split(',').map(|e| format!("http://{}", e.trim())).collect();
        Ok(EtcdAnchor { script, dir: dir.to_path_buf(), endpoints })
    }
}

impl Drop for EtcdAnchor {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Throughput and latencies of one system under one client count.
struct WriteRun {
    per_sec: f64,
    p99_ms: f64,
    errors: usize,
}

fn channel_to(endpoint: &str, timeout: Duration) -> Result<tonic::transport::Channel> {
    Ok(tonic::transport::Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .connect_lazy())
}

/// Runs `clients` loops for `seconds`, client `i` on endpoint `i % n`, each call made by
/// `write(channel, client, seq)`; counts acknowledged calls and their latency.
async fn write_workload<F, Fut>(
    endpoints: &[String],
    clients: usize,
    seconds: f64,
    write: F,
) -> Result<WriteRun>
where
    F: Fn(tonic::transport::Channel, usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut handles = vec![];
    for c in 0..clients {
        let channel = channel_to(&endpoints[c % endpoints.len()], RAFT_CALL_TIMEOUT)?;
        let write = write.clone();
        handles.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (vec![], 0usize);
            let mut seq = 0u64;
            while Instant::now() < deadline {
                seq += 1;
                let t = Instant::now();
                match write(channel.clone(), c, seq).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (vec![], 0);
    for h in handles {
        let (lat, e) = h.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    Ok(WriteRun { per_sec: all.len() as f64 / elapsed, p99_ms: percentile(&all, 0.99), errors })
}

async fn berth_writes(endpoints: &[String], clients: usize, seconds: f64) -> Result<WriteRun> {
    write_workload(endpoints, clients, seconds, |channel, c, seq| async move {
        let max = berth_proto::MAX_MESSAGE_BYTES;
        let mut api = BerthClient::new(channel).max_decoding_message_size(max);
        api.register_task_definition(v1::RegisterTaskDefinitionRequest {
            document: berth_document(c, seq),
            ..Default::default()
        })
        .await
        .map(|_| ())
    })
    .await
}

async fn etcd_writes(endpoints: &[String], clients: usize, seconds: f64) -> Result<WriteRun> {
    write_workload(endpoints, clients, seconds, |channel, c, seq| async move {
        etcd::KvClient::new(channel)
            .put(etcd::PutRequest {
                key: format!("bench/{c}").into_bytes(),
                value: raft_value(c, seq).into_bytes(),
            })
            .await
            .map(|_| ())
    })
    .await
}

/// Time from `kill -9` of the leader to the first write acknowledged to a client that tries
/// the members in turn (each call capped at [`FAILOVER_CALL_TIMEOUT`]).
async fn failover_trial(cluster: &mut ControllerCluster, trial: usize) -> Result<Duration> {
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let apis: Vec<_> =
        cluster.endpoints().iter().map(|e| client_for(e, FAILOVER_CALL_TIMEOUT)).collect();
    // Warm the connections, so the measure is the failover, not the first connect.
    for api in &apis {
        let _ = api.clone().get_status(v1::StatusRequest {}).await;
    }
    let killed = Instant::now();
    cluster.crash(leader);
    let mut target = 0;
    let mut seq = 0;
    let took = loop {
        seq += 1;
        let req = v1::RegisterTaskDefinitionRequest {
            document: berth_document(1000 + trial, seq),
            ..Default::default()
        };
        if apis[target].clone().register_task_definition(req).await.is_ok() {
            break killed.elapsed();
        }
        target = (target + 1) % apis.len();
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("no write acknowledged within 60 s of killing leader {leader}");
        }
    };
    cluster.restart(leader);
    cluster.wait_converged(Duration::from_secs(60)).await;
    Ok(took)
}

async fn raft(args: &[String]) -> Result<()> {
    let seconds: f64 = arg(args, "--seconds", 20.0)?;
    let trials: usize = arg(args, "--trials", 5)?;
    let clients: String = arg(args, "--clients", "1,16,256".to_string())?;
    let clients: Vec<usize> = clients
        .split(',')
        .map(|c| c.trim().parse().with_context(|| format!("--clients {c:?}")))
        .collect::<Result<_>>()?;
    let skip_etcd = args.iter().any(|a| a == "--skip-etcd");
    let bin = tokio::task::spawn_blocking(|| build_controller(!cfg!(debug_assertions))).await?;
    let dir = tempfile::tempdir()?;

    for (case, &c) in clients.iter().enumerate() {
        // A fresh group per case: every case starts from an empty state and log.
        let berth = {
            let dir = dir.path().join(format!("berth-{case}"));
            let bin = bin.clone();
            tokio::task::spawn_blocking(move || ControllerCluster::start_with(bin, &dir, 3, &[]))
                .await?
        };
        berth.wait_leader(Duration::from_secs(30)).await;
        let b = berth_writes(&berth.endpoints(), c, seconds).await?;
        drop(berth);
        let e = if skip_etcd {
            None
        } else {
            let etcd = EtcdAnchor::start(&dir.path().join(format!("etcd-{case}")))?;
            let run = etcd_writes(&etcd.endpoints, c, seconds).await?;
            drop(etcd);
            Some(run)
        };
        let (etcd_per_sec, etcd_p99, etcd_errors) =
            e.as_ref().map(|e| (e.per_sec, e.p99_ms, e.errors)).unwrap_or((0.0, 0.0, 0));
        let ratio = if etcd_per_sec > 0.0 { b.per_sec / etcd_per_sec } else { 0.0 };
        println!(
            "BENCH raft.write clients={c} berth_per_sec={:.0} etcd_per_sec={etcd_per_sec:.0} ratio={ratio:.2} berth_p99_ms={:.2} etcd_p99_ms={etcd_p99:.2} berth_errors={} etcd_errors={etcd_errors}",
            b.per_sec, b.p99_ms, b.errors
        );
    }

    let mut cluster = {
        let dir = dir.path().join("berth-failover");
        tokio::task::spawn_blocking(move || ControllerCluster::start_with(bin, &dir, 3, &[]))
            .await?
    };
    let mut times = vec![];
    for t in 0..trials {
        times.push(failover_trial(&mut cluster, t).await?);
    }
    times.sort();
    let ms: Vec<String> =
        times.iter().map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0)).collect();
    println!(
        "BENCH raft.failover median_ms={:.0} trials={trials} all_ms={}",
        percentile(&times, 0.5),
        ms.join(",")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(suite) = args.first().cloned() else {
        bail!(
            "usage: bench SUITE [OPTIONS]; suites: list, api-write, service-start, raft, scheduler, events, sim"
        );
    };
    match suite.as_str() {
        "list" => {
            println!(
                "api-write      [--clients N] [--seconds S]   RegisterTaskDefinition throughput and latency"
            );
            println!(
                "service-start  [--tasks N]                    time to RUNNING / STOPPED for N Docker containers"
            );
            println!(
                "raft           [--clients 1,16,256] [--seconds S] [--trials N] [--skip-etcd]   3 Berth controllers vs 3-member etcd: writes/s, p99, failover"
            );
            println!(
                "scheduler      [--runs N]                     placement of 1k/10k/100k tasks on 100/1k/10k nodes, one core"
            );
            println!(
                "events         [--subscribers N] [--seconds S] [--producers N] [--instances N]   event stream fan-out: events/s, delivery p99"
            );
            println!(
                "sim            [--nodes N] [--tasks T] [--tick-ms MS] [--timeout-secs S] [--keep] [--no-build]   3 controllers + N simulated instances: 0 → T RUNNING"
            );
            println!(
                "e2e            [--tasks N] [--skip-floor] [--skip-swarm] [--image-pull-behavior B] [--task-settle-secs 0]   0 -> N busybox tasks and a rolling update vs engine floor and Docker Swarm"
            );
            println!(
                "agent          [--tasks N] [--idle-seconds S]   a berth-agent process with N tasks: RSS and idle CPU"
            );
            Ok(())
        }
        "api-write" => api_write(&args).await,
        "service-start" => service_start(&args).await,
        "raft" => raft(&args).await,
        "scheduler" => berth_tests::bench_scheduler::run(&args),
        "events" => berth_tests::bench_events::run(&args).await,
        "e2e" => bench_e2e::run_e2e(&args).await,
        "agent" => bench_e2e::run_agent(&args).await,
        "sim" => berth_tests::bench_sim::run(&args).await,
        other => bail!("unknown suite {other:?}; run `bench list`"),
    }
}
