//! Peer mTLS (controller ↔ controller): the `RaftPeer` listener requires a client certificate
//! from the cluster CA whose identity is a *controller* (an agent's certificate, or none, is
//! refused at the handshake), and the peer clients (`GrpcTransport`, `PeerForwarder`, event
//! backfill) present this controller's certificate and verify the peer's against the CA bundle
//! and `berth_security::CONTROLLER_SERVER_NAME`. So raft payloads, which rust-protobuf 2.28
//! parses (RUSTSEC-2024-0437), come only from authenticated controllers.
//!
//! [`PeerTls`] holds both sides behind swappable configs: [`PeerTls::update`] (renewal, CA
//! rotation) changes what new connections use without a restart.

use berth_security::{
    ClientAuth, ClientTls, Identity, IdentityFilter, Role, ServerTls, TlsMaterial,
};
use std::sync::Arc;

/// The peer listener's and peer clients' TLS.
#[derive(Clone)]
pub struct PeerTls {
    pub server: ServerTls,
    pub client: ClientTls,
    /// Extra identities to refuse (revoked controllers), besides every non-controller.
    deny: Option<IdentityFilter>,
}

/// Only controller identities may speak `RaftPeer`; `extra` refuses more (revoked ones).
fn controllers_only(extra: Option<IdentityFilter>) -> IdentityFilter {
    Arc::new(move |id: &Identity| {
        if id.role() != Role::Controller {
            tracing::warn!(identity = %id, "refused a non-controller certificate on the peer listener");
            return true;
        }
        extra.as_ref().is_some_and(|deny| deny(id))
    })
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

impl PeerTls {
    /// From this controller's material (CA bundle + its controller certificate and key).
    /// `deny` refuses further identities at the handshake (e.g. revoked controllers).
    pub fn new(
        material: &TlsMaterial,
        deny: Option<IdentityFilter>,
    ) -> berth_security::Result<PeerTls> {
        let server = ServerTls::new(
            material.server_config(ClientAuth::Required, Some(controllers_only(deny.clone())))?,
        );
        let client = ClientTls::new(material.client_config()?);
        Ok(PeerTls { server, client, deny })
    }

    /// The peer TLS a controller starts with in TLS mode, before its TLS bootstrap ran: the
    /// material kept in `tls_dir` (`ca.pem`, `cert.pem`, `key.pem`: a restart, or a controller
    /// that joined with a token), else a placeholder that admits and reaches nobody (a fresh
    /// first controller has no peers yet). Call [`PeerTls::update`] with the bootstrap's
    /// material once it has it.
    pub fn at_start(
        tls_dir: &std::path::Path,
        node_id: u64,
        deny: Option<IdentityFilter>,
    ) -> berth_security::Result<PeerTls> {
        let kept = tls_dir.join(berth_security::tls::CERT_FILE).exists()
            && tls_dir.join(berth_security::tls::KEY_FILE).exists()
            && tls_dir.join(berth_security::tls::CA_FILE).exists();
        let material = if kept { TlsMaterial::load_dir(tls_dir)? } else { placeholder(node_id)? };
        PeerTls::new(&material, deny)
    }

    /// New peer connections (both directions) use `material`; open ones keep theirs.
    pub fn update(&self, material: &TlsMaterial) -> berth_security::Result<()> {
        let server_config = material
            .server_config(ClientAuth::Required, Some(controllers_only(self.deny.clone())))?;
        let client_config = material.client_config()?;
        self.server.set(server_config);
        self.client.set(client_config);
        Ok(())
    }
}

/// A throwaway CA and a controller certificate from it: trusted by no real peer.
fn placeholder(node_id: u64) -> berth_security::Result<TlsMaterial> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let ttl = std::time::Duration::from_secs(3600);
    let ca = berth_security::CertificateAuthority::create("berth peer placeholder", now, ttl)?;
    let key = berth_security::NodeKey::generate()?;
    let cert = ca.sign_csr(&key.csr_pem()?, &Identity::controller(node_id)?, now, ttl)?;
    TlsMaterial::from_pem(ca.cert_pem(), Some((&cert.cert_pem, &key.key_pem())))
}

/// A lazily connected channel to a peer at `address` (`host:port`): through `tls` when given
/// (the URI stays `http://`; the connector does TLS), plaintext otherwise.
pub(crate) fn lazy_channel(
    address: &str,
    tls: Option<&ClientTls>,
    connect_timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, String> {
    let uri = super::peer_uri(address);
    let uri = uri.strip_prefix("https://").map(|r| format!("http://{r}")).unwrap_or(uri);
    let endpoint = tonic::transport::Endpoint::from_shared(uri)
        .map_err(|e| format!("peer address '{address}' is invalid: {e}"))?
        .connect_timeout(connect_timeout);
    Ok(match tls {
        Some(tls) => endpoint.connect_with_connector_lazy(tls.connector()),
        None => endpoint.connect_lazy(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::raft_peer_client::RaftPeerClient;
    use berth_security::{CertificateAuthority, DEFAULT_CERT_TTL, NodeKey};
    use std::time::Duration;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn material(ca: &CertificateAuthority, identity: &Identity) -> TlsMaterial {
        let key = NodeKey::generate().unwrap();
        let cert = ca.sign_csr(&key.csr_pem().unwrap(), identity, now(), DEFAULT_CERT_TTL).unwrap();
        TlsMaterial::from_pem(ca.cert_pem(), Some((&cert.cert_pem, &key.key_pem()))).unwrap()
    }

    /// A `ReadEvents` call over the peer listener from a client with `tls` (None: plaintext).
    async fn read_events(address: &str, tls: Option<&ClientTls>) -> Result<(), String> {
        let channel = lazy_channel(address, tls, Duration::from_secs(2))?;
        let mut client = RaftPeerClient::new(channel);
        let req = berth_proto::v1::ReadEventsRequest { from_index: 0, max: 1 };
        tokio::time::timeout(Duration::from_secs(5), client.read_events(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map(|_| ())
            .map_err(|s| format!("{}: {}", s.code(), s.message()))
    }

    #[tokio::test]
    async fn the_peer_listener_admits_only_controller_certificates_of_the_cluster_ca() {
        let ca = CertificateAuthority::create("berth test", now(), DEFAULT_CERT_TTL).unwrap();
        let me = PeerTls::new(&material(&ca, &Identity::controller(1).unwrap()), None).unwrap();
        let config = crate::raft::RaftConfig { tick_interval: None, ..Default::default() };
        let store = crate::store::Store::new(crate::store::SharedState::default());
        let backend = Arc::new(crate::storage::MemBackend::new());
        let node = crate::raft::RaftNode::start_single(config, backend, store).await.unwrap();
        let events = crate::events::EventLog::in_memory();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::super::serve_with_tls(
            listener,
            node,
            events,
            Some(me.server.clone()),
            async move {
                let _ = stop_rx.await;
            },
        ));

        // A member controller of the same CA (the group is {1}): admitted.
        let member = PeerTls::new(&material(&ca, &Identity::controller(1).unwrap()), None).unwrap();
        read_events(&address, Some(&member.client)).await.expect("a member controller is admitted");
        // A controller of the same CA that is not a member (removed, or never added): refused.
        let peer = PeerTls::new(&material(&ca, &Identity::controller(2).unwrap()), None).unwrap();
        let err = read_events(&address, Some(&peer.client)).await.expect_err("non-member");
        assert!(err.contains("controller 2 is not a member"), "{err}");
        // An agent's certificate from the same CA: refused at the handshake.
        let agent = material(&ca, &Identity::agent("0123456789abcdef0123456789abcdef").unwrap());
        let agent_tls = ClientTls::new(agent.client_config().unwrap());
        assert!(read_events(&address, Some(&agent_tls)).await.is_err(), "agent admitted");
        // A controller certificate of another CA: refused.
        let other = CertificateAuthority::create("other", now(), DEFAULT_CERT_TTL).unwrap();
        let mut foreign = material(&other, &Identity::controller(3).unwrap());
        foreign.roots = vec![ca.cert_der().clone()];
        let foreign_tls = ClientTls::new(foreign.client_config().unwrap());
        assert!(read_events(&address, Some(&foreign_tls)).await.is_err(), "foreign CA admitted");
        // No client certificate, and plaintext: refused.
        let anonymous =
            TlsMaterial { roots: vec![ca.cert_der().clone()], chain: vec![], key: None };
        let anonymous_tls = ClientTls::new(anonymous.client_config().unwrap());
        assert!(read_events(&address, Some(&anonymous_tls)).await.is_err(), "no cert admitted");
        assert!(read_events(&address, None).await.is_err(), "plaintext admitted");
        let _ = stop_tx.send(());
        let _ = server.await;
    }
}
