//! The CLI's errors. Each renders as the one line printed after `error: `; `main` adds the prefix
//! and the exit code. Server errors keep the server's message verbatim (it is already the human,
//! ECS-style text); the gRPC code is kept for callers that need to branch (never the text).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No endpoint accepted a connection. `attempts` holds `(endpoint, cause)` in the order tried.
    #[error("cannot connect to Berth at {}{}", render_attempts(.attempts), connect_hint(.attempts))]
    Connect { attempts: Vec<(String, String)> },

    /// The server answered with an error status.
    #[error("{message}")]
    Server { code: tonic::Code, message: String },

    /// The server's reply is not the JSON shape this CLI expects (a version mismatch, most likely).
    #[error("unexpected {what} in reply from server: {reason}")]
    BadReply { what: &'static str, reason: String },

    #[error("cannot read {}: {source}", .path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },

    /// A wait gave up; `detail` says what was seen last.
    #[error("timed out after {secs}s waiting for {what}: {detail}")]
    Timeout { secs: u64, what: String, detail: String },

    /// A `--from-json` document was refused (the error names the field). Worded like a refused
    /// task definition: ECS's error type first.
    #[error("InvalidParameterException: {}: {source}", .path.display())]
    ServiceDocument { path: PathBuf, source: berth_proto::service_input::ServiceInputError },

    /// The command line and the document together lack something required, or contradict.
    #[error("{0}")]
    Usage(String),

    /// `task logs`: the task has no output to show, and why (not placed, containers removed).
    #[error("{0}")]
    NoLogs(String),

    /// `task logs`: the agent's HTTP API did not answer.
    #[error("cannot reach the agent of container instance {instance} at {url}: {cause}")]
    AgentUnreachable { instance: String, url: String, cause: String },

    /// `task logs`: the agent answered with an error (its message verbatim).
    #[error("agent of container instance {instance}: {message}")]
    Agent { instance: String, message: String },
}

const CONNECT_HINT: &str = " (is `berth dev` running? set --endpoint or BERTH_ENDPOINT)";

/// The `berth dev` hint, unless every endpoint tried is `https://` (`berth dev` is plaintext;
/// the cause then says what to fix: the CA file, the address).
fn connect_hint(attempts: &[(String, String)]) -> &'static str {
    let tls = |(endpoint, _): &(String, String)| endpoint.starts_with("https://");
    if !attempts.is_empty() && attempts.iter().all(tls) { "" } else { CONNECT_HINT }
}

fn render_attempts(attempts: &[(String, String)]) -> String {
    match attempts {
        [(endpoint, cause)] => format!("{endpoint}: {cause}"),
        many => {
            let parts: Vec<String> = many.iter().map(|(e, c)| format!("{e} ({c})")).collect();
            format!("any of {}", parts.join(", "))
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        // A TLS listener answers a plaintext client with a GOAWAY naming the fix; tonic keeps
        // that text only in the status' source.
        if format!("{status:?}").contains(berth_security::tls::PLAINTEXT_REFUSED) {
            let message = berth_security::tls::PLAINTEXT_REFUSED.to_string();
            return CliError::Server { code: status.code(), message };
        }
        let message = if status.message().is_empty() {
            format!("server returned {:?} with no message", status.code())
        } else {
            status.message().to_string()
        };
        CliError::Server { code: status.code(), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_error_names_every_endpoint_tried() {
        let one = CliError::Connect {
            attempts: vec![("http://127.0.0.1:7600".into(), "connection refused".into())],
        };
        assert!(
            one.to_string().starts_with(
                "cannot connect to Berth at http://127.0.0.1:7600: connection refused"
            )
        );
        let two = CliError::Connect {
            attempts: vec![
                ("http://a:1".into(), "refused".into()),
                ("http://b:2".into(), "timed out".into()),
            ],
        };
        assert!(two.to_string().contains("any of http://a:1 (refused), http://b:2 (timed out)"));
        assert!(two.to_string().contains("is `berth dev` running?"));
        // A TLS cluster is not `berth dev`: no such hint.
        let tls = CliError::Connect {
            attempts: vec![(
                "https://a:1".into(),
                "invalid peer certificate: UnknownIssuer".into(),
            )],
        };
        assert!(!tls.to_string().contains("berth dev"), "{tls}");
    }

    #[test]
    fn server_error_keeps_message_verbatim() {
        let e =
            CliError::from(tonic::Status::invalid_argument("ClientException: Service not found."));
        assert_eq!(e.to_string(), "ClientException: Service not found.");
        let e = CliError::from(tonic::Status::internal(""));
        assert_eq!(e.to_string(), "server returned Internal with no message");
    }
}
