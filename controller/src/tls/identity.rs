//! The dispatcher's identity binding in TLS mode: an agent session must present an agent
//! certificate from the cluster CA, and registers as the instance id in it.

use berth_security::{Identity, Role};
use tonic::Status;

/// The instance id a session registers as: with TLS (`tls` true) the certificate's (a
/// claimed `instance_id` must be empty or equal); without TLS the claimed one.
pub fn bind_instance_id(
    tls: bool,
    peer: Option<berth_security::Result<Identity>>,
    claimed: &str,
) -> Result<String, Status> {
    if !tls {
        return Ok(claimed.to_string());
    }
    let identity = match peer {
        None => {
            return Err(Status::unauthenticated(
                "this controller runs with TLS: an agent must present its certificate (start berth-agent with --join-token once)",
            ));
        }
        Some(Err(e)) => return Err(Status::unauthenticated(format!("client certificate: {e}"))),
        Some(Ok(id)) => id,
    };
    if identity.role() != Role::Agent {
        return Err(Status::permission_denied(format!(
            "the client certificate is for {identity}, not an agent"
        )));
    }
    if !claimed.is_empty() && !claimed.eq_ignore_ascii_case(identity.id()) {
        return Err(Status::permission_denied(format!(
            "instance_id {claimed} does not match the certificate's instance id {}",
            identity.id()
        )));
    }
    Ok(identity.id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn the_certificate_decides_the_instance_id() {
        let a = || Some(Identity::agent(A));
        assert_eq!(bind_instance_id(false, None, B).expect("plaintext"), B);
        assert_eq!(bind_instance_id(true, a(), "").expect("empty"), A);
        assert_eq!(bind_instance_id(true, a(), A).expect("same"), A);
        let err = bind_instance_id(true, a(), B).expect_err("other");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(err.message().contains(A) && err.message().contains(B), "{}", err.message());
        let err = bind_instance_id(true, None, "").expect_err("no cert");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        let err = bind_instance_id(true, Some(Identity::controller(1)), "").expect_err("role");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    }

    /// A client certificate (`berth://client/<name>`) does not open an agent session (the
    /// peer listener's refusal is tested in `tls/client_cert.rs`).
    #[test]
    fn a_client_certificate_is_not_an_agent() {
        let err = bind_instance_id(true, Some(Identity::client("ops")), "").expect_err("session");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(err.message().contains("client ops"), "{}", err.message());
    }
}
