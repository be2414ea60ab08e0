//! Unit tests for `parse_registration`: one hand-written document per rule.

use super::*;
use serde_json::{Value, json};

fn doc(v: Value) -> String {
    v.to_string()
}

fn minimal() -> Value {
    json!({
        "family": "web",
        "containerDefinitions": [{"name": "app", "image": "nginx", "memory": 128}]
    })
}

fn with_container(extra: Value) -> Value {
    let mut d = minimal();
    let c = &mut d["containerDefinitions"][0];
    if let (Value::Object(c), Value::Object(extra)) = (c, extra) {
        c.extend(extra);
    }
    d
}

fn err(v: Value) -> TaskDefError {
    match parse_registration(&doc(v), None) {
        Ok(r) => panic!("expected an error, got {:?}", r.definition),
        Err(e) => e,
    }
}

fn ok(v: Value) -> Registration {
    match parse_registration(&doc(v), None) {
        Ok(r) => r,
        Err(e) => panic!("expected success, got: {e}"),
    }
}

fn assert_err_mentions(v: Value, needles: &[&str]) -> TaskDefError {
    let e = err(v);
    let text = e.to_string();
    for n in needles {
        assert!(text.contains(n), "error {text:?} should mention {n:?}");
    }
    assert!(!text.contains('\n'), "one line: {text:?}");
    e
}

#[test]
fn minimal_definition_registers_without_warnings() {
    let r = ok(minimal());
    assert_eq!(r.definition.family, "web");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert!(r.definition.revision.is_none() && r.definition.task_definition_arn.is_none());
}

#[test]
fn invalid_json_gives_line_and_column() {
    let e = parse_registration("{\n  \"family\": \"x\",\n  oops\n}", None).unwrap_err();
    match &e {
        TaskDefError::InvalidJson { line, column, .. } => assert_eq!((*line, *column), (3, 3)),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("line 3 column 3"));
    assert_eq!(e.ecs_error_type(), "InvalidParameterException");
}

#[test]
fn empty_and_scalar_documents_are_refused() {
    assert!(matches!(parse_registration("  ", None), Err(TaskDefError::Shape(_))));
    assert!(matches!(parse_registration("42", None), Err(TaskDefError::Shape(_))));
}

#[test]
fn typo_field_is_an_error_naming_it_and_its_path() {
    let e = assert_err_mentions(
        with_container(json!({"portMapping": [{"containerPort": 80}]})),
        &["containerDefinitions[0]", "portMapping", "portMappings"],
    );
    assert!(matches!(e, TaskDefError::UnknownField { .. }), "{e:?}");
    assert_err_mentions(
        json!({"family": "a", "famly": "b", "containerDefinitions": []}),
        &["input", "famly"],
    );
}

#[test]
fn unknown_empty_field_is_dropped_with_a_warning() {
    let r = ok(with_container(json!({"portBindings": []})));
    assert!(
        r.warnings.iter().any(|w| w.contains("containerDefinitions[0].portBindings")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn string_for_int_is_a_type_error_like_the_aws_cli() {
    let e =
        err(with_container(json!({"portMappings": [{"containerPort": 80, "hostPort": "3003"}]})));
    assert_eq!(
        e.to_string(),
        "Invalid type for parameter containerDefinitions[0].portMappings[0].hostPort, value: \"3003\", \
         type: <class 'str'>, valid types: <class 'int'>"
    );
    let e = err(with_container(json!({"memory": "256"})));
    assert!(e.to_string().contains("containerDefinitions[0].memory"), "{e}");
}

#[test]
fn task_cpu_as_json_number_is_a_type_error() {
    let mut d = minimal();
    d["cpu"] = json!(256);
    let e = assert_err_mentions(d, &["parameter cpu", "<class 'int'>", "<class 'str'>"]);
    assert_eq!(e.ecs_error_type(), "InvalidParameterException");
}

#[test]
fn missing_nested_required_field_names_parent() {
    assert_err_mentions(
        with_container(json!({"secrets": [{"valueFrom": "x"}]})),
        &["containerDefinitions[0].secrets[0]", "\"name\""],
    );
}

#[test]
fn family_and_containers_are_required() {
    assert_err_mentions(
        json!({"containerDefinitions": [{"name": "a", "image": "b", "memory": 8}]}),
        &["family is required"],
    );
    assert_err_mentions(json!({"family": "f"}), &["containerDefinitions", "at least one"]);
    assert_err_mentions(json!({"family": "f", "containerDefinitions": []}), &["at least one"]);
}

#[test]
fn container_name_and_image_are_required() {
    let e = err(json!({"family": "f", "containerDefinitions": [{"memory": 8}]}));
    let text = e.to_string();
    assert!(text.contains("containerDefinitions[0].name: container name is required"), "{text}");
    assert!(text.contains("containerDefinitions[0].image"), "{text}");
    assert_eq!(e.violations().len(), 2);
    assert_eq!(e.ecs_error_type(), "ClientException");
}

#[test]
fn bad_names_are_refused() {
    let mut d = minimal();
    d["family"] = json!("my app");
    assert_err_mentions(d, &["family", "letters, digits, hyphens and underscores"]);
    assert_err_mentions(
        with_container(json!({"name": "a.b"})),
        &["containerDefinitions[0].name", "a.b"],
    );
    let mut d = minimal();
    d["family"] = json!("x".repeat(256));
    assert_err_mentions(d, &["longer than 255"]);
    let mut d = minimal();
    d["volumes"] = json!([{"name": "bad/vol"}]);
    assert_err_mentions(d, &["volumes[0].name"]);
}

#[test]
fn placeholder_names_register_with_a_warning() {
    let r = ok(with_container(json!({"name": "${container_name}"})));
    assert!(
        r.warnings.iter().any(|w| w.contains("containerDefinitions[0].name")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn eleven_containers_are_too_many() {
    let containers: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox", "memory": 16}))
        .collect();
    assert_err_mentions(
        json!({"family": "f", "containerDefinitions": containers}),
        &["11 containers", "at most 10"],
    );
}

#[test]
fn duplicate_container_names_are_refused() {
    assert_err_mentions(
        json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 16}, {"name": "a", "image": "y", "memory": 16}]}),
        &["containerDefinitions[1].name", "duplicate container name \"a\""],
    );
}

#[test]
fn container_memory_rules() {
    assert_err_mentions(
        with_container(json!({"memory": 0})),
        &["containerDefinitions[0].memory", "positive"],
    );
    assert_err_mentions(with_container(json!({"memoryReservation": -1})), &["memoryReservation"]);
    assert_err_mentions(
        with_container(json!({"memory": 64, "memoryReservation": 128})),
        &["memory 64 MiB is less than memoryReservation 128 MiB"],
    );
    ok(with_container(json!({"memory": 128, "memoryReservation": 128})));
}

#[test]
fn memory_is_required_somewhere() {
    let d = json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x"}]});
    assert_err_mentions(d.clone(), &["at least one of memory or memoryReservation"]);
    let mut with_task_memory = d;
    with_task_memory["memory"] = json!("512");
    ok(with_task_memory);
    ok(
        json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "memoryReservation": 64}]}),
    );
}

#[test]
fn container_sizes_must_fit_the_task_size() {
    let mut d = with_container(json!({"cpu": 2048}));
    d["cpu"] = json!("1 vCPU");
    assert_err_mentions(d, &["2048 CPU units", "1024"]);
    let mut d = with_container(json!({"memory": 4096}));
    d["memory"] = json!("1 GB");
    assert_err_mentions(d, &["more than the task memory 1024 MiB"]);
}

#[test]
fn task_cpu_and_memory_are_normalised() {
    for (cpu, memory, want_cpu, want_memory) in [
        ("1 vCPU", "3 GB", "1024", "3072"),
        (".25 vcpu", ".5 gb", "256", "512"),
        ("512", "1GB", "512", "1024"),
        ("2048", "2048 MiB", "2048", "2048"),
    ] {
        let mut d = minimal();
        d["cpu"] = json!(cpu);
        d["memory"] = json!(memory);
        let r = ok(d);
        assert_eq!(r.definition.cpu.as_deref(), Some(want_cpu), "{cpu}");
        assert_eq!(r.definition.memory.as_deref(), Some(want_memory), "{memory}");
    }
    let mut d = minimal();
    d["cpu"] = json!("0.3 vcpu");
    assert_err_mentions(d, &["cpu: \"0.3 vcpu\""]);
}

#[test]
fn an_essential_container_is_required() {
    assert_err_mentions(with_container(json!({"essential": false})), &["must be essential"]);
}

#[test]
fn references_must_name_containers_of_the_definition() {
    assert_err_mentions(
        with_container(json!({"links": ["db:db"]})),
        &["containerDefinitions[0].links[0]", "\"app\" links to \"db\""],
    );
    assert_err_mentions(
        with_container(json!({"dependsOn": [{"containerName": "db", "condition": "START"}]})),
        &["dependsOn[0].containerName", "\"db\""],
    );
    assert_err_mentions(
        with_container(json!({"volumesFrom": [{"sourceContainer": "db"}]})),
        &["volumesFrom[0].sourceContainer"],
    );
    assert_err_mentions(with_container(json!({"links": ["app"]})), &["links to itself"]);
}

#[test]
fn mount_points_need_a_task_volume() {
    assert_err_mentions(
        with_container(json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/d"}]})),
        &["mountPoints[0].sourceVolume", "\"data\""],
    );
    let mut d =
        with_container(json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/d"}]}));
    d["volumes"] = json!([{"name": "data", "host": {}}]);
    ok(d);
}

#[test]
fn dependency_conditions_and_essential_targets() {
    let two = |cond: &str, target_essential: bool| {
        json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 16,
             "dependsOn": [{"containerName": "b", "condition": cond}]},
            {"name": "b", "image": "x", "memory": 16, "essential": target_essential}]})
    };
    assert_err_mentions(two("READY", false), &["dependsOn[0].condition", "READY"]);
    assert_err_mentions(two("SUCCESS", true), &["\"b\" is essential"]);
    assert_err_mentions(two("COMPLETE", true), &["essential"]);
    ok(two("SUCCESS", false));
    ok(two("START", true));
    assert_err_mentions(two("HEALTHY", true), &["no healthCheck"]);
}

#[test]
fn dependency_violations_name_the_field_path() {
    let d = json!({"family": "f", "containerDefinitions": [
        {"name": "db", "image": "x", "memory": 16},
        {"name": "app", "image": "x", "memory": 16,
         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"},
                       {"containerName": "cache", "condition": "START"},
                       {"containerName": "db", "condition": "started"}]}]});
    assert_err_mentions(
        d,
        &[
            "containerDefinitions[1].dependsOn[0].condition: container \"app\" waits for \"db\" \
             to be HEALTHY, but \"db\" has no healthCheck",
            "containerDefinitions[1].dependsOn[1].containerName: container \"app\" depends on \
             \"cache\", which is not a container of this task definition",
            "containerDefinitions[1].dependsOn[2].condition: \"started\" is not one of START, \
             COMPLETE, SUCCESS, HEALTHY",
        ],
    );
}

#[test]
fn dependency_cycles_are_refused() {
    assert_err_mentions(
        json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 16, "links": ["b"]},
            {"name": "b", "image": "x", "memory": 16,
             "dependsOn": [{"containerName": "a", "condition": "START"}]}]}),
        &["cycle", "a -> b -> a"],
    );
    assert_err_mentions(
        json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 16,
             "dependsOn": [{"containerName": "c", "condition": "START"}]},
            {"name": "b", "image": "x", "memory": 16,
             "dependsOn": [{"containerName": "a", "condition": "START"}]},
            {"name": "c", "image": "x", "memory": 16,
             "dependsOn": [{"containerName": "b", "condition": "START"}]}]}),
        &["containerDefinitions: containers form a start-order cycle", "a -> c -> b -> a"],
    );
}

#[test]
fn network_mode_must_be_known() {
    let mut d = minimal();
    d["networkMode"] = json!("nat");
    assert_err_mentions(d, &["networkMode", "\"nat\"", "bridge, host, awsvpc, none"]);
}

#[test]
fn awsvpc_refuses_links_hostname_and_other_host_ports() {
    let awsvpc = |c: Value| {
        let mut d = json!({"family": "f", "networkMode": "awsvpc", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 16}, {"name": "b", "image": "x", "memory": 16}
        ]});
        if let (Some(first), Some(extra)) =
            (d["containerDefinitions"][0].as_object_mut(), c.as_object())
        {
            first.extend(extra.clone());
        }
        d
    };
    ok(awsvpc(json!({"portMappings": [{"containerPort": 80}]})));
    ok(awsvpc(json!({"portMappings": [{"containerPort": 80, "hostPort": 80}]})));
    assert_err_mentions(
        awsvpc(json!({"portMappings": [{"containerPort": 80, "hostPort": 8080}]})),
        &["containerDefinitions[0].portMappings[0].hostPort", "networkMode awsvpc", "80"],
    );
    assert_err_mentions(
        awsvpc(json!({"links": ["b"]})),
        &["containerDefinitions[0].links", "only supported with networkMode bridge, not awsvpc"],
    );
    assert_err_mentions(
        awsvpc(json!({"hostname": "web"})),
        &["containerDefinitions[0].hostname", "hostname is not supported with awsvpc"],
    );
}

#[test]
fn port_rules_follow_the_network_mode() {
    let mapping = |mode: &str, m: Value| {
        let mut d = with_container(json!({"portMappings": [m]}));
        d["networkMode"] = json!(mode);
        d
    };
    ok(mapping("bridge", json!({"containerPort": 80, "hostPort": 8080})));
    ok(mapping("bridge", json!({"containerPort": 80, "hostPort": 0})));
    ok(mapping("host", json!({"containerPort": 80})));
    ok(mapping("awsvpc", json!({"containerPort": 80, "hostPort": 80})));
    assert_err_mentions(
        mapping("host", json!({"containerPort": 80, "hostPort": 8080})),
        &["portMappings[0].hostPort", "networkMode host"],
    );
    assert_err_mentions(
        mapping("awsvpc", json!({"containerPort": 80, "hostPort": 81})),
        &["awsvpc"],
    );
    assert_err_mentions(mapping("none", json!({"containerPort": 80})), &["networkMode none"]);
    assert_err_mentions(
        mapping("bridge", json!({"containerPort": 0})),
        &["containerPort", "1..65535"],
    );
    assert_err_mentions(
        mapping("bridge", json!({"containerPort": 80, "hostPort": 70000})),
        &["hostPort"],
    );
    assert_err_mentions(
        mapping("bridge", json!({"containerPort": 80, "protocol": "sctp"})),
        &["protocol", "sctp"],
    );
    assert_err_mentions(mapping("bridge", json!({"hostPort": 80})), &["containerPort", "required"]);
    ok(mapping("bridge", json!({"containerPortRange": "8000-8010"})));
    assert_err_mentions(
        mapping("bridge", json!({"containerPortRange": "9-3"})),
        &["containerPortRange"],
    );
}

#[test]
fn static_host_ports_are_not_shared_inside_a_task() {
    assert_err_mentions(
        json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 16, "portMappings": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "b", "image": "x", "memory": 16, "portMappings": [{"containerPort": 81, "hostPort": 8080}]}]}),
        &["containerDefinitions[1].portMappings[0]", "8080/tcp"],
    );
}

#[test]
fn health_check_limits() {
    let hc = |extra: Value| {
        let mut h = json!({"command": ["CMD-SHELL", "true"]});
        if let (Value::Object(h), Value::Object(e)) = (&mut h, extra) {
            h.extend(e);
        }
        with_container(json!({"healthCheck": h}))
    };
    ok(hc(json!({"interval": 5, "timeout": 2, "retries": 1, "startPeriod": 0})));
    ok(hc(json!({"interval": 300, "timeout": 60, "retries": 10, "startPeriod": 300})));
    assert_err_mentions(hc(json!({"interval": 4})), &["healthCheck.interval", "5..300"]);
    assert_err_mentions(hc(json!({"timeout": 61})), &["healthCheck.timeout"]);
    assert_err_mentions(hc(json!({"retries": 0})), &["healthCheck.retries"]);
    assert_err_mentions(hc(json!({"startPeriod": 301})), &["healthCheck.startPeriod"]);
    assert_err_mentions(
        with_container(json!({"healthCheck": {"command": ["curl", "x"]}})),
        &["healthCheck.command"],
    );
}

#[test]
fn describe_output_is_unwrapped_with_warnings() {
    let d = json!({
        "taskDefinition": {
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3",
            "family": "web", "revision": 3, "status": "ACTIVE",
            "containerDefinitions": [{"name": "app", "image": "nginx", "memory": 128}],
            "compatibilities": ["EC2"], "requiresAttributes": [], "registeredAt": 1621198756.207,
            "registeredBy": "arn:aws:iam::123456789012:root"
        },
        "tags": [{"key": "team", "value": "web"}]
    });
    let r = ok(d);
    assert!(
        r.warnings.iter().any(|w| w.contains("DescribeTaskDefinition output")),
        "{:?}",
        r.warnings
    );
    let ro = r.warnings.iter().find(|w| w.contains("read-only")).expect("read-only warning");
    for f in ["taskDefinitionArn", "revision", "status", "compatibilities", "registeredBy"] {
        assert!(ro.contains(f), "{ro}");
    }
    assert!(r.definition.revision.is_none() && r.definition.status.is_none());
    assert_eq!(r.definition.tags.as_ref().map(Vec::len), Some(1));
}

#[test]
fn bare_array_needs_a_family() {
    let arr = json!([{"name": "app", "image": "nginx", "memory": 64}]).to_string();
    let e = parse_registration(&arr, None).unwrap_err();
    assert_eq!(e, TaskDefError::FamilyRequired);
    assert!(e.to_string().contains("--family"));
    let r = parse_registration(&arr, Some("web")).expect("registers with --family");
    assert_eq!(r.definition.family, "web");
    assert_eq!(r.definition.container_definitions.len(), 1);
}

#[test]
fn family_override_replaces_with_a_warning() {
    let r = parse_registration(&doc(minimal()), Some("other")).expect("ok");
    assert_eq!(r.definition.family, "other");
    assert!(r.warnings.iter().any(|w| w.contains("--family")));
}

#[test]
fn unsupported_features_warn() {
    let d = json!({
        "family": "f", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
        "cpu": "256", "memory": "512",
        "executionRoleArn": "arn:aws:iam::123456789012:role/x", "ephemeralStorage": {"sizeInGiB": 30},
        "runtimePlatform": {"operatingSystemFamily": "LINUX"},
        "volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
        "containerDefinitions": [{
            "name": "app", "image": "nginx",
            "logConfiguration": {"logDriver": "awslogs"},
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:x"}],
            "repositoryCredentials": {"credentialsParameter": "arn:y"},
            "resourceRequirements": [{"type": "GPU", "value": "1"}]
        }]
    });
    let r = ok(d);
    let all = r.warnings.join("\n");
    for needle in [
        "FARGATE",
        "awsvpc",
        "executionRoleArn",
        "ephemeralStorage",
        "runtimePlatform",
        "EFS",
        "awslogs",
        "json-file",
        "DB_PASSWORD",
        "repositoryCredentials",
        "GPU",
    ] {
        assert!(all.contains(needle), "warnings should mention {needle}: {all}");
    }
    assert!(r.warnings.iter().all(|w| !w.contains('\n') && !w.is_empty()));
    // The controller does not know which network an agent uses (--awsvpc-network).
    let vpc = r.warnings.iter().find(|w| w.starts_with("networkMode awsvpc")).expect("awsvpc");
    assert!(vpc.contains("the agent's awsvpc bridge network (berth-awsvpc by default"), "{vpc}");
}

#[test]
fn unknown_log_driver_is_refused() {
    assert_err_mentions(
        with_container(json!({"logConfiguration": {"logDriver": "loki"}})),
        &["logConfiguration.logDriver", "loki"],
    );
}

#[test]
fn oversized_definition_is_refused() {
    let env: Vec<Value> =
        (0..2000).map(|i| json!({"name": format!("VAR_{i}"), "value": "x".repeat(40)})).collect();
    let e = err(with_container(json!({"environment": env})));
    assert!(matches!(e, TaskDefError::TooLarge { .. }), "{e:?}");
}

#[test]
fn nulls_read_as_absent() {
    let mut d = with_container(json!({"logConfiguration": null, "cpu": null}));
    d["pidMode"] = Value::Null;
    ok(d);
}

#[test]
fn hostile_inputs_never_panic() {
    for text in [
        "",
        "[",
        "{",
        "null",
        "[]",
        "[1]",
        "{\"taskDefinition\": 3}",
        "{\"taskDefinition\": {}, \"x\": 1}",
        "{\"family\": \"f\", \"containerDefinitions\": [null]}",
        "{\"family\": \"f\", \"containerDefinitions\": {}}",
        "{\"family\": \"f\", \"cpu\": \"99999999999999999999999 vcpu\", \"containerDefinitions\": []}",
        "{\"family\": \"${\", \"containerDefinitions\": [{\"name\": \"${}${\", \"image\": \"i\"}]}",
    ] {
        let _ = parse_registration(text, None);
        let _ = parse_registration(text, Some("f"));
    }
}

#[test]
fn features_the_agent_does_not_apply_yet_are_named_in_warnings() {
    let d = json!({
        "family": "f",
        "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data"}}],
        "containerDefinitions": [
            {"name": "a", "image": "busybox", "memory": 32,
             "dependsOn": [{"containerName": "b", "condition": "SUCCESS"}],
             "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]},
            {"name": "b", "image": "busybox", "memory": 32, "essential": false}
        ]
    });
    let r = ok(d);
    let all = r.warnings.join("\n");
    assert!(!all.contains("volumes"), "volumes are mounted: {all}");
    assert!(!all.contains("dependsOn"), "the agent orders containers by dependsOn: {all}");
    assert!(!all.contains("containerDefinitions[1]"), "b uses nothing unsupported: {all}");
}

#[test]
fn a_byte_order_mark_is_skipped_with_a_warning() {
    let doc = "\u{feff}{\"family\": \"f\", \"containerDefinitions\": [{\"name\": \"a\", \"image\": \"busybox\", \"memory\": 32}]}";
    let r = super::parse_registration(doc, None).expect("registers");
    assert_eq!(r.definition.family, "f");
    assert!(r.warnings.iter().any(|w| w.contains("byte order mark")), "{:?}", r.warnings);
}
