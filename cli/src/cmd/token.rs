//! `berth operator token create|list|revoke`: join tokens (`berth.v1.BerthSecurity`, admin).
//! A node presents a join token once to get its certificate. The token text is printed once,
//! by `create`; the controller keeps only the secret's hash. JSON output (`-o json`) uses the
//! shape of [`JoinTokenView`].

use crate::client::Api;
use crate::error::CliError;
use crate::output::{Fields, Format, Table};
use berth_proto::model::Timestamp;
use berth_proto::model::event::iso8601_seconds;
use berth_proto::v1;
use clap::{Subcommand, ValueEnum};
use serde::Serialize;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum JoinRole {
    Agent,
    Controller,
}

impl JoinRole {
    fn as_str(self) -> &'static str {
        match self {
            JoinRole::Agent => "agent",
            JoinRole::Controller => "controller",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a join token; prints it once (BERTH-1-<CA digest>-<secret>).
    Create {
        /// agent: `berth-agent --join-token`; controller: a controller joining the group.
        #[arg(long, value_enum)]
        role: JoinRole,
        /// Lifetime (`90s`, `30m`, `24h`, `7d`; at most 365d).
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: u64,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every join token: id, role, times, uses (never the secret).
    List,
    /// Revoke a join token by id; nodes that joined with it keep their certificates.
    Revoke {
        /// The token's id (from `token list`).
        id: String,
    },
}

/// `90`, `90s`, `15m`, `12h`, `30d` → seconds (positive).
fn parse_ttl(s: &str) -> Result<u64, String> {
    let d = berth_controller::tls::parse_duration(s)?;
    Some(d.as_secs()).filter(|v| *v > 0).ok_or_else(|| format!("'{s}' must be positive"))
}

/// A join token as printed (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub role: String,
    pub description: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub uses: u64,
}

fn time(ms: i64) -> Option<String> {
    (ms != 0).then(|| iso8601_seconds(Timestamp(ms)))
}

fn view(t: v1::JoinTokenInfo, token: Option<String>) -> JoinTokenView {
    JoinTokenView {
        id: t.id,
        token,
        role: t.role,
        description: t.description,
        created_at: time(t.created_at).unwrap_or_default(),
        expires_at: time(t.expires_at),
        uses: t.uses,
    }
}

fn detail(t: &JoinTokenView) -> String {
    let mut f = Fields::default();
    f.add("Id", t.id.clone());
    if let Some(s) = &t.token {
        f.add("Token", s.clone());
    }
    f.add("Role", t.role.clone())
        .add("Description", t.description.clone())
        .add("Created", t.created_at.clone())
        .add("Expires", t.expires_at.clone().unwrap_or_else(|| "never".into()))
        .add("Uses", t.uses.to_string());
    f.render()
}

fn table(tokens: &[JoinTokenView]) -> String {
    let mut t = Table::new(&["ID", "ROLE", "DESCRIPTION", "CREATED", "EXPIRES", "USES"]);
    for v in tokens {
        t.row(vec![
            v.id.clone(),
            v.role.clone(),
            v.description.clone(),
            v.created_at.clone(),
            v.expires_at.clone().unwrap_or_else(|| "never".into()),
            v.uses.to_string(),
        ]);
    }
    t.render()
}

fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

pub async fn run(cmd: TokenCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let mut security = api.security();
    let text = match cmd {
        TokenCmd::Create { role, ttl, description } => {
            let req = v1::CreateJoinTokenRequest {
                role: role.as_str().into(),
                ttl_seconds: ttl,
                description,
            };
            let reply = security.create_join_token(req).await.map_err(CliError::from)?;
            let reply = reply.into_inner();
            let v = view(reply.token.unwrap_or_default(), Some(reply.join_token));
            match out {
                Format::Json => json(&v)?,
                Format::Table => format!(
                    "{}(the token is shown only now; the controller keeps its hash)\n",
                    detail(&v)
                ),
            }
        }
        TokenCmd::List => {
            let reply = security
                .list_join_tokens(v1::ListJoinTokensRequest {})
                .await
                .map_err(CliError::from)?;
            let views: Vec<_> =
                reply.into_inner().tokens.into_iter().map(|t| view(t, None)).collect();
            match out {
                Format::Json => json(&views)?,
                Format::Table => table(&views),
            }
        }
        TokenCmd::Revoke { id } => {
            let reply = security
                .revoke_join_token(v1::RevokeJoinTokenRequest { id })
                .await
                .map_err(CliError::from)?;
            let v = view(reply.into_inner(), None);
            match out {
                Format::Json => json(&v)?,
                Format::Table => format!("{}(revoked)\n", detail(&v)),
            }
        }
    };
    print!("{text}");
    Ok(())
}
