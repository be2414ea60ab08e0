//! ARNs in the ECS long format and Berth's ids (32 lowercase hex characters).

use serde::{Deserialize, Serialize};

/// Region and account used in ARNs (ECS-NOTES: defaults `local` and `000000000000`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArnScope {
    pub region: String,
    pub account: String,
}

impl Default for ArnScope {
    fn default() -> Self {
        ArnScope { region: "local".into(), account: "000000000000".into() }
    }
}

impl ArnScope {
    /// `arn:aws:ecs:REGION:ACCOUNT`, the start of every ARN in this scope.
    pub fn prefix(&self) -> String {
        format!("arn:aws:ecs:{}:{}", self.region, self.account)
    }
    pub fn cluster(&self, cluster: &str) -> String {
        format!("{}:cluster/{cluster}", self.prefix())
    }
    pub fn task_definition(&self, family: &str, revision: u32) -> String {
        format!("{}:task-definition/{family}:{revision}", self.prefix())
    }
    pub fn task(&self, cluster: &str, id: &str) -> String {
        format!("{}:task/{cluster}/{id}", self.prefix())
    }
    pub fn container(&self, cluster: &str, task_id: &str, name: &str) -> String {
        format!("{}:container/{cluster}/{task_id}/{name}", self.prefix())
    }
    pub fn service(&self, cluster: &str, name: &str) -> String {
        format!("{}:service/{cluster}/{name}", self.prefix())
    }
    pub fn container_instance(&self, cluster: &str, id: &str) -> String {
        format!("{}:container-instance/{cluster}/{id}", self.prefix())
    }
}

/// The last path segment of an ARN (`…:task/default/abc` → `abc`), or the input if it is no ARN.
pub fn arn_tail(s: &str) -> &str {
    if s.starts_with("arn:") { s.rsplit('/').next().unwrap_or(s) } else { s }
}

/// True for a valid ECS name: 1..=255 of `[A-Za-z0-9_-]`.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Formats 16 random bytes (chosen by the proposer) as a 32-hex-character id.
pub fn id_from_bytes(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn arns_use_long_format() {
        let s = ArnScope::default();
        assert_eq!(s.task("default", "ab"), "arn:aws:ecs:local:000000000000:task/default/ab");
        assert_eq!(arn_tail(&s.task("default", "ab")), "ab");
        assert_eq!(arn_tail("plain"), "plain");
        assert_eq!(id_from_bytes([0xab; 16]).len(), 32);
    }
    #[test]
    fn names_follow_ecs_rule() {
        assert!(is_valid_name("web_1-a"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a.b"));
        assert!(!is_valid_name(&"a".repeat(256)));
    }
}
