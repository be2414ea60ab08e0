//! [`AclApi`]: the `berth.v1.BerthAcl` service. Permissions come from the tower layer
//! (`CreateAclToken`, `ListAclTokens`, `RevokeAclToken`: admin without a cluster scope;
//! `WhoAmI`: any valid token). Accessor (UUID v4), secret (`crypto::random_secret`), its hash
//! and the timestamps are made here and travel in the command, so apply stays deterministic.
//! The secret is returned once and never stored, logged or listed.
//!
//! With ACL off the service still works (tokens can be made before turning `--acl` on), and
//! `WhoAmI` answers `acl_enabled: false`.

use super::permissions::Principal;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::propose::Proposer;
use crate::store::acl::{AclCommand, AclToken, Role};
use crate::store::{Command, SharedState};
use berth_proto::model::{Timestamp, is_valid_name};
use berth_proto::v1::{self, berth_acl_server::BerthAcl};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 256;
/// Longest lifetime accepted (ten years), so expiry arithmetic cannot overflow.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

#[derive(Clone)]
pub struct AclApi {
    proposer: Proposer,
    shared: SharedState,
    clock: Arc<dyn Clock>,
    enabled: bool,
}

impl AclApi {
    pub fn new(
        proposer: Proposer,
        shared: SharedState,
        clock: Arc<dyn Clock>,
        enabled: bool,
    ) -> AclApi {
        AclApi { proposer, shared, clock, enabled }
    }
}

/// A token as the API shows it: never the secret or its hash.
pub fn info(t: &AclToken) -> v1::AclTokenInfo {
    let ms = |t: Option<Timestamp>| t.map(|t| t.millis()).unwrap_or(0);
    v1::AclTokenInfo {
        accessor: t.accessor.clone(),
        role: t.role.to_string(),
        cluster: t.cluster.clone().unwrap_or_default(),
        description: t.description.clone(),
        created_at: t.created_at.millis(),
        expires_at: ms(t.expires_at),
        revoked_at: ms(t.revoked_at),
        bootstrap: t.bootstrap,
    }
}

/// A new token record and its secret, checked: role, cluster name, description, ttl.
pub fn new_token(
    r: &v1::CreateAclTokenRequest,
    now: Timestamp,
    bootstrap: bool,
) -> Result<(AclToken, String)> {
    let role: Role = r.role.parse().map_err(|e: String| Error::invalid(format!("role: {e}")))?;
    let cluster = match r.cluster.trim() {
        "" => None,
        c if is_valid_name(c) => Some(c.to_string()),
        c => {
            return Err(Error::invalid(format!(
                "cluster '{c}' is invalid: up to 255 letters, numbers, hyphens, and underscores are allowed."
            )));
        }
    };
    if r.description.chars().count() > MAX_DESCRIPTION {
        return Err(Error::invalid(format!(
            "description is {} characters; at most {MAX_DESCRIPTION} are allowed.",
            r.description.chars().count()
        )));
    }
    if r.ttl_seconds > MAX_TTL_SECONDS {
        return Err(Error::invalid(format!(
            "ttl {} s is too long; at most {MAX_TTL_SECONDS} s (ten years) is allowed.",
            r.ttl_seconds
        )));
    }
    let secret = crate::crypto::random_secret(super::SECRET_BYTES)
        .map_err(|e| Error::Storage(e.to_string()))?;
    let token = AclToken {
        accessor: uuid::Uuid::new_v4().to_string(),
        secret_hash: crate::crypto::sha256_hex(secret.as_bytes()),
        role,
        cluster,
        description: r.description.clone(),
        created_at: now,
        expires_at: (r.ttl_seconds > 0).then(|| now.plus_millis(r.ttl_seconds as i64 * 1000)),
        revoked_at: None,
        bootstrap,
    };
    Ok((token, secret))
}

type R<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl BerthAcl for AclApi {
    async fn create_acl_token(
        &self,
        r: Request<v1::CreateAclTokenRequest>,
    ) -> R<v1::CreateAclTokenReply> {
        let (token, secret) = new_token(r.get_ref(), self.clock.now(), false)?;
        let reply = info(&token);
        let by = r.extensions().get::<Principal>().map(|p| p.accessor.clone());
        self.proposer
            .propose(&Command::Acl(AclCommand::CreateToken { token, only_if_empty: false }))
            .await?;
        tracing::info!(accessor = %reply.accessor, role = %reply.role, by = ?by, "ACL token created");
        Ok(Response::new(v1::CreateAclTokenReply { token: Some(reply), secret }))
    }

    async fn list_acl_tokens(
        &self,
        _r: Request<v1::ListAclTokensRequest>,
    ) -> R<v1::ListAclTokensReply> {
        self.proposer.raft().read_barrier().await.map_err(Error::from)?;
        let st = self.shared.read();
        let mut tokens: Vec<_> = st.acl.tokens.values().collect();
        tokens.sort_by(|a, b| (a.created_at, &a.accessor).cmp(&(b.created_at, &b.accessor)));
        Ok(Response::new(v1::ListAclTokensReply { tokens: tokens.into_iter().map(info).collect() }))
    }

    async fn revoke_acl_token(&self, r: Request<v1::RevokeAclTokenRequest>) -> R<v1::AclTokenInfo> {
        let accessor = r.get_ref().accessor.trim().to_string();
        if accessor.is_empty() {
            return Err(
                Error::invalid("accessor: required (see `berth operator acl token list`)").into()
            );
        }
        let cmd = AclCommand::RevokeToken { accessor: accessor.clone(), now: self.clock.now() };
        self.proposer.propose(&Command::Acl(cmd)).await?;
        tracing::info!(%accessor, "ACL token revoked");
        let st = self.shared.read();
        let t =
            st.acl.tokens.get(&accessor).ok_or_else(|| {
                Error::Storage(format!("token {accessor} vanished after revocation"))
            })?;
        Ok(Response::new(info(t)))
    }

    async fn who_am_i(&self, r: Request<v1::WhoAmIRequest>) -> R<v1::WhoAmIReply> {
        let p = r.extensions().get::<Principal>();
        Ok(Response::new(v1::WhoAmIReply {
            accessor: p.map(|p| p.accessor.clone()).unwrap_or_default(),
            role: p.map(|p| p.role.to_string()).unwrap_or_default(),
            cluster: p.and_then(|p| p.cluster.clone()).unwrap_or_default(),
            acl_enabled: self.enabled,
        }))
    }
}
