//! DescribeContainerInstances, ListContainerInstances.

use super::{Api, cluster_name, list_reply, object};
use crate::error::{Error, Result};
use crate::store::{RejectKind, Rejection};
use berth_proto::model::arn_tail;
use berth_proto::v1;
use tonic::Response;

pub fn describe(api: &Api, r: v1::InstanceRef) -> Result<Response<v1::ObjectReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let id = arn_tail(&r.container_instance);
    let st = api.shared.read();
    let view = st
        .instances
        .get(id)
        .filter(|rec| rec.cluster == cluster)
        .and_then(|_| st.instance_view(id))
        .ok_or_else(|| {
            Rejection::new(
                RejectKind::NotFound,
                "InvalidParameterException",
                format!("The referenced container instance was not found: {id}."),
            )
        })?;
    object(&view, vec![])
}

pub fn list(api: &Api, r: v1::ListInstancesRequest) -> Result<Response<v1::ListReply>> {
    let cluster = cluster_name(api, &r.cluster)?;
    let status = r.status.to_uppercase();
    if ![
        "",
        "ACTIVE",
        "DRAINING",
        "INACTIVE",
        "REGISTERING",
        "DEREGISTERING",
        "REGISTRATION_FAILED",
    ]
    .contains(&status.as_str())
    {
        return Err(Error::invalid(format!(
            "status '{}' is invalid: expected ACTIVE, DRAINING, INACTIVE, REGISTERING, DEREGISTERING or REGISTRATION_FAILED.",
            r.status
        )));
    }
    let st = api.shared.read();
    let views: Vec<_> = st
        .instances_in(&cluster)
        .filter(|ci| if status.is_empty() { ci.status != "INACTIVE" } else { ci.status == status })
        .filter_map(|ci| st.instance_view(ci.id()))
        .collect();
    list_reply(views)
}
