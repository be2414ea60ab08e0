//! Following ECS `nextToken` pagination on the client side (the CLI, tests, benches):
//! [`list_all`] collects every item of a List call whose server bounds each page (100 items
//! unless `max_results` says less; ListServices: 10).

use crate::v1::{self, ListReply};

/// A List request that takes a page token (ECS `nextToken`).
pub trait Paged: Clone {
    fn set_next_token(&mut self, token: String);
}

macro_rules! paged {
    ($($t:ty),*) => {$(
        impl Paged for $t {
            fn set_next_token(&mut self, token: String) {
                self.next_token = token;
            }
        }
    )*};
}
paged!(
    v1::ListClustersRequest,
    v1::ListTaskDefinitionsRequest,
    v1::ListServicesRequest,
    v1::ListTasksRequest,
    v1::ListInstancesRequest
);

/// Every item: calls `call` with `req`, then with each reply's `next_token` until none is left.
pub async fn list_all<Req, F, Fut>(mut req: Req, mut call: F) -> Result<Vec<String>, tonic::Status>
where
    Req: Paged,
    F: FnMut(Req) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<ListReply>, tonic::Status>>,
{
    let mut items = Vec::new();
    loop {
        let page = call(req.clone()).await?.into_inner();
        items.extend(page.items);
        if page.next_token.is_empty() {
            return Ok(items);
        }
        req.set_next_token(page.next_token);
    }
}
