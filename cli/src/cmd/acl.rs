//! `berth operator acl token create|list|revoke` and `berth operator acl whoami`: API tokens
//! with roles (`berth.v1.BerthAcl`). A token's secret is printed once, by `create`; the
//! controller keeps only its hash. JSON output (`-o json`) uses the shapes of [`TokenView`].

use crate::client::Api;
use crate::output::{Fields, Format, Table};
use berth_proto::model::Timestamp;
use berth_proto::model::event::iso8601_seconds;
use berth_proto::v1::{self, CreateAclTokenRequest, RevokeAclTokenRequest};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum AclCmd {
    /// Create, list and revoke API tokens (admin).
    #[command(subcommand)]
    Token(TokenCmd),
    /// The token this CLI sends: accessor, role, cluster scope.
    Whoami,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Operator,
    #[value(name = "read-only")]
    ReadOnly,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::Admin => "admin",
            RoleArg::Operator => "operator",
            RoleArg::ReadOnly => "read-only",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a token; prints its secret once (the controller stores only a hash). With
    /// `--cluster NAME` on the command line the token acts on that cluster only.
    Create {
        /// read-only: list/describe/subscribe; operator: also create/update/scale/stop;
        /// admin: also tokens, members and the CA.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime (`90s`, `12h`, `30d`); default: no expiry.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
    },
    /// Every token: accessor, role, scope, times (never secrets).
    List,
    /// Revoke a token by accessor; its next call is refused.
    Revoke {
        /// The token's accessor (from `token list`).
        accessor: String,
    },
}

/// `90`, `90s`, `15m`, `12h`, `30d` → seconds.
fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is not a duration like 12h"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': the unit must be s, m, h or d")),
    };
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(|| format!("'{s}' must be positive"))
}

/// A token as printed (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub accessor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub description: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    pub bootstrap: bool,
}

fn time(ms: i64) -> Option<String> {
    (ms != 0).then(|| iso8601_seconds(Timestamp(ms)))
}

fn view(t: v1::AclTokenInfo, secret: Option<String>) -> TokenView {
    TokenView {
        accessor: t.accessor,
        secret,
        role: t.role,
        cluster: Some(t.cluster).filter(|c| !c.is_empty()),
        description: t.description,
        created_at: time(t.created_at).unwrap_or_default(),
        expires_at: time(t.expires_at),
        revoked_at: time(t.revoked_at),
        bootstrap: t.bootstrap,
    }
}

fn detail(t: &TokenView) -> String {
    let mut f = Fields::default();
    f.add("Accessor", t.accessor.clone());
    if let Some(s) = &t.secret {
        f.add("Secret", s.clone());
    }
    f.add("Role", t.role.clone())
        .add("Cluster", t.cluster.clone().unwrap_or_else(|| "(all)".into()))
        .add("Description", t.description.clone())
        .add("Created", t.created_at.clone())
        .add("Expires", t.expires_at.clone().unwrap_or_else(|| "never".into()));
    if let Some(r) = &t.revoked_at {
        f.add("Revoked", r.clone());
    }
    f.render()
}

fn table(tokens: &[TokenView]) -> String {
    let mut t = Table::new(&["ACCESSOR", "ROLE", "CLUSTER", "DESCRIPTION", "EXPIRES", "REVOKED"]);
    for v in tokens {
        t.row(vec![
            v.accessor.clone(),
            v.role.clone(),
            v.cluster.clone().unwrap_or_default(),
            v.description.clone(),
            v.expires_at.clone().unwrap_or_default(),
            v.revoked_at.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// `scope`: the cluster given with `--cluster` on the command line (`token create` scopes the
/// token to it; the default cluster and `BERTH_CLUSTER` do not scope).
pub async fn run(
    cmd: AclCmd,
    api: &mut Api,
    out: Format,
    scope: Option<String>,
) -> anyhow::Result<()> {
    let mut acl = api.acl();
    let text = match cmd {
        AclCmd::Token(TokenCmd::Create { role, description, ttl }) => {
            let req = CreateAclTokenRequest {
                role: role.as_str().into(),
                cluster: scope.unwrap_or_default(),
                description,
                ttl_seconds: ttl.unwrap_or(0),
            };
            let reply = acl.create_acl_token(req).await.map_err(crate::error::CliError::from)?;
            let reply = reply.into_inner();
            let token = reply.token.unwrap_or_default();
            let v = view(token, Some(reply.secret));
            match out {
                Format::Json => json(&v)?,
                Format::Table => {
                    format!(
                        "{}(the secret is shown only now; the controller keeps its hash)\n",
                        detail(&v)
                    )
                }
            }
        }
        AclCmd::Token(TokenCmd::List) => {
            let reply = acl
                .list_acl_tokens(v1::ListAclTokensRequest {})
                .await
                .map_err(crate::error::CliError::from)?;
            let views: Vec<_> =
                reply.into_inner().tokens.into_iter().map(|t| view(t, None)).collect();
            match out {
                Format::Json => json(&views)?,
                Format::Table => table(&views),
            }
        }
        AclCmd::Token(TokenCmd::Revoke { accessor }) => {
            let reply = acl
                .revoke_acl_token(RevokeAclTokenRequest { accessor })
                .await
                .map_err(crate::error::CliError::from)?;
            let v = view(reply.into_inner(), None);
            match out {
                Format::Json => json(&v)?,
                Format::Table => detail(&v),
            }
        }
        AclCmd::Whoami => {
            let me =
                acl.who_am_i(v1::WhoAmIRequest {}).await.map_err(crate::error::CliError::from)?;
            let me = me.into_inner();
            match out {
                Format::Json => json(&serde_json::json!({
                    "aclEnabled": me.acl_enabled,
                    "accessor": me.accessor,
                    "role": me.role,
                    "cluster": Some(&me.cluster).filter(|c| !c.is_empty()),
                }))?,
                Format::Table if !me.acl_enabled => {
                    "ACL is off on this controller: every call is allowed.\n".to_string()
                }
                Format::Table => {
                    let mut f = Fields::default();
                    f.add("Accessor", me.accessor).add("Role", me.role).add(
                        "Cluster",
                        if me.cluster.is_empty() { "(all)".into() } else { me.cluster },
                    );
                    f.render()
                }
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
    fn ttl_parses_with_units_and_rejects_junk() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("12h"), Ok(43_200));
        assert_eq!(parse_ttl("30d"), Ok(2_592_000));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("5w").unwrap_err().contains("unit"));
        assert!(parse_ttl("abc").is_err());
    }
}
