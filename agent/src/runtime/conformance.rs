//! One behaviour suite for every [`ContainerRuntime`]: run against [`SimulatedRuntime`] always
//! and against [`DockerRuntime`] when a daemon answers (the Docker part skips otherwise, or
//! fails under `BERTH_REQUIRE_DOCKER=1`). Covers images, lifecycle, exit codes, stop timeouts,
//! removal, health checks and stats.

use super::*;
use crate::testkit::{
    TEST_IMAGE, docker_with_test_image, remove_instance_containers, unique_id, wait_for,
};
use std::collections::BTreeMap;

fn spec(instance: &str, name: &str, cmd: &[&str]) -> ContainerSpec {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_INSTANCE_ID.to_string(), instance.to_string());
    labels.insert(LABEL_TASK_ID.to_string(), format!("task-{name}"));
    ContainerSpec {
        name: format!("{instance}-{name}"),
        image: TEST_IMAGE.to_string(),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        labels,
        port_mappings: vec![PortMappingSpec {
            container_port: 80,
            host_port: None,
            protocol: "tcp".into(),
        }],
        cpu_shares: Some(2),
        memory_bytes: Some(64 * 1024 * 1024),
        network_mode: "bridge".into(),
        ..Default::default()
    }
}

/// A CMD-SHELL check probing every second; `retries` 1 so that a failing one turns unhealthy
/// at its first probe.
fn shell_check(command: &str) -> HealthCheckSpec {
    HealthCheckSpec {
        test: vec!["CMD-SHELL".into(), command.into()],
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        retries: 1,
        start_period: Duration::ZERO,
    }
}

/// The suite: images, create/start/inspect/list, exit codes, stop, remove.
async fn conformance(rt: &dyn ContainerRuntime, instance: &str) {
    assert!(!rt.version().await.expect("version").is_empty());

    // Images: the test image is present; an unknown one is absent and cannot be pulled here.
    assert!(rt.image_present(TEST_IMAGE).await.expect("image_present"));
    assert!(!rt.image_present("berth-test/absent:0").await.expect("image_present absent"));
    assert!(matches!(rt.pull_image("berth-test/absent:0").await, Err(RuntimeError::Pull { .. })));

    // Create → Created, with labels; a second create with the same name conflicts.
    let long = spec(instance, "long", &["sleep", "3600"]);
    let id = rt.create(&long).await.expect("create");
    let info = rt.inspect(&id).await.expect("inspect");
    assert_eq!(info.state, ContainerState::Created);
    assert_eq!(info.name, long.name);
    assert_eq!(info.label(LABEL_INSTANCE_ID), Some(instance));
    assert!(matches!(rt.create(&long).await, Err(RuntimeError::Conflict(_))));

    // Start → Running with a dynamic host port read back from inspect.
    rt.start(&id).await.expect("start");
    let info = rt.inspect(&id).await.expect("inspect running");
    assert_eq!(info.state, ContainerState::Running);
    let bound = info.ports.iter().find(|p| p.container_port == 80).expect("port 80 bound");
    assert_ne!(bound.host_port, 0);
    assert_eq!(info.health, None, "a container without a health check has no verdict");

    // List by label finds it, and only this instance's containers.
    let listed = rt.list(LABEL_INSTANCE_ID, instance).await.expect("list");
    assert_eq!(listed.iter().filter(|c| c.id == id).count(), 1);
    assert!(listed.iter().all(|c| c.label(LABEL_INSTANCE_ID) == Some(instance)));

    // Stats: a running container's sample carries its memory limit, the engine's JSON with
    // `memory_stats`, and CPU counters that never go backwards; a missing container has none.
    let first = rt.stats(&id).await.expect("stats of a running container");
    let second = rt.stats(&id).await.expect("stats again");
    assert_eq!(first.memory_limit_bytes, Some(64 * 1024 * 1024));
    assert!(first.raw["memory_stats"].is_object(), "{}", first.raw);
    assert!(first.system_cpu_usage_ns.is_some());
    assert!(second.cpu_total_usage_ns >= first.cpu_total_usage_ns);
    assert!(matches!(
        rt.stats("berth-test-no-such-container").await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(rt.networks(&id).await.is_ok());

    // A container that exits by itself reports its exit code.
    let exits = spec(instance, "exit3", &["sh", "-c", "exit 3"]);
    let exit_id = rt.create(&exits).await.expect("create exit3");
    rt.start(&exit_id).await.expect("start exit3");
    let exited = wait_for(Duration::from_secs(20), "exit3 to exit", || async {
        rt.inspect(&exit_id).await.ok().filter(|i| i.state == ContainerState::Exited)
    })
    .await;
    assert_eq!(exited.exit_code, Some(3));

    // Stop with a timeout: `sleep` as PID 1 ignores SIGTERM, so this ends with SIGKILL.
    rt.stop(&id, Duration::from_secs(1)).await.expect("stop");
    let stopped = rt.inspect(&id).await.expect("inspect stopped");
    assert_eq!(stopped.state, ContainerState::Exited);
    assert!(stopped.exit_code.is_some());
    rt.stop(&id, Duration::from_secs(1)).await.expect("stop of a stopped container succeeds");

    let (healthy_id, unhealthy_id) = health_checks(rt, instance).await;

    // Remove; removing again succeeds; inspect then says NotFound.
    for cid in [&id, &exit_id, &healthy_id, &unhealthy_id] {
        rt.remove(cid).await.expect("remove");
        rt.remove(cid).await.expect("remove again");
        assert!(matches!(rt.inspect(cid).await, Err(RuntimeError::NotFound(_))));
    }
    assert!(rt.list(LABEL_INSTANCE_ID, instance).await.expect("list").is_empty());
}

/// Health checks: a passing check turns healthy and a failing one unhealthy (inspect and list
/// agree); a stopped container has no verdict. Returns the two (stopped) containers' ids.
async fn health_checks(rt: &dyn ContainerRuntime, instance: &str) -> (String, String) {
    let mut ids = Vec::new();
    for (name, command, verdict) in [
        ("healthy", "true", ContainerHealth::Healthy),
        ("unhealthy", "false", ContainerHealth::Unhealthy),
    ] {
        let mut s = spec(instance, name, &["sleep", "3600"]);
        s.health_check = Some(shell_check(command));
        let cid = rt.create(&s).await.expect("create checked container");
        rt.start(&cid).await.expect("start checked container");
        let what = format!("{name} container to read {verdict:?}");
        wait_for(Duration::from_secs(30), &what, || async {
            rt.inspect(&cid).await.ok().filter(|i| i.health == Some(verdict))
        })
        .await;
        let listed = rt.list(LABEL_INSTANCE_ID, instance).await.expect("list");
        let hint = listed.iter().find(|c| c.id == cid).and_then(|c| c.health);
        assert_eq!(hint, Some(verdict), "list shows the same verdict as inspect");
        ids.push(cid);
    }
    for cid in &ids {
        rt.stop(cid, Duration::ZERO).await.expect("stop checked container");
        let stopped = rt.inspect(cid).await.expect("inspect stopped checked container");
        assert_eq!(stopped.state, ContainerState::Exited);
        assert_eq!(stopped.health, None, "a stopped container has no verdict");
    }
    let unhealthy = ids.pop().unwrap_or_default();
    let healthy = ids.pop().unwrap_or_default();
    (healthy, unhealthy)
}

#[tokio::test]
async fn simulated_runtime_passes_conformance_suite() {
    let rt = SimulatedRuntime::new();
    rt.add_cached_image(TEST_IMAGE);
    conformance(&rt, "sim-conformance").await;
}

#[tokio::test]
async fn docker_runtime_passes_conformance_suite() {
    let Some(rt) = docker_with_test_image().await else {
        return;
    };
    let instance = unique_id("conformance");
    conformance(&rt, &instance).await;
    remove_instance_containers(&rt, &instance).await;
}
