//! The permission table over every rpc of every .proto, and the decision's messages.

use super::*;

/// `package.Service/Method` of every rpc in proto/proto/*.proto (a small line parser: each
/// `service X {` opens a service, each `rpc Name(` inside adds a method).
fn every_rpc() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("proto dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read proto");
        let mut package = String::new();
        let mut service = None::<String>;
        for line in text.lines().map(|l| l.split("//").next().unwrap_or("").trim()) {
            if let Some(p) = line.strip_prefix("package ") {
                package = p.trim_end_matches(';').trim().to_string();
            } else if let Some(s) = line.strip_prefix("service ") {
                service = Some(s.trim_end_matches('{').trim().to_string());
            } else if let (Some(s), Some(rpc)) = (&service, line.strip_prefix("rpc ")) {
                let name = rpc.split('(').next().unwrap_or("").trim();
                out.push(format!("{package}.{s}/{name}"));
            } else if line.starts_with('}') && !line.contains('{') {
                service = None;
            }
        }
    }
    out
}

fn token(role: Role, cluster: Option<&str>) -> AclToken {
    AclToken {
        accessor: "acc-1".into(),
        secret_hash: "0".repeat(64),
        role,
        cluster: cluster.map(str::to_string),
        description: String::new(),
        created_at: Timestamp(0),
        expires_at: Some(Timestamp(10_000)),
        revoked_at: None,
        bootstrap: false,
    }
}

#[test]
fn every_rpc_in_the_protos_is_classified() {
    let rpcs = every_rpc();
    assert!(rpcs.len() > 30, "parsed too few rpcs: {rpcs:?}");
    assert!(rpcs.contains(&"berth.v1.Berth/UpdateService".to_string()));
    assert!(rpcs.contains(&"berth.v1.BerthAcl/WhoAmI".to_string()));
    let unclassified: Vec<_> = rpcs.iter().filter(|m| !permission(m).known).collect();
    assert!(
        unclassified.is_empty(),
        "add these rpcs to the table in auth/permissions.rs: {unclassified:?}"
    );
}

#[test]
fn the_berth_table_matches_the_plan() {
    use Need::{AnyToken, NoToken};
    let r = |role| Need::Role(role);
    for (method, need) in [
        ("berth.v1.Berth/ListClusters", r(Role::ReadOnly)),
        ("berth.v1.Berth/DescribeService", r(Role::ReadOnly)),
        ("berth.v1.Berth/ListTasks", r(Role::ReadOnly)),
        ("berth.v1.Berth/GetStatus", r(Role::ReadOnly)),
        ("berth.v1.Berth/SubscribeEvents", r(Role::ReadOnly)),
        ("berth.v1.Berth/ListMembers", r(Role::ReadOnly)),
        ("berth.v1.Berth/AddMember", r(Role::Admin)),
        ("berth.v1.Berth/RemoveMember", r(Role::Admin)),
        ("berth.v1.Berth/UpdateService", r(Role::Operator)),
        ("berth.v1.Berth/CreateCluster", r(Role::Operator)),
        ("berth.v1.Berth/RegisterTaskDefinition", r(Role::Operator)),
        ("berth.v1.Berth/StopTask", r(Role::Operator)),
        ("berth.v1.BerthSecurity/GetCaBundle", NoToken),
        ("berth.v1.BerthSecurity/JoinCluster", NoToken),
        ("berth.v1.BerthSecurity/RenewCertificate", NoToken),
        ("berth.v1.BerthSecurity/DescribeCa", r(Role::ReadOnly)),
        ("berth.v1.BerthSecurity/RotateCa", r(Role::Admin)),
        ("berth.v1.BerthSecurity/IssueClientCertificate", r(Role::Admin)),
        ("berth.v1.BerthSecurity/CreateJoinToken", r(Role::Admin)),
        ("berth.v1.BerthAcl/WhoAmI", AnyToken),
        ("berth.v1.BerthAcl/CreateAclToken", r(Role::Admin)),
        ("berth.v1.BerthAcl/ListAclTokens", r(Role::Admin)),
        ("berth.v1.BerthSecrets/ListSecrets", r(Role::ReadOnly)),
        ("berth.v1.BerthSecrets/PutSecret", r(Role::Operator)),
        ("berth.v1.BerthSecrets/DeleteSecret", r(Role::Operator)),
        ("berth.v1.AgentDispatch/Session", NoToken),
        ("berth.v1.RaftPeer/Step", NoToken),
        ("/berth.v1.Berth/ListServices", r(Role::ReadOnly)),
    ] {
        assert_eq!(permission(method).need, need, "{method}");
    }
    let unknown = permission("berth.v1.Berth/FormatDisks");
    assert_eq!(
        (unknown.need, unknown.scope, unknown.known),
        (r(Role::Admin), Scope::Unscoped, false)
    );
    assert!(!permission("other.Service/Call").known);
    // Every Berth method is a read (List*/Describe*/…), a write, or admin — never unknown.
    for m in every_rpc().iter().filter_map(|m| m.strip_prefix("berth.v1.Berth/")) {
        let need = permission(&format!("berth.v1.Berth/{m}")).need;
        if m.starts_with("List") || m.starts_with("Describe") {
            assert_eq!(need, r(Role::ReadOnly), "{m} is a read");
        }
    }
}

#[test]
fn each_role_gets_exactly_what_the_table_grants_on_every_rpc() {
    let now = Timestamp(5);
    for method in every_rpc() {
        let perm = permission(&method);
        for role in [Role::ReadOnly, Role::Operator, Role::Admin] {
            let t = token(role, None);
            let got = decide(&method, Presented::Token(&t), now);
            let allowed = match perm.need {
                Need::NoToken | Need::AnyToken => true,
                Need::Role(needed) => role >= needed,
            };
            assert_eq!(got.is_ok(), allowed, "{method} as {role}: {got:?}");
            if let Err(Denial::PermissionDenied(m)) = &got {
                assert!(m.contains("lacks permission '"), "{m}");
                assert!(m.ends_with(&method), "{m}");
            }
            if perm.need == Need::NoToken {
                assert_eq!(got, Ok(None), "{method}: no principal for token-free methods");
            }
        }
        // Without a token only the token-free methods pass.
        let anon = decide(&method, Presented::Missing, now);
        assert_eq!(anon.is_ok(), perm.need == Need::NoToken, "{method}: {anon:?}");
    }
}

#[test]
fn denial_messages_name_the_token_role_permission_and_method() {
    let t = token(Role::ReadOnly, None);
    let d = decide("/berth.v1.Berth/UpdateService", Presented::Token(&t), Timestamp(1));
    assert_eq!(
        d,
        Err(Denial::PermissionDenied(
            "AccessDeniedException: token acc-1 (role read-only) lacks permission 'operator' for berth.v1.Berth/UpdateService".into()
        ))
    );
    let ok = decide("berth.v1.Berth/ListServices", Presented::Token(&t), Timestamp(1));
    assert_eq!(
        ok,
        Ok(Some(Principal { accessor: "acc-1".into(), role: Role::ReadOnly, cluster: None }))
    );
    let op = token(Role::Operator, None);
    let d = decide("berth.v1.BerthAcl/CreateAclToken", Presented::Token(&op), Timestamp(1));
    assert!(
        matches!(&d, Err(Denial::PermissionDenied(m)) if m.contains("lacks permission 'admin'")),
        "{d:?}"
    );
}

#[test]
fn missing_unknown_revoked_and_expired_tokens_are_unauthenticated() {
    let m = "berth.v1.Berth/ListServices";
    for p in [Presented::Missing, Presented::Malformed, Presented::Unknown] {
        assert!(matches!(decide(m, p, Timestamp(1)), Err(Denial::Unauthenticated(_))), "{p:?}");
    }
    let expired = token(Role::Admin, None);
    let d = decide(m, Presented::Token(&expired), Timestamp(10_000));
    assert_eq!(
        d,
        Err(Denial::Unauthenticated(
            "UnrecognizedClientException: API token acc-1 is expired".into()
        ))
    );
    let revoked = AclToken { revoked_at: Some(Timestamp(3)), ..token(Role::Admin, None) };
    let d = decide(m, Presented::Token(&revoked), Timestamp(4));
    assert!(matches!(&d, Err(Denial::Unauthenticated(m)) if m.ends_with("is revoked")), "{d:?}");
    let forever = AclToken { expires_at: None, ..token(Role::ReadOnly, None) };
    assert!(decide(m, Presented::Token(&forever), Timestamp(i64::MAX)).is_ok());
    let d = decide("berth.v1.BerthAcl/WhoAmI", Presented::Missing, Timestamp(1));
    assert!(matches!(d, Err(Denial::Unauthenticated(_))));
}

#[test]
fn scoped_tokens_stay_in_their_cluster() {
    let t = token(Role::Admin, Some("prod"));
    let now = Timestamp(1);
    let p = decide("berth.v1.Berth/UpdateService", Presented::Token(&t), now)
        .expect("a cluster method passes the first check")
        .expect("principal");
    assert_eq!(p.cluster.as_deref(), Some("prod"));
    assert_eq!(check_cluster(&p, "berth.v1.Berth/UpdateService", "prod"), Ok(()));
    assert_eq!(
        check_cluster(&p, "berth.v1.Berth/UpdateService", "arn:aws:ecs:local:0:cluster/prod"),
        Ok(())
    );
    let d = check_cluster(&p, "berth.v1.Berth/UpdateService", "").expect_err("default is another");
    assert_eq!(
        d.message(),
        "AccessDeniedException: token acc-1 is scoped to cluster 'prod' and lacks permission for cluster 'default' (berth.v1.Berth/UpdateService)"
    );
    for m in [
        "berth.v1.Berth/AddMember",
        "berth.v1.BerthAcl/CreateAclToken",
        "berth.v1.BerthSecrets/PutSecret",
        "berth.v1.Berth/DeregisterTaskDefinition",
    ] {
        let d = decide(m, Presented::Token(&t), now);
        assert!(
            matches!(&d, Err(Denial::PermissionDenied(msg)) if msg.contains("beyond one cluster")),
            "{m}: {d:?}"
        );
    }
    for m in [
        "berth.v1.Berth/ListClusters",
        "berth.v1.Berth/RegisterTaskDefinition",
        "berth.v1.BerthAcl/WhoAmI",
        "berth.v1.Berth/GetStatus",
    ] {
        assert!(decide(m, Presented::Token(&t), now).is_ok(), "{m}");
    }
    let unscoped = Principal { accessor: "a".into(), role: Role::ReadOnly, cluster: None };
    assert_eq!(check_cluster(&unscoped, "x", "anything"), Ok(()));
}
