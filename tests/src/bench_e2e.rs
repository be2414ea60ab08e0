//! End-to-end benchmarks on the local Docker engine: Berth (one controller and one real agent, in
//! this process, as `berth dev` runs them) beside the engine floor and Docker Swarm.
//!
//! * [`LocalBerth`] — a one-node controller plus an in-process agent on the local engine (also
//!   used by the `service-start` suite in `bin/bench.rs`);
//! * [`count_tasks`] / [`wait_for`] — task counting over gRPC, polling with a deadline;
//! * [`run_e2e`] — suite `e2e`: `e2e.scale_up` (service 0 → N RUNNING busybox tasks vs
//!   `../shared/anchors/engine-floor.py N` and `../shared/anchors/swarm-scale.sh N`) and
//!   `e2e.rolling` (N tasks to a new revision, maximumPercent 200 / minimumHealthyPercent 100,
//!   stopTimeout 1, vs Swarm start-first, parallelism 10, from the same script);
//! * [`run_agent`] — suite `agent`: `agent.footprint`, a real `berth-agent` process running N
//!   tasks: RSS from `/proc/PID/status`, idle CPU from `/proc/PID/stat` over a window.
//!
//! Phases never overlap: every Berth container is removed (and waited for) before the floor or
//! Swarm runs, and both anchors remove their own containers.

use anyhow::{Context, Result, bail};
use berth_agent::{Agent, AgentConfig, PullBehavior};
use berth_controller::{Controller, ControllerConfig, RunningController};
use berth_proto::v1::{self, berth_client::BerthClient};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The anchors' image (`swarm-scale.sh` builds it offline from busybox-static).
pub const ANCHOR_IMAGE: &str = "berth-anchor/busybox:1";
const FAMILY: &str = "bench-e2e";
const SERVICE: &str = "bench-e2e";

/// The value of `--name V` in `args`, or `default`.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow::anyhow!("{name} {v:?}: not a valid value"))
        }
    }
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

/// A one-node controller and an agent on the local Docker engine, both in this process.
pub struct LocalBerth {
    pub controller: RunningController,
    pub api: BerthClient<Channel>,
    agent_dir: PathBuf,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    agent_task: tokio::task::JoinHandle<Result<(), berth_agent::AgentError>>,
}

impl LocalBerth {
    /// Starts both under `dir` and waits until the agent has registered. `task_settle`
    /// overrides the controller's `--task-settle-secs` (how long a task without health checks
    /// runs before it counts as healthy).
    pub async fn start(
        dir: &Path,
        pull: PullBehavior,
        task_settle: Option<Duration>,
    ) -> Result<LocalBerth> {
        let mut config = ControllerConfig {
            data_dir: dir.join("controller"),
            listen: "127.0.0.1:0".parse()?,
            ..Default::default()
        };
        if let Some(settle) = task_settle {
            config.orchestrator.task_settle = settle;
        }
        let controller = Controller::start(config).await?;
        controller.wait_leader(Duration::from_secs(10)).await?;
        let endpoint = format!("http://{}", controller.addr);
        let agent_dir = dir.join("agent");
        let agent = Agent::new(AgentConfig {
            endpoints: vec![endpoint.clone()],
            data_dir: agent_dir.clone(),
            image_pull_behavior: pull,
            ..Default::default()
        })
        .await
        .context("starting the agent (is a Docker daemon running?)")?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let agent_task = tokio::spawn(agent.run(async move {
            let _ = stop_rx.await;
        }));
        let api = BerthClient::connect(endpoint)
            .await?
            .max_decoding_message_size(berth_proto::MAX_MESSAGE_BYTES);
        wait_registered(&api, 1).await?;
        Ok(LocalBerth { controller, api, agent_dir, stop_tx, agent_task })
    }

    /// The agent's container instance id (the `berth.instance-id` label of its containers).
    pub fn instance_id(&self) -> String {
        std::fs::read_to_string(self.agent_dir.join("instance-id"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Stops the agent (containers stay) and the controller.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop_tx.send(());
        self.agent_task.await??;
        self.controller.stop().await?;
        Ok(())
    }
}

async fn wait_registered(api: &BerthClient<Channel>, n: usize) -> Result<()> {
    wait_for("the agent to register", Duration::from_secs(30), async || {
        let items = crate::paging::list_all(v1::ListInstancesRequest::default(), |r| {
            let mut c = api.clone();
            async move { c.list_container_instances(r).await }
        })
        .await?;
        Ok(items.len() >= n)
    })
    .await?;
    Ok(())
}

/// Tasks of `service` with this desired and last status, by task definition ARN.
pub async fn count_tasks(
    api: &BerthClient<Channel>,
    service: &str,
    desired: &str,
    last: &str,
) -> Result<HashMap<String, usize>> {
    let req = v1::ListTasksRequest {
        service_name: service.into(),
        desired_status: desired.into(),
        ..Default::default()
    };
    let items = crate::paging::list_all(req, |r| {
        let mut c = api.clone();
        async move { c.list_tasks(r).await }
    })
    .await?;
    let mut n = HashMap::new();
    for item in items {
        let t: berth_proto::model::Task = serde_json::from_str(&item)?;
        if t.last_status == last {
            *n.entry(t.task_definition_arn).or_default() += 1;
        }
    }
    Ok(n)
}

/// Polls `f` every 50 ms until it says true; the time it took, or an error after `timeout`.
pub async fn wait_for(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Result<bool>,
) -> Result<Duration> {
    let start = Instant::now();
    while !f().await? {
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(start.elapsed())
}

fn docker(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("docker").args(args).output().context("running docker")?;
    if !out.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn containers_of(instance_id: &str) -> Result<Vec<String>> {
    let filter = format!("label=berth.instance-id={instance_id}");
    Ok(docker(&["ps", "-aq", "--filter", &filter])?.split_whitespace().map(String::from).collect())
}

/// Removes every container of the instance and waits until the engine lists none.
async fn remove_containers(instance_id: &str) -> Result<()> {
    if instance_id.is_empty() {
        return Ok(());
    }
    wait_for("Berth's containers to be removed", Duration::from_secs(120), async || {
        let ids = containers_of(instance_id)?;
        if ids.is_empty() {
            return Ok(true);
        }
        let mut rm = vec!["rm", "-f"];
        rm.extend(ids.iter().map(String::as_str));
        let _ = docker(&rm);
        Ok(false)
    })
    .await?;
    Ok(())
}

/// Builds the anchor image offline if it is missing (the same recipe as `swarm-scale.sh`).
fn ensure_anchor_image() -> Result<()> {
    if docker(&["image", "inspect", ANCHOR_IMAGE]).is_ok() {
        return Ok(());
    }
    let ctx = tempfile::tempdir()?;
    std::fs::create_dir_all(ctx.path().join("bin"))?;
    std::fs::copy("/bin/busybox", ctx.path().join("bin/busybox"))
        .context("copying /bin/busybox (install busybox-static)")?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY bin/ /bin/\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\nCMD [\"/bin/sh\"]\n",
    )?;
    let out = std::process::Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", ANCHOR_IMAGE])
        .arg(ctx.path())
        .output()?;
    if !out.status.success() {
        bail!("building {ANCHOR_IMAGE}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs an anchor script and returns its `key=value` lines.
fn anchor(script: &str, args: &[String]) -> Result<HashMap<String, String>> {
    let path = crate::workspace_root().join("../shared/anchors").join(script);
    let program = if script.ends_with(".py") { "python3" } else { "bash" };
    let out = std::process::Command::new(program)
        .arg(&path)
        .args(args)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{script} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn seconds(kv: &HashMap<String, String>, key: &str, script: &str) -> Result<f64> {
    kv.get(key)
        .with_context(|| format!("{script} printed no {key}="))?
        .parse()
        .with_context(|| format!("{script}: {key} is not a number"))
}

/// A task definition of one busybox container sleeping, stopTimeout 1 (as the anchors).
fn task_definition(revision: u32) -> String {
    serde_json::json!({
        "family": FAMILY,
        "containerDefinitions": [{
            "name": "app", "image": ANCHOR_IMAGE, "memory": 8, "essential": true,
            "command": ["sleep", "3600"], "stopTimeout": 1,
            "environment": [{"name": "BENCH_REVISION", "value": revision.to_string()}]
        }]
    })
    .to_string()
}

/// Creates the bench service with `tasks` tasks of the family and waits until all of revision
/// `rev` run.
async fn create_service_and_wait_running(
    api: &BerthClient<Channel>,
    rev: &str,
    tasks: usize,
) -> Result<()> {
    api.clone()
        .create_service(v1::CreateServiceRequest {
            service_name: SERVICE.into(),
            task_definition: FAMILY.into(),
            desired_count: tasks as i64,
            ..Default::default()
        })
        .await?;
    wait_for("all tasks RUNNING", Duration::from_secs(300), async || {
        let n = count_tasks(api, SERVICE, "RUNNING", "RUNNING").await?;
        Ok(n.get(rev).copied().unwrap_or(0) == tasks)
    })
    .await?;
    Ok(())
}

async fn register(api: &BerthClient<Channel>, revision: u32) -> Result<String> {
    let reply = api
        .clone()
        .register_task_definition(v1::RegisterTaskDefinitionRequest {
            document: task_definition(revision),
            ..Default::default()
        })
        .await?
        .into_inner();
    let td: serde_json::Value = serde_json::from_str(&reply.json)?;
    td["taskDefinitionArn"].as_str().map(String::from).context("no taskDefinitionArn in reply")
}

async fn deployment_completed(api: &BerthClient<Channel>, td_arn: &str) -> Result<bool> {
    let reply = api
        .clone()
        .describe_service(v1::ServiceRef { service: SERVICE.into(), ..Default::default() })
        .await?
        .into_inner();
    let s: berth_proto::model::Service = serde_json::from_str(&reply.json)?;
    Ok(s.deployments.len() == 1
        && s.deployments[0].task_definition == td_arn
        && s.deployments[0].rollout_state.as_deref() == Some("COMPLETED"))
}

/// Berth's two measures: seconds to scale 0 → `tasks`, then seconds to roll them.
async fn berth_phase(tasks: usize, pull: PullBehavior, settle: Duration) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let berth = LocalBerth::start(dir.path(), pull, Some(settle)).await?;
    let api = berth.api.clone();
    let result = async {
        let rev1 = register(&api, 1).await?;
        let start = Instant::now();
        create_service_and_wait_running(&api, &rev1, tasks).await?;
        let up = start.elapsed().as_secs_f64();
        wait_for("the first deployment to complete", Duration::from_secs(60), async || {
            deployment_completed(&api, &rev1).await
        })
        .await?;

        let rev2 = register(&api, 2).await?;
        let start = Instant::now();
        api.clone()
            .update_service(v1::UpdateServiceRequest {
                service: SERVICE.into(),
                task_definition: rev2.clone(),
                deployment: Some(v1::DeploymentSettings {
                    maximum_percent: Some(200),
                    minimum_healthy_percent: Some(100),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
        wait_for("the rolling update to complete", Duration::from_secs(300), async || {
            let running = count_tasks(&api, SERVICE, "RUNNING", "RUNNING").await?;
            if running.get(&rev2).copied().unwrap_or(0) != tasks || running.len() != 1 {
                return Ok(false);
            }
            let stopped = count_tasks(&api, SERVICE, "STOPPED", "STOPPED").await?;
            if stopped.get(&rev1).copied().unwrap_or(0) != tasks {
                return Ok(false);
            }
            deployment_completed(&api, &rev2).await
        })
        .await?;
        let rolling = start.elapsed().as_secs_f64();
        api.clone()
            .delete_service(v1::DeleteServiceRequest {
                service: SERVICE.into(),
                force: true,
                ..Default::default()
            })
            .await?;
        anyhow::Ok((up, rolling))
    }
    .await;
    let instance = berth.instance_id();
    berth.stop().await?;
    remove_containers(&instance).await?;
    result
}

/// Suite `e2e`: `[--tasks N] [--skip-floor] [--skip-swarm] [--image-pull-behavior B]
/// [--task-settle-secs S]`. The settle time defaults to 0: Swarm counts a task without a health
/// check as up once it runs, and so does Berth then (its default, as ECS, is 40 s, which alone
/// would hold every old task of a rolling update for 40 s).
pub async fn run_e2e(args: &[String]) -> Result<()> {
    let tasks: usize = arg(args, "--tasks", 50)?;
    let settle = Duration::from_secs(arg(args, "--task-settle-secs", 0)?);
    let pull: PullBehavior = arg::<String>(args, "--image-pull-behavior", "default".into())?
        .parse()
        .map_err(|e| anyhow::anyhow!("--image-pull-behavior: {e}"))?;
    ensure_anchor_image()?;
    let n = vec![tasks.to_string()];
    let floor = if flag(args, "--skip-floor") {
        None
    } else {
        let kv = anchor("engine-floor.py", &n)?;
        Some(seconds(&kv, "floor_start_seconds", "engine-floor.py")?)
    };
    let (berth_up, berth_rolling) = berth_phase(tasks, pull, settle).await?;
    let swarm = if flag(args, "--skip-swarm") {
        None
    } else {
        let kv = anchor("swarm-scale.sh", &n)?;
        Some((
            seconds(&kv, "swarm_scale_up_seconds", "swarm-scale.sh")?,
            seconds(&kv, "swarm_rolling_update_seconds", "swarm-scale.sh")?,
        ))
    };
    let ratio = |a: Option<f64>, b: f64| a.map_or("n/a".to_string(), |a| format!("{:.2}", a / b));
    let shown = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    println!(
        "BENCH e2e.scale_up tasks={tasks} berth_seconds={berth_up:.2} floor_seconds={} swarm_seconds={} vs_floor={} vs_swarm={}",
        shown(floor),
        shown(swarm.map(|s| s.0)),
        floor.map_or("n/a".to_string(), |f| format!("{:.2}", berth_up / f)),
        ratio(swarm.map(|s| s.0), berth_up),
    );
    println!(
        "BENCH e2e.rolling tasks={tasks} berth_seconds={berth_rolling:.2} swarm_seconds={} vs_swarm={}",
        shown(swarm.map(|s| s.1)),
        ratio(swarm.map(|s| s.1), berth_rolling),
    );
    Ok(())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n =
        |i: usize| -> Result<u64> { Ok(f.get(i - 3).context("short /proc/PID/stat")?.parse()?) };
    Ok(n(14)? + n(15)?)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("malformed VmRSS")?.parse()?)
}

fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Suite `agent`: `[--tasks N] [--idle-seconds S]`.
pub async fn run_agent(args: &[String]) -> Result<()> {
    let tasks: usize = arg(args, "--tasks", 20)?;
    let idle: f64 = arg(args, "--idle-seconds", 10.0)?;
    ensure_anchor_image()?;
    let bin = tokio::task::spawn_blocking(|| crate::build_bin("berth-agent", "berth-agent", true))
        .await?;
    let dir = tempfile::tempdir()?;
    let config = ControllerConfig {
        data_dir: dir.path().join("controller"),
        listen: "127.0.0.1:0".parse()?,
        ..Default::default()
    };
    let controller = Controller::start(config).await?;
    controller.wait_leader(Duration::from_secs(10)).await?;
    let endpoint = format!("http://{}", controller.addr);
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let log = std::fs::File::create(agent_dir.join("agent.log"))?;
    let mut child = std::process::Command::new(&bin)
        .args(["--endpoint", &endpoint, "--data-dir"])
        .arg(&agent_dir)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id();
    let api = BerthClient::connect(endpoint).await?;
    let result = async {
        wait_registered(&api, 1).await?;
        let rev = register(&api, 1).await?;
        create_service_and_wait_running(&api, &rev, tasks).await?;
        // Let the start-up work (reports, acks) settle before measuring the idle state.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (t0, c0) = (Instant::now(), cpu_ticks(pid)?);
        tokio::time::sleep(Duration::from_secs_f64(idle)).await;
        let (t1, c1) = (Instant::now(), cpu_ticks(pid)?);
        let rss = rss_kib(pid)? as f64 / 1024.0;
        let cpu_secs = (c1 - c0) as f64 / clock_ticks_per_sec() as f64;
        let pct = cpu_secs / (t1 - t0).as_secs_f64() * 100.0;
        println!("BENCH agent.footprint tasks={tasks} rss_mib={rss:.1} idle_cpu_pct={pct:.2}");
        api.clone()
            .delete_service(v1::DeleteServiceRequest {
                service: SERVICE.into(),
                force: true,
                ..Default::default()
            })
            .await?;
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let instance = std::fs::read_to_string(agent_dir.join("instance-id"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    remove_containers(&instance).await?;
    controller.stop().await?;
    result
}
