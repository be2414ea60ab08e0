//! `berth.v1.BerthSecurity`: the CA bundle, joining with a join token, and join token admin.
//! Permissions (API tokens) are checked by `crate::auth` before these handlers run:
//! GetCaBundle and JoinCluster need none (the join token authenticates), DescribeCa read-only,
//! the rest (RotateCa and IssueClientCertificate included) admin. IssueClientCertificate signs a
//! CLI's CSR for `berth://client/<name>` (`tls/client_cert.rs`). The CA bundle in replies is the store's trust bundle at
//! `now` (active root first; both roots during a CA rotation, `tls/rotation.rs`); join tokens
//! must pin the active root.

use super::bootstrap::open_ca;
use crate::clock::{Clock, new_id};
use crate::crypto::ClusterKey;
use crate::error::Error;
use crate::propose::Proposer;
use crate::store::deregister::{AGENT_ROLE, CONTROLLER_ROLE};
use crate::store::security::{CaRecord, JoinTokenRecord, NodeCertRecord, SecurityCommand};
use crate::store::{Command, SharedState};
use berth_proto::model::Timestamp;
use berth_proto::v1::{self, berth_security_server::BerthSecurity};
use berth_security::{Identity, JoinToken, Role};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// A join token's default lifetime (`token create` without `--ttl`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest join token lifetime.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest accepted CSR (PEM).
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// Longest join token description.
pub const MAX_DESCRIPTION: usize = 256;

#[derive(Clone)]
pub struct SecurityApi {
    proposer: Proposer,
    shared: SharedState,
    clock: Arc<dyn Clock>,
    cluster_key: Arc<ClusterKey>,
    cert_ttl: Duration,
}

impl SecurityApi {
    pub fn new(
        proposer: Proposer,
        shared: SharedState,
        clock: Arc<dyn Clock>,
        cluster_key: Arc<ClusterKey>,
        cert_ttl: Duration,
    ) -> Self {
        SecurityApi { proposer, shared, clock, cluster_key, cert_ttl }
    }

    /// The trust bundle now (PEM, active root first).
    fn bundle(&self, active: &CaRecord) -> String {
        self.shared
            .read()
            .security
            .ca_bundle_pem(self.clock.now())
            .unwrap_or_else(|| active.cert_pem.clone())
    }

    fn ca(&self) -> Result<CaRecord, Status> {
        self.shared.read().security.ca.clone().ok_or_else(|| {
            Status::failed_precondition(
                "this cluster has no CA: the controllers run without --tls, so there is nothing to join",
            )
        })
    }
}

/// A new join token for the CA in `record`: its record (secret hashed) and its text.
pub fn new_join_token(
    record: &CaRecord,
    role: &str,
    ttl: Option<Duration>,
    description: &str,
    now: Timestamp,
) -> Result<(JoinTokenRecord, String), Error> {
    let ca_der = berth_security::pem::certs_from_pem(&record.cert_pem)
        .map_err(|e| Error::Config(format!("the stored CA: {e}")))?;
    let der = ca_der.first().map(|c| c.as_ref().to_vec()).unwrap_or_default();
    let token = JoinToken::generate(&der).map_err(|e| Error::Config(e.to_string()))?;
    let id = crate::crypto::random_secret(8).map_err(|e| Error::Config(e.to_string()))?;
    let expires_at = ttl.map(|t| now.plus_millis(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)));
    let rec = JoinTokenRecord {
        id,
        role: role.to_string(),
        secret_hash: token.hash(),
        created_at: now,
        expires_at,
        description: description.to_string(),
        uses: 0,
    };
    Ok((rec, token.to_string()))
}

fn info(t: &JoinTokenRecord) -> v1::JoinTokenInfo {
    v1::JoinTokenInfo {
        id: t.id.clone(),
        role: t.role.clone(),
        description: t.description.clone(),
        created_at: t.created_at.millis(),
        expires_at: t.expires_at.map(|e| e.millis()).unwrap_or(0),
        uses: t.uses,
    }
}

fn check_role(role: &str) -> Result<Role, Status> {
    match role {
        AGENT_ROLE => Ok(Role::Agent),
        CONTROLLER_ROLE => Ok(Role::Controller),
        other => Err(Status::invalid_argument(format!(
            "role '{other}' is invalid: expected agent or controller"
        ))),
    }
}

/// Rejections of `UseJoinToken` typed AccessDeniedException become PermissionDenied.
fn join_status(e: Error) -> Status {
    match &e {
        Error::Rejected(r) if r.ecs_type == "AccessDeniedException" => {
            Status::permission_denied(format!("AccessDeniedException: {}", r.message))
        }
        _ => Status::from(e),
    }
}

#[tonic::async_trait]
impl BerthSecurity for SecurityApi {
    async fn get_ca_bundle(
        &self,
        _request: Request<v1::GetCaBundleRequest>,
    ) -> Result<Response<v1::GetCaBundleReply>, Status> {
        let ca = self.ca()?;
        let ca_pem = self.bundle(&ca);
        Ok(Response::new(v1::GetCaBundleReply { ca_pem, digest: ca.digest }))
    }

    async fn join_cluster(
        &self,
        request: Request<v1::JoinClusterRequest>,
    ) -> Result<Response<v1::JoinClusterReply>, Status> {
        let req = request.into_inner();
        let token = JoinToken::parse(&req.token)
            .map_err(|e| Status::invalid_argument(format!("token: {e}")))?;
        let role = check_role(&req.role)?;
        if req.csr_pem.is_empty() || req.csr_pem.len() > MAX_CSR_BYTES {
            return Err(Status::invalid_argument(format!(
                "csr_pem must be a PEM certificate signing request of at most {MAX_CSR_BYTES} bytes"
            )));
        }
        let record = self.ca()?;
        if token.ca_digest != record.digest {
            let rotated = self
                .shared
                .read()
                .security
                .rotation
                .as_ref()
                .is_some_and(|r| r.previous.digest == token.ca_digest);
            return Err(Status::permission_denied(if rotated {
                format!(
                    "AccessDeniedException: the join token pins the cluster's previous root CA (rotated): make a new token, or put the active root's digest {} in its place",
                    record.digest
                )
            } else {
                "AccessDeniedException: the join token is for another cluster CA".to_string()
            }));
        }
        let hash = token.hash();
        let now = self.clock.now();
        // A quick check before signing; the command checks again at apply time.
        match self.shared.read().security.token_by_hash(&hash) {
            None => {
                return Err(Status::permission_denied(
                    "AccessDeniedException: the join token is unknown or was revoked",
                ));
            }
            Some(t) if t.role != req.role => {
                return Err(Status::permission_denied(format!(
                    "AccessDeniedException: the join token is for role {}, not {}",
                    t.role, req.role
                )));
            }
            Some(_) => {}
        }
        let identity = match role {
            Role::Agent if !req.node_id.is_empty() => {
                return Err(Status::invalid_argument(
                    "node_id must be empty for an agent: the controller assigns its instance id",
                ));
            }
            Role::Agent => {
                Identity::agent(&new_id()).map_err(|e| Status::internal(e.to_string()))?
            }
            // `check_role` admits only agent and controller: clients get certificates from an
            // admin (IssueClientCertificate), never from a join token.
            Role::Client => {
                return Err(Status::invalid_argument(
                    "role 'client' cannot join: an admin issues client certificates (berth operator cert create)",
                ));
            }
            Role::Controller => req
                .node_id
                .parse::<u64>()
                .ok()
                .and_then(|n| Identity::controller(n).ok())
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "node_id '{}' is invalid: a controller joins with its non-zero node id",
                        req.node_id
                    ))
                })?,
        };
        if role == Role::Controller {
            // Controller join (`crate::join`): only the leader admits, before the token is used.
            crate::join::preflight(&self.proposer, &req)?;
        }
        let ca = open_ca(&record, &self.cluster_key).map_err(Status::from)?;
        let issued = ca
            .sign_csr(&req.csr_pem, &identity, now.millis().div_euclid(1000), self.cert_ttl)
            .map_err(|e| Status::invalid_argument(format!("csr_pem: {e}")))?;
        let cert = NodeCertRecord {
            role: req.role.clone(),
            id: identity.id().to_string(),
            serial: issued.serial.clone(),
            issued_at: now,
            not_after: issued.not_after,
            token_id: String::new(),
        };
        let cmd = Command::Security(SecurityCommand::UseJoinToken {
            secret_hash: hash,
            role: req.role.clone(),
            now,
            cert,
        });
        self.proposer.propose(&cmd).await.map_err(join_status)?;
        tracing::info!(%identity, serial = %issued.serial, "node joined with a join token");
        // Controller join (`crate::join`): added as a voter; gets the cluster key and members.
        let (cluster_key_hex, members) = if role == Role::Controller {
            crate::join::admit(&self.proposer, &identity, &req, &self.cluster_key).await?
        } else {
            Default::default()
        };
        Ok(Response::new(v1::JoinClusterReply {
            cert_pem: issued.cert_pem,
            ca_pem: self.bundle(&record),
            id: identity.id().to_string(),
            not_after: issued.not_after,
            cluster_key_hex,
            members,
        }))
    }

    async fn create_join_token(
        &self,
        request: Request<v1::CreateJoinTokenRequest>,
    ) -> Result<Response<v1::CreateJoinTokenReply>, Status> {
        let req = request.into_inner();
        check_role(&req.role)?;
        let ttl = match req.ttl_seconds {
            0 => DEFAULT_TOKEN_TTL,
            s => Duration::from_secs(s),
        };
        if ttl > MAX_TOKEN_TTL {
            return Err(Status::invalid_argument(format!(
                "ttl_seconds {} is too long: at most {} (one year)",
                req.ttl_seconds,
                MAX_TOKEN_TTL.as_secs()
            )));
        }
        if req.description.len() > MAX_DESCRIPTION {
            return Err(Status::invalid_argument(format!(
                "description is too long: at most {MAX_DESCRIPTION} bytes"
            )));
        }
        let record = self.ca()?;
        let (token, text) =
            new_join_token(&record, &req.role, Some(ttl), &req.description, self.clock.now())
                .map_err(Status::from)?;
        let reply = info(&token);
        let cmd = Command::Security(SecurityCommand::CreateJoinToken { token });
        self.proposer.propose(&cmd).await.map_err(Status::from)?;
        tracing::info!(id = %reply.id, role = %reply.role, "join token created");
        Ok(Response::new(v1::CreateJoinTokenReply { token: Some(reply), join_token: text }))
    }

    async fn list_join_tokens(
        &self,
        _request: Request<v1::ListJoinTokensRequest>,
    ) -> Result<Response<v1::ListJoinTokensReply>, Status> {
        let tokens = self.shared.read().security.join_tokens.values().map(info).collect();
        Ok(Response::new(v1::ListJoinTokensReply { tokens }))
    }

    async fn renew_certificate(
        &self,
        request: Request<v1::RenewCertificateRequest>,
    ) -> Result<Response<v1::RenewCertificateReply>, Status> {
        // Same identity as the caller's certificate (`crate::renewal`). A controller renews
        // only while it is a member: a removed one's certificate lapses.
        if let Some(Ok(identity)) = berth_security::peer_identity(&request)
            && identity.role() == berth_security::Role::Controller
        {
            let raft = self.proposer.raft();
            let member = identity
                .id()
                .parse::<u64>()
                .is_ok_and(|id| raft.membership().borrow().contains(id));
            if !member {
                return Err(Status::permission_denied(format!(
                    "AccessDeniedException: {identity} is not a member of the controller group: its certificate is not renewed"
                )));
            }
        }
        let now = self.clock.now().millis().div_euclid(1000);
        crate::renewal::renew_certificate(
            &self.shared,
            &self.cluster_key,
            now,
            self.cert_ttl,
            request,
        )
    }

    async fn rotate_ca(
        &self,
        _request: Request<v1::RotateCaRequest>,
    ) -> Result<Response<v1::RotateCaReply>, Status> {
        let record = self.ca()?;
        let now = self.clock.now();
        let name = super::rotation::root_name(&record);
        let cmd = super::rotation::rotate_command(
            &self.shared.read().security,
            &self.cluster_key,
            &name,
            now,
            self.cert_ttl,
        )?;
        let SecurityCommand::RotateCa { ref new, retire_at, .. } = cmd else {
            return Err(Status::internal("rotate_command made another command"));
        };
        let (digest, retire_at) = (new.digest.clone(), retire_at);
        // The bundle as of the command (this controller may not have applied it yet if it
        // forwarded to the leader): new root first, then the previous one.
        let ca_pem = format!("{}\n{}\n", new.cert_pem.trim_end(), record.cert_pem.trim_end());
        // The client hears ok only once the rotation is committed.
        self.proposer.propose(&Command::Security(cmd)).await.map_err(Status::from)?;
        tracing::warn!(%digest, previous = %record.digest, retire_at = retire_at.millis(), "cluster root CA rotated");
        Ok(Response::new(v1::RotateCaReply {
            digest,
            previous_digest: record.digest,
            rotated_at: now.millis(),
            retire_at: retire_at.millis(),
            ca_pem,
        }))
    }

    async fn describe_ca(
        &self,
        _request: Request<v1::DescribeCaRequest>,
    ) -> Result<Response<v1::DescribeCaReply>, Status> {
        self.ca()?;
        let reply = super::rotation::describe(&self.shared.read().security, self.clock.now());
        Ok(Response::new(reply))
    }

    async fn issue_client_certificate(
        &self,
        request: Request<v1::IssueClientCertificateRequest>,
    ) -> Result<Response<v1::IssueClientCertificateReply>, Status> {
        let req = request.into_inner();
        let record = self.ca()?;
        let now = self.clock.now().millis().div_euclid(1000);
        let issued = super::client_cert::issue(&record, &self.cluster_key, &req, now)?;
        tracing::info!(
            identity = %issued.identity,
            serial = %issued.serial,
            not_after = issued.not_after,
            "client certificate issued"
        );
        Ok(Response::new(v1::IssueClientCertificateReply {
            cert_pem: issued.cert_pem,
            ca_pem: self.bundle(&record),
            not_after: issued.not_after,
            identity: issued.identity.uri(),
            serial: issued.serial,
        }))
    }

    async fn revoke_join_token(
        &self,
        request: Request<v1::RevokeJoinTokenRequest>,
    ) -> Result<Response<v1::JoinTokenInfo>, Status> {
        let id = request.into_inner().id;
        let found = self.shared.read().security.join_tokens.get(&id).map(info);
        let Some(found) = found else {
            return Err(Status::not_found(format!("join token {id} not found")));
        };
        let cmd = Command::Security(SecurityCommand::RevokeJoinToken { id: id.clone() });
        self.proposer.propose(&cmd).await.map_err(Status::from)?;
        tracing::info!(%id, "join token revoked");
        Ok(Response::new(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Join tokens admit nodes only: a client certificate is never had for a join token.
    #[test]
    fn join_roles_are_agent_and_controller_only() {
        assert_eq!(check_role("agent").expect("agent"), Role::Agent);
        assert_eq!(check_role("controller").expect("controller"), Role::Controller);
        let err = check_role("client").expect_err("client");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("expected agent or controller"), "{}", err.message());
    }
}
