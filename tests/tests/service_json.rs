//! `berth service create --from-json` end to end with the real binary: the real ECS service
//! documents in shared/fixtures/services, completed by flags; warnings on stderr, errors naming
//! the field, nothing created on refusal. Needs a Docker daemon for `berth dev`'s agent (skips
//! without one unless BERTH_REQUIRE_DOCKER=1) and the fixtures (skips without them).

use berth_tests::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ecs_service_documents_create_services_with_warnings_and_field_errors() {
    if !require_docker("ecs_service_documents_create_services_with_warnings_and_field_errors") {
        return;
    }
    let Some(fixtures) = fixtures_dir() else {
        eprintln!("SKIP: ../shared/fixtures is absent");
        return;
    };
    let services = fixtures.join("services");
    let file = |name: &str| services.join(name).to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path(), &[]);
    let td = dir.path().join("web.json");
    std::fs::write(
        &td,
        r#"{"family": "web", "containerDefinitions": [
            {"name": "web", "image": "berth/httpd:1", "memory": 32}]}"#,
    )
    .unwrap();
    dev.json(&["taskdef", "register", td.to_str().unwrap()]);

    // ecspresso's fragment: the command line gives the name, task definition and count.
    let fragment = file("kayac__ecspresso__tests-ci-ecs-service-def.json");
    let out = dev.berth(&["service", "create", "--from-json", &fragment]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: a service name is required: give NAME, or serviceName"),
        "{}",
        stderr(&out)
    );
    let out = dev.berth(&[
        "-o",
        "json",
        "service",
        "create",
        "web",
        "--taskdef",
        "web",
        "--desired-count",
        "1",
        "--from-json",
        &fragment,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: capacityProviderStrategy (FARGATE, FARGATE_SPOT) ignored"),
        "{err}"
    );
    assert!(err.contains("warning: networkConfiguration.awsvpcConfiguration ignored"), "{err}");
    let svc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(svc["desiredCount"], 1);
    assert_eq!(svc["deploymentConfiguration"]["minimumHealthyPercent"], 100);
    assert_eq!(svc["deploymentConfiguration"]["maximumPercent"], 200);
    assert_eq!(svc["deploymentConfiguration"]["deploymentCircuitBreaker"]["enable"], true);
    assert_eq!(svc["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"], true);

    // Mythical Mysfits: a whole request for a cluster that does not exist here — the FARGATE
    // warnings first, then ECS's error; nothing is created.
    let out = dev.berth(&[
        "service",
        "create",
        "--from-json",
        &file("nkdchck__IaC-Mythical-Misfits__service-definition.json"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("warning: launchType FARGATE"), "{err}");
    assert!(err.contains("warning: loadBalancers ignored (1 given)"), "{err}");
    assert!(err.contains("error: ClusterNotFoundException"), "{err}");
    assert!(err.contains("MythicalMysfits-Cluster"), "{err}");

    // ecspresso's DAEMON document, named and completed on the command line.
    let out = dev.berth(&[
        "-o",
        "json",
        "service",
        "create",
        "agent",
        "--taskdef",
        "web",
        "--from-json",
        &file("kayac__ecspresso__tests-ci-ecs-service-def-daemon.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let svc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(svc["schedulingStrategy"], "DAEMON");
    assert_eq!(svc["deploymentConfiguration"]["maximumPercent"], 100);
    assert_eq!(svc["deploymentConfiguration"]["minimumHealthyPercent"], 0);
    wait_until("the daemon counts the one instance", std::time::Duration::from_secs(30), || {
        (dev.json(&["service", "describe", "agent"])["desiredCount"] == 1).then_some(())
    });

    // A typo is an error naming the field, with a suggestion; a type mismatch names its path.
    let typo = dir.path().join("typo.json");
    std::fs::write(&typo, r#"{"serviceName": "x", "taskDefinition": "web", "desiredCont": 1}"#)
        .unwrap();
    let out = dev.berth(&["service", "create", "--from-json", typo.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "Unknown parameter in input: \"desiredCont\" (did you mean \"desiredCount\"?)"
        ),
        "{}",
        stderr(&out)
    );
    std::fs::write(&typo, r#"{"serviceName": "x", "taskDefinition": "web", "desiredCount": "1"}"#)
        .unwrap();
    let out = dev.berth(&["service", "create", "--from-json", typo.to_str().unwrap()]);
    assert!(stderr(&out).contains("Invalid type for parameter desiredCount"), "{}", stderr(&out));
    let names: Vec<String> = dev
        .json(&["service", "list"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["serviceName"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["agent", "web"], "nothing created on refusal");

    for name in ["web", "agent"] {
        dev.json(&["service", "delete", name, "--force"]);
    }
    dev.stop();
}
