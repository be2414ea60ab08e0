//! The permission table and the pure decision over it: (method, token record, now) → allow with
//! a [`Principal`] or deny with the gRPC code and message. No I/O, no clock: `now` comes in.
//!
//! Roles: `read-only` ⊂ `operator` ⊂ `admin`. By full gRPC method path:
//! * `berth.v1.Berth`: List*/Describe*/GetStatus/SubscribeEvents/ListMembers → read-only;
//!   AddMember/RemoveMember → admin; the writes in [`BERTH_WRITES`] → operator.
//! * `berth.v1.BerthSecurity`: GetCaBundle, JoinCluster, RenewCertificate → no API token (join
//!   token or client certificate); DescribeCa → read-only; RotateCa, IssueClientCertificate
//!   (named) and every other method → admin.
//! * `berth.v1.BerthAcl`: WhoAmI → any valid token; every other method → admin.
//! * `berth.v1.BerthSecrets`: ListSecrets → read-only; PutSecret, DeleteSecret → operator.
//! * `berth.v1.AgentDispatch`, `berth.v1.RaftPeer`: no API token (client certificates).
//! * Anything else → admin, and only for tokens without a cluster scope (deny by default).
//!
//! Cluster scope ([`Scope`]): a token made with `--cluster NAME` acts on that cluster only.
//! `Cluster` methods name a cluster in the request (checked by `auth/scoped.rs` with
//! [`check_cluster`]); `Global` methods name none and are open to scoped tokens (task
//! definitions are account-wide, ListClusters and event streams are filtered to the token's
//! cluster, GetStatus/ListMembers describe the controllers); `Unscoped` methods act beyond one
//! cluster (members, tokens, the CA, secrets, deregistering a task definition) and need a token
//! without a scope.

use crate::store::acl::{AclToken, Role};
use berth_proto::model::Timestamp;

/// Who made a request (inserted into the request's extensions when ACL is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub accessor: String,
    pub role: Role,
    /// The one cluster this caller may act on; `None`: every cluster.
    pub cluster: Option<String>,
}

/// What a method needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Not API-token checked (agents, peers, join-token and certificate flows).
    NoToken,
    /// Any valid token (WhoAmI).
    AnyToken,
    /// A valid token with at least this role.
    Role(Role),
}

/// How a method relates to a token's cluster scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The request names a cluster; a scoped token must name its own.
    Cluster,
    /// No cluster involved (or the reply is filtered to the token's cluster).
    Global,
    /// Acts beyond one cluster: only tokens without a scope.
    Unscoped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub need: Need,
    pub scope: Scope,
    /// False for the deny-by-default answer to a method the table does not know.
    pub known: bool,
}

const BERTH: &str = "berth.v1.Berth/";
const SECURITY: &str = "berth.v1.BerthSecurity/";
const ACL: &str = "berth.v1.BerthAcl/";
const SECRETS: &str = "berth.v1.BerthSecrets/";

/// `berth.v1.Berth` reads naming a cluster.
pub const BERTH_CLUSTER_READS: &[&str] = &[
    "DescribeCluster",
    "DescribeService",
    "ListServices",
    "DescribeTask",
    "ListTasks",
    "DescribeContainerInstance",
    "ListContainerInstances",
];
/// `berth.v1.Berth` reads naming no cluster.
pub const BERTH_GLOBAL_READS: &[&str] = &[
    "ListClusters",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "ListMembers",
    "GetStatus",
    "SubscribeEvents",
];
/// `berth.v1.Berth` writes (operator) naming a cluster.
pub const BERTH_WRITES: &[&str] = &[
    "CreateCluster",
    "DeleteCluster",
    "CreateService",
    "UpdateService",
    "DeleteService",
    "RunTask",
    "StopTask",
    "PutAttributes",
    "DeleteAttributes",
    "UpdateContainerInstanceState",
    "DeregisterContainerInstance",
];

fn p(need: Need, scope: Scope) -> Permission {
    Permission { need, scope, known: true }
}

/// The permission of a gRPC method, by full path (`/berth.v1.Berth/UpdateService`; the
/// leading slash is optional).
pub fn permission(path: &str) -> Permission {
    use Scope::{Cluster, Global, Unscoped};
    let path = path.strip_prefix('/').unwrap_or(path);
    let read = Need::Role(Role::ReadOnly);
    let operator = Need::Role(Role::Operator);
    let admin = Need::Role(Role::Admin);
    let deny_by_default = Permission { need: admin, scope: Unscoped, known: false };
    if path.starts_with("berth.v1.AgentDispatch/") || path.starts_with("berth.v1.RaftPeer/") {
        return p(Need::NoToken, Global);
    }
    if let Some(m) = path.strip_prefix(BERTH) {
        return match m {
            _ if BERTH_CLUSTER_READS.contains(&m) => p(read, Cluster),
            _ if BERTH_GLOBAL_READS.contains(&m) => p(read, Global),
            _ if BERTH_WRITES.contains(&m) => p(operator, Cluster),
            "RegisterTaskDefinition" => p(operator, Global),
            "DeregisterTaskDefinition" => p(operator, Unscoped),
            "AddMember" | "RemoveMember" => p(admin, Unscoped),
            _ => deny_by_default,
        };
    }
    if let Some(m) = path.strip_prefix(SECURITY) {
        // Every method but these is admin by the table's own rule, so all are "known".
        return match m {
            "GetCaBundle" | "JoinCluster" | "RenewCertificate" => p(Need::NoToken, Global),
            "DescribeCa" => p(read, Global),
            // Replaces the cluster root CA (`tls/rotation.rs`): admin, named so it stays admin
            // if the default below ever changes.
            "RotateCa" => p(admin, Unscoped),
            // Signs a client certificate (`tls/client_cert.rs`): admin, named likewise.
            "IssueClientCertificate" => p(admin, Unscoped),
            _ => p(admin, Unscoped),
        };
    }
    if let Some(m) = path.strip_prefix(ACL) {
        return match m {
            "WhoAmI" => p(Need::AnyToken, Global),
            _ => p(admin, Unscoped),
        };
    }
    if let Some(m) = path.strip_prefix(SECRETS) {
        return match m {
            "ListSecrets" => p(read, Unscoped),
            "PutSecret" | "DeleteSecret" => p(operator, Unscoped),
            _ => deny_by_default,
        };
    }
    deny_by_default
}

/// A refused call: the gRPC code and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No token, an unknown one, or one revoked or expired.
    Unauthenticated(String),
    /// A valid token whose role or scope does not cover the call.
    PermissionDenied(String),
}

impl Denial {
    pub fn message(&self) -> &str {
        match self {
            Denial::Unauthenticated(m) | Denial::PermissionDenied(m) => m,
        }
    }
}

impl From<Denial> for tonic::Status {
    fn from(d: Denial) -> tonic::Status {
        match d {
            Denial::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            Denial::PermissionDenied(m) => tonic::Status::permission_denied(m),
        }
    }
}

/// What the caller presented, looked up in the state.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// No `authorization` header.
    Missing,
    /// A header that is not `Bearer <secret>`.
    Malformed,
    /// A well-formed secret whose hash no token has.
    Unknown,
    Token(&'a AclToken),
}

/// The decision for one call. `Ok(None)`: allowed without a token (agents, peers, join flows).
pub fn decide(
    method: &str,
    presented: Presented<'_>,
    now: Timestamp,
) -> Result<Option<Principal>, Denial> {
    let method = method.strip_prefix('/').unwrap_or(method);
    let perm = permission(method);
    if perm.need == Need::NoToken {
        return Ok(None);
    }
    let token = match presented {
        Presented::Missing => {
            return Err(Denial::Unauthenticated(format!(
                "UnrecognizedClientException: {method} requires an API token: send 'authorization: Bearer <secret>' (berth --token or BERTH_TOKEN)"
            )));
        }
        Presented::Malformed => {
            return Err(Denial::Unauthenticated(
                "UnrecognizedClientException: the authorization header must be 'Bearer <secret>'"
                    .into(),
            ));
        }
        Presented::Unknown => {
            return Err(Denial::Unauthenticated(
                "UnrecognizedClientException: the API token is not known to this cluster".into(),
            ));
        }
        Presented::Token(t) => t,
    };
    if let Some(why) = token.unusable_reason(now) {
        return Err(Denial::Unauthenticated(format!(
            "UnrecognizedClientException: API token {} is {why}",
            token.accessor
        )));
    }
    if let Need::Role(needed) = perm.need
        && token.role < needed
    {
        return Err(Denial::PermissionDenied(format!(
            "AccessDeniedException: token {} (role {}) lacks permission '{needed}' for {method}",
            token.accessor, token.role
        )));
    }
    if perm.scope == Scope::Unscoped
        && let Some(cluster) = &token.cluster
    {
        return Err(Denial::PermissionDenied(format!(
            "AccessDeniedException: token {} is scoped to cluster '{cluster}' and lacks permission for {method}, which acts beyond one cluster",
            token.accessor
        )));
    }
    Ok(Some(Principal {
        accessor: token.accessor.clone(),
        role: token.role,
        cluster: token.cluster.clone(),
    }))
}

/// The cluster a request names, as the API reads it: empty → `default`, an ARN → its name.
pub fn requested_cluster(given: &str) -> &str {
    if given.is_empty() {
        berth_proto::model::DEFAULT_CLUSTER
    } else {
        berth_proto::model::arn_tail(given)
    }
}

/// Whether `principal` may act on the cluster a request names (`given`, as in the request).
pub fn check_cluster(principal: &Principal, method: &str, given: &str) -> Result<(), Denial> {
    let wanted = requested_cluster(given);
    match &principal.cluster {
        Some(own) if own != wanted => Err(Denial::PermissionDenied(format!(
            "AccessDeniedException: token {} is scoped to cluster '{own}' and lacks permission for cluster '{wanted}' ({method})",
            principal.accessor
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "permissions_tests.rs"]
mod tests;
