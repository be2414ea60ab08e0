//! The indexed placement pass (`place_with`) makes exactly the plan of the slow reference pass
//! (`place_reference`): same placements, same failures (reason, rejected counts, closest
//! instance), for every seed.
//!
//! Generators aim at the cases where an index can drift from a scan: coarse capacities (so
//! binpack and spread tie often and the seeded tie-break decides), several spread attributes
//! (cells sharing a value), instances lacking an attribute, inactive and disconnected
//! instances, taken ports, placement-dependent constraints (`distinctInstance`,
//! `runningTasksCount`, `task:group`, which can turn an instance back into a candidate),
//! `random` anywhere in the strategy list, and batches mixing a few task shapes in any order.

use berth_scheduler::{
    BinpackField, Constraint, InstanceView, PlacementSpec, SpreadField, Strategy, TaskRequest,
    place_reference, place_with,
};
use proptest::prelude::*;
use proptest::strategy::Strategy as PropStrategy;

const PORTS: [u16; 3] = [80, 443, 8080];
const GROUPS: [&str; 3] = ["service:web", "service:api", "family:batch"];
const TYPES: [&str; 5] = ["m5.large", "m5.xlarge", "c5.large", "r5.large", "m5.2xlarge"];

fn instance() -> impl PropStrategy<Value = InstanceView> {
    (
        (proptest::bool::weighted(0.9), proptest::bool::weighted(0.9)),
        (proptest::option::weighted(0.85, 0u8..3), proptest::option::weighted(0.7, 0u8..2)),
        0usize..TYPES.len(),
        (0i64..6, 0i64..6),
        proptest::collection::btree_set(proptest::sample::select(PORTS.to_vec()), 0..2),
        proptest::collection::btree_map(proptest::sample::select(GROUPS.to_vec()), 0u32..3, 0..3),
        0u32..5,
    )
        .prop_map(
            |(
                (active, agent_connected),
                (az, rack),
                kind,
                (cpu, memory),
                ports,
                groups,
                running,
            )| {
                let mut attributes = std::collections::BTreeMap::new();
                if let Some(z) = az {
                    attributes.insert("ecs.availability-zone".to_owned(), format!("z{z}"));
                }
                if let Some(r) = rack {
                    attributes.insert("rack".to_owned(), format!("r{r}"));
                }
                attributes.insert("ecs.instance-type".to_owned(), TYPES[kind].to_owned());
                InstanceView {
                    id: String::new(),
                    active,
                    agent_connected,
                    attributes,
                    remaining_cpu: cpu * 256,
                    remaining_memory: memory * 512,
                    used_ports: ports,
                    tasks_by_group: groups.into_iter().map(|(g, n)| (g.to_owned(), n)).collect(),
                    registered_at_millis: 0,
                    running_tasks_count: running,
                    agent_version: "1.0.0".to_owned(),
                }
            },
        )
}

/// Instances handed over in a shuffled order; with `duplicates`, some share an id (a caller bug
/// both passes must survive the same way: such instances are kept apart, in input order).
fn cluster(max: usize, duplicates: bool) -> impl PropStrategy<Value = Vec<InstanceView>> {
    proptest::collection::vec(instance(), 0..max)
        .prop_map(move |mut v| {
            for (k, inst) in v.iter_mut().enumerate() {
                let k = if duplicates && k % 5 == 4 { k - 1 } else { k };
                inst.id = format!("i-{k:03}");
            }
            v
        })
        .prop_shuffle()
}

fn shape() -> impl PropStrategy<Value = TaskRequest> {
    (
        proptest::sample::select(GROUPS.to_vec()),
        0i64..4,
        0i64..4,
        proptest::collection::vec(proptest::sample::select(PORTS.to_vec()), 0..2),
    )
        .prop_map(|(group, cpu, memory, static_ports)| TaskRequest {
            group: group.to_owned(),
            cpu: cpu * 128,
            memory: memory * 256,
            static_ports,
        })
}

/// A batch drawn from a few shapes, interleaved.
fn batch(max: usize) -> impl PropStrategy<Value = Vec<TaskRequest>> {
    proptest::collection::vec(shape(), 1..5).prop_flat_map(move |shapes| {
        proptest::collection::vec(0..shapes.len(), 0..max)
            .prop_map(move |picks| picks.into_iter().map(|k| shapes[k].clone()).collect())
    })
}

fn strategies() -> impl PropStrategy<Value = Vec<Strategy>> {
    let one = prop_oneof![
        Just(Strategy::Spread(SpreadField::InstanceId)),
        Just(Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))),
        Just(Strategy::Spread(SpreadField::Attribute("rack".into()))),
        Just(Strategy::Binpack(BinpackField::Cpu)),
        Just(Strategy::Binpack(BinpackField::Memory)),
        Just(Strategy::Random),
    ];
    proptest::collection::vec(one, 0..5)
}

fn constraints() -> impl PropStrategy<Value = Vec<Constraint>> {
    let one = proptest::sample::select(vec![
        "distinctInstance",
        "memberOf(attribute:ecs.instance-type =~ m5.*)",
        "memberOf(attribute:ecs.availability-zone != z1)",
        "memberOf(runningTasksCount < 4)",
        "memberOf(not task:group == service:api)",
        "memberOf(task:group == service:web or attribute:rack == r0)",
    ])
    .prop_map(|text| Constraint::parse(text).expect("the generator's constraints parse"));
    proptest::collection::vec(one, 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn indexed_pass_makes_the_reference_plan_on_small_clusters(
        instances in cluster(14, false), tasks in batch(40), strategies in strategies(),
        constraints in constraints(), seed in any::<u64>(),
    ) {
        let spec = PlacementSpec { strategies, constraints };
        prop_assert_eq!(
            place_with(&instances, &tasks, &spec, seed),
            place_reference(&instances, &tasks, &spec, seed)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn indexed_pass_makes_the_reference_plan_with_duplicate_ids(
        instances in cluster(14, true), tasks in batch(40), strategies in strategies(),
        constraints in constraints(), seed in any::<u64>(),
    ) {
        let spec = PlacementSpec { strategies, constraints };
        prop_assert_eq!(
            place_with(&instances, &tasks, &spec, seed),
            place_reference(&instances, &tasks, &spec, seed)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn indexed_pass_makes_the_reference_plan_on_larger_batches(
        instances in cluster(120, false), tasks in batch(300), strategies in strategies(),
        constraints in constraints(), seed in any::<u64>(),
    ) {
        let spec = PlacementSpec { strategies, constraints };
        prop_assert_eq!(
            place_with(&instances, &tasks, &spec, seed),
            place_reference(&instances, &tasks, &spec, seed)
        );
    }
}

#[test]
fn indexed_pass_makes_the_reference_plan_for_the_bench_workload() {
    // The bench's shape, small: zones, instance types, spread by zone then binpack memory, a
    // memberOf on the type. Uniform capacities make every new instance a many-way tie.
    let instances: Vec<InstanceView> = (0..90)
        .map(|k| InstanceView {
            id: format!("i-{k:04}"),
            active: true,
            agent_connected: true,
            attributes: [
                ("ecs.availability-zone".to_owned(), format!("z{}", k % 3)),
                ("ecs.instance-type".to_owned(), TYPES[k % 5].to_owned()),
            ]
            .into(),
            remaining_cpu: 2048 * (1 + (k % 5) as i64 % 3),
            remaining_memory: 8192 * (1 + (k % 5) as i64 % 3),
            ..Default::default()
        })
        .collect();
    let tasks = vec![
        TaskRequest {
            group: "service:web".into(),
            cpu: 128,
            memory: 512,
            static_ports: vec![]
        };
        2000
    ];
    let spec = PlacementSpec {
        strategies: vec![
            Strategy::parse("spread(attribute:ecs.availability-zone)").unwrap(),
            Strategy::parse("binpack(memory)").unwrap(),
        ],
        constraints: vec![
            Constraint::parse("memberOf(attribute:ecs.instance-type =~ m5.*)").unwrap(),
        ],
    };
    for seed in 0..4 {
        let plan = place_with(&instances, &tasks, &spec, seed);
        assert_eq!(plan, place_reference(&instances, &tasks, &spec, seed));
        // Capacity runs out part-way: both placements and failures are compared above.
        assert!(!plan.placements.is_empty() && !plan.failures.is_empty());
    }
}
