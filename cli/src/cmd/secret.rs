//! `berth secret put NAME --from-file F | --value V [--description D]`, `berth secret list`,
//! `berth secret delete NAME` (`berth.v1.BerthSecrets`). Values go to the controller once and
//! are never printed back: `put` and `list` show name, ARN, version and dates only. JSON output
//! (`-o json`) uses the shape of [`SecretView`].

use crate::client::Api;
use crate::error::CliError;
use crate::output::{Fields, Format, Table};
use berth_proto::model::Timestamp;
use berth_proto::model::event::iso8601_seconds;
use berth_proto::secrets::{MAX_SECRET_VALUE_BYTES, check_secret_name, check_secret_value};
use berth_proto::v1;
use clap::Subcommand;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Create a secret or replace its value (the version goes up by one). Containers get it
    /// with `secrets: [{"name": "VAR", "valueFrom": "NAME"}]` (or its ARN).
    Put {
        /// 1-512 of letters, digits and / _ + = . @ -
        name: String,
        /// Read the value from this file, exactly (a trailing newline is kept); `-`: stdin.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "value",
            required_unless_present = "value"
        )]
        from_file: Option<PathBuf>,
        /// The value itself (visible in the shell history and process list; prefer --from-file).
        #[arg(long, value_name = "VALUE")]
        value: Option<String>,
        /// What the secret is for (an update without it keeps the current one).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every secret: name, ARN, version, dates (never values).
    List,
    /// Delete a secret. Running tasks keep their values; tasks started later stop with
    /// ResourceInitializationError.
    Delete { name: String },
}

/// A secret as printed (`-o json`): never its value.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    pub name: String,
    pub arn: String,
    pub version: u64,
    pub description: String,
    pub created_date: String,
    pub last_changed_date: String,
}

fn time(ms: i64) -> String {
    if ms == 0 { String::new() } else { iso8601_seconds(Timestamp(ms)) }
}

fn view(s: v1::SecretInfo) -> SecretView {
    SecretView {
        name: s.name,
        arn: s.arn,
        version: s.version,
        description: s.description,
        created_date: time(s.created_at),
        last_changed_date: time(s.updated_at),
    }
}

fn detail(s: &SecretView) -> String {
    let mut f = Fields::default();
    f.add("Name", s.name.clone())
        .add("ARN", s.arn.clone())
        .add("Version", s.version.to_string())
        .add("Description", s.description.clone())
        .add("Created", s.created_date.clone())
        .add("Changed", s.last_changed_date.clone());
    f.render()
}

fn table(secrets: &[SecretView]) -> String {
    let mut t = Table::new(&["NAME", "VERSION", "CHANGED", "DESCRIPTION", "ARN"]);
    for s in secrets {
        t.row(vec![
            s.name.clone(),
            s.version.to_string(),
            s.last_changed_date.clone(),
            s.description.clone(),
            s.arn.clone(),
        ]);
    }
    t.render()
}

fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// The value from `--value` or `--from-file` (`-`: stdin), checked before it is sent.
fn read_value(from_file: Option<PathBuf>, value: Option<String>) -> Result<String, CliError> {
    let value = match (from_file, value) {
        (Some(path), None) => {
            let bytes = if path.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .map_err(|e| CliError::Usage(format!("--from-file -: reading stdin: {e}")))?;
                buf
            } else {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if len > MAX_SECRET_VALUE_BYTES as u64 {
                    return Err(CliError::Usage(format!(
                        "--from-file {}: {len} bytes; a secret value is at most {MAX_SECRET_VALUE_BYTES} bytes (64 KiB)",
                        path.display()
                    )));
                }
                std::fs::read(&path)
                    .map_err(|e| CliError::Usage(format!("--from-file {}: {e}", path.display())))?
            };
            String::from_utf8(bytes).map_err(|_| {
                CliError::Usage("--from-file: the value must be UTF-8 text (it becomes an environment variable)".into())
            })?
        }
        (None, Some(v)) => v,
        _ => {
            return Err(CliError::Usage(
                "give exactly one of --from-file FILE or --value VALUE".into(),
            ));
        }
    };
    check_secret_value(&value).map_err(CliError::Usage)?;
    Ok(value)
}

pub async fn run(cmd: SecretCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let mut client = api.secrets();
    let text = match cmd {
        SecretCmd::Put { name, from_file, value, description } => {
            check_secret_name(&name).map_err(CliError::Usage)?;
            let value = read_value(from_file, value)?;
            let req = v1::PutSecretRequest { name, value, description };
            let reply = client.put_secret(req).await.map_err(CliError::from)?;
            let v = view(reply.into_inner());
            match out {
                Format::Json => json(&v)?,
                Format::Table => detail(&v),
            }
        }
        SecretCmd::List => {
            let reply =
                client.list_secrets(v1::ListSecretsRequest {}).await.map_err(CliError::from)?;
            let views: Vec<_> = reply.into_inner().secrets.into_iter().map(view).collect();
            match out {
                Format::Json => json(&views)?,
                Format::Table => table(&views),
            }
        }
        SecretCmd::Delete { name } => {
            let reply = client
                .delete_secret(v1::DeleteSecretRequest { name })
                .await
                .map_err(CliError::from)?;
            let v = view(reply.into_inner());
            match out {
                Format::Json => json(&v)?,
                Format::Table => format!("deleted {}\n", v.name),
            }
        }
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_comes_from_exactly_one_source_and_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("v");
        std::fs::write(&f, "line\n").expect("write");
        assert_eq!(read_value(Some(f.clone()), None).expect("file"), "line\n");
        assert_eq!(read_value(None, Some("v".into())).expect("value"), "v");
        assert!(read_value(None, None).is_err());
        std::fs::write(&f, vec![b'x'; MAX_SECRET_VALUE_BYTES + 1]).expect("write");
        let e = read_value(Some(f.clone()), None).expect_err("too big").to_string();
        assert!(e.contains("at most 65536 bytes"), "{e}");
        std::fs::write(&f, [0xff, 0xfe]).expect("write");
        let e = read_value(Some(f), None).expect_err("binary").to_string();
        assert!(e.contains("UTF-8"), "{e}");
        let e = read_value(None, Some("a\0b".into())).expect_err("nul").to_string();
        assert!(e.contains("NUL"), "{e}");
    }
}
