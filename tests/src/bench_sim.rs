//! The `sim` bench suite: a service scaled to tens of thousands of tasks on thousands of
//! SIMULATED container instances (issue 7).
//!
//! ```text
//!  3 berth-controller processes (release, one Raft group) ◄──sessions── berth-agent --simulate N
//!        ▲ UpdateService desired=T, DescribeService polls        (one process, N full agents over
//!        └──────────────────── this bench                          a fake in-memory engine)
//! ```
//!
//! Setup: `--nodes` (default 5000) simulated instances from one `berth-agent --simulate` process,
//! zones `az-a|az-b|az-c` and instance types `m5.large|c5.xlarge` spread round-robin, each
//! offering 2048 CPU units and 8192 MiB; a task definition of one 128-unit / 128-MiB container;
//! a service of desired count 0 (the default placement: spread by zone, then by instance). The
//! controllers run with `--max-service-tasks` raised to `--tasks` (ECS's quota is 5000), and
//! with `--tick-ms` when the bench is given one (the Raft tick; elections after 10 ticks).
//!
//! Measure: from the UpdateService call setting `--tasks` (default 50000) to the moment
//! DescribeService shows that many RUNNING, printed as
//! `BENCH sim.scale_up nodes=N tasks=T seconds=S controller_rss_mib=M`, where M is the largest
//! peak resident set (VmHWM) among the controllers at the end. Before it,
//! `BENCH sim.register nodes=N seconds=S` times the N registrations. Progress goes to stderr.
//! Controller logs: the temp dir's `member-N.log` (kept with `--keep`), the agents' in
//! `agents.log`. The binaries are built first (release when the bench is), unless `--no-build`
//! says to take the `berth-controller` and `berth-agent` next to the bench binary as they are.

use crate::cluster::{ControllerCluster, build_controller, client_for};
use anyhow::{Context, Result, bail};
use berth_proto::v1;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two polls of a condition (every wait has a deadline).
const POLL: Duration = Duration::from_millis(100);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
const TEMPLATE: &str = "ecs.availability-zone=az-a|az-b|az-c,ecs.instance-type=m5.large|c5.xlarge";
const TASKDEF: &str = r#"{"family": "simbench", "containerDefinitions": [
  {"name": "app", "image": "simulated/app:1", "cpu": 128, "memory": 128, "essential": true}]}"#;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow::anyhow!("{name} {v:?}: not a valid value"))
        }
    }
}

/// The `berth-agent --simulate` process; killed on drop.
struct SimAgents(Child);

impl SimAgents {
    fn start(bin: &Path, endpoints: &[String], nodes: usize, dir: &Path) -> Result<Self> {
        let log = std::fs::File::create(dir.join("agents.log"))?;
        let child = Command::new(bin)
            .args(["--simulate", &nodes.to_string(), "--endpoint", &endpoints.join(",")])
            .args(["--attributes-template", TEMPLATE, "--data-dir"])
            .arg(dir.join("agents"))
            .env("RUST_LOG", std::env::var("BERTH_AGENT_LOG").unwrap_or("warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        Ok(SimAgents(child))
    }
}

impl Drop for SimAgents {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident set (VmHWM) of process `pid` in MiB, from /proc.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) process `pid` has used so far, in seconds, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // In USER_HZ, which Linux fixes at 100 on every architecture it exports to user space.
    Some(ticks / 100.0)
}

/// Connected instances as `endpoint` lists them.
async fn connected(endpoint: &str) -> Result<usize> {
    let api = client_for(endpoint, CALL_TIMEOUT);
    let items = crate::paging::list_all(v1::ListInstancesRequest::default(), |r| {
        let mut c = api.clone();
        async move { c.list_container_instances(r).await }
    })
    .await?;
    Ok(items.iter().filter(|i| i.contains("\"agentConnected\":true")).count())
}

/// (running, pending) of the bench service.
async fn service_counts(endpoint: &str) -> Result<(i64, i64)> {
    let mut api = client_for(endpoint, CALL_TIMEOUT);
    let r = api
        .describe_service(v1::ServiceRef { service: "simbench".into(), ..Default::default() })
        .await?;
    let v: serde_json::Value = serde_json::from_str(&r.into_inner().json)?;
    let n = |k: &str| v[k].as_i64().unwrap_or(0);
    Ok((n("runningCount"), n("pendingCount")))
}

/// Polls `f` until it returns true, or fails after `timeout`; prints `progress` now and then.
async fn wait(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Result<(bool, String)>,
) -> Result<Duration> {
    let start = Instant::now();
    let mut last_print = start;
    loop {
        let (done, progress) = f().await.unwrap_or_else(|e| (false, format!("error: {e}")));
        if done {
            return Ok(start.elapsed());
        }
        if last_print.elapsed() >= PROGRESS_EVERY {
            eprintln!(
                "sim: {:>6.1}s waiting for {what}: {progress}",
                start.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what} ({progress})");
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn run(args: &[String]) -> Result<()> {
    let nodes: usize = arg(args, "--nodes", 5000)?;
    let tasks: i64 = arg(args, "--tasks", 50000)?;
    let timeout = Duration::from_secs(arg(args, "--timeout-secs", 600)?);
    let keep = args.iter().any(|a| a == "--keep");
    let tick_ms: Option<u64> = match arg(args, "--tick-ms", 0u64)? {
        0 => None,
        ms => Some(ms),
    };
    let release = !cfg!(debug_assertions);
    let (controller, agent) = if args.iter().any(|a| a == "--no-build") {
        // The binaries next to this one, as built (e.g. by `cargo build --release`).
        let exe = std::env::current_exe()?;
        let dir = exe.parent().context("the bench binary has no directory")?;
        (dir.join("berth-controller"), dir.join("berth-agent"))
    } else {
        tokio::task::spawn_blocking(move || {
            (build_controller(release), crate::build_bin("berth-agent", "berth-agent", release))
        })
        .await?
    };
    let tmp = tempfile::tempdir()?;
    let (dir, _tmp): (PathBuf, _) =
        if keep { (tmp.keep(), None) } else { (tmp.path().to_path_buf(), Some(tmp)) };
    eprintln!("sim: data and logs in {}", dir.display());
    let cluster = {
        let dir = dir.clone();
        let mut flags = vec![format!("--max-service-tasks={}", tasks.max(5000))];
        if let Some(ms) = tick_ms {
            flags.push(format!("--tick-ms={ms}"));
        }
        tokio::task::spawn_blocking(move || {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            ControllerCluster::start_with(controller, &dir, 3, &flags)
        })
        .await?
    };
    let leader = cluster.wait_leader(CALL_TIMEOUT).await;
    let endpoint = cluster.member(leader).endpoint.clone();

    let started = Instant::now();
    let agents = SimAgents::start(&agent, &cluster.endpoints(), nodes, &dir)?;
    wait("the simulated instances to connect", timeout, async || {
        let n = connected(&endpoint).await?;
        Ok((n >= nodes, format!("{n}/{nodes} connected")))
    })
    .await?;
    println!("BENCH sim.register nodes={nodes} seconds={:.2}", started.elapsed().as_secs_f64());

    let mut api = client_for(&endpoint, CALL_TIMEOUT);
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: TASKDEF.into(),
        ..Default::default()
    })
    .await?;
    api.create_service(v1::CreateServiceRequest {
        service_name: "simbench".into(),
        task_definition: "simbench".into(),
        desired_count: 0,
        ..Default::default()
    })
    .await?;
    let ids = cluster.ids();
    let cpu_before: Vec<f64> =
        ids.iter().map(|&id| cluster.pid(id).and_then(cpu_seconds).unwrap_or(0.0)).collect();
    let agent_cpu_before = cpu_seconds(agents.0.id()).unwrap_or(0.0);
    let start = Instant::now();
    api.update_service(v1::UpdateServiceRequest {
        service: "simbench".into(),
        desired_count: Some(tasks),
        ..Default::default()
    })
    .await?;
    wait("every task RUNNING", timeout, async || {
        let (running, pending) = service_counts(&endpoint).await?;
        Ok((running >= tasks, format!("running={running} pending={pending}")))
    })
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    let rss = ids.iter().filter_map(|&id| cluster.pid(id)).filter_map(peak_rss_mib);
    let rss = rss.fold(0.0f64, f64::max);
    // CPU seconds spent during the scale-up: the leader, the followers together, the agents.
    let cpu: Vec<f64> = ids
        .iter()
        .zip(&cpu_before)
        .map(|(&id, before)| cluster.pid(id).and_then(cpu_seconds).unwrap_or(0.0) - before)
        .collect();
    let leader_cpu = ids.iter().position(|&id| id == leader).and_then(|i| cpu.get(i)).copied();
    let leader_cpu = leader_cpu.unwrap_or(0.0);
    let followers_cpu = cpu.iter().sum::<f64>() - leader_cpu;
    let agents_cpu = cpu_seconds(agents.0.id()).unwrap_or(0.0) - agent_cpu_before;
    println!(
        "BENCH sim.scale_up nodes={nodes} tasks={tasks} seconds={seconds:.2} controller_rss_mib={rss:.0} leader_cpu_s={leader_cpu:.1} followers_cpu_s={followers_cpu:.1} agents_cpu_s={agents_cpu:.1}"
    );
    Ok(())
}
