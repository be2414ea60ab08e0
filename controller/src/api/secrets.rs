//! The `berth.v1.BerthSecrets` service: PutSecret, ListSecrets, DeleteSecret.
//!
//! PutSecret checks the name and value rules (`berth_proto::secrets`), seals the value with the
//! cluster key here, before proposing, so only ciphertext enters the Raft log, and answers the
//! secret's metadata. No reply, log line or error ever carries a value. Permissions (ListSecrets:
//! read; Put/Delete: operator) are enforced by the ACL layer in front of every service.

use super::Api;
use crate::error::{Error, Result};
use crate::store::Command;
use crate::store::secrets::{Sealed, SecretCommand, StoredSecret};
use berth_proto::model::ArnScope;
use berth_proto::secrets::{check_secret_name, check_secret_value, seal_context};
use berth_proto::v1::{self, berth_secrets_server::BerthSecrets};
use tonic::{Request, Response, Status};

/// Longest description (Secrets Manager: 2048 characters).
pub const MAX_DESCRIPTION_LEN: usize = 2048;

fn info(scope: &ArnScope, s: &StoredSecret) -> v1::SecretInfo {
    v1::SecretInfo {
        name: s.name.clone(),
        arn: s.arn(scope),
        version: s.version,
        description: s.description.clone(),
        created_at: s.created_at.millis(),
        updated_at: s.updated_at.millis(),
    }
}

fn info_of(api: &Api, name: &str) -> Result<v1::SecretInfo> {
    let st = api.shared.read();
    st.secrets
        .secrets
        .get(name)
        .map(|s| info(&st.scope, s))
        .ok_or_else(|| Error::Storage(format!("secret {name} vanished after it was written")))
}

pub async fn put(api: &Api, r: v1::PutSecretRequest) -> Result<v1::SecretInfo> {
    check_secret_name(&r.name).map_err(Error::invalid)?;
    check_secret_value(&r.value).map_err(Error::invalid)?;
    if r.description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(Error::invalid(format!(
            "description is too long: at most {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    let key = api.cluster_key.as_ref().ok_or_else(|| {
        Error::Config("this controller has no cluster key; secrets cannot be stored".into())
    })?;
    let sealed = key
        .seal(&seal_context(&r.name), r.value.as_bytes())
        .map_err(|e| Error::Storage(format!("sealing secret {}: {e}", r.name)))?;
    let cmd = Command::Secret(SecretCommand::Put {
        name: r.name.clone(),
        sealed: Sealed(sealed),
        description: (!r.description.is_empty()).then(|| r.description.clone()),
        now: api.clock.now(),
    });
    api.proposer.propose(&cmd).await?;
    let out = info_of(api, &r.name)?;
    tracing::info!(name = %out.name, version = out.version, "secret put");
    Ok(out)
}

pub fn list(api: &Api) -> v1::ListSecretsReply {
    let st = api.shared.read();
    v1::ListSecretsReply {
        secrets: st.secrets.secrets.values().map(|s| info(&st.scope, s)).collect(),
    }
}

pub async fn delete(api: &Api, r: v1::DeleteSecretRequest) -> Result<v1::SecretInfo> {
    check_secret_name(&r.name).map_err(Error::invalid)?;
    let before = {
        let st = api.shared.read();
        st.secrets.secrets.get(&r.name).map(|s| info(&st.scope, s))
    };
    api.proposer.propose(&Command::Secret(SecretCommand::Delete { name: r.name.clone() })).await?;
    tracing::info!(name = %r.name, "secret deleted");
    Ok(before.unwrap_or_else(|| v1::SecretInfo {
        name: r.name.clone(),
        arn: crate::store::secrets::secret_arn(&api.shared.read().scope, &r.name),
        ..Default::default()
    }))
}

type R<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl BerthSecrets for Api {
    async fn put_secret(&self, r: Request<v1::PutSecretRequest>) -> R<v1::SecretInfo> {
        Ok(Response::new(put(self, r.into_inner()).await?))
    }
    async fn list_secrets(&self, r: Request<v1::ListSecretsRequest>) -> R<v1::ListSecretsReply> {
        self.consistent(&r).await?;
        Ok(Response::new(list(self)))
    }
    async fn delete_secret(&self, r: Request<v1::DeleteSecretRequest>) -> R<v1::SecretInfo> {
        Ok(Response::new(delete(self, r.into_inner()).await?))
    }
}
