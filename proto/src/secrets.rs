//! Berth secrets on the wire and in task definitions (`proto/secrets.proto`).
//!
//! * [`valid_secret_name`] / [`check_secret_name`] — the name rule (Secrets Manager's):
//!   1–[`MAX_SECRET_NAME_LEN`] of `A-Za-z0-9/_+=.@-`.
//! * [`check_secret_value`] — the value rule: at most [`MAX_SECRET_VALUE_BYTES`] (Secrets
//!   Manager's 64 KiB), no NUL byte (values become environment variables).
//! * [`SecretRef::parse`] — what a container's `secrets[].valueFrom` may say: the bare name,
//!   `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:JSON_KEY[:VERSION_STAGE[:VERSION_ID]]]`
//!   or `arn:aws:ssm:REGION:ACCOUNT:parameter/NAME`. Region and account are not checked (a
//!   definition copied from AWS keeps working once the secret is put under the same name).
//! * [`SecretString`] — a value in memory: `Debug` prints `SecretString(<redacted>)`, there is
//!   no `Display`; [`SecretString::expose`] is the one way to read it.
//! * `Debug` of the generated messages that carry values (`PutSecretRequest`,
//!   `SecretEnvironmentVariable`) is written here and redacts the value (`build.rs` skips the
//!   derived one).

use crate::v1;

/// Longest secret name (Secrets Manager: 512).
pub const MAX_SECRET_NAME_LEN: usize = 512;
/// Largest secret value in bytes (Secrets Manager: 65536).
pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;
/// What `Debug` prints instead of a value.
pub const REDACTED: &str = "<redacted>";

/// True for 1–512 of `A-Za-z0-9/_+=.@-`.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

/// The name rule as an error naming the field.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    if valid_secret_name(name) {
        return Ok(());
    }
    Err(format!(
        "secret name '{}' is invalid: 1-{MAX_SECRET_NAME_LEN} characters of letters, digits and / _ + = . @ -",
        name.chars().take(80).collect::<String>()
    ))
}

/// The value rule. The error never quotes the value.
pub fn check_secret_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_SECRET_VALUE_BYTES {
        return Err(format!(
            "secret value is too large: {} bytes; at most {MAX_SECRET_VALUE_BYTES} bytes (64 KiB)",
            value.len()
        ));
    }
    if value.contains('\0') {
        return Err(
            "secret value must not contain a NUL byte (it becomes an environment variable)"
                .to_string(),
        );
    }
    Ok(())
}

/// The associated data a secret's value is sealed with: the value cannot be moved to another
/// secret's record.
pub fn seal_context(name: &str) -> Vec<u8> {
    format!("secret:{name}").into_bytes()
}

/// A parsed `valueFrom`: which Berth secret, and optionally one key of its JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Names to look up, in order (an SSM ARN `parameter/a/b` may name `a/b` or `/a/b`).
    pub candidates: Vec<String>,
    /// Secrets Manager's `:json-key`: the value must be a JSON object; this key's value is used.
    pub json_key: Option<String>,
}

impl SecretRef {
    /// The name shown in errors (the first candidate).
    pub fn name(&self) -> &str {
        self.candidates.first().map(String::as_str).unwrap_or("")
    }

    /// Parses `valueFrom`; the error says which forms are accepted.
    pub fn parse(value_from: &str) -> Result<SecretRef, String> {
        let forms = "expected a secret name, arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME or \
                     arn:aws:ssm:REGION:ACCOUNT:parameter/NAME";
        let bad = |why: &str| {
            let shown: String = value_from.chars().take(120).collect();
            format!("valueFrom '{shown}' {why}; {forms}")
        };
        if !value_from.starts_with("arn:") {
            check_secret_name(value_from)
                .map_err(|e| bad(&format!("is not a secret name ({e})")))?;
            return Ok(SecretRef { candidates: vec![value_from.to_string()], json_key: None });
        }
        // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE…
        let parts: Vec<&str> = value_from.splitn(6, ':').collect();
        if parts.len() != 6 || !parts[1].starts_with("aws") {
            return Err(bad("is not an ARN"));
        }
        let resource = parts[5];
        match parts[2] {
            "secretsmanager" => {
                let Some(rest) = resource.strip_prefix("secret:") else {
                    return Err(bad("is not a Secrets Manager secret ARN"));
                };
                let mut fields = rest.split(':');
                let name = fields.next().unwrap_or("");
                check_secret_name(name)
                    .map_err(|e| bad(&format!("names no valid secret ({e})")))?;
                let json_key = fields.next().filter(|k| !k.is_empty()).map(str::to_string);
                let stage = fields.next().unwrap_or("");
                let version_id = fields.next().unwrap_or("");
                if !(stage.is_empty() || stage == "AWSCURRENT") || !version_id.is_empty() {
                    return Err(bad(
                        "asks for a version stage or version id; Berth keeps only the current \
                         version (AWSCURRENT)",
                    ));
                }
                if fields.next().is_some() {
                    return Err(bad("has too many fields after the secret name"));
                }
                Ok(SecretRef { candidates: vec![name.to_string()], json_key })
            }
            "ssm" => {
                let Some(path) = resource.strip_prefix("parameter") else {
                    return Err(bad("is not an SSM parameter ARN"));
                };
                let name = path.strip_prefix('/').unwrap_or(path);
                check_secret_name(name)
                    .map_err(|e| bad(&format!("names no valid secret ({e})")))?;
                let mut candidates = vec![name.to_string()];
                if name.contains('/') {
                    candidates.push(format!("/{name}"));
                }
                Ok(SecretRef { candidates, json_key: None })
            }
            _ => Err(bad("is neither a Secrets Manager nor an SSM ARN")),
        }
    }

    /// The value to inject, from the secret's whole value (applies `json_key`).
    pub fn select(&self, value: &str) -> Result<String, String> {
        let Some(key) = &self.json_key else { return Ok(value.to_string()) };
        let doc: serde_json::Value = serde_json::from_str(value).map_err(|_| {
            format!("secret {} is not a JSON object (valueFrom asks for key '{key}')", self.name())
        })?;
        match doc.get(key) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Null) | None => {
                Err(format!("secret {} has no JSON key '{key}'", self.name()))
            }
            Some(other) => Ok(other.to_string()),
        }
    }
}

/// A secret value in memory. `Debug` redacts it; read it with [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> SecretString {
        SecretString(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> SecretString {
        SecretString(value)
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretString({REDACTED})")
    }
}

impl std::fmt::Debug for v1::SecretEnvironmentVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEnvironmentVariable")
            .field("name", &self.name)
            .field("value", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for v1::PutSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecretRequest")
            .field("name", &self.name)
            .field("value", &REDACTED)
            .field("description", &self.description)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_secrets_manager_rule() {
        for ok in ["db", "prod/db-password", "/app/key", "a+b=c.d@e_f-g", &"x".repeat(512)] {
            assert!(valid_secret_name(ok), "{ok}");
        }
        for bad in ["", "has space", "colon:x", "tab\t", "é", &"x".repeat(513)] {
            assert!(!valid_secret_name(bad), "{bad}");
        }
        let e = check_secret_name("a b").expect_err("space");
        assert!(e.contains("secret name 'a b' is invalid: 1-512"), "{e}");
    }

    #[test]
    fn values_are_bounded_and_errors_never_quote_them() {
        check_secret_value(&"v".repeat(MAX_SECRET_VALUE_BYTES)).expect("64 KiB is allowed");
        let big = "s3cr3t".repeat(MAX_SECRET_VALUE_BYTES / 6 + 1);
        let e = check_secret_value(&big).expect_err("too big");
        assert!(e.contains("too large") && e.contains("65536 bytes"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = check_secret_value("a\0b").expect_err("nul");
        assert!(e.contains("NUL"), "{e}");
    }

    #[test]
    fn value_from_accepts_the_name_and_both_arn_forms() {
        let r = SecretRef::parse("db-password").expect("bare");
        assert_eq!(r.candidates, vec!["db-password"]);
        assert_eq!(r.json_key, None);
        let r = SecretRef::parse("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db")
            .expect("sm");
        assert_eq!(r.candidates, vec!["prod/db"]);
        let r = SecretRef::parse("arn:aws:secretsmanager:local:0:secret:creds:password::")
            .expect("json key");
        assert_eq!((r.name(), r.json_key.as_deref()), ("creds", Some("password")));
        let r =
            SecretRef::parse("arn:aws:secretsmanager:local:0:secret:creds:password:AWSCURRENT:")
                .expect("current stage");
        assert_eq!(r.json_key.as_deref(), Some("password"));
        let r =
            SecretRef::parse("arn:aws:ssm:eu-west-1:123456789012:parameter/app/db").expect("ssm");
        assert_eq!(r.candidates, vec!["app/db", "/app/db"]);
        let r = SecretRef::parse("arn:aws:ssm:eu-west-1:1:parameter/token").expect("ssm flat");
        assert_eq!(r.candidates, vec!["token"]);
    }

    #[test]
    fn value_from_errors_name_the_accepted_forms() {
        for (bad, why) in [
            ("arn:x", "is not an ARN"),
            ("arn:aws:s3:::bucket/key", "neither a Secrets Manager nor an SSM ARN"),
            ("arn:aws:secretsmanager:r:a:key:x", "not a Secrets Manager secret ARN"),
            ("arn:aws:secretsmanager:r:a:secret:x::AWSPREVIOUS:", "version stage"),
            ("arn:aws:secretsmanager:r:a:secret:x:k::v1", "version id"),
            ("arn:aws:ssm:r:a:document/x", "not an SSM parameter ARN"),
            ("has space", "is not a secret name"),
        ] {
            let e = SecretRef::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("arn:aws:ssm:REGION:ACCOUNT:parameter/NAME"), "{e}");
        }
    }

    #[test]
    fn json_key_selects_one_field() {
        let r = SecretRef::parse("arn:aws:secretsmanager:r:a:secret:c:user").expect("parse");
        assert_eq!(r.select(r#"{"user":"admin","port":5432}"#).expect("key"), "admin");
        let r = SecretRef::parse("arn:aws:secretsmanager:r:a:secret:c:port").expect("parse");
        assert_eq!(r.select(r#"{"user":"admin","port":5432}"#).expect("key"), "5432");
        assert!(r.select("plain").expect_err("not json").contains("not a JSON object"));
        assert!(r.select("{}").expect_err("no key").contains("no JSON key 'port'"));
        let whole = SecretRef::parse("c").expect("parse");
        assert_eq!(whole.select("plain").expect("whole"), "plain");
    }

    #[test]
    fn debug_never_prints_values() {
        let s = SecretString::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "SecretString(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
        let env = v1::SecretEnvironmentVariable { name: "DB".into(), value: "hunter2".into() };
        let shown = format!(
            "{env:?} {:?}",
            v1::ContainerSecrets { container_name: "app".into(), environment: vec![env.clone()] }
        );
        assert!(
            !shown.contains("hunter2") && shown.contains("DB") && shown.contains(REDACTED),
            "{shown}"
        );
        let put = v1::PutSecretRequest {
            name: "db".into(),
            value: "hunter2".into(),
            description: "d".into(),
        };
        let shown = format!("{put:?}");
        assert!(!shown.contains("hunter2") && shown.contains("db"), "{shown}");
    }
}
