//! Connecting to a controller and unwrapping its replies.
//!
//! * [`Api::connect`] tries each endpoint in order (a bare `host:port` gets `http://`) and keeps
//!   the first that accepts a connection; if none does, one [`CliError::Connect`] names them all.
//! * [`object`] / [`list`] turn a call's result into reply JSON: `ObjectReply.warnings` are printed
//!   to stderr as `warning: …`, a `Status` becomes [`CliError::Server`].
//!
//! Message size limits on both directions are `berth_proto::MAX_MESSAGE_BYTES`, as on the server.

use crate::error::CliError;
use berth_proto::v1::berth_client::BerthClient;
use berth_proto::v1::{ListReply, ObjectReply};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Adds `x-berth-consistency: stale` to every request when the user asked for stale reads.
#[derive(Clone, Copy)]
pub struct Consistency {
    stale: bool,
}

impl tonic::service::Interceptor for Consistency {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.stale {
            req.metadata_mut().insert(
                "x-berth-consistency",
                tonic::metadata::MetadataValue::from_static("stale"),
            );
        }
        Ok(req)
    }
}

type Client = BerthClient<InterceptedService<Channel, Consistency>>;

/// How long to wait for one endpoint to accept a connection before trying the next. Local and
/// LAN controllers answer in milliseconds; a few seconds covers a loaded machine without making
/// a dead first endpoint expensive.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connected client plus the cluster every request is about.
pub struct Api {
    client: Client,
    endpoint: String,
    pub cluster: String,
}

impl Api {
    pub async fn connect(
        endpoints: &[String],
        cluster: &str,
        stale: bool,
    ) -> Result<Api, CliError> {
        let mut attempts = Vec::new();
        for raw in endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let url = with_scheme(raw);
            match try_connect(&url).await {
                Ok(channel) => {
                    let client = BerthClient::with_interceptor(channel, Consistency { stale })
                        .max_decoding_message_size(berth_proto::MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(berth_proto::MAX_MESSAGE_BYTES);
                    return Ok(Api { client, endpoint: url, cluster: cluster.to_string() });
                }
                Err(cause) => attempts.push((url, cause)),
            }
        }
        if attempts.is_empty() {
            attempts.push(("(no endpoint given)".into(), "empty --endpoint".into()));
        }
        Err(CliError::Connect { attempts })
    }

    /// The endpoint this client is connected to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The generated client, for one call.
    pub fn grpc(&mut self) -> &mut Client {
        &mut self.client
    }
}

async fn try_connect(url: &str) -> Result<Channel, String> {
    let endpoint =
        Endpoint::from_shared(url.to_string()).map_err(|e| format!("invalid endpoint: {e}"))?;
    endpoint.connect_timeout(CONNECT_TIMEOUT).connect().await.map_err(|e| root_cause(&e))
}

/// `127.0.0.1:7600` → `http://127.0.0.1:7600`; URLs with a scheme are kept.
pub(crate) fn with_scheme(raw: &str) -> String {
    if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") }
}

/// The innermost cause ("Connection refused (os error 111)"), which is what a user can act on;
/// tonic's outer layers only say "transport error".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Unwraps an `ObjectReply`: prints its warnings, returns its JSON.
pub fn object(
    reply: Result<tonic::Response<ObjectReply>, tonic::Status>,
) -> Result<String, CliError> {
    let reply = reply?.into_inner();
    for w in &reply.warnings {
        eprintln!("warning: {w}");
    }
    Ok(reply.json)
}

/// Unwraps a `ListReply`: one JSON object per item.
pub fn list(
    reply: Result<tonic::Response<ListReply>, tonic::Status>,
) -> Result<Vec<String>, CliError> {
    Ok(reply?.into_inner().items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_port_gets_http_scheme() {
        assert_eq!(with_scheme("127.0.0.1:7600"), "http://127.0.0.1:7600");
        assert_eq!(with_scheme("https://ctl:7600"), "https://ctl:7600");
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_all_named() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let eps = vec!["127.0.0.1:1".to_string(), "http://127.0.0.1:2".to_string()];
        let err = Api::connect(&eps, "default", false).await.err().expect("must fail");
        let text = err.to_string();
        assert!(text.contains("http://127.0.0.1:1 ("), "{text}");
        assert!(text.contains("http://127.0.0.1:2 ("), "{text}");
    }
}
