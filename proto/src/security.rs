//! `Debug` of the generated join-token messages that carry a token secret
//! (`JoinClusterRequest`, `CreateJoinTokenReply`) or the cluster key (`JoinClusterReply`): the secret is redacted (`build.rs` skips the
//! derived `Debug`).

use crate::v1;

impl std::fmt::Debug for v1::JoinClusterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinClusterRequest")
            .field("token", &crate::secrets::REDACTED)
            .field("role", &self.role)
            .field("csr_pem", &self.csr_pem)
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl std::fmt::Debug for v1::JoinClusterReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinClusterReply")
            .field("cert_pem", &self.cert_pem)
            .field("ca_pem", &self.ca_pem)
            .field("id", &self.id)
            .field("not_after", &self.not_after)
            .field("cluster_key_hex", &crate::secrets::REDACTED)
            .field("members", &self.members)
            .finish()
    }
}

impl std::fmt::Debug for v1::CreateJoinTokenReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateJoinTokenReply")
            .field("token", &self.token)
            .field("join_token", &crate::secrets::REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn join_token_secrets_are_redacted() {
        let req =
            crate::v1::JoinClusterRequest { token: "BERTH-1-s3cr3t".into(), ..Default::default() };
        assert!(!format!("{req:?}").contains("s3cr3t"));
        let reply =
            crate::v1::CreateJoinTokenReply { join_token: "BERTH-1-s3cr3t".into(), token: None };
        assert!(!format!("{reply:?}").contains("s3cr3t"));
    }
}
