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
//!
//! Later issues add suites (and anchors such as etcd and Docker Swarm, run side by side).

use anyhow::{Context, Result, bail};
use berth_agent::{Agent, AgentConfig, PullBehavior};
use berth_controller::{Controller, ControllerConfig, RunningController};
use berth_proto::v1::{self, berth_client::BerthClient};
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow::anyhow!("{name} {v:?}: not a valid value"))
        }
    }
}

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

async fn count_tasks(
    api: &mut BerthClient<tonic::transport::Channel>,
    desired: &str,
    last: &str,
) -> Result<usize> {
    let list = api
        .list_tasks(v1::ListTasksRequest {
            service_name: "bench".into(),
            desired_status: desired.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut n = 0;
    for item in list.items {
        let t: berth_proto::model::Task = serde_json::from_str(&item)?;
        if t.last_status == last {
            n += 1;
        }
    }
    Ok(n)
}

async fn wait_for(
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

async fn service_start(args: &[String]) -> Result<()> {
    let tasks: usize = arg(args, "--tasks", 10)?;
    let dir = tempfile::tempdir()?;
    let c = controller(&dir.path().join("controller")).await?;
    let endpoint = format!("http://{}", c.addr);
    let agent = Agent::new(AgentConfig {
        endpoints: vec![endpoint.clone()],
        data_dir: dir.path().join("agent"),
        image_pull_behavior: PullBehavior::PreferCached,
        ..Default::default()
    })
    .await
    .context("starting the agent (is a Docker daemon running?)")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(agent.run(async move {
        let _ = stop_rx.await;
    }));
    let mut api = BerthClient::connect(endpoint).await?;
    wait_for("the agent to register", Duration::from_secs(30), async || {
        Ok(!api
            .clone()
            .list_container_instances(v1::ListInstancesRequest::default())
            .await?
            .into_inner()
            .items
            .is_empty())
    })
    .await?;
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: WEB.into(),
        ..Default::default()
    })
    .await?;
    let start = Instant::now();
    api.create_service(v1::CreateServiceRequest {
        service_name: "bench".into(),
        task_definition: "bench".into(),
        desired_count: tasks as i64,
        ..Default::default()
    })
    .await?;
    let up = wait_for("all tasks RUNNING", Duration::from_secs(300), async || {
        Ok(count_tasks(&mut api.clone(), "RUNNING", "RUNNING").await? == tasks)
    })
    .await?;
    let _ = start;
    println!(
        "BENCH service-start tasks={tasks} seconds={:.2} tasks_per_sec={:.1}",
        up.as_secs_f64(),
        tasks as f64 / up.as_secs_f64()
    );
    api.update_service(v1::UpdateServiceRequest {
        service: "bench".into(),
        desired_count: Some(0),
        ..Default::default()
    })
    .await?;
    let down = wait_for("all tasks STOPPED", Duration::from_secs(300), async || {
        Ok(count_tasks(&mut api.clone(), "STOPPED", "STOPPED").await? == tasks)
    })
    .await?;
    println!(
        "BENCH service-stop tasks={tasks} seconds={:.2} tasks_per_sec={:.1}",
        down.as_secs_f64(),
        tasks as f64 / down.as_secs_f64()
    );
    api.delete_service(v1::DeleteServiceRequest {
        service: "bench".into(),
        force: true,
        ..Default::default()
    })
    .await?;
    let _ = stop_tx.send(());
    agent_task.await??;
    c.stop().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(suite) = args.first().cloned() else {
        bail!("usage: bench SUITE [OPTIONS]; suites: list, api-write, service-start");
    };
    match suite.as_str() {
        "list" => {
            println!(
                "api-write      [--clients N] [--seconds S]   RegisterTaskDefinition throughput and latency"
            );
            println!(
                "service-start  [--tasks N]                    time to RUNNING / STOPPED for N Docker containers"
            );
            Ok(())
        }
        "api-write" => api_write(&args).await,
        "service-start" => service_start(&args).await,
        other => bail!("unknown suite {other:?}; run `bench list`"),
    }
}
