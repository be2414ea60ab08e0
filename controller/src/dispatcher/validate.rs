//! # dispatcher::validate — pure checks of what an agent sends
//!
//! Everything the controller decides about an agent message before it touches the store:
//! the registration's fields ([`check_registration`]), attribute names and values, the agent
//! endpoint URL, and the JSON payloads of task and stats reports ([`decode_task_report`],
//! [`decode_stats`]). `session.rs` calls these; the fuzz targets (`fuzz/`) include this file
//! as is, so it must stay pure: std, `serde_json` and `berth_proto` only — no `crate::` paths,
//! no IO, no clock.

use berth_proto::model::{Attribute, StatsReport, TaskStatusReport};
use berth_proto::v1;

/// ECS allows 10 custom attributes per resource; built-ins come on top.
pub const MAX_ATTRIBUTES: usize = 32;

/// Longest `agent_endpoint` accepted (the agent's own bound is the same).
pub const MAX_AGENT_ENDPOINT_LEN: usize = 256;

pub fn valid_attribute_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_/\\.".contains(c))
}

pub fn valid_attribute_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.trim() == v
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_/\\.@: ".contains(c))
}

/// `RegisterAgent.agent_endpoint`: empty (no API) or an `http://`/`https://` URL with a host, no
/// spaces or control characters, at most [`MAX_AGENT_ENDPOINT_LEN`] long.
pub fn check_agent_endpoint(url: &str) -> Result<Option<String>, String> {
    if url.is_empty() {
        return Ok(None);
    }
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
        || url.len() > MAX_AGENT_ENDPOINT_LEN
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "agent_endpoint '{url}' is invalid: an http:// or https:// URL with a host, at most {MAX_AGENT_ENDPOINT_LEN} characters, no spaces"
        ));
    }
    Ok(Some(url.trim_end_matches('/').to_string()))
}

/// A registration's checked fields (the instance id is checked when given; an empty one is
/// left for the session to generate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRegistration {
    /// Sorted by name.
    pub attributes: Vec<Attribute>,
    /// The reserved ports that are valid port numbers.
    pub reserved_ports: Vec<u16>,
    pub agent_endpoint: Option<String>,
}

/// `instance_id` of a registration: 32 hex characters.
pub fn check_instance_id(instance_id: &str) -> Result<(), String> {
    if instance_id.len() != 32 || !instance_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("instance_id '{instance_id}' is invalid: expected 32 hex characters"));
    }
    Ok(())
}

/// Checks a `RegisterAgent` (every message is the first rule it breaks, naming the field).
pub fn check_registration(reg: &v1::RegisterAgent) -> Result<CheckedRegistration, String> {
    if !reg.instance_id.is_empty() {
        check_instance_id(&reg.instance_id)?;
    }
    if reg.cpu <= 0 || reg.memory <= 0 {
        return Err(format!("cpu ({}) and memory ({}) must be positive", reg.cpu, reg.memory));
    }
    if reg.attributes.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "too many attributes ({}; at most {MAX_ATTRIBUTES})",
            reg.attributes.len()
        ));
    }
    let mut attributes = vec![];
    for (k, v) in &reg.attributes {
        if !valid_attribute_name(k) {
            return Err(format!(
                "attribute name '{k}' is invalid: 1-128 of letters, digits, - _ / \\ ."
            ));
        }
        if !valid_attribute_value(v) {
            return Err(format!(
                "attribute '{k}' value '{v}' is invalid: 1-128 of letters, digits, - _ / \\ . @ : space, no leading or trailing space"
            ));
        }
        attributes.push(Attribute { name: k.clone(), value: Some(v.clone()) });
    }
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    let reserved_ports = reg.reserved_ports.iter().filter_map(|p| u16::try_from(*p).ok()).collect();
    let agent_endpoint = check_agent_endpoint(&reg.agent_endpoint)?;
    Ok(CheckedRegistration { attributes, reserved_ports, agent_endpoint })
}

/// A `TaskStatus` message's report.
pub fn decode_task_report(json: &str) -> Result<TaskStatusReport, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// A `ContainerStats` message's report.
pub fn decode_stats(json: &str) -> Result<StatsReport, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod agent_endpoint_tests {
    use super::*;

    #[test]
    fn agent_endpoint_is_optional_and_must_be_an_http_url() {
        assert_eq!(check_agent_endpoint(""), Ok(None));
        assert_eq!(
            check_agent_endpoint("http://10.0.0.5:51678/"),
            Ok(Some("http://10.0.0.5:51678".to_string()))
        );
        for bad in ["10.0.0.5:51678", "http://", "http://a b:1", "ftp://x:1"] {
            let e = check_agent_endpoint(bad).expect_err(bad);
            assert!(e.contains("agent_endpoint"), "{e}");
        }
        assert!(check_agent_endpoint(&format!("http://{}", "a".repeat(300))).is_err());
    }
}
