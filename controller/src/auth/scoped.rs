//! [`ScopedBerth`]: the `berth.v1.Berth` service with the cluster-scope checks that need the
//! decoded request. The tower layer (`auth/layer.rs`) has already authenticated the caller and
//! checked its role; here a token made with `--cluster NAME` is held to that cluster:
//!
//! * methods whose request names a cluster (`Scope::Cluster` in the table) are refused with
//!   `PermissionDenied` when it names another one (empty means `default`, as in the API);
//! * `ListClusters` answers only the token's cluster; `SubscribeEvents` streams only events
//!   whose `detail.clusterArn` (or first resource ARN) is in the token's cluster;
//! * everything else passes (task definitions are account-wide; the `Unscoped` methods were
//!   already refused to scoped tokens by the layer).
//!
//! With ACL on, a request without a [`Principal`] never gets here (the layer refuses it); the
//! check is repeated as a second line of defence. With ACL off everything passes.

use super::permissions::{Principal, check_cluster};
use crate::api::Api;
use berth_proto::v1::{self, berth_server::Berth};
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

type R<T> = std::result::Result<Response<T>, Status>;

/// The event stream type (the same as `Api`'s).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::EventMessage, Status>> + Send>>;

#[derive(Clone)]
pub struct ScopedBerth {
    inner: Api,
    enforce: bool,
}

impl ScopedBerth {
    /// Wraps `inner`; `enforce` is `ControllerConfig.acl`.
    pub fn new(inner: Api, enforce: bool) -> ScopedBerth {
        ScopedBerth { inner, enforce }
    }

    fn principal<'a, T>(&self, r: &'a Request<T>) -> Result<Option<&'a Principal>, Status> {
        match r.extensions().get::<Principal>() {
            Some(p) => Ok(Some(p)),
            None if self.enforce => {
                Err(Status::unauthenticated("UnrecognizedClientException: no API token"))
            }
            None => Ok(None),
        }
    }

    fn check_cluster<T>(&self, r: &Request<T>, method: &str, given: &str) -> Result<(), Status> {
        match self.principal(r)? {
            Some(p) => check_cluster(p, method, given).map_err(Status::from),
            None => Ok(()),
        }
    }
}

/// The cluster name of a `ListClusters` item (an ECS Cluster object).
fn item_cluster(item: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(item).ok()?;
    v.get("clusterName").and_then(|n| n.as_str()).map(str::to_string)
}

/// The cluster an event is about: `detail.clusterArn`, else the cluster segment of its first
/// resource ARN (`…:service/CLUSTER/NAME`, `…:task/CLUSTER/ID`).
pub fn event_cluster(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    if let Some(arn) = v.pointer("/detail/clusterArn").and_then(|a| a.as_str()) {
        return Some(berth_proto::model::arn_tail(arn).to_string());
    }
    let resource = v.pointer("/resources/0").and_then(|r| r.as_str())?;
    let path = resource.rsplit(':').next()?;
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(cluster), Some(_)) => Some(cluster.to_string()),
        _ => None,
    }
}

#[tonic::async_trait]
impl Berth for ScopedBerth {
    type SubscribeEventsStream = EventStream;

    async fn subscribe_events(
        &self,
        r: Request<v1::SubscribeEventsRequest>,
    ) -> R<Self::SubscribeEventsStream> {
        let scope = self.principal(&r)?.and_then(|p| p.cluster.clone());
        let reply = Berth::subscribe_events(&self.inner, r).await?;
        let Some(own) = scope else { return Ok(reply) };
        let stream = reply.into_inner().filter(move |item| match item {
            Ok(e) => event_cluster(&e.json).as_deref() == Some(own.as_str()),
            Err(_) => true,
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn create_cluster(&self, r: Request<v1::ClusterRef>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/CreateCluster", &r.get_ref().cluster)?;
        Berth::create_cluster(&self.inner, r).await
    }

    async fn describe_cluster(&self, r: Request<v1::ClusterRef>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DescribeCluster", &r.get_ref().cluster)?;
        Berth::describe_cluster(&self.inner, r).await
    }

    async fn delete_cluster(&self, r: Request<v1::ClusterRef>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DeleteCluster", &r.get_ref().cluster)?;
        Berth::delete_cluster(&self.inner, r).await
    }

    async fn list_clusters(&self, r: Request<v1::ListClustersRequest>) -> R<v1::ListReply> {
        let scope = self.principal(&r)?.and_then(|p| p.cluster.clone());
        let mut reply = Berth::list_clusters(&self.inner, r).await?;
        if let Some(own) = scope {
            reply
                .get_mut()
                .items
                .retain(|item| item_cluster(item).as_deref() == Some(own.as_str()));
        }
        Ok(reply)
    }

    async fn register_task_definition(
        &self,
        r: Request<v1::RegisterTaskDefinitionRequest>,
    ) -> R<v1::ObjectReply> {
        self.principal(&r)?;
        Berth::register_task_definition(&self.inner, r).await
    }

    async fn describe_task_definition(
        &self,
        r: Request<v1::TaskDefinitionRef>,
    ) -> R<v1::ObjectReply> {
        self.principal(&r)?;
        Berth::describe_task_definition(&self.inner, r).await
    }

    async fn list_task_definitions(
        &self,
        r: Request<v1::ListTaskDefinitionsRequest>,
    ) -> R<v1::ListReply> {
        self.principal(&r)?;
        Berth::list_task_definitions(&self.inner, r).await
    }

    async fn deregister_task_definition(
        &self,
        r: Request<v1::TaskDefinitionRef>,
    ) -> R<v1::ObjectReply> {
        self.principal(&r)?;
        Berth::deregister_task_definition(&self.inner, r).await
    }

    async fn create_service(&self, r: Request<v1::CreateServiceRequest>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/CreateService", &r.get_ref().cluster)?;
        Berth::create_service(&self.inner, r).await
    }

    async fn update_service(&self, r: Request<v1::UpdateServiceRequest>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/UpdateService", &r.get_ref().cluster)?;
        Berth::update_service(&self.inner, r).await
    }

    async fn describe_service(&self, r: Request<v1::ServiceRef>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DescribeService", &r.get_ref().cluster)?;
        Berth::describe_service(&self.inner, r).await
    }

    async fn list_services(&self, r: Request<v1::ListServicesRequest>) -> R<v1::ListReply> {
        self.check_cluster(&r, "berth.v1.Berth/ListServices", &r.get_ref().cluster)?;
        Berth::list_services(&self.inner, r).await
    }

    async fn delete_service(&self, r: Request<v1::DeleteServiceRequest>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DeleteService", &r.get_ref().cluster)?;
        Berth::delete_service(&self.inner, r).await
    }

    async fn run_task(&self, r: Request<v1::RunTaskRequest>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/RunTask", &r.get_ref().cluster)?;
        Berth::run_task(&self.inner, r).await
    }

    async fn stop_task(&self, r: Request<v1::StopTaskRequest>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/StopTask", &r.get_ref().cluster)?;
        Berth::stop_task(&self.inner, r).await
    }

    async fn describe_task(&self, r: Request<v1::TaskRef>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DescribeTask", &r.get_ref().cluster)?;
        Berth::describe_task(&self.inner, r).await
    }

    async fn list_tasks(&self, r: Request<v1::ListTasksRequest>) -> R<v1::ListReply> {
        self.check_cluster(&r, "berth.v1.Berth/ListTasks", &r.get_ref().cluster)?;
        Berth::list_tasks(&self.inner, r).await
    }

    async fn describe_container_instance(&self, r: Request<v1::InstanceRef>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DescribeContainerInstance", &r.get_ref().cluster)?;
        Berth::describe_container_instance(&self.inner, r).await
    }

    async fn list_container_instances(
        &self,
        r: Request<v1::ListInstancesRequest>,
    ) -> R<v1::ListReply> {
        self.check_cluster(&r, "berth.v1.Berth/ListContainerInstances", &r.get_ref().cluster)?;
        Berth::list_container_instances(&self.inner, r).await
    }

    async fn list_members(&self, r: Request<v1::ListMembersRequest>) -> R<v1::ListReply> {
        self.principal(&r)?;
        Berth::list_members(&self.inner, r).await
    }

    async fn add_member(&self, r: Request<v1::AddMemberRequest>) -> R<v1::ObjectReply> {
        self.principal(&r)?;
        Berth::add_member(&self.inner, r).await
    }

    async fn remove_member(&self, r: Request<v1::RemoveMemberRequest>) -> R<v1::ObjectReply> {
        self.principal(&r)?;
        Berth::remove_member(&self.inner, r).await
    }

    async fn get_status(&self, r: Request<v1::StatusRequest>) -> R<v1::ObjectReply> {
        self.principal(&r)?;
        Berth::get_status(&self.inner, r).await
    }

    async fn deregister_container_instance(
        &self,
        r: Request<v1::DeregisterInstanceRequest>,
    ) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DeregisterContainerInstance", &r.get_ref().cluster)?;
        Berth::deregister_container_instance(&self.inner, r).await
    }

    async fn put_attributes(&self, r: Request<v1::AttributesRequest>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/PutAttributes", &r.get_ref().cluster)?;
        Berth::put_attributes(&self.inner, r).await
    }

    async fn delete_attributes(&self, r: Request<v1::AttributesRequest>) -> R<v1::ObjectReply> {
        self.check_cluster(&r, "berth.v1.Berth/DeleteAttributes", &r.get_ref().cluster)?;
        Berth::delete_attributes(&self.inner, r).await
    }

    async fn update_container_instance_state(
        &self,
        r: Request<v1::InstanceStateRequest>,
    ) -> R<v1::ObjectReply> {
        self.check_cluster(
            &r,
            "berth.v1.Berth/UpdateContainerInstanceState",
            &r.get_ref().cluster,
        )?;
        Berth::update_container_instance_state(&self.inner, r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_clusters_are_attributed_to_their_cluster() {
        let task = r#"{"resources":["arn:aws:ecs:r:1:task/prod/abc"],"detail":{"clusterArn":"arn:aws:ecs:r:1:cluster/prod"}}"#;
        assert_eq!(event_cluster(task).as_deref(), Some("prod"));
        let deployment = r#"{"resources":["arn:aws:ecs:r:1:service/staging/web"],"detail":{}}"#;
        assert_eq!(event_cluster(deployment).as_deref(), Some("staging"));
        assert_eq!(event_cluster(r#"{"resources":[]}"#), None);
        assert_eq!(event_cluster("not json"), None);
        assert_eq!(
            item_cluster(r#"{"clusterName":"prod","status":"ACTIVE"}"#).as_deref(),
            Some("prod")
        );
    }
}
