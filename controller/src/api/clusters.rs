//! CreateCluster, DescribeClusters, DeleteCluster, ListClusters.

use super::{Api, object};
use crate::error::{Error, Result};
use crate::store::{Command, Rejection};
use berth_proto::model::{arn_tail, is_valid_name};
use berth_proto::v1;
use tonic::Response;

fn name_of(r: &v1::ClusterRef) -> Result<String> {
    let name = arn_tail(&r.cluster);
    if !is_valid_name(name) {
        return Err(Error::invalid(format!(
            "clusterName '{name}' is invalid: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )));
    }
    Ok(name.to_string())
}

pub async fn create(api: &Api, r: v1::ClusterRef) -> Result<Response<v1::ObjectReply>> {
    let name = name_of(&r)?;
    api.proposer
        .propose(&Command::CreateCluster { name: name.clone(), now: api.clock.now() })
        .await?;
    describe(api, v1::ClusterRef { cluster: name })
}

pub fn describe(api: &Api, r: v1::ClusterRef) -> Result<Response<v1::ObjectReply>> {
    let name = name_of(&r)?;
    let view =
        api.shared.read().cluster_view(&name).ok_or_else(|| Rejection::cluster_not_found(&name))?;
    object(&view, vec![])
}

pub async fn delete(api: &Api, r: v1::ClusterRef) -> Result<Response<v1::ObjectReply>> {
    let name = name_of(&r)?;
    api.proposer.propose(&Command::DeleteCluster { name: name.clone() }).await?;
    describe(api, v1::ClusterRef { cluster: name })
}

pub fn list(api: &Api, r: v1::ListClustersRequest) -> Result<Response<v1::ListReply>> {
    use super::page::{DEFAULT_RESULTS, ListKind, Page};
    let page =
        Page::from_request(ListKind::Clusters, r.max_results, &r.next_token, DEFAULT_RESULTS)?;
    let st = api.shared.read();
    let keyed: Vec<_> = st
        .clusters
        .values()
        .filter(|c| c.status == "ACTIVE")
        .map(|c| (c.name.clone(), c.name.as_str()))
        .collect();
    let (names, next_token) = super::page::paginate(keyed, &page);
    let mut reply = super::list_reply(names.into_iter().filter_map(|n| st.cluster_view(n)))?;
    reply.get_mut().next_token = next_token;
    Ok(reply)
}
