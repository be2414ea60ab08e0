//! CA rotation, controller side (`berth operator ca rotate` / `ca describe`).
//!
//! Flow: `BerthSecurity.RotateCa` (admin, `tls/service.rs`) → [`rotate_command`] opens the
//! active root with the cluster key, makes its successor and the cross certificate
//! (`CertificateAuthority::successor`), seals the new key and returns
//! `SecurityCommand::RotateCa` with the times, which the proposer commits (the client hears ok
//! only then). Every controller's rotation watcher (`crate::renewal::spawn_own`) compares
//! [`TrustEpoch::of_store`] with what it serves and, when they differ (a rotation applied, or a
//! previous root reaching `retire_at`), re-issues its own certificate with [`own_material`],
//! writes `<data-dir>/tls/{ca,cert,key}.pem` and swaps the client-listener and peer configs in
//! place; [`repin_bootstrap_tokens`] rewrites `<data-dir>/bootstrap/*.join-token` for the
//! active root.
//!
//! * [`own_material`] — this controller's TLS material from the store at `now`: a fresh key,
//!   a certificate from the active root, chain `[leaf, cross certificate]` during a transition,
//!   roots = the trust bundle (`SecurityState::ca_bundle_pem`). Bootstrap, renewal and rotation
//!   all use it.
//! * [`describe`] — the DescribeCa reply, from the state and `now`.
//!
//! Join tokens pin the active root's digest (`JoinCluster` and the joining node's check of the
//! bundle's first certificate): tokens made before a rotation stop working; the secret stays
//! valid, so a token's text with the new digest works again (that is what
//! [`repin_bootstrap_tokens`] does for the bootstrap files).

use super::bootstrap::open_ca;
use crate::crypto::ClusterKey;
use crate::error::{Error, Result};
use crate::store::SharedState;
use crate::store::security::{
    CA_KEY_CONTEXT, CaRecord, ROTATION_MARGIN, SecurityCommand, SecurityState,
};
use berth_proto::model::Timestamp;
use berth_proto::v1;
use berth_security::{Identity, IssuedCert, JoinToken, NodeKey, TlsMaterial};
use std::path::Path;
use std::time::Duration;

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("TLS: {e}"))
}

fn secs(t: Timestamp) -> i64 {
    t.millis().div_euclid(1000)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// When a rotation at `now` retires the previous root: `now + cert_ttl + ROTATION_MARGIN`.
pub fn retire_at(now: Timestamp, cert_ttl: Duration) -> Timestamp {
    now.plus_millis(millis(cert_ttl)).plus_millis(millis(ROTATION_MARGIN))
}

/// The name a new root is made from: the active root's (`Berth CA <name>`), without an earlier
/// rotation's ` rotated <secs>` suffix; `cluster` if unreadable.
pub fn root_name(active: &CaRecord) -> String {
    let subject = berth_security::pem::certs_from_pem(&active.cert_pem)
        .ok()
        .and_then(|c| c.into_iter().next())
        .and_then(|d| berth_security::cert_subject(&d).ok())
        .unwrap_or_default();
    let cn =
        subject.split(", ").find_map(|part| part.strip_prefix("CN=Berth CA ")).unwrap_or("cluster");
    cn.split(" rotated ").next().unwrap_or(cn).to_string()
}

/// The `RotateCa` command for a rotation at `now` (`name`: the cluster scope, as at
/// bootstrap). Refused early (before any key is made) while a transition is under way; the
/// store checks again at apply time.
pub fn rotate_command(
    sec: &SecurityState,
    cluster_key: &ClusterKey,
    name: &str,
    now: Timestamp,
    cert_ttl: Duration,
) -> std::result::Result<SecurityCommand, tonic::Status> {
    let record = sec.ca.clone().ok_or_else(|| {
        tonic::Status::failed_precondition(
            "this cluster has no CA: the controllers run without --tls, so there is nothing to rotate",
        )
    })?;
    if let Some(r) = sec.transition(now) {
        return Err(tonic::Status::failed_precondition(format!(
            "a CA rotation is in its transition until {}: the previous root {} is still trusted; rotate again after it retires",
            berth_proto::model::event::iso8601_seconds(r.retire_at),
            r.previous.digest
        )));
    }
    let old = open_ca(&record, cluster_key).map_err(tonic::Status::from)?;
    let retire = retire_at(now, cert_ttl);
    let successor = old
        .successor(
            &format!("{name} rotated {}", secs(now)),
            secs(now),
            berth_security::DEFAULT_CA_TTL,
            secs(retire) + berth_security::ca::BACKDATE.as_secs() as i64,
        )
        .map_err(|e| tonic::Status::internal(format!("making the new root: {e}")))?;
    let sealed = cluster_key
        .seal(CA_KEY_CONTEXT, successor.ca.key_pem().as_bytes())
        .map_err(|e| tonic::Status::internal(format!("sealing the new CA key: {e}")))?;
    let new = CaRecord {
        cert_pem: successor.ca.cert_pem().to_string(),
        sealed_key_hex: hex::encode(sealed),
        digest: successor.ca.digest(),
        created_at: now,
    };
    Ok(SecurityCommand::RotateCa {
        new,
        cross_cert_pem: successor.cross_cert_pem,
        now,
        retire_at: retire,
    })
}

/// What a controller's material depends on: the trusted roots' digests (active first) and
/// whether it presents the cross certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustEpoch {
    pub roots: Vec<String>,
    pub cross: bool,
}

impl TrustEpoch {
    /// What the store says at `now`.
    pub fn of_store(sec: &SecurityState, now: Timestamp) -> TrustEpoch {
        TrustEpoch {
            roots: sec.trusted_roots(now).iter().map(|r| r.digest.to_string()).collect(),
            cross: sec.cross_cert_pem(now).is_some(),
        }
    }

    /// What `material` (built by [`own_material`]) was made for.
    pub fn of_material(material: &TlsMaterial) -> TrustEpoch {
        TrustEpoch {
            roots: material.roots.iter().map(|r| berth_security::ca_digest(r)).collect(),
            cross: material.chain.len() > 1,
        }
    }
}

/// A controller's own certificate as issued by [`own_material`].
pub struct OwnMaterial {
    pub material: TlsMaterial,
    pub issued: IssuedCert,
    /// PEM written to `ca.pem`, `cert.pem` (leaf, then the cross certificate if any), `key.pem`.
    pub bundle_pem: String,
    pub chain_pem: String,
    pub key_pem: String,
}

/// This controller's material from the store at `now` (see the module doc).
pub fn own_material(
    shared: &SharedState,
    cluster_key: &ClusterKey,
    identity: &Identity,
    cert_ttl: Duration,
    now: Timestamp,
) -> Result<OwnMaterial> {
    let (record, bundle_pem, cross) = {
        let st = shared.read();
        let sec = &st.security;
        let record =
            sec.ca.clone().ok_or_else(|| Error::Config("the store has no cluster CA".into()))?;
        let bundle = sec.ca_bundle_pem(now).unwrap_or_else(|| record.cert_pem.clone());
        (record, bundle, sec.cross_cert_pem(now).map(str::to_string))
    };
    let ca = open_ca(&record, cluster_key)?;
    let key = NodeKey::generate().map_err(tls_err)?;
    let csr = key.csr_pem().map_err(tls_err)?;
    let issued = ca
        .sign_csr(&csr, identity, secs(now), cert_ttl)
        .map_err(|e| Error::Config(format!("TLS: own certificate: {e}")))?;
    let mut chain_pem = issued.cert_pem.trim_end().to_string();
    chain_pem.push('\n');
    if let Some(cross) = cross {
        chain_pem.push_str(cross.trim_end());
        chain_pem.push('\n');
    }
    let key_pem = key.key_pem();
    let material =
        TlsMaterial::from_pem(&bundle_pem, Some((&chain_pem, &key_pem))).map_err(tls_err)?;
    Ok(OwnMaterial { material, issued, bundle_pem, chain_pem, key_pem })
}

impl OwnMaterial {
    /// Writes `{ca.pem,cert.pem,key.pem}` into `dir` (key 0600).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let write = |name: &str, text: &str, private: bool| {
            berth_security::pem::write_file(&dir.join(name), text, private).map_err(tls_err)
        };
        write(berth_security::tls::CA_FILE, &self.bundle_pem, false)?;
        write(berth_security::tls::CERT_FILE, &self.chain_pem, false)?;
        write(berth_security::tls::KEY_FILE, &self.key_pem, true)
    }
}

/// Rewrites `<data-dir>/bootstrap/{agent,controller}.join-token`, where present, to pin
/// `active_digest` (same secret, so the same stored token). Returns the files rewritten.
pub fn repin_bootstrap_tokens(data_dir: &Path, active_digest: &str) -> Vec<std::path::PathBuf> {
    let mut done = Vec::new();
    for role in [crate::store::deregister::AGENT_ROLE, crate::store::deregister::CONTROLLER_ROLE] {
        let path = super::bootstrap::join_token_path(data_dir, role);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(token) = JoinToken::parse(&text) else { continue };
        if token.ca_digest == active_digest {
            continue;
        }
        let repinned = JoinToken { ca_digest: active_digest.to_string(), ..token };
        match crate::auth::bootstrap::write_private(&path, &format!("{repinned}\n")) {
            Ok(_) => done.push(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "CA rotation: cannot rewrite a bootstrap join token")
            }
        }
    }
    done
}

/// The DescribeCa reply for the state at `now`.
pub fn describe(sec: &SecurityState, now: Timestamp) -> v1::DescribeCaReply {
    let roots = sec
        .trusted_roots(now)
        .into_iter()
        .map(|r| {
            let der = berth_security::pem::certs_from_pem(r.cert_pem)
                .ok()
                .and_then(|c| c.into_iter().next());
            let (not_before, not_after) = der
                .as_ref()
                .and_then(|d| berth_security::cert_validity(d).ok())
                .unwrap_or_default();
            let subject =
                der.as_ref().and_then(|d| berth_security::cert_subject(d).ok()).unwrap_or_default();
            v1::CaRoot {
                digest: r.digest.to_string(),
                subject,
                not_before,
                not_after,
                state: if r.retire_at.is_some() { "retiring" } else { "active" }.into(),
                retire_at: r.retire_at.map(|t| t.millis()).unwrap_or(0),
                cert_pem: r.cert_pem.to_string(),
            }
        })
        .collect();
    v1::DescribeCaReply {
        roots,
        rotated_at: sec.rotation.as_ref().map(|r| r.rotated_at.millis()).unwrap_or(0),
        retire_at: sec.transition(now).map(|r| r.retire_at.millis()).unwrap_or(0),
        ca_pem: sec.ca_bundle_pem(now).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use crate::store::apply::apply;
    use crate::store::state::State;

    #[test]
    fn a_rotation_command_cross_signs_and_retires_after_the_ttl() {
        let key = ClusterKey::generate().expect("key");
        let clock_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let now = Timestamp(clock_now);
        let clock = crate::clock::ManualClock::new(now);
        let record =
            crate::tls::bootstrap::new_ca_record("default", &key, clock.as_ref()).expect("ca");
        let mut st = State::default();
        apply(&mut st, Command::Security(SecurityCommand::InitCa { ca: record.clone() }))
            .expect("init");
        let ttl = Duration::from_secs(60);
        assert_eq!(root_name(&record), "default");
        let cmd = rotate_command(&st.security, &key, "default", now, ttl).expect("command");
        let SecurityCommand::RotateCa { ref new, retire_at: r, .. } = cmd else {
            panic!("not a RotateCa: {cmd:?}")
        };
        assert_eq!(r, now.plus_millis(60_000 + 300_000));
        assert_ne!(new.digest, record.digest);
        apply(&mut st, Command::Security(cmd.clone())).expect("rotate");
        let rotated = st.security.ca.clone().expect("active");
        assert_eq!(root_name(&rotated), "default", "the suffix is not repeated");
        let reply = describe(&st.security, now);
        let states: Vec<_> = reply.roots.iter().map(|r| r.state.as_str()).collect();
        assert_eq!(states, vec!["active", "retiring"]);
        assert_eq!(reply.retire_at, r.millis());
        // A second rotation during the transition is refused before any key is made.
        let err = rotate_command(&st.security, &key, "default", now, ttl).expect_err("again");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        // The controller's own material: both roots, leaf + cross certificate.
        let shared = SharedState::new(st.clone());
        let id = Identity::controller(1).expect("id");
        let own = own_material(&shared, &key, &id, ttl, now).expect("own");
        assert_eq!(own.material.roots.len(), 2);
        assert_eq!(own.material.chain.len(), 2);
        assert_eq!(TrustEpoch::of_material(&own.material), TrustEpoch::of_store(&st.security, now));
        let after = own_material(&shared, &key, &id, ttl, r).expect("after retire");
        assert_eq!((after.material.roots.len(), after.material.chain.len()), (1, 1));
        assert_ne!(TrustEpoch::of_material(&own.material), TrustEpoch::of_store(&st.security, r));
    }

    #[test]
    fn bootstrap_tokens_are_repinned_to_the_active_root() {
        let dir = tempfile::tempdir().expect("dir");
        let token = JoinToken::generate(b"old root").expect("token");
        let path = crate::tls::bootstrap::join_token_path(dir.path(), "agent");
        crate::auth::bootstrap::write_private(&path, &format!("{token}\n")).expect("write");
        let digest = "b".repeat(64);
        assert_eq!(repin_bootstrap_tokens(dir.path(), &digest), vec![path.clone()]);
        let back = JoinToken::parse(&std::fs::read_to_string(&path).expect("read")).expect("p");
        assert_eq!(
            (back.ca_digest.as_str(), back.secret.as_str()),
            (digest.as_str(), token.secret.as_str())
        );
        assert!(repin_bootstrap_tokens(dir.path(), &digest).is_empty(), "already pinned");
    }
}
