//! Real ECS CreateService documents written by outside users (shared/fixtures/services) through
//! `parse_create_service`, each with the outcome `shared/fixtures/README.md` requires. Read in
//! place; if the folder is absent the test prints why and passes.

use berth_proto::model::DeploymentCircuitBreaker;
use berth_proto::service_input::{ServiceDocument, parse_create_service};
use std::fs;
use std::path::{Path, PathBuf};

fn services_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/services");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: fixture folder {} is absent", dir.display());
        None
    }
}

fn parse(dir: &Path, name: &str) -> ServiceDocument {
    let path = dir.join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc = parse_create_service(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    println!("{name}: parsed with warnings {:?}", doc.warnings);
    doc
}

fn warned(doc: &ServiceDocument, what: &str) -> bool {
    doc.warnings.iter().any(|w| w.contains(what))
}

#[test]
fn every_service_fixture_has_its_expected_outcome() {
    let Some(dir) = services_dir() else { return };
    let mut seen: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "kayac__ecspresso__tests-ci-ecs-service-def-daemon.json",
            "kayac__ecspresso__tests-ci-ecs-service-def.json",
            "nkdchck__IaC-Mythical-Misfits__service-definition.json",
        ],
        "a new fixture needs its expected outcome here"
    );

    // ecspresso's fragment: no name, cluster, task definition or count (the command line gives
    // them); min 100 / max 200 and the breaker with rollback; Fargate-only parts warned about.
    let d = parse(&dir, "kayac__ecspresso__tests-ci-ecs-service-def.json");
    let i = &d.input;
    assert_eq!((i.service_name.as_deref(), i.cluster.as_deref()), (None, None));
    assert_eq!((i.task_definition.as_deref(), i.desired_count), (None, None));
    assert_eq!((i.minimum_healthy_percent, i.maximum_percent), (Some(100), Some(200)));
    assert_eq!(
        i.deployment_circuit_breaker,
        Some(DeploymentCircuitBreaker { enable: true, rollback: true })
    );
    assert_eq!(i.scheduling_strategy.as_deref(), Some("REPLICA"));
    assert!(warned(&d, "capacityProviderStrategy (FARGATE, FARGATE_SPOT)"), "{:?}", d.warnings);
    assert!(warned(&d, "networkConfiguration.awsvpcConfiguration ignored (3 subnet(s))"));
    assert!(warned(&d, "platformVersion LATEST"));
    assert_eq!(d.warnings.len(), 3, "enableECSManagedTags false needs none: {:?}", d.warnings);

    // Mythical Mysfits: a whole request (after leading whitespace), min 0 / max 200, FARGATE.
    let d = parse(&dir, "nkdchck__IaC-Mythical-Misfits__service-definition.json");
    let i = &d.input;
    assert_eq!(i.service_name.as_deref(), Some("MythicalMysfits-Service"));
    assert_eq!(i.cluster.as_deref(), Some("MythicalMysfits-Cluster"));
    assert_eq!(i.task_definition.as_deref(), Some("mythicalmysfitsservice"));
    assert_eq!(i.desired_count, Some(1));
    assert_eq!((i.minimum_healthy_percent, i.maximum_percent), (Some(0), Some(200)));
    assert_eq!(i.deployment_circuit_breaker, None);
    assert!(warned(&d, "launchType FARGATE"), "{:?}", d.warnings);
    assert!(warned(&d, "networkConfiguration.awsvpcConfiguration ignored (2 subnet(s))"));
    assert!(warned(&d, "loadBalancers ignored (1 given)"));
    assert_eq!(d.warnings.len(), 3, "{:?}", d.warnings);

    // ecspresso's DAEMON service: only the strategy; the controller fills in the defaults.
    let d = parse(&dir, "kayac__ecspresso__tests-ci-ecs-service-def-daemon.json");
    assert_eq!(d.input.scheduling_strategy.as_deref(), Some("DAEMON"));
    assert_eq!(d.input.desired_count, None);
    assert_eq!((d.input.minimum_healthy_percent, d.input.maximum_percent), (None, None));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}
