//! Controller join (`berth-controller --join-token TOKEN --join URL`): a new controller joins a
//! TLS cluster with a controller join token, before it starts.
//!
//! ```text
//!  joiner                                   existing member (the leader)
//!  GetCaBundle ─(TLS, not yet verified)──►  CA bundle; its digest must equal the token's
//!  JoinCluster ─(TLS, verified by that CA)► sign the CSR for berth://controller/<id>,
//!   {token, role controller, CSR,           AddMember(id, peer address, client URL),
//!    node id, peer addr, client URL}        reply: cert + CA + cluster key + members
//!  writes <data-dir>/tls/{ca,cert,key}.pem and <data-dir>/cluster.key (0600),
//!  then starts as an empty member (`join`) with the members' peer addresses.
//! ```
//!
//! * [`join_controller`] — the joiner's side (client).
//! * [`preflight`] / [`admit`] — the leader's side, called by `BerthSecurity.JoinCluster` for
//!   role controller: only the leader admits (a follower answers `Unavailable` naming the
//!   leader's client URL in [`LEADER_ENDPOINT_METADATA`], which the joiner follows).
//!
//! The token's secret travels only over a connection verified against the CA its digest pins;
//! the cluster key only to a holder of a valid controller join token.

use crate::crypto::ClusterKey;
use crate::error::{Error, Result};
use crate::propose::Proposer;
use berth_proto::v1;
use berth_security::{ClientTls, Identity, JoinToken, NodeKey, TlsMaterial};
use std::path::Path;
use std::time::Duration;
use tonic::Status;

/// Metadata of a follower's refusal: the leader's client API URL.
pub const LEADER_ENDPOINT_METADATA: &str = "x-berth-leader-endpoint";
/// How long the joiner keeps trying (the leader may be changing).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// One RPC's bound.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The leader's side.

/// Checks a controller's JoinCluster before the token is used: this controller leads, and the
/// addresses are usable.
pub fn preflight(
    proposer: &Proposer,
    req: &v1::JoinClusterRequest,
) -> std::result::Result<(), Status> {
    let raft = proposer.raft();
    if !raft.is_leader() {
        let leader = raft.leader_id();
        let endpoint = leader
            .and_then(|l| raft.members().into_iter().find(|m| m.node_id == l))
            .and_then(|m| m.client_address);
        let mut status = Status::unavailable(format!(
            "this controller is not the leader; a controller joins through the leader{}",
            endpoint.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
        if let Some(v) = endpoint.and_then(|e| e.parse().ok()) {
            status.metadata_mut().insert(LEADER_ENDPOINT_METADATA, v);
        }
        return Err(status);
    }
    if !req.peer_address.contains(':') || req.peer_address.chars().any(char::is_whitespace) {
        return Err(Status::invalid_argument(format!(
            "peer_address '{}' is invalid: expected HOST:PORT of the joining controller's --peer-listen",
            req.peer_address
        )));
    }
    Ok(())
}

/// Adds the joining controller as a voter (refused if its id is already a member) and answers
/// the cluster key and every member.
pub async fn admit(
    proposer: &Proposer,
    identity: &Identity,
    req: &v1::JoinClusterRequest,
    cluster_key: &ClusterKey,
) -> std::result::Result<(String, Vec<v1::JoinedMember>), Status> {
    let raft = proposer.raft();
    let id: u64 = identity
        .id()
        .parse()
        .map_err(|_| Status::invalid_argument("node_id: a controller's id is a number"))?;
    // An id that is already a member is refused even with the same peer address: the joiner
    // starts from an empty log, and a leader that remembers the old member's progress would
    // hand it a commit index beyond its log (raft panics on that). Remove the old member first.
    if let Some(m) = raft.members().into_iter().find(|m| m.node_id == id) {
        return Err(Status::already_exists(format!(
            "node {id} is already a member (peer address {}): a controller that lost its data dir, or a new one with a used id, must be removed first (berth operator members remove {id}), or join with another --node-id",
            m.peer_address
        )));
    }
    let client = (!req.client_address.is_empty()).then(|| req.client_address.clone());
    raft.add_member(id, req.peer_address.clone(), client)
        .await
        .map_err(|e| Status::from(Error::from(e)))?;
    tracing::info!(node_id = id, peer = %req.peer_address, "controller joined with a join token: added as a voter");
    let members = raft
        .members()
        .into_iter()
        .map(|m| v1::JoinedMember {
            node_id: m.node_id,
            peer_address: m.peer_address,
            client_address: m.client_address.unwrap_or_default(),
        })
        .collect();
    Ok((cluster_key.to_hex(), members))
}

// ---------------------------------------------------------------------------------------------
// The joiner's side.

/// What the joiner needs to start.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// `https://HOST:PORT` of an existing member's client API.
    pub url: String,
    pub token: String,
    pub node_id: u64,
    /// The joiner's peer address as the others reach it.
    pub peer_address: String,
    /// The joiner's client API URL.
    pub client_address: String,
    pub data_dir: std::path::PathBuf,
    /// Where the cluster key goes (`ControllerConfig::cluster_key_path`).
    pub cluster_key_path: std::path::PathBuf,
}

/// Joins: writes the TLS material and the cluster key, returns the members' peer addresses
/// (node id → `host:port`) for `ControllerConfig::initial_cluster`.
pub async fn join_controller(r: &JoinRequest) -> Result<std::collections::BTreeMap<u64, String>> {
    let token =
        JoinToken::parse(&r.token).map_err(|e| Error::Config(format!("--join-token: {e}")))?;
    if !r.url.starts_with("https://") {
        return Err(Error::Config(format!(
            "--join {}: expected the https:// client URL of an existing controller",
            r.url
        )));
    }
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut url = r.url.clone();
    loop {
        match join_once(r, &token, &url).await {
            Ok(members) => return Ok(members),
            Err(JoinFailure::Leader(leader)) if tokio::time::Instant::now() < deadline => {
                tracing::info!(%leader, "join: following the leader");
                url = leader;
            }
            Err(JoinFailure::Retry(e)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%url, error = %e, "join: retrying");
                url = r.url.clone();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(JoinFailure::Leader(e) | JoinFailure::Retry(e) | JoinFailure::Fatal(e)) => {
                return Err(Error::Config(format!("joining through {url}: {e}")));
            }
        }
    }
}

enum JoinFailure {
    /// Not the leader: try this URL.
    Leader(String),
    Retry(String),
    Fatal(String),
}

async fn join_once(
    r: &JoinRequest,
    token: &JoinToken,
    url: &str,
) -> std::result::Result<std::collections::BTreeMap<u64, String>, JoinFailure> {
    use v1::berth_security_client::BerthSecurityClient;
    // 1. The CA bundle, over TLS not yet verified: pinned by the token's digest instead.
    let ca_pem = berth_security::join::fetch_ca(url, token).await.map_err(|e| {
        if e.retry { JoinFailure::Retry(e.message) } else { JoinFailure::Fatal(e.message) }
    })?;
    let roots = berth_security::pem::certs_from_pem(&ca_pem)
        .map_err(|e| JoinFailure::Fatal(format!("the CA bundle: {e}")))?;
    // 2. JoinCluster over TLS verified against that CA.
    let trusted = TlsMaterial { roots, chain: vec![], key: None };
    let verified =
        ClientTls::new(trusted.client_config().map_err(|e| JoinFailure::Fatal(e.to_string()))?);
    let channel = connect(url, &verified).await?;
    let key = NodeKey::generate().map_err(|e| JoinFailure::Fatal(e.to_string()))?;
    let csr_pem = key.csr_pem().map_err(|e| JoinFailure::Fatal(e.to_string()))?;
    let req = v1::JoinClusterRequest {
        token: r.token.clone(),
        role: crate::store::deregister::CONTROLLER_ROLE.into(),
        csr_pem,
        node_id: r.node_id.to_string(),
        peer_address: r.peer_address.clone(),
        client_address: r.client_address.clone(),
    };
    let reply =
        tokio::time::timeout(RPC_TIMEOUT, BerthSecurityClient::new(channel).join_cluster(req))
            .await
            .map_err(|_| JoinFailure::Retry("JoinCluster timed out".into()))?;
    let reply = match reply {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unavailable => {
            let leader = s
                .metadata()
                .get(LEADER_ENDPOINT_METADATA)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return Err(match leader {
                Some(l) if l != url => JoinFailure::Leader(l),
                _ => JoinFailure::Retry(s.message().to_string()),
            });
        }
        Err(s) => return Err(JoinFailure::Fatal(format!("JoinCluster: {}", s.message()))),
    };
    write_join_files(r, &reply, &key).map_err(|e| JoinFailure::Fatal(e.to_string()))?;
    let members = reply.members.iter().map(|m| (m.node_id, m.peer_address.clone())).collect();
    tracing::info!(
        node_id = r.node_id,
        members = reply.members.len(),
        "joined the controller group; starting"
    );
    Ok(members)
}

/// `<data-dir>/tls/{ca,cert,key}.pem` and the cluster key file (an existing key file must
/// hold the same key).
fn write_join_files(r: &JoinRequest, reply: &v1::JoinClusterReply, key: &NodeKey) -> Result<()> {
    berth_security::pem::create_private_dir(&r.data_dir)
        .map_err(|e| Error::Config(format!("the data dir: {e}")))?;
    let cluster_key = ClusterKey::from_hex(&reply.cluster_key_hex)
        .map_err(|e| Error::Config(format!("the cluster key in the join reply: {e}")))?;
    if r.cluster_key_path.exists() {
        let kept = ClusterKey::load(&r.cluster_key_path)
            .map_err(|e| Error::Config(format!("--cluster-key-file: {e}")))?;
        if kept.as_bytes() != cluster_key.as_bytes() {
            return Err(Error::Config(format!(
                "{} holds another cluster key than the cluster's: remove it (a joining controller gets the cluster's key)",
                r.cluster_key_path.display()
            )));
        }
    } else {
        cluster_key
            .store(&r.cluster_key_path)
            .map_err(|e| Error::Config(format!("writing the cluster key: {e}")))?;
    }
    let dir = crate::tls::bootstrap::tls_dir(&r.data_dir);
    let write = |name: &str, text: &str, private: bool| {
        berth_security::pem::write_file(&dir.join(name), text, private)
            .map_err(|e| Error::Config(format!("writing {name}: {e}")))
    };
    write(berth_security::tls::CA_FILE, &reply.ca_pem, false)?;
    write(berth_security::tls::CERT_FILE, &reply.cert_pem, false)?;
    write(berth_security::tls::KEY_FILE, &key.key_pem(), true)?;
    Ok(())
}

async fn connect(
    url: &str,
    tls: &ClientTls,
) -> std::result::Result<tonic::transport::Channel, JoinFailure> {
    berth_security::connect_channel(url, Some(tls), |e| {
        e.connect_timeout(Duration::from_secs(5)).timeout(RPC_TIMEOUT)
    })
    .await
    .map_err(|e| JoinFailure::Retry(format!("connecting: {e}")))
}

/// Whether a join should run: a token was given and the data dir holds no store yet (a
/// restarted member that joined before just starts).
pub fn needs_join(data_dir: &Path, token: Option<&str>) -> bool {
    token.is_some() && !data_dir.join("store").exists()
}
