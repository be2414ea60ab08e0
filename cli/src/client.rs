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

/// Adds `x-berth-consistency: stale` to every request when the user asked for stale reads, and
/// `authorization: Bearer <token>` when a token was given ([`set_token`]).
#[derive(Clone, Copy)]
pub struct Consistency {
    stale: bool,
}

/// `authorization` metadata of every request: `Bearer <--token / BERTH_TOKEN>`.
static TOKEN: std::sync::OnceLock<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> =
    std::sync::OnceLock::new();

/// Sets the API token every request carries (`--token`, `BERTH_TOKEN`); call once, before
/// connecting. A token that cannot be a header value is refused here, naming the flag.
pub fn set_token(token: Option<&str>) -> Result<(), CliError> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(()) };
    let value = format!("Bearer {token}").parse().map_err(|_| {
        CliError::Usage("--token / BERTH_TOKEN: must be printable ASCII without spaces".into())
    })?;
    let _ = TOKEN.set(value);
    Ok(())
}

impl tonic::service::Interceptor for Consistency {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.stale {
            req.metadata_mut().insert(
                "x-berth-consistency",
                tonic::metadata::MetadataValue::from_static("stale"),
            );
        }
        if let Some(token) = TOKEN.get() {
            req.metadata_mut().insert("authorization", token.clone());
        }
        Ok(req)
    }
}

type Client = BerthClient<InterceptedService<Channel, Consistency>>;
/// The `berth.v1.BerthAcl` client (`berth operator acl`).
pub type AclClient =
    berth_proto::v1::berth_acl_client::BerthAclClient<InterceptedService<Channel, Consistency>>;

/// The `berth.v1.BerthSecrets` client (`berth secret`).
pub type SecretsClient = berth_proto::v1::berth_secrets_client::BerthSecretsClient<
    InterceptedService<Channel, Consistency>,
>;

/// The `berth.v1.BerthSecurity` client (`berth operator token`).
pub type SecurityClient = berth_proto::v1::berth_security_client::BerthSecurityClient<
    InterceptedService<Channel, Consistency>,
>;

/// How long to wait for one endpoint to accept a connection before trying the next. Local and
/// LAN controllers answer in milliseconds; a few seconds covers a loaded machine without making
/// a dead first endpoint expensive.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest wait for a reply's headers: above the controller's own unary deadline (30 s by
/// default, `--rpc-timeout-secs`), so its clearer error arrives first. A stream
/// (`berth events --follow`) is bounded only until it starts.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected client plus the cluster every request is about.
pub struct Api {
    client: Client,
    /// The connection, for the other services' clients (`acl`).
    channel: Channel,
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
                    let client =
                        BerthClient::with_interceptor(channel.clone(), Consistency { stale })
                            .max_decoding_message_size(berth_proto::MAX_MESSAGE_BYTES)
                            .max_encoding_message_size(berth_proto::MAX_MESSAGE_BYTES);
                    return Ok(Api {
                        client,
                        channel,
                        endpoint: url,
                        cluster: cluster.to_string(),
                    });
                }
                Err(cause) => attempts.push((url, cause)),
            }
        }
        if attempts.is_empty() {
            attempts.push(("(no endpoint given)".into(), "empty --endpoint".into()));
        }
        Err(CliError::Connect { attempts })
    }

    /// A client connected to the group's leader, from the members this controller lists
    /// (`isLeader`, `clientAddress`); `None` when it names no reachable leader or this one
    /// leads. For calls only the leader serves (membership changes).
    pub async fn leader(&mut self) -> Result<Option<Api>, CliError> {
        let items = list(self.client.list_members(berth_proto::v1::ListMembersRequest {}).await)?;
        let leader = items
            .iter()
            .filter_map(|item| serde_json::from_str::<serde_json::Value>(item).ok())
            .find(|m| m["isLeader"] == true)
            .and_then(|m| m["clientAddress"].as_str().map(str::to_string))
            .filter(|url| !url.is_empty() && *url != self.endpoint);
        match leader {
            None => Ok(None),
            Some(url) => {
                let stale = false;
                Api::connect(&[url], &self.cluster, stale).await.map(Some)
            }
        }
    }

    /// The endpoint this client is connected to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A clone of the generated client (cheap: it shares the channel), for [`list_all`].
    pub fn grpc_clone(&self) -> Client {
        self.client.clone()
    }

    /// A `berth.v1.BerthAcl` client on the same connection (token and consistency included).
    pub fn acl(&self) -> AclClient {
        berth_proto::v1::berth_acl_client::BerthAclClient::with_interceptor(
            self.channel.clone(),
            Consistency { stale: false },
        )
    }

    /// A `berth.v1.BerthSecrets` client on the same connection (`berth secret`).
    pub fn secrets(&self) -> SecretsClient {
        berth_proto::v1::berth_secrets_client::BerthSecretsClient::with_interceptor(
            self.channel.clone(),
            Consistency { stale: false },
        )
    }

    /// A `berth.v1.BerthSecurity` client on the same connection (`berth operator token`).
    pub fn security(&self) -> SecurityClient {
        berth_proto::v1::berth_security_client::BerthSecurityClient::with_interceptor(
            self.channel.clone(),
            Consistency { stale: false },
        )
    }

    /// The generated client, for one call.
    pub fn grpc(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// The CA bundle `https://` endpoints are verified against (`--ca-cert`, `BERTH_CA_CERT`), and
/// the client certificate presented to them (`--client-cert` / `--client-key`).
static CA: std::sync::OnceLock<berth_security::ClientTls> = std::sync::OnceLock::new();

fn read_flag(flag: &str, path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{flag} {}: {e}", path.display())))
}

/// Reads `--ca-cert FILE` (PEM) and, if given, the client certificate and key
/// (`--client-cert FILE`, `--client-key FILE`: both or neither, and only with `--ca-cert`)
/// once, before connecting; https:// endpoints need the CA. The client certificate is an
/// extra factor for controllers started with `--require-client-cert`: the API token is still
/// sent and still decides what the caller may do.
pub fn set_ca_cert(
    path: Option<&std::path::Path>,
    client_cert: Option<&std::path::Path>,
    client_key: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let client = match (client_cert, client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(CliError::Usage(
                "--client-cert and --client-key (BERTH_CLIENT_CERT, BERTH_CLIENT_KEY) go together: give both or neither".into(),
            ));
        }
    };
    let Some(path) = path else {
        if client.is_some() {
            return Err(CliError::Usage(
                "--client-cert needs --ca-cert (BERTH_CA_CERT): the client certificate is presented to https:// endpoints, which are verified against that CA".into(),
            ));
        }
        return Ok(());
    };
    let pem = read_flag("--ca-cert", path)?;
    let material = match client {
        None => berth_security::TlsMaterial::from_pem(&pem, None)
            .map_err(|e| CliError::Usage(format!("--ca-cert {}: {e}", path.display())))?,
        Some((cert_path, key_path)) => {
            let cert = read_flag("--client-cert", cert_path)?;
            let key = read_flag("--client-key", key_path)?;
            let material = berth_security::TlsMaterial::from_pem(&pem, Some((&cert, &key)))
                .map_err(|e| {
                    CliError::Usage(format!(
                        "--client-cert {} / --client-key {}: {e}",
                        cert_path.display(),
                        key_path.display()
                    ))
                })?;
            if let Some(Err(e)) = material.identity() {
                return Err(CliError::Usage(format!(
                    "--client-cert {}: {e} (make one with `berth operator cert create`)",
                    cert_path.display()
                )));
            }
            material
        }
    };
    let tls = material.client_config().map_err(|e| {
        CliError::Usage(format!("--ca-cert {} / --client-cert: {e}", path.display()))
    })?;
    let _ = CA.set(berth_security::ClientTls::new(tls));
    Ok(())
}

async fn try_connect(url: &str) -> Result<Channel, String> {
    if url.starts_with("https://") {
        // TLS through berth-security (the server is verified as a controller of the CA).
        return berth_security::connect_channel(url, CA.get(), |e| {
            e.connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT)
        })
        .await
        .map_err(|e| {
            let cause = root_cause(&*e);
            if cause.contains("UnknownIssuer") {
                format!(
                    "{cause}: its certificate is not from the CA in --ca-cert (use the cluster's ca.pem: a controller's <data-dir>/tls/ca.pem, or `caPem` of `berth operator ca describe -o json`)"
                )
            } else {
                cause
            }
        });
    }
    let endpoint =
        Endpoint::from_shared(url.to_string()).map_err(|e| format!("invalid endpoint: {e}"))?;
    endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .map_err(|e| root_cause(&e))
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

/// Every item of a paginated List call ([`berth_proto::paging::list_all`]: `next_token` is
/// followed until a page comes back without one).
pub async fn list_all<Req, F, Fut>(req: Req, call: F) -> Result<Vec<String>, CliError>
where
    Req: berth_proto::paging::Paged,
    F: FnMut(Req) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<ListReply>, tonic::Status>>,
{
    Ok(berth_proto::paging::list_all(req, call).await?)
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

    #[test]
    fn client_cert_and_key_go_together_and_need_the_ca() {
        let p = std::path::Path::new("/nonexistent/x.pem");
        let err = set_ca_cert(Some(p), Some(p), None).expect_err("cert only").to_string();
        assert!(err.contains("--client-cert and --client-key"), "{err}");
        let err = set_ca_cert(Some(p), None, Some(p)).expect_err("key only").to_string();
        assert!(err.contains("both or neither"), "{err}");
        let err = set_ca_cert(None, Some(p), Some(p)).expect_err("no ca").to_string();
        assert!(err.contains("--client-cert needs --ca-cert"), "{err}");
        let err = set_ca_cert(Some(p), Some(p), Some(p)).expect_err("missing").to_string();
        assert!(err.starts_with("--ca-cert /nonexistent/x.pem"), "{err}");
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
