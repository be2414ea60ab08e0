//! Property tests of the public API: whatever the snapshot, a plan never overbooks an instance,
//! never double-books a static host port, balances spread within one task, and replays exactly
//! from its seed; victim choice keeps spread groups balanced.
//!
//! Generators build small clusters (1–12 instances over up to 3 zones) with random capacity,
//! taken ports and existing tasks, and batches of up to 40 tasks from a few groups.

use std::collections::{BTreeMap, BTreeSet};

use berth_scheduler::{
    BinpackField, InstanceView, SpreadField, Strategy, TaskRequest, VictimCandidate,
    choose_victims, default_strategies, place,
};
use proptest::prelude::*;
use proptest::strategy::Strategy as PropStrategy;

const PORTS: [u16; 4] = [80, 443, 8080, 9000];
const GROUPS: [&str; 3] = ["service:web", "service:api", "family:batch"];

fn instance() -> impl PropStrategy<Value = InstanceView> {
    (
        proptest::bool::weighted(0.85),
        proptest::bool::weighted(0.85),
        proptest::option::weighted(0.9, 0u8..3),
        0i64..4096,
        0i64..4096,
        proptest::collection::btree_set(proptest::sample::select(PORTS.to_vec()), 0..3),
        proptest::collection::btree_map(proptest::sample::select(GROUPS.to_vec()), 0u32..4, 0..3),
    )
        .prop_map(|(active, agent_connected, az, cpu, memory, used_ports, groups)| {
            InstanceView {
                registered_at_millis: 0,
                running_tasks_count: 0,
                agent_version: String::new(),
                id: String::new(),
                active,
                agent_connected,
                attributes: az
                    .map(|z| ("ecs.availability-zone".to_owned(), format!("z{z}")))
                    .into_iter()
                    .collect(),
                remaining_cpu: cpu,
                remaining_memory: memory,
                used_ports,
                tasks_by_group: groups.into_iter().map(|(g, n)| (g.to_owned(), n)).collect(),
            }
        })
}

fn cluster() -> impl PropStrategy<Value = Vec<InstanceView>> {
    proptest::collection::vec(instance(), 1..12).prop_map(|mut v| {
        for (k, inst) in v.iter_mut().enumerate() {
            inst.id = format!("i-{k:03}");
        }
        v
    })
}

fn task() -> impl PropStrategy<Value = TaskRequest> {
    (
        proptest::sample::select(GROUPS.to_vec()),
        0i64..1500,
        0i64..1500,
        proptest::collection::vec(proptest::sample::select(PORTS.to_vec()), 0..2),
    )
        .prop_map(|(group, cpu, memory, static_ports)| TaskRequest {
            group: group.to_owned(),
            cpu,
            memory,
            static_ports,
        })
}

fn strategy_list() -> impl PropStrategy<Value = Vec<Strategy>> {
    let one = prop_oneof![
        Just(Strategy::Spread(SpreadField::InstanceId)),
        Just(Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))),
        Just(Strategy::Binpack(BinpackField::Cpu)),
        Just(Strategy::Binpack(BinpackField::Memory)),
        Just(Strategy::Random),
    ];
    proptest::collection::vec(one, 0..4)
}

fn uniform(n: usize) -> Vec<InstanceView> {
    (0..n)
        .map(|k| InstanceView {
            id: format!("i-{k:03}"),
            active: true,
            agent_connected: true,
            remaining_cpu: 1 << 20,
            remaining_memory: 1 << 20,
            ..Default::default()
        })
        .collect()
}

proptest! {
    #[test]
    fn never_places_on_an_instance_lacking_cpu_memory_or_port(
        instances in cluster(), tasks in proptest::collection::vec(task(), 0..40),
        strategies in strategy_list(), seed in any::<u64>(),
    ) {
        let plan = place(&instances, &tasks, &strategies, seed);
        prop_assert_eq!(plan.placements.len() + plan.failures.len(), tasks.len());
        let mut state: BTreeMap<&str, InstanceView> = instances.iter().map(|i| (i.id.as_str(), i.clone())).collect();
        for p in &plan.placements {
            let inst = state.get_mut(p.instance_id.as_str()).unwrap();
            let t = &tasks[p.task_index];
            prop_assert!(inst.active && inst.agent_connected);
            prop_assert!(inst.remaining_cpu >= t.cpu, "cpu overbooked on {}", inst.id);
            prop_assert!(inst.remaining_memory >= t.memory, "memory overbooked on {}", inst.id);
            for port in &t.static_ports {
                prop_assert!(!inst.used_ports.contains(port), "port {} double-booked on {}", port, inst.id);
            }
            inst.remaining_cpu -= t.cpu;
            inst.remaining_memory -= t.memory;
            inst.used_ports.extend(&t.static_ports);
        }
    }

    #[test]
    fn every_failure_names_a_closest_instance_that_lacks_the_reason(
        instances in cluster(), tasks in proptest::collection::vec(task(), 0..40), seed in any::<u64>(),
    ) {
        let plan = place(&instances, &tasks, &default_strategies(), seed);
        for f in &plan.failures {
            let (id, lack) = f.closest.clone().unwrap();
            prop_assert!(instances.iter().any(|i| i.id == id));
            prop_assert!(!lack.is_empty());
            prop_assert_eq!(f.rejected.values().sum::<u32>() as usize, instances.len());
            prop_assert_eq!(f.rejected.keys().max(), Some(&f.reason));
        }
    }

    #[test]
    fn same_seed_gives_same_plan(
        instances in cluster(), tasks in proptest::collection::vec(task(), 0..40),
        strategies in strategy_list(), seed in any::<u64>(),
    ) {
        prop_assert_eq!(place(&instances, &tasks, &strategies, seed), place(&instances, &tasks, &strategies, seed));
        let mut shuffled = instances.clone();
        shuffled.rotate_left(instances.len() / 2);
        prop_assert_eq!(place(&instances, &tasks, &strategies, seed), place(&shuffled, &tasks, &strategies, seed));
    }

    #[test]
    fn spread_over_instances_differs_by_at_most_one(n in 1usize..20, m in 0usize..100, seed in any::<u64>()) {
        let tasks = vec![TaskRequest { group: "service:web".into(), cpu: 1, memory: 1, static_ports: vec![] }; m];
        let plan = place(&uniform(n), &tasks, &[Strategy::Spread(SpreadField::InstanceId)], seed);
        let mut counts = vec![0usize; n];
        for p in &plan.placements {
            counts[p.instance_id[2..].parse::<usize>().unwrap()] += 1;
        }
        prop_assert_eq!(counts.iter().sum::<usize>(), m);
        prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{:?}", counts);
    }

    #[test]
    fn spread_by_az_balances_zones_then_instances(
        zones_of in proptest::collection::vec(0u8..3, 3..15), m in 0usize..60, seed in any::<u64>(),
    ) {
        let mut instances = uniform(zones_of.len());
        for (inst, z) in instances.iter_mut().zip(&zones_of) {
            inst.attributes.insert("ecs.availability-zone".into(), format!("z{z}"));
        }
        let tasks = vec![TaskRequest { group: "service:web".into(), cpu: 1, memory: 1, static_ports: vec![] }; m];
        let plan = place(&instances, &tasks, &default_strategies(), seed);
        let zone_of: BTreeMap<&str, u8> = instances.iter().zip(&zones_of).map(|(i, z)| (i.id.as_str(), *z)).collect();
        let mut per_zone: BTreeMap<u8, usize> = zones_of.iter().map(|z| (*z, 0)).collect();
        let mut per_instance: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &plan.placements {
            *per_zone.get_mut(&zone_of[p.instance_id.as_str()]).unwrap() += 1;
            *per_instance.entry(p.instance_id.as_str()).or_default() += 1;
        }
        let (max, min) = (per_zone.values().max().unwrap(), per_zone.values().min().unwrap());
        prop_assert!(max - min <= 1, "zones {:?}", per_zone);
        for zone in per_zone.keys() {
            let counts: Vec<usize> = instances.iter().zip(&zones_of).filter(|(_, z)| *z == zone)
                .map(|(i, _)| per_instance.get(i.id.as_str()).copied().unwrap_or(0)).collect();
            prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "zone {} {:?}", zone, counts);
        }
    }

    #[test]
    fn static_port_is_booked_once_per_instance_in_a_batch(n in 1usize..6, m in 0usize..20, seed in any::<u64>()) {
        let tasks = vec![TaskRequest { group: "service:web".into(), cpu: 1, memory: 1, static_ports: vec![80] }; m];
        let plan = place(&uniform(n), &tasks, &default_strategies(), seed);
        let hosts: BTreeSet<&str> = plan.placements.iter().map(|p| p.instance_id.as_str()).collect();
        prop_assert_eq!(hosts.len(), plan.placements.len());
        prop_assert_eq!(plan.placements.len(), m.min(n));
    }

    #[test]
    fn victims_keep_spread_balanced(
        per_instance in proptest::collection::vec(0u32..8, 1..8), stop in 0usize..40, seed in any::<u64>(),
    ) {
        let mut instances = uniform(per_instance.len());
        let mut candidates = Vec::new();
        for (inst, &n) in instances.iter_mut().zip(&per_instance) {
            inst.tasks_by_group.insert("service:web".into(), n);
            for k in 0..n {
                candidates.push(VictimCandidate {
                    task_id: format!("{}-{k}", inst.id), instance_id: inst.id.clone(),
                    group: "service:web".into(), started: true, cpu: 1, memory: 1,
                });
            }
        }
        let victims = choose_victims(&instances, &candidates, stop, &[Strategy::Spread(SpreadField::InstanceId)], seed);
        prop_assert_eq!(victims.len(), stop.min(candidates.len()));
        prop_assert_eq!(victims.iter().collect::<BTreeSet<_>>().len(), victims.len());
        // Stopping from the fullest first: the remaining maximum is as low as possible.
        let mut left: Vec<u32> = per_instance.clone();
        for v in &victims {
            let k: usize = v[2..5].parse().unwrap();
            left[k] -= 1;
        }
        let remaining: u32 = left.iter().sum();
        let best_max = {
            // Smallest cap c with sum(min(n, c)) >= remaining.
            (0..=8).find(|&c| per_instance.iter().map(|&n| n.min(c)).sum::<u32>() >= remaining).unwrap()
        };
        prop_assert_eq!(*left.iter().max().unwrap(), best_max, "{:?} → {:?}", per_instance, left);
    }

    #[test]
    fn strategy_display_parses_back(strategies in strategy_list(), name in "[a-zA-Z][a-zA-Z0-9.-]{0,20}") {
        let mut all = strategies;
        all.push(Strategy::Spread(SpreadField::Attribute(name)));
        for s in all {
            prop_assert_eq!(Strategy::parse(&s.to_string()).unwrap(), s);
        }
    }
}
