//! The `scheduler` bench suite: placement throughput of `berth_scheduler::place_with`.
//!
//! Workload (issue 4), at three sizes — (1,000 tasks, 100 nodes), (10,000, 1,000),
//! (100,000, 10,000): nodes spread over 3 availability zones and 5 instance types (3 of them
//! `m5.*`), every node ACTIVE with its agent connected and nothing running yet; one batch of
//! identical `service:web` tasks (64 CPU units, 256 MiB) placed with
//! `spread(attribute:ecs.availability-zone),binpack(memory)` under
//! `memberOf(attribute:ecs.instance-type =~ m5.*)`. The matching nodes hold about four times
//! the tasks, so every task must be placed.
//!
//! Inputs are built outside the timing; one `place_with` call is timed, on the calling thread
//! (the scheduler is single-threaded), `--runs` times (default 3), and the median is printed:
//! `BENCH scheduler.place tasks=T nodes=N seconds=S per_sec=P failures=F`. Any failure makes the
//! suite exit with an error after printing its line.

use anyhow::{Context, Result, bail};
use berth_scheduler::{Constraint, InstanceView, PlacementSpec, Strategy, TaskRequest, place_with};
use std::time::Instant;

/// (tasks, nodes) of each measured size.
pub const SIZES: [(usize, usize); 3] = [(1_000, 100), (10_000, 1_000), (100_000, 10_000)];

/// The workload's strategy list, in order (`--strategy` takes them comma-separated).
pub const STRATEGIES: [&str; 2] = ["spread(attribute:ecs.availability-zone)", "binpack(memory)"];
pub const CONSTRAINT: &str = "memberOf(attribute:ecs.instance-type =~ m5.*)";

/// Instance types: (name, CPU units, MiB available to tasks).
const TYPES: [(&str, i64, i64); 5] = [
    ("m5.large", 2048, 7680),
    ("c5.xlarge", 4096, 7680),
    ("m5.xlarge", 4096, 15616),
    ("r5.large", 2048, 15616),
    ("m5.2xlarge", 8192, 31488),
];
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// `nodes` container instances, ids in no particular order (as ECS's random ids are).
pub fn cluster(nodes: usize) -> Vec<InstanceView> {
    (0..nodes)
        .map(|k| {
            let (kind, cpu, memory) = TYPES[k % TYPES.len()];
            InstanceView {
                id: format!("{:032x}", scramble(k as u64)),
                active: true,
                agent_connected: true,
                attributes: [
                    ("ecs.availability-zone".to_owned(), ZONES[k % ZONES.len()].to_owned()),
                    ("ecs.instance-type".to_owned(), kind.to_owned()),
                    ("ecs.os-type".to_owned(), "linux".to_owned()),
                ]
                .into(),
                remaining_cpu: cpu,
                remaining_memory: memory,
                used_ports: [22, 2375, 2376, 51678, 51679].into(),
                tasks_by_group: Default::default(),
                registered_at_millis: 1_700_000_000_000,
                running_tasks_count: 0,
                agent_version: "1.0.0".to_owned(),
            }
        })
        .collect()
}

/// `count` identical tasks of one service.
pub fn tasks(count: usize) -> Vec<TaskRequest> {
    let task =
        TaskRequest { group: "service:web".to_owned(), cpu: 64, memory: 256, static_ports: vec![] };
    vec![task; count]
}

/// The workload's strategies and constraint.
pub fn spec() -> Result<PlacementSpec> {
    let strategies = STRATEGIES
        .iter()
        .map(|s| Strategy::parse(s).with_context(|| format!("strategy {s}")))
        .collect::<Result<Vec<_>>>()?;
    let constraints = vec![Constraint::parse(CONSTRAINT).context("the workload's constraint")?];
    Ok(PlacementSpec { strategies, constraints })
}

/// SplitMix64's finaliser: distinct, well-mixed ids for distinct `k`.
fn scramble(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `bench -- scheduler [--runs N]`.
pub fn run(args: &[String]) -> Result<()> {
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        None => 3,
        Some(i) => {
            let v = args.get(i + 1).context("--runs needs a value")?;
            v.parse().ok().filter(|&n: &usize| n > 0).with_context(|| format!("--runs {v:?}"))?
        }
    };
    let spec = spec()?;
    let mut failed = 0;
    for (count, nodes) in SIZES {
        let instances = cluster(nodes);
        let batch = tasks(count);
        let mut seconds = Vec::with_capacity(runs);
        let mut failures = 0;
        for run in 0..runs {
            let start = Instant::now();
            let plan = place_with(&instances, &batch, &spec, run as u64);
            seconds.push(start.elapsed().as_secs_f64());
            if plan.placements.len() + plan.failures.len() != count {
                bail!(
                    "the plan covers {} of {count} tasks",
                    plan.placements.len() + plan.failures.len()
                );
            }
            failures = failures.max(plan.failures.len());
        }
        seconds.sort_by(f64::total_cmp);
        let median = seconds[seconds.len() / 2];
        println!(
            "BENCH scheduler.place tasks={count} nodes={nodes} seconds={median:.6} per_sec={:.0} failures={failures}",
            count as f64 / median
        );
        failed += failures;
    }
    if failed > 0 {
        bail!("{failed} tasks could not be placed: the workload is sized so that every task fits");
    }
    Ok(())
}
