//! The client API over real gRPC on loopback against a real one-node Raft controller on sled:
//! validation errors, placement failures, and state that survives a restart.

use berth_controller::{Controller, ControllerConfig};
use berth_proto::v1::{self, berth_client::BerthClient};
use serde_json::Value;
use std::time::Duration;
use tonic::Code;

async fn start(dir: &std::path::Path) -> berth_controller::RunningController {
    let config = ControllerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let c = Controller::start(config).await.unwrap();
    c.wait_leader(Duration::from_secs(10)).await.unwrap();
    c
}

async fn client(c: &berth_controller::RunningController) -> BerthClient<tonic::transport::Channel> {
    BerthClient::connect(format!("http://{}", c.addr)).await.unwrap()
}

const WEB: &str = r#"{"family": "web", "containerDefinitions": [
  {"name": "web", "image": "berth/httpd:1", "cpu": 128, "memory": 64,
   "portMappings": [{"containerPort": 8080, "hostPort": 0}]}]}"#;

fn json(r: tonic::Response<v1::ObjectReply>) -> Value {
    serde_json::from_str(&r.into_inner().json).unwrap()
}

#[tokio::test]
async fn registered_definitions_and_services_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let mut api = client(&c).await;
    for expected in 1..=3 {
        let td = json(
            api.register_task_definition(v1::RegisterTaskDefinitionRequest {
                document: WEB.into(),
                ..Default::default()
            })
            .await
            .unwrap(),
        );
        assert_eq!(td["revision"], expected);
        assert_eq!(
            td["taskDefinitionArn"],
            format!("arn:aws:ecs:local:000000000000:task-definition/web:{expected}")
        );
    }
    api.deregister_task_definition(v1::TaskDefinitionRef { task_definition: "web:3".into() })
        .await
        .unwrap();
    let svc = json(
        api.create_service(v1::CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "web".into(),
            desired_count: 2,
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(
        svc["taskDefinition"], "arn:aws:ecs:local:000000000000:task-definition/web:2",
        "family alone → latest ACTIVE"
    );
    assert_eq!(svc["deployments"][0]["status"], "PRIMARY");
    c.stop().await.unwrap();

    let c = start(dir.path()).await;
    let mut api = client(&c).await;
    let td = json(
        api.describe_task_definition(v1::TaskDefinitionRef { task_definition: "web:3".into() })
            .await
            .unwrap(),
    );
    assert_eq!(td["status"], "INACTIVE");
    let svc = json(
        api.describe_service(v1::ServiceRef { service: "web".into(), ..Default::default() })
            .await
            .unwrap(),
    );
    assert_eq!(svc["desiredCount"], 2);
    // A new revision continues the numbering.
    let td = json(
        api.register_task_definition(v1::RegisterTaskDefinitionRequest {
            document: WEB.into(),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(td["revision"], 4);
    c.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let mut api = client(&c).await;
    let typo = r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "x", "memory": 64, "portMapings": [{"containerPort": 80}]}]}"#;
    let err = api
        .register_task_definition(v1::RegisterTaskDefinitionRequest {
            document: typo.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("portMapings"), "{}", err.message());
    let bad_type = r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "x", "memory": "64"}]}"#;
    let err = api
        .register_task_definition(v1::RegisterTaskDefinitionRequest {
            document: bad_type.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("containerDefinitions[0].memory"), "{}", err.message());
    let list = api
        .list_task_definitions(v1::ListTaskDefinitionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.items.is_empty(), "nothing stored");

    let err = api
        .create_service(v1::CreateServiceRequest {
            service_name: "bad name!".into(),
            task_definition: "web".into(),
            desired_count: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("serviceName"), "{}", err.message());
    let err = api
        .describe_service(v1::ServiceRef { service: "nope".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.metadata().get("x-berth-error-type").unwrap(), "ServiceNotFoundException");
    let err = api.describe_cluster(v1::ClusterRef { cluster: "nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    c.stop().await.unwrap();
}

#[tokio::test]
async fn run_task_without_instances_reports_a_placement_failure() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let mut api = client(&c).await;
    api.register_task_definition(v1::RegisterTaskDefinitionRequest {
        document: WEB.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let out = json(
        api.run_task(v1::RunTaskRequest {
            task_definition: "web".into(),
            count: 2,
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(out["tasks"].as_array().unwrap().len(), 0);
    assert_eq!(out["failures"].as_array().unwrap().len(), 2);
    assert_eq!(out["failures"][0]["reason"], "MISSING");
    let err = api
        .run_task(v1::RunTaskRequest {
            task_definition: "web".into(),
            count: 11,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("count 11"), "{}", err.message());

    // A service that cannot place records ECS's event.
    api.create_service(v1::CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web".into(),
        desired_count: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let svc = json(
            api.describe_service(v1::ServiceRef { service: "web".into(), ..Default::default() })
                .await
                .unwrap(),
        );
        let msgs: Vec<String> = svc["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect();
        if msgs.iter().any(|m| m.starts_with("service web was unable to place a task because no container instance met all of its requirements.")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no placement failure event: {msgs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.stop().await.unwrap();
}

#[tokio::test]
async fn put_attributes_refuses_the_reserved_ecs_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path()).await;
    let mut api = client(&c).await;
    let err = api
        .put_attributes(v1::AttributesRequest {
            cluster: String::new(),
            container_instance: "i-1".into(),
            attributes: [("ecs.instance-type".to_string(), "foo".to_string())].into(),
        })
        .await
        .expect_err("reserved prefix");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("'ecs.instance-type'"), "{}", err.message());
    assert!(err.message().contains("reserved"), "{}", err.message());
    c.stop().await.unwrap();
}
