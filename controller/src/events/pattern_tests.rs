//! # events::pattern tests — every operator both ways, arrays, nesting, `$or`, error paths, and
//! the ECS rules from ECS-NOTES §5.7 on realistic ECS events.

use serde_json::{Value, json};

use super::*;

fn pattern(value: Value) -> Pattern {
    match Pattern::from_value(&value) {
        Ok(p) => p,
        Err(e) => panic!("pattern {value} should compile: {e}"),
    }
}

fn hits(p: Value, event: Value) -> bool {
    pattern(p).matches(&event)
}

/// Asserts that `p` is rejected at `path`, and that the message contains `needle`.
fn rejected(p: Value, path: &str, needle: &str) {
    match Pattern::from_value(&p) {
        Ok(_) => panic!("pattern {p} should be rejected"),
        Err(e) => {
            assert_eq!(e.path, path, "wrong path for {p}: {e}");
            assert!(e.message.contains(needle), "message for {p} was {:?}", e.message);
        }
    }
}

// ---- ECS events ---------------------------------------------------------------------------

fn task_stopped() -> Value {
    json!({
        "version": "0",
        "id": "3317b2af-7005-947d-b652-f55e762e571a",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "111122223333",
        "time": "2024-03-01T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ecs:us-east-1:111122223333:task/prod/b99d40b3"],
        "detail": {
            "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
            "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/prod/b99d40b3",
            "group": "service:web",
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "stopCode": "EssentialContainerExited",
            "stoppedReason": "Essential container in task exited",
            "version": 3,
            "launchType": "EC2",
            "containers": [
                {"name": "web", "lastStatus": "STOPPED", "exitCode": 137},
                {"name": "sidecar", "lastStatus": "STOPPED", "exitCode": 0}
            ]
        }
    })
}

fn task_running() -> Value {
    json!({
        "version": "0",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "detail": {
            "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
            "group": "family:batch",
            "lastStatus": "RUNNING",
            "desiredStatus": "RUNNING",
            "version": 1,
            "containers": [
                {"name": "web", "lastStatus": "RUNNING"},
                {"name": "sidecar", "lastStatus": "STOPPED", "exitCode": 0}
            ]
        }
    })
}

fn service_action(event_name: &str) -> Value {
    json!({
        "version": "0",
        "detail-type": "ECS Service Action",
        "source": "aws.ecs",
        "resources": ["arn:aws:ecs:us-east-1:111122223333:service/prod/web"],
        "detail": {
            "eventType": "WARN",
            "eventName": event_name,
            "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
            "reasons": ["RESOURCE:MEMORY"]
        }
    })
}

fn deployment(event_type: &str) -> Value {
    json!({
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "detail": {
            "eventType": event_type,
            "eventName": "SERVICE_DEPLOYMENT_FAILED",
            "deploymentId": "ecs-svc/123",
            "reason": "ECS deployment circuit breaker: task failed to start."
        }
    })
}

#[test]
fn ecs_stopped_by_essential_container() {
    let p = pattern(json!({
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"lastStatus": ["STOPPED"], "stoppedReason": [{"prefix": "Essential container"}]}
    }));
    assert!(p.matches(&task_stopped()));
    assert!(!p.matches(&task_running()));
    let mut other_reason = task_stopped();
    other_reason["detail"]["stoppedReason"] = json!("Task stopped by user");
    assert!(!p.matches(&other_reason));
}

#[test]
fn ecs_nonzero_exit_in_prod_flattens_container_array() {
    let p = pattern(json!({
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": ["arn:aws:ecs:us-east-1:111122223333:cluster/prod"],
            "containers": {"exitCode": [{"anything-but": 0}]}
        }
    }));
    // web exited 137.
    assert!(p.matches(&task_stopped()));
    // Only exit code present is 0; the running container has none.
    assert!(!p.matches(&task_running()));
    let mut staging = task_stopped();
    staging["detail"]["clusterArn"] = json!("arn:aws:ecs:us-east-1:111122223333:cluster/staging");
    assert!(!p.matches(&staging));
}

#[test]
fn ecs_service_action_placement_failures() {
    let p = pattern(json!({
        "detail-type": ["ECS Service Action"],
        "detail": {"eventName": ["SERVICE_TASK_PLACEMENT_FAILURE", "SERVICE_TASK_START_IMPAIRED"]}
    }));
    assert!(p.matches(&service_action("SERVICE_TASK_PLACEMENT_FAILURE")));
    assert!(p.matches(&service_action("SERVICE_TASK_START_IMPAIRED")));
    assert!(!p.matches(&service_action("SERVICE_STEADY_STATE")));
    assert!(!p.matches(&task_stopped()));
}

#[test]
fn ecs_deployment_errors() {
    let p = pattern(json!({
        "detail-type": ["ECS Deployment State Change"],
        "detail": {"eventType": ["ERROR"]}
    }));
    assert!(p.matches(&deployment("ERROR")));
    assert!(!p.matches(&deployment("INFO")));
    assert!(!p.matches(&service_action("SERVICE_TASK_PLACEMENT_FAILURE")));
}

#[test]
fn ecs_service_tasks_past_first_version() {
    let p = pattern(json!({
        "detail": {"group": [{"wildcard": "service:*"}], "version": [{"numeric": [">", 1]}]}
    }));
    assert!(p.matches(&task_stopped()));
    // family: group and version 1.
    assert!(!p.matches(&task_running()));
    let mut first = task_stopped();
    first["detail"]["version"] = json!(1);
    assert!(!p.matches(&first));
    let mut as_text = task_stopped();
    as_text["detail"]["version"] = json!("3");
    assert!(!p.matches(&as_text), "numeric needs a JSON number");
}

// ---- structure ------------------------------------------------------------------------------

#[test]
fn empty_pattern_matches_every_object_event() {
    assert!(Pattern::any().matches(&task_stopped()));
    assert!(Pattern::any().matches(&json!({})));
    assert_eq!(Pattern::parse("{}"), Ok(Pattern::any()));
    assert!(!Pattern::any().matches(&json!([1])), "events must be objects");
}

#[test]
fn keys_are_anded_and_other_fields_ignored() {
    let p = json!({"source": ["aws.ecs"], "detail": {"lastStatus": ["STOPPED"]}});
    assert!(hits(
        p.clone(),
        json!({"source": "aws.ecs", "x": 1, "detail": {"lastStatus": "STOPPED", "y": 2}})
    ));
    assert!(!hits(p.clone(), json!({"source": "aws.ec2", "detail": {"lastStatus": "STOPPED"}})));
    assert!(!hits(p.clone(), json!({"source": "aws.ecs"})));
    assert!(!hits(p, json!({"source": "aws.ecs", "lastStatus": "STOPPED"})), "nesting must agree");
}

#[test]
fn deep_nesting_recurses() {
    let p = json!({"detail": {"attachment": {"details": {"name": ["subnetId"]}}}});
    assert!(hits(p.clone(), json!({"detail": {"attachment": {"details": {"name": "subnetId"}}}})));
    assert!(!hits(p.clone(), json!({"detail": {"attachment": {"details": {"name": "eni"}}}})));
    assert!(!hits(p, json!({"detail": {"attachment": "subnetId"}})));
}

#[test]
fn literals_are_exact_and_typed() {
    let p = json!({"a": ["Running"]});
    assert!(hits(p.clone(), json!({"a": "Running"})));
    assert!(!hits(p.clone(), json!({"a": "running"})), "case-sensitive");
    assert!(!hits(p, json!({"a": {"Running": 1}})), "objects never match literals");
    assert!(hits(json!({"n": [5]}), json!({"n": 5.0})), "numbers compare numerically");
    assert!(!hits(json!({"n": [5]}), json!({"n": "5"})));
    assert!(hits(json!({"b": [true]}), json!({"b": true})));
    assert!(!hits(json!({"b": [true]}), json!({"b": "true"})));
    assert!(hits(json!({"z": [null]}), json!({"z": null})));
    assert!(!hits(json!({"z": [null]}), json!({})), "null is not absence");
    assert!(hits(json!({"e": [""]}), json!({"e": ""})));
    assert!(!hits(json!({"e": [""]}), json!({"e": null})));
}

#[test]
fn event_arrays_intersect_with_alternatives() {
    let p = json!({"resources": ["arn:b", "arn:z"]});
    assert!(hits(p.clone(), json!({"resources": ["arn:a", "arn:b"]})));
    assert!(!hits(p.clone(), json!({"resources": ["arn:a", "arn:c"]})));
    assert!(!hits(p.clone(), json!({"resources": []})));
    assert!(hits(p, json!({"resources": [["arn:z"]]})), "nested arrays flatten");
    assert!(hits(json!({"r": [{"prefix": "arn:"}]}), json!({"r": [1, "arn:x"]})));
}

#[test]
fn nested_pattern_on_array_is_element_consistent() {
    let p = json!({"containers": {"name": ["web"], "exitCode": [0]}});
    let event =
        json!({"containers": [{"name": "web", "exitCode": 1}, {"name": "db", "exitCode": 0}]});
    assert!(!hits(p.clone(), event), "fields come from one element");
    assert!(hits(p, json!({"containers": [{"name": "db"}, {"name": "web", "exitCode": 0}]})));
}

// ---- operators ------------------------------------------------------------------------------

#[test]
fn prefix_and_suffix_with_and_without_case() {
    assert!(hits(json!({"t": [{"prefix": "2024-03"}]}), json!({"t": "2024-03-01"})));
    assert!(!hits(json!({"t": [{"prefix": "2024-03"}]}), json!({"t": "2024-04-01"})));
    assert!(!hits(json!({"t": [{"prefix": "5"}]}), json!({"t": 55})), "strings only");
    let ci = json!({"s": [{"prefix": {"equals-ignore-case": "EventB"}}]});
    assert!(hits(ci.clone(), json!({"s": "eventbridge"})));
    assert!(hits(ci.clone(), json!({"s": "EVENTBUS"})));
    assert!(!hits(ci, json!({"s": "Events"})));
    assert!(hits(json!({"f": [{"suffix": ".png"}]}), json!({"f": "a.png"})));
    assert!(!hits(json!({"f": [{"suffix": ".png"}]}), json!({"f": "a.PNG"})));
    let cs = json!({"f": [{"suffix": {"equals-ignore-case": ".PNG"}}]});
    assert!(hits(cs.clone(), json!({"f": "a.Png"})));
    assert!(!hits(cs, json!({"f": "a.jpg"})));
}

#[test]
fn equals_ignore_case_folds_unicode() {
    let p = json!({"n": [{"equals-ignore-case": "ÉCOLE"}]});
    assert!(hits(p.clone(), json!({"n": "école"})));
    assert!(!hits(p.clone(), json!({"n": "ecole"})));
    assert!(!hits(p, json!({"n": "écoles"})));
}

#[test]
fn wildcard_stars_and_escapes() {
    let p = json!({"p": [{"wildcard": "*/lib/*.so"}]});
    assert!(hits(p.clone(), json!({"p": "/usr/lib/libc.so"})));
    assert!(hits(p.clone(), json!({"p": "/lib/.so"})), "star matches empty");
    assert!(!hits(p, json!({"p": "/usr/lib/libc.so.6"})));
    let lit = json!({"p": [{"wildcard": "a\\*b"}]});
    assert!(hits(lit.clone(), json!({"p": "a*b"})));
    assert!(!hits(lit, json!({"p": "axb"})));
    assert!(hits(json!({"p": [{"wildcard": "c:\\\\*"}]}), json!({"p": "c:\\temp"})));
    assert!(hits(json!({"p": [{"wildcard": "exact"}]}), json!({"p": "exact"})));
    assert!(!hits(json!({"p": [{"wildcard": "ab*ba"}]}), json!({"p": "aba"})), "no overlap");
}

#[test]
fn numeric_single_comparisons_and_ranges() {
    let range = json!({"c": [{"numeric": [">", 0, "<=", 5]}]});
    assert!(hits(range.clone(), json!({"c": 5})));
    assert!(hits(range.clone(), json!({"c": 0.5})));
    assert!(!hits(range.clone(), json!({"c": 0})));
    assert!(!hits(range.clone(), json!({"c": 5.01})));
    assert!(hits(range, json!({"c": [9, 3]})), "any array element");
    assert!(hits(json!({"c": [{"numeric": ["=", 301.8]}]}), json!({"c": 3.018e2})));
    assert!(hits(json!({"c": [{"numeric": ["<", 10]}]}), json!({"c": -4})));
    assert!(!hits(json!({"c": [{"numeric": ["<", 10]}]}), json!({"c": 10})));
    assert!(hits(json!({"c": [{"numeric": [">=", 10]}]}), json!({"c": 10})));
    assert!(hits(json!({"c": [{"numeric": ["<=", 10]}]}), json!({"c": 10})));
    assert!(!hits(json!({"c": [{"numeric": [">=", 10, "<", 20]}]}), json!({"c": 20})));
    assert!(!hits(json!({"c": [{"numeric": [">", 1]}]}), json!({"c": null})));
}

#[test]
fn exists_true_false_and_missing_keys() {
    let present = json!({"detail": {"stopCode": [{"exists": true}]}});
    let absent = json!({"detail": {"stopCode": [{"exists": false}]}});
    assert!(hits(present.clone(), task_stopped()));
    assert!(!hits(absent.clone(), task_stopped()));
    assert!(!hits(present.clone(), task_running()));
    assert!(hits(absent.clone(), task_running()));
    // Missing parent: the leaf is absent too.
    assert!(hits(absent.clone(), json!({"source": "aws.ecs"})));
    assert!(!hits(present.clone(), json!({"source": "aws.ecs"})));
    // null is a present leaf; objects are not leaves.
    assert!(hits(present.clone(), json!({"detail": {"stopCode": null}})));
    assert!(!hits(present.clone(), json!({"detail": {"stopCode": {"a": 1}}})));
    assert!(hits(absent.clone(), json!({"detail": {"stopCode": {"a": 1}}})));
    assert!(!hits(present, json!({"detail": {"stopCode": []}})));
    assert!(hits(absent, json!({"detail": {"stopCode": []}})));
}

#[test]
fn exists_false_combines_with_other_alternatives() {
    let p = json!({"detail": {"stopCode": [{"exists": false}, "UserInitiated"]}});
    assert!(hits(p.clone(), task_running()));
    assert!(!hits(p.clone(), task_stopped()));
    let mut by_user = task_stopped();
    by_user["detail"]["stopCode"] = json!("UserInitiated");
    assert!(hits(p, by_user));
}

#[test]
fn cidr_v4_and_v6() {
    let v4 = json!({"ip": [{"cidr": "10.0.0.0/24"}]});
    assert!(hits(v4.clone(), json!({"ip": "10.0.0.255"})));
    assert!(!hits(v4.clone(), json!({"ip": "10.0.1.0"})));
    assert!(!hits(v4.clone(), json!({"ip": "not-an-ip"})));
    assert!(!hits(v4, json!({"ip": "::ffff:10.0.0.1"})), "families never mix");
    let v6 = json!({"ip": [{"cidr": "2001:db8::/32"}]});
    assert!(hits(v6.clone(), json!({"ip": "2001:db8:1::7"})));
    assert!(!hits(v6, json!({"ip": "2001:db9::1"})));
    assert!(hits(json!({"ip": [{"cidr": "10.1.2.3/0"}]}), json!({"ip": "192.168.0.1"})));
    assert!(hits(json!({"ip": [{"cidr": "10.1.2.3/32"}]}), json!({"ip": "10.1.2.3"})));
}

#[test]
fn anything_but_literals() {
    let one = json!({"s": [{"anything-but": "initializing"}]});
    assert!(hits(one.clone(), json!({"s": "running"})));
    assert!(!hits(one.clone(), json!({"s": "initializing"})));
    assert!(!hits(one.clone(), json!({})), "the field must exist");
    assert!(hits(one.clone(), json!({"s": 5})), "other kinds are not excluded");
    assert!(!hits(one.clone(), json!({"s": null})));
    assert!(!hits(one, json!({"s": true})));
    let list = json!({"s": [{"anything-but": ["stopped", "overloaded"]}]});
    assert!(hits(list.clone(), json!({"s": "running"})));
    assert!(!hits(list.clone(), json!({"s": "overloaded"})));
    // Array field: matches when some element is not excluded.
    assert!(hits(list.clone(), json!({"s": ["stopped", "running"]})));
    assert!(!hits(list, json!({"s": ["stopped", "overloaded"]})));
    let nums = json!({"x": [{"anything-but": [100, 200]}]});
    assert!(hits(nums.clone(), json!({"x": 301.8})));
    assert!(!hits(nums.clone(), json!({"x": 200.0})));
    assert!(hits(nums, json!({"x": "200"})));
}

#[test]
fn anything_but_prefix_suffix() {
    let p = json!({"r": [{"anything-but": {"prefix": "us-"}}]});
    assert!(hits(p.clone(), json!({"r": "eu-west-1"})));
    assert!(!hits(p, json!({"r": "us-east-1"})));
    let s = json!({"f": [{"anything-but": {"suffix": ".png"}}]});
    assert!(hits(s.clone(), json!({"f": "a.jpg"})));
    assert!(!hits(s, json!({"f": "a.png"})));
}

#[test]
fn anything_but_ignore_case_and_wildcard() {
    let one = json!({"s": [{"anything-but": {"equals-ignore-case": "Initializing"}}]});
    assert!(hits(one.clone(), json!({"s": "running"})));
    assert!(!hits(one, json!({"s": "INITIALIZING"})));
    let many = json!({"s": [{"anything-but": {"equals-ignore-case": ["A", "b"]}}]});
    assert!(!hits(many.clone(), json!({"s": "B"})));
    assert!(hits(many, json!({"s": "c"})));
    let w = json!({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]});
    assert!(hits(w.clone(), json!({"p": "/usr/bin/x"})));
    assert!(!hits(w, json!({"p": "/usr/lib/x"})));
    let ws = json!({"p": [{"anything-but": {"wildcard": ["*.tmp", "*.bak"]}}]});
    assert!(!hits(ws.clone(), json!({"p": "x.bak"})));
    assert!(hits(ws, json!({"p": "x.txt"})));
}

#[test]
fn or_at_top_and_nested_levels() {
    let p = json!({
        "source": ["aws.ecs"],
        "$or": [
            {"detail-type": ["ECS Service Action"]},
            {"detail": {"lastStatus": ["STOPPED"], "group": [{"prefix": "service:"}]}}
        ]
    });
    assert!(hits(p.clone(), service_action("SERVICE_STEADY_STATE")));
    assert!(hits(p.clone(), task_stopped()));
    assert!(!hits(p.clone(), task_running()));
    let mut ec2 = task_stopped();
    ec2["source"] = json!("aws.ec2");
    assert!(!hits(p, ec2), "siblings are ANDed with every alternative");

    let nested = json!({"detail": {"$or": [{"exitCode": [{"numeric": [">", 0]}]}, {"reason": [{"exists": true}]}]}});
    assert!(hits(nested.clone(), json!({"detail": {"exitCode": 2}})));
    assert!(hits(nested.clone(), json!({"detail": {"exitCode": 0, "reason": "oom"}})));
    assert!(!hits(nested, json!({"detail": {"exitCode": 0}})));
}

// ---- errors ---------------------------------------------------------------------------------

#[test]
fn not_json_or_not_an_object_fails_at_root() {
    let err = Pattern::parse("{\"source\": [").unwrap_err();
    assert_eq!(err.path, "$");
    assert!(err.message.contains("EOF"), "{}", err.message);
    let err = Pattern::parse("[\"aws.ecs\"]").unwrap_err();
    assert_eq!(err.path, "$");
    assert_eq!(err.message, r#"a pattern must be a JSON object, got ["aws.ecs"]"#);
    assert_eq!(
        err.to_string(),
        r#"invalid event pattern at $: a pattern must be a JSON object, got ["aws.ecs"]"#
    );
}

#[test]
fn leaf_shape_errors() {
    let err = Pattern::from_value(&json!({"detail": {"lastStatus": "RUNNING"}})).unwrap_err();
    assert_eq!(
        err,
        PatternError {
            path: "$.detail.lastStatus".into(),
            message: r#"a leaf must be an array of values or operators, got "RUNNING""#.into(),
        }
    );
    rejected(json!({"detail": {"lastStatus": []}}), "$.detail.lastStatus", "must not be empty");
    rejected(json!({"detail": {}}), "$.detail", "empty object");
    rejected(json!({"a": ["x", ["y"]]}), "$.a[1]", "a leaf alternative must be a value");
    rejected(
        json!({"detail": {"exists": true}}),
        "$.detail.exists",
        r#""exists" is allowed only on leaf fields"#,
    );
    rejected(json!({"a": {"prefix": "x"}}), "$.a.prefix", "must be inside a leaf's array");
    rejected(json!({"odd key": 1}), r#"$["odd key"]"#, "a leaf must be an array");
}

#[test]
fn operator_object_errors() {
    rejected(
        json!({"detail": {"lastStatus": ["STOPPED", {"prefx": "S"}]}}),
        "$.detail.lastStatus[1]",
        r#"unknown operator "prefx""#,
    );
    rejected(json!({"a": [{"prefix": "a", "suffix": "b"}]}), "$.a[0]", "exactly one key, got 2");
    rejected(json!({"a": [{}]}), "$.a[0]", "exactly one key, got none");
    let err = Pattern::from_value(&json!({"a": [{"prefix": 5}]})).unwrap_err();
    assert_eq!(err.path, "$.a[0].prefix");
    assert_eq!(err.message, r#""prefix" takes a string, got 5"#);
    rejected(
        json!({"a": [{"suffix": {"equals-ignore-case": 1}}]}),
        "$.a[0].suffix.equals-ignore-case",
        "takes a string",
    );
    rejected(json!({"a": [{"prefix": {"wildcard": "x"}}]}), "$.a[0].prefix", "accepts only");
    rejected(
        json!({"a": [{"equals-ignore-case": ["x"]}]}),
        "$.a[0].equals-ignore-case",
        "takes a string",
    );
    rejected(json!({"a": [{"exists": "yes"}]}), "$.a[0].exists", "true or false");
    rejected(json!({"a": [{"cidr": "10.0.0.0"}]}), "$.a[0].cidr", "address/prefix-length");
    rejected(json!({"a": [{"cidr": "10.0.0.0/33"}]}), "$.a[0].cidr", "address/prefix-length");
}

#[test]
fn wildcard_errors() {
    rejected(json!({"a": [{"wildcard": "a**b"}]}), "$.a[0].wildcard", "consecutive wildcard");
    rejected(json!({"a": [{"wildcard": "a\\b"}]}), "$.a[0].wildcard", "may escape only");
    rejected(json!({"a": [{"wildcard": "a\\"}]}), "$.a[0].wildcard", "lone backslash");
    rejected(
        json!({"a": [{"anything-but": {"wildcard": ["ok*", "x**"]}}]}),
        "$.a[0].anything-but.wildcard[1]",
        "consecutive",
    );
}

#[test]
fn numeric_errors_point_at_the_element() {
    let err = Pattern::from_value(&json!({"detail": {"x": [{"numeric": [">", 0, "=", 5]}]}}))
        .unwrap_err();
    assert_eq!(err.path, "$.detail.x[0].numeric[2]");
    assert!(err.message.contains(r#"must end with "<" or "<=""#), "{}", err.message);
    let err = Pattern::from_value(&json!({"x": [{"numeric": [">", 0, "<"]}]})).unwrap_err();
    assert_eq!(err.path, "$.x[0].numeric");
    assert_eq!(
        err.message,
        r#""numeric" expects pairs of operator and number, e.g. [">", 0, "<=", 5]"#
    );
    rejected(json!({"x": [{"numeric": 5}]}), "$.x[0].numeric", "expects pairs");
    rejected(json!({"x": [{"numeric": [">", "5"]}]}), "$.x[0].numeric[1]", "must be a number");
    rejected(
        json!({"x": [{"numeric": ["!=", 5]}]}),
        "$.x[0].numeric[0]",
        "unknown numeric operator",
    );
    rejected(json!({"x": [{"numeric": ["<", 0, "<", 5]}]}), "$.x[0].numeric[0]", "must start with");
    rejected(
        json!({"x": [{"numeric": [">", 0, "<", "5"]}]}),
        "$.x[0].numeric[3]",
        "must be a number",
    );
    rejected(json!({"x": [{"numeric": [">", 5, "<", 5]}]}), "$.x[0].numeric", "lower < upper");
    rejected(json!({"x": [{"numeric": [">", 6e9]}]}), "$.x[0].numeric[1]", "within ±5e9");
}

#[test]
fn anything_but_errors() {
    rejected(
        json!({"a": [{"anything-but": ["x", 1]}]}),
        "$.a[0].anything-but[1]",
        "all strings or all numbers",
    );
    rejected(
        json!({"a": [{"anything-but": [1, "x"]}]}),
        "$.a[0].anything-but[1]",
        "all strings or all numbers",
    );
    rejected(json!({"a": [{"anything-but": []}]}), "$.a[0].anything-but", "must not be empty");
    rejected(
        json!({"a": [{"anything-but": [null]}]}),
        "$.a[0].anything-but[0]",
        "all strings or all numbers",
    );
    rejected(
        json!({"a": [{"anything-but": true}]}),
        "$.a[0].anything-but",
        "takes a string, a number",
    );
    rejected(
        json!({"a": [{"anything-but": {"numeric": [">", 1]}}]}),
        "$.a[0].anything-but",
        r#"got "numeric""#,
    );
    rejected(
        json!({"a": [{"anything-but": {"prefix": ""}}]}),
        "$.a[0].anything-but.prefix",
        "must not be empty",
    );
    rejected(
        json!({"a": [{"anything-but": {"equals-ignore-case": ["x", 2]}}]}),
        "$.a[0].anything-but.equals-ignore-case[1]",
        "takes a string",
    );
}

#[test]
fn or_errors() {
    rejected(json!({"$or": [{"a": ["x"]}]}), "$.$or", "at least two patterns, got 1");
    rejected(json!({"$or": {"a": ["x"]}}), "$.$or", "at least two patterns");
    rejected(
        json!({"detail": {"$or": [{"a": ["x"]}, "b"]}}),
        "$.detail.$or[1]",
        "must be an object",
    );
    rejected(json!({"$or": [{"a": ["x"]}, {}]}), "$.$or[1]", "empty object");
    rejected(json!({"$or": [{"a": ["x"]}, {"b": "y"}]}), "$.$or[1].b", "a leaf must be an array");
}

#[test]
fn compiled_patterns_compare_and_clone() {
    let a = Pattern::parse(
        r#"{"detail": {"eventName": [{"prefix": {"equals-ignore-case": "SERVICE_"}}]}}"#,
    );
    let b = Pattern::from_value(
        &json!({"detail": {"eventName": [{"prefix": {"equals-ignore-case": "service_"}}]}}),
    );
    assert_eq!(a, b, "ignore-case operands are folded at compile time");
    let a = a.unwrap();
    assert!(a.clone().matches(&service_action("service_steady_state")));
    assert_ne!(Ok(a), Pattern::parse(r#"{"detail": {"eventName": ["SERVICE_"]}}"#));
}
