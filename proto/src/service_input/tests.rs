//! `parse_create_service` on hand-written documents: errors name the field, warnings name what
//! Berth does not honour, fragments are fine.

use super::*;

fn err(doc: &str) -> String {
    match parse_create_service(doc) {
        Ok(d) => panic!("expected an error, parsed {d:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_full_document_maps_every_field_berth_acts_on() {
    let d = parse_create_service(
        r#"
        {"serviceName": "web", "cluster": "prod", "taskDefinition": "web:3", "desiredCount": 4,
         "schedulingStrategy": "REPLICA", "healthCheckGracePeriodSeconds": 30,
         "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 150,
             "deploymentCircuitBreaker": {"enable": true, "rollback": false}},
         "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"},
                               {"type": "binpack", "field": "memory"}],
         "placementConstraints": [{"type": "memberOf", "expression": "attribute:stack == prod"},
                                  {"type": "distinctInstance"}],
         "launchType": "EC2", "enableECSManagedTags": false}"#,
    )
    .unwrap();
    let i = d.input;
    assert_eq!(i.service_name.as_deref(), Some("web"));
    assert_eq!(i.cluster.as_deref(), Some("prod"));
    assert_eq!(i.task_definition.as_deref(), Some("web:3"));
    assert_eq!(i.desired_count, Some(4));
    assert_eq!(i.scheduling_strategy.as_deref(), Some("REPLICA"));
    assert_eq!((i.minimum_healthy_percent, i.maximum_percent), (Some(50), Some(150)));
    assert_eq!(
        i.deployment_circuit_breaker,
        Some(DeploymentCircuitBreaker { enable: true, rollback: false })
    );
    assert_eq!(i.health_check_grace_period_seconds, Some(30));
    assert_eq!(i.placement_strategy.len(), 2);
    assert_eq!(i.placement_strategy[1].kind, "binpack");
    assert_eq!(i.placement_strategy[1].field.as_deref(), Some("memory"));
    assert_eq!(i.placement_constraints[0].expression.as_deref(), Some("attribute:stack == prod"));
    assert_eq!(i.placement_constraints[1].kind, "distinctInstance");
    assert!(d.warnings.is_empty(), "EC2 and managed tags off need no warning: {:?}", d.warnings);
}

#[test]
fn unknown_fields_are_errors_with_a_suggestion() {
    assert_eq!(
        err(r#"{"desiredCont": 2}"#),
        "Unknown parameter in input: \"desiredCont\" (did you mean \"desiredCount\"?)"
    );
    assert_eq!(
        err(r#"{"deploymentConfiguration": {"maximumPercnt": 200}}"#),
        "Unknown parameter in deploymentConfiguration: \"maximumPercnt\" (did you mean \"maximumPercent\"?)"
    );
}

#[test]
fn type_mismatches_and_missing_members_name_the_field() {
    assert_eq!(
        err(r#"{"desiredCount": "2"}"#),
        "Invalid type for parameter desiredCount, value: \"2\", type: <class 'str'>, valid types: <class 'int'>"
    );
    assert_eq!(
        err(r#"{"placementStrategy": [{"type": "spread", "field": 3}]}"#),
        "Invalid type for parameter placementStrategy[0].field, value: 3, type: <class 'int'>, valid types: <class 'str'>"
    );
    assert_eq!(
        err(r#"{"deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true}}}"#),
        "Missing required parameter in deploymentConfiguration.deploymentCircuitBreaker: \"rollback\""
    );
}

#[test]
fn enum_values_berth_maps_are_checked() {
    assert_eq!(
        err(r#"{"launchType": "LAMBDA"}"#),
        "launchType: \"LAMBDA\" is not one of EC2, FARGATE, EXTERNAL"
    );
}

#[test]
fn bad_json_and_wrong_shapes_are_refused_clearly() {
    assert_eq!(
        err("{\n  \"serviceName\": \"a\",\n}"),
        "invalid JSON at line 3 column 1: trailing comma"
    );
    assert_eq!(err("  \n "), "the service document is empty");
    assert_eq!(err("[1]"), "expected a JSON object (CreateService input), found <class 'list'>");
}

#[test]
fn unsupported_fields_are_accepted_with_a_warning_each() {
    let d = parse_create_service(
        "  \n{\"launchType\": \"FARGATE\", \"serviceRegistries\": [{\"registryArn\": \"arn:x\"}],
          \"tags\": [{\"key\": \"team\", \"value\": \"a\"}], \"platformVersion\": \"1.4.0\",
          \"deploymentController\": {\"type\": \"CODE_DEPLOY\"}}",
    )
    .unwrap();
    let all = d.warnings.join("\n");
    for field in [
        "launchType FARGATE",
        "serviceRegistries",
        "tags",
        "platformVersion",
        "deploymentController CODE_DEPLOY",
    ] {
        assert!(all.contains(field), "no warning names {field}: {all}");
    }
    assert_eq!(d.warnings.len(), 5);
    assert_eq!(d.input, ServiceInput::default(), "nothing Berth acts on was given");
}
