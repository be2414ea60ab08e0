//! RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions, DeregisterTaskDefinition.

use super::{Api, object};
use crate::error::{Error, Result};
use crate::store::{Command, Rejection};
use berth_proto::v1;
use tonic::Response;

pub async fn register(
    api: &Api,
    r: v1::RegisterTaskDefinitionRequest,
) -> Result<Response<v1::ObjectReply>> {
    let family = (!r.family.is_empty()).then_some(r.family.as_str());
    let reg = berth_proto::taskdef::parse_registration(&r.document, family)?;
    super::placement::check_taskdef(&reg.definition)?;
    let applied = api
        .proposer
        .propose(&Command::RegisterTaskDefinition {
            definition: reg.definition,
            now: api.clock.now(),
        })
        .await?;
    let id = applied
        .ids
        .first()
        .cloned()
        .ok_or_else(|| Error::Storage("register returned no revision".into()))?;
    let st = api.shared.read();
    let def = st.resolve_taskdef(&id)?;
    object(def, reg.warnings)
}

pub fn describe(api: &Api, r: v1::TaskDefinitionRef) -> Result<Response<v1::ObjectReply>> {
    let st = api.shared.read();
    let def = st.resolve_taskdef(&r.task_definition)?;
    object(def, vec![])
}

pub fn list(api: &Api, r: v1::ListTaskDefinitionsRequest) -> Result<Response<v1::ListReply>> {
    let status = if r.status.is_empty() { "ACTIVE".to_string() } else { r.status.to_uppercase() };
    if !["ACTIVE", "INACTIVE", "ALL"].contains(&status.as_str()) {
        return Err(Error::invalid(format!(
            "status '{}' is invalid: expected ACTIVE, INACTIVE or ALL.",
            r.status
        )));
    }
    use super::page::{DEFAULT_RESULTS, ListKind, Page};
    let page = Page::from_request(
        ListKind::TaskDefinitions,
        r.max_results,
        &r.next_token,
        DEFAULT_RESULTS,
    )?;
    let st = api.shared.read();
    // Family names sort below any NUL-suffixed longer name, so (family, revision) order holds.
    let defs: Vec<_> = st
        .families
        .iter()
        .filter(|(name, _)| r.family.is_empty() || **name == r.family)
        .flat_map(|(_, f)| f.revisions.values().map(|d| &**d))
        .filter(|d| status == "ALL" || d.status.as_deref() == Some(status.as_str()))
        .map(|d| (format!("{}\u{0}{:010}", d.family, d.revision.unwrap_or(0)), d))
        .collect();
    super::page_reply(defs, &page)
}

pub async fn deregister(api: &Api, r: v1::TaskDefinitionRef) -> Result<Response<v1::ObjectReply>> {
    let tail = berth_proto::model::arn_tail(&r.task_definition);
    let Some((family, rev)) = tail.rsplit_once(':') else {
        return Err(Rejection::client(format!(
            "Invalid task definition '{}': deregistering needs a revision (FAMILY:REVISION or an ARN).", r.task_definition
        ))
        .into());
    };
    let revision: u32 = rev.parse().map_err(|_| {
        Rejection::client(format!(
            "Invalid revision '{rev}' in '{}': expected a positive integer.",
            r.task_definition
        ))
    })?;
    api.proposer
        .propose(&Command::DeregisterTaskDefinition {
            family: family.to_string(),
            revision,
            now: api.clock.now(),
        })
        .await?;
    describe(api, v1::TaskDefinitionRef { task_definition: format!("{family}:{revision}") })
}
