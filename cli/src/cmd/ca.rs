//! `berth operator ca rotate|describe`: the cluster root CA (`berth.v1.BerthSecurity`).
//!
//! * `rotate` (admin) — `RotateCa`: a new root signs every certificate from now on; the previous
//!   one stays trusted (and controllers present a cross certificate signed by it) until the
//!   retire time, so agents, controllers and CLIs holding the old `ca.pem` keep working
//!   meanwhile. Prints the new digest, the retire time and what to do next.
//! * `describe` (read-only) — `DescribeCa`: the trusted roots, active first.
//!
//! JSON output (`-o json`) uses the shapes of [`RotationView`] and [`CaView`].

use crate::client::Api;
use crate::error::CliError;
use crate::output::{Fields, Format, Table};
use berth_proto::model::Timestamp;
use berth_proto::model::event::iso8601_seconds;
use berth_proto::v1;
use clap::Subcommand;
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum CaCmd {
    /// Replace the cluster root CA without downtime (cross-signed transition). Join tokens made
    /// before pin the old root: make new ones afterwards (`berth operator token create`).
    Rotate,
    /// The trusted root CAs: digest, subject, validity, active or retiring.
    Describe,
}

/// `ca rotate` as printed (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationView {
    pub digest: String,
    pub previous_digest: String,
    pub rotated_at: String,
    pub retire_at: String,
    /// The trust bundle (PEM), for `--ca-cert`.
    pub ca_pem: String,
}

/// One trusted root as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootView {
    pub digest: String,
    pub subject: String,
    pub state: String,
    pub not_before: String,
    pub not_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<String>,
    /// PEM.
    pub cert_pem: String,
}

/// `ca describe` as printed (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaView {
    pub roots: Vec<RootView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<String>,
    pub ca_pem: String,
}

fn ms(t: i64) -> Option<String> {
    (t != 0).then(|| iso8601_seconds(Timestamp(t)))
}

fn secs(t: i64) -> String {
    iso8601_seconds(Timestamp(t.saturating_mul(1000)))
}

fn describe_view(r: v1::DescribeCaReply) -> CaView {
    CaView {
        roots: r
            .roots
            .into_iter()
            .map(|c| RootView {
                digest: c.digest,
                subject: c.subject,
                state: c.state,
                not_before: secs(c.not_before),
                not_after: secs(c.not_after),
                retire_at: ms(c.retire_at),
                cert_pem: c.cert_pem,
            })
            .collect(),
        rotated_at: ms(r.rotated_at),
        retire_at: ms(r.retire_at),
        ca_pem: r.ca_pem,
    }
}

fn roots_table(v: &CaView) -> String {
    let mut t = Table::new(&["DIGEST", "STATE", "SUBJECT", "NOT AFTER", "RETIRES"]);
    for r in &v.roots {
        t.row(vec![
            r.digest.clone(),
            r.state.clone(),
            r.subject.clone(),
            r.not_after.clone(),
            r.retire_at.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

fn rotation_detail(v: &RotationView) -> String {
    let mut f = Fields::default();
    f.add("Active root", v.digest.clone())
        .add("Previous root", v.previous_digest.clone())
        .add("Rotated", v.rotated_at.clone())
        .add("Previous retires", v.retire_at.clone());
    format!(
        "{}\nUntil then both roots are trusted and controllers present a cross certificate, so\n\
         agents, controllers and CLIs with the old ca.pem keep working; agents and controllers\n\
         move to the new root as they renew. Afterwards:\n\
         * fetch the new bundle for --ca-cert: `berth operator ca describe -o json` (caPem);\n\
         * join tokens made before now pin the old root: make new ones\n\
         \x20 (`berth operator token create`), or replace the digest in a token's text with\n\
         \x20 {} (its secret stays valid).\n",
        f.render(),
        v.digest
    )
}

fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

pub async fn run(cmd: CaCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let mut security = api.security();
    let text = match cmd {
        CaCmd::Rotate => {
            let r = security
                .rotate_ca(v1::RotateCaRequest {})
                .await
                .map_err(CliError::from)?
                .into_inner();
            let v = RotationView {
                digest: r.digest,
                previous_digest: r.previous_digest,
                rotated_at: ms(r.rotated_at).unwrap_or_default(),
                retire_at: ms(r.retire_at).unwrap_or_default(),
                ca_pem: r.ca_pem,
            };
            match out {
                Format::Json => json(&v)?,
                Format::Table => rotation_detail(&v),
            }
        }
        CaCmd::Describe => {
            let r = security
                .describe_ca(v1::DescribeCaRequest {})
                .await
                .map_err(CliError::from)?
                .into_inner();
            let v = describe_view(r);
            match out {
                Format::Json => json(&v)?,
                Format::Table => roots_table(&v),
            }
        }
    };
    print!("{text}");
    Ok(())
}
