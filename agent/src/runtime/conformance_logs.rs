//! The logs part of the runtime conformance suite: the same assertions on [`DockerRuntime`]
//! (real output of busybox `echo`s, when a daemon answers) and on [`SimulatedRuntime`] (the
//! same lines written by the test, as its containers run nothing). Covers stdout/stderr tags,
//! `tail`, `follow` on an exited container, and a missing container.

use super::*;
use crate::testkit::{
    TEST_IMAGE, docker_with_test_image, remove_instance_containers, unique_id, wait_for,
};
use futures::StreamExt as _;

fn spec(instance: &str, name: &str, script: &str) -> ContainerSpec {
    let labels = [(LABEL_INSTANCE_ID, instance), (LABEL_TASK_ID, name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ContainerSpec {
        name: format!("{instance}-{name}"),
        image: TEST_IMAGE.to_string(),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels,
        network_mode: "bridge".into(),
        ..Default::default()
    }
}

async fn read_all(rt: &dyn ContainerRuntime, id: &str, opts: LogsOptions) -> Vec<LogChunk> {
    let stream = rt.logs(id, opts).await.expect("logs");
    let read = tokio::time::timeout(Duration::from_secs(20), stream.collect::<Vec<_>>());
    let items = read.await.expect("the stream ends within 20 s");
    items.into_iter().map(|i| i.expect("chunk")).collect()
}

fn text(chunks: &[LogChunk]) -> String {
    chunks.iter().map(|c| String::from_utf8_lossy(&c.data).into_owned()).collect()
}

/// Runs `script` (which exits at once) to completion; with `sim`, writes `output` for it.
async fn run_to_exit(
    rt: &dyn ContainerRuntime,
    sim: Option<&SimulatedRuntime>,
    spec: &ContainerSpec,
    output: &[(LogSource, &str)],
) -> String {
    let mut spec = spec.clone();
    if sim.is_some() {
        // The fake runs nothing; `exit 0` is the one script it understands.
        spec.cmd = Some(vec!["sh".into(), "-c".into(), "exit 0".into()]);
    }
    let id = rt.create(&spec).await.expect("create");
    rt.start(&id).await.expect("start");
    wait_for(Duration::from_secs(20), "the container to exit", || async {
        rt.inspect(&id).await.ok().filter(|i| i.state == ContainerState::Exited)
    })
    .await;
    if let Some(sim) = sim {
        for (source, text) in output {
            sim.append_log(&id, *source, text);
        }
    }
    id
}

async fn logs_conformance(rt: &dyn ContainerRuntime, sim: Option<&SimulatedRuntime>, inst: &str) {
    let out = spec(inst, "out", "echo one; echo two; echo three; exit 0");
    let out_id = run_to_exit(rt, sim, &out, &[(LogSource::Stdout, "one\ntwo\nthree\n")]).await;
    let all = read_all(rt, &out_id, LogsOptions::default()).await;
    assert_eq!(text(&all), "one\ntwo\nthree\n");
    assert!(all.iter().all(|c| c.source == LogSource::Stdout));

    let tail = LogsOptions { tail: Some(1), ..Default::default() };
    assert_eq!(text(&read_all(rt, &out_id, tail).await), "three\n");
    let none = LogsOptions { tail: Some(0), ..Default::default() };
    assert_eq!(text(&read_all(rt, &out_id, none).await), "");
    // Following a container that is not running ends after what it wrote.
    let follow = LogsOptions { follow: true, ..Default::default() };
    assert_eq!(text(&read_all(rt, &out_id, follow).await), "one\ntwo\nthree\n");

    let err = spec(inst, "err", "echo oops >&2; exit 0");
    let err_id = run_to_exit(rt, sim, &err, &[(LogSource::Stderr, "oops\n")]).await;
    let chunks = read_all(rt, &err_id, LogsOptions::default()).await;
    assert_eq!(text(&chunks), "oops\n");
    assert!(chunks.iter().all(|c| c.source == LogSource::Stderr));

    assert!(matches!(
        rt.logs("berth-no-such-container", LogsOptions::default()).await,
        Err(RuntimeError::NotFound(_))
    ));
    for id in [&out_id, &err_id] {
        rt.remove(id).await.expect("remove");
    }
}

#[tokio::test]
async fn simulated_runtime_passes_logs_conformance() {
    let rt = SimulatedRuntime::new();
    rt.add_cached_image(TEST_IMAGE);
    logs_conformance(&rt, Some(&rt), "sim-logs").await;
}

#[tokio::test]
async fn docker_runtime_passes_logs_conformance() {
    let Some(rt) = docker_with_test_image().await else {
        return;
    };
    let instance = unique_id("logs");
    logs_conformance(&rt, None, &instance).await;
    // Docker only: timestamps put the engine's RFC 3339 time before each line.
    let s = spec(&instance, "ts", "echo stamped; exit 0");
    let id = run_to_exit(&rt, None, &s, &[]).await;
    let stamped =
        text(&read_all(&rt, &id, LogsOptions { timestamps: true, ..Default::default() }).await);
    let (time, line) = stamped.split_once(' ').expect("a timestamp, a space, the line");
    assert!(time.starts_with("20") && time.contains('T') && time.ends_with('Z'), "{stamped}");
    assert_eq!(line, "stamped\n");
    remove_instance_containers(&rt, &instance).await;
}
