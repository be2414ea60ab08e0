//! Placement throughput: 1000 tasks on 10,000 instances in three zones, default strategies
//! (spread by zone, then by instance), plus binpack and scale-in for comparison; and the issue's
//! workload at its largest size, 100,000 tasks on 10,000 instances (3 zones, 5 instance types,
//! `spread(attribute:ecs.availability-zone),binpack(memory)`, `memberOf(attribute:ecs.instance-type
//! =~ m5.*)`, the same as `bench -- scheduler`).
//!
//! `cargo bench -p berth-scheduler --bench place` prints criterion's per-iteration time; divide
//! by the task count for the cost of one placement decision. Inputs are built once, outside the
//! timing.

use std::hint::black_box;

use berth_scheduler::{
    BinpackField, Constraint, InstanceView, PlacementSpec, SpreadField, Strategy, TaskRequest,
    VictimCandidate, choose_victims, default_strategies, place, place_with,
};
use criterion::{Criterion, criterion_group, criterion_main};

const INSTANCES: usize = 10_000;
const TASKS: usize = 1_000;

fn cluster() -> Vec<InstanceView> {
    (0..INSTANCES)
        .map(|k| InstanceView {
            id: format!("{k:032x}"),
            active: k % 50 != 0,
            agent_connected: k % 97 != 0,
            attributes: [
                ("ecs.availability-zone".to_owned(), format!("local-{}", ["a", "b", "c"][k % 3])),
                ("ecs.instance-type".to_owned(), "m5.large".to_owned()),
            ]
            .into(),
            remaining_cpu: 2048 - (k as i64 % 8) * 128,
            remaining_memory: 7985 - (k as i64 % 16) * 256,
            used_ports: [22, 2375, 2376, 51678, 51679, 51680].into(),
            tasks_by_group: [
                ("service:web".to_owned(), (k % 3) as u32),
                ("service:db".to_owned(), 1),
            ]
            .into(),
            registered_at_millis: 1_700_000_000_000,
            running_tasks_count: 1 + (k % 3) as u32,
            agent_version: "1.0.0".to_owned(),
        })
        .collect()
}

/// The workload: `nodes` fresh instances over 3 zones and 5 types (3 of them `m5.*`).
fn workload_cluster(nodes: usize) -> Vec<InstanceView> {
    const TYPES: [(&str, i64, i64); 5] = [
        ("m5.large", 2048, 7680),
        ("c5.xlarge", 4096, 7680),
        ("m5.xlarge", 4096, 15616),
        ("r5.large", 2048, 15616),
        ("m5.2xlarge", 8192, 31488),
    ];
    (0..nodes)
        .map(|k| {
            let (kind, cpu, memory) = TYPES[k % TYPES.len()];
            InstanceView {
                id: format!("{:032x}", (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                active: true,
                agent_connected: true,
                attributes: [
                    (
                        "ecs.availability-zone".to_owned(),
                        format!("us-east-1{}", ["a", "b", "c"][k % 3]),
                    ),
                    ("ecs.instance-type".to_owned(), kind.to_owned()),
                ]
                .into(),
                remaining_cpu: cpu,
                remaining_memory: memory,
                used_ports: [22, 2375, 2376, 51678, 51679].into(),
                agent_version: "1.0.0".to_owned(),
                ..Default::default()
            }
        })
        .collect()
}

fn bench_workload(c: &mut Criterion) {
    let instances = workload_cluster(10_000);
    let tasks =
        vec![
            TaskRequest { group: "service:web".into(), cpu: 64, memory: 256, static_ports: vec![] };
            100_000
        ];
    let spec = PlacementSpec {
        strategies: vec![
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Strategy::Binpack(BinpackField::Memory),
        ],
        constraints: vec![
            Constraint::parse("memberOf(attribute:ecs.instance-type =~ m5.*)")
                .expect("a valid constraint"),
        ],
    };
    let mut group = c.benchmark_group("place_100000_tasks_on_10000_instances");
    group.sample_size(10);
    group.bench_function("spread_az_binpack_memory_member_of_m5", |b| {
        b.iter(|| place_with(black_box(&instances), black_box(&tasks), &spec, 7))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let instances = cluster();
    let tasks: Vec<TaskRequest> = (0..TASKS)
        .map(|k| TaskRequest {
            group: if k % 2 == 0 { "service:web" } else { "service:api" }.to_owned(),
            cpu: 256,
            memory: 512,
            static_ports: if k % 10 == 0 { vec![8080] } else { vec![] },
        })
        .collect();
    let mut group = c.benchmark_group("place_1000_tasks_on_10000_instances");
    group.sample_size(10);
    group.bench_function("default_spread_az_then_instance", |b| {
        b.iter(|| place(black_box(&instances), black_box(&tasks), &default_strategies(), 7))
    });
    group.bench_function("binpack_memory", |b| {
        b.iter(|| {
            place(
                black_box(&instances),
                black_box(&tasks),
                &[Strategy::Binpack(BinpackField::Memory)],
                7,
            )
        })
    });
    group.finish();

    let victims: Vec<VictimCandidate> = instances
        .iter()
        .take(3_000)
        .enumerate()
        .map(|(k, inst)| VictimCandidate {
            task_id: format!("{k:032x}"),
            instance_id: inst.id.clone(),
            group: "service:web".to_owned(),
            started: k % 7 != 0,
            cpu: 256,
            memory: 512,
        })
        .collect();
    c.bench_function("choose_100_victims_of_3000", |b| {
        b.iter(|| {
            choose_victims(
                black_box(&instances),
                black_box(&victims),
                100,
                &default_strategies(),
                7,
            )
        })
    });
}

criterion_group!(benches, bench, bench_workload);
criterion_main!(benches);
