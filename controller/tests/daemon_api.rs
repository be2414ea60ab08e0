//! CreateService / UpdateService / DeleteService for DAEMON services over real gRPC against a
//! one-node controller: ECS's rules (no desired count, no placement strategies, maximumPercent
//! 100), its defaults (min 0 / max 100), and delete without --force.

use berth_controller::{Controller, ControllerConfig};
use berth_proto::v1::{self, berth_client::BerthClient};
use serde_json::Value;
use std::time::Duration;
use tonic::Code;

const LOGS: &str = r#"{"family": "logs", "containerDefinitions": [
  {"name": "logs", "image": "berth/httpd:1", "memory": 32}]}"#;

fn json(r: tonic::Response<v1::ObjectReply>) -> Value {
    serde_json::from_str(&r.into_inner().json).unwrap()
}

fn daemon(name: &str) -> v1::CreateServiceRequest {
    v1::CreateServiceRequest {
        service_name: name.into(),
        task_definition: "logs".into(),
        scheduling_strategy: "DAEMON".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn daemon_services_follow_the_ecs_rules_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = ControllerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let c = Controller::start(config).await.unwrap();
    c.wait_leader(Duration::from_secs(10)).await.unwrap();
    let mut api = BerthClient::connect(format!("http://{}", c.addr)).await.unwrap();
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: LOGS.into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let refused = |r: Result<tonic::Response<v1::ObjectReply>, tonic::Status>| {
        let e = r.expect_err("expected a refusal");
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert_eq!(e.metadata().get("x-berth-error-type").unwrap(), "InvalidParameterException");
        e.message().trim_start_matches("InvalidParameterException: ").to_string()
    };
    let msg = refused(
        api.create_service(v1::CreateServiceRequest { desired_count: 2, ..daemon("a") }).await,
    );
    assert_eq!(
        msg,
        "The daemon scheduling strategy does not support a desired count for services."
    );
    let msg = refused(
        api.create_service(v1::CreateServiceRequest {
            placement_strategy: vec![v1::PlacementStrategy {
                r#type: "random".into(),
                field: String::new(),
            }],
            ..daemon("a")
        })
        .await,
    );
    assert_eq!(msg, "The daemon scheduling strategy does not support placement strategies.");
    let msg = refused(
        api.create_service(v1::CreateServiceRequest {
            deployment: Some(v1::DeploymentSettings {
                maximum_percent: Some(200),
                ..Default::default()
            }),
            ..daemon("a")
        })
        .await,
    );
    assert_eq!(
        msg,
        "deploymentConfiguration.maximumPercent 200 is invalid for a DAEMON service: it must be 100."
    );
    let msg = refused(
        api.create_service(v1::CreateServiceRequest {
            scheduling_strategy: "ONE".into(),
            ..daemon("a")
        })
        .await,
    );
    assert_eq!(msg, "schedulingStrategy 'ONE' is invalid: it must be REPLICA or DAEMON.");

    // Accepted with the DAEMON defaults; no instance yet, so no task and a count of 0.
    let svc = json(api.create_service(daemon("logs")).await.unwrap());
    assert_eq!(svc["schedulingStrategy"], "DAEMON");
    assert_eq!(svc["desiredCount"], 0);
    assert_eq!(svc["deploymentConfiguration"]["minimumHealthyPercent"], 0);
    assert_eq!(svc["deploymentConfiguration"]["maximumPercent"], 100);
    // A REPLICA service keeps the REPLICA defaults.
    let replica = json(
        api.create_service(v1::CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "logs".into(),
            desired_count: 1,
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(replica["schedulingStrategy"], "REPLICA");
    assert_eq!(replica["deploymentConfiguration"]["maximumPercent"], 200);

    // UpdateService applies the same rules to a daemon.
    let update = |desired_count: Option<i64>, max: Option<i64>| v1::UpdateServiceRequest {
        service: "logs".into(),
        desired_count,
        deployment: max
            .map(|m| v1::DeploymentSettings { maximum_percent: Some(m), ..Default::default() }),
        ..Default::default()
    };
    let msg = refused(api.update_service(update(Some(3), None)).await);
    assert_eq!(
        msg,
        "The daemon scheduling strategy does not support a desired count for services."
    );
    let msg = refused(api.update_service(update(None, Some(150))).await);
    assert_eq!(
        msg,
        "deploymentConfiguration.maximumPercent 150 is invalid for a DAEMON service: it must be 100."
    );

    // ECS: a daemon is deleted without --force.
    let deleted = json(
        api.delete_service(v1::DeleteServiceRequest {
            service: "logs".into(),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(deleted["status"], "DRAINING");
    c.stop().await.unwrap();
}
