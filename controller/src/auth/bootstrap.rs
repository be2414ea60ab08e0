//! The first admin token. With ACL on, the leader checks (once per term it leads) whether the
//! store holds any token; if none, it makes an admin token, proposes only its hash (with
//! `only_if_empty`, so two racing leaders cannot both succeed) and, once committed, writes the
//! secret to `<data-dir>/bootstrap/admin.token` (mode 0600, directory 0700). Logs name the path,
//! never the secret. Only the controller that made the token has the file; the others never
//! see the secret.
//!
//! Crash safety: the secret goes to `admin.token.tmp` before the proposal and is renamed after
//! the commit; a leftover `.tmp` whose hash is in the store is renamed on the next check, one
//! whose hash is not is deleted.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::propose::Proposer;
use crate::store::acl::AclCommand;
use crate::store::{Command, RejectKind, SharedState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// `<data-dir>/bootstrap/admin.token`.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("bootstrap").join("admin.token")
}

fn tmp_path(path: &Path) -> PathBuf {
    path.with_extension("token.tmp")
}

/// Writes `text` to `path`, readable by the owner only (its directory too).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Runs until shutdown: on each leadership, makes the bootstrap token if the store has none.
pub async fn run(
    proposer: Proposer,
    shared: SharedState,
    clock: Arc<dyn Clock>,
    data_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let raft = proposer.raft().clone();
    let mut role = raft.role();
    let path = token_path(&data_dir);
    loop {
        let leading = role.borrow_and_update().is_leader();
        if leading {
            match once(&proposer, &shared, clock.as_ref(), &path).await {
                Ok(Outcome::Done) => return Ok(()),
                Ok(Outcome::Retry) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "ACL bootstrap failed; retrying on the next leadership")
                }
            }
        }
        tokio::select! {
            changed = role.changed() => if changed.is_err() { return Ok(()) },
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
    }
}

enum Outcome {
    /// Tokens exist (made here or elsewhere): nothing more to do, ever.
    Done,
    /// Not committed (leadership moved): try again when leading.
    Retry,
}

async fn once(
    proposer: &Proposer,
    shared: &SharedState,
    clock: &dyn Clock,
    path: &Path,
) -> Result<Outcome> {
    let tmp = tmp_path(path);
    if recover(shared, path, &tmp)? {
        return Ok(Outcome::Done);
    }
    let request = berth_proto::v1::CreateAclTokenRequest {
        role: "admin".into(),
        description: "bootstrap admin token".into(),
        ..Default::default()
    };
    let (token, secret) = super::service::new_token(&request, clock.now(), true)?;
    let accessor = token.accessor.clone();
    write_private(&tmp, &format!("{secret}\n"))?;
    let cmd = Command::Acl(AclCommand::CreateToken { token, only_if_empty: true });
    match proposer.propose(&cmd).await {
        Ok(_) => {
            std::fs::rename(&tmp, path)?;
            tracing::warn!(
                %accessor,
                path = %path.display(),
                "ACL bootstrap: made the first admin token; its secret is in this file (mode 0600)"
            );
            Ok(Outcome::Done)
        }
        Err(Error::Rejected(r)) if r.kind == RejectKind::FailedPrecondition => {
            let _ = std::fs::remove_file(&tmp);
            Ok(Outcome::Done)
        }
        Err(e) => {
            // The outcome may be unknown: keep the .tmp, `recover` settles it next time.
            tracing::warn!(error = %e, "ACL bootstrap proposal did not commit");
            Ok(Outcome::Retry)
        }
    }
}

/// True when the store already has tokens (after settling a leftover `.tmp`).
fn recover(shared: &SharedState, path: &Path, tmp: &Path) -> Result<bool> {
    let st = shared.read();
    if st.acl.tokens.is_empty() {
        return Ok(false);
    }
    if let Ok(text) = std::fs::read_to_string(tmp) {
        let hash = crate::crypto::sha256_hex(text.trim().as_bytes());
        if st.acl.by_secret_hash(&hash).is_some() {
            std::fs::rename(tmp, path)?;
            tracing::warn!(path = %path.display(), "ACL bootstrap: admin token file recovered");
        } else {
            std::fs::remove_file(tmp)?;
        }
    }
    Ok(true)
}

/// Waits (up to `timeout`) until the store holds a token, and answers the bootstrap file of
/// `data_dir` if this controller made it (`berth dev --acl` prints it).
pub async fn wait_bootstrapped(
    shared: &SharedState,
    data_dir: &Path,
    timeout: std::time::Duration,
) -> Option<PathBuf> {
    let deadline = tokio::time::Instant::now() + timeout;
    let path = token_path(data_dir);
    while tokio::time::Instant::now() < deadline {
        if !shared.read().acl.tokens.is_empty() && !tmp_path(&path).exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    path.exists().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_in_a_0700_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = token_path(dir.path());
        write_private(&path, "s3cret\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "s3cret\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().expect("dir")), 0o700);
        }
        assert_eq!(tmp_path(&path).file_name().and_then(|n| n.to_str()), Some("admin.token.tmp"));
    }
}
