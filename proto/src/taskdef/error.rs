//! `TaskDefError`: every way a RegisterTaskDefinition document can be refused, one line each.
//!
//! * Parse-level problems (bad JSON, wrong shape, a type mismatch, an unknown or missing
//!   parameter) are worded like the aws CLI's client-side validation and map to
//!   `InvalidParameterException`.
//! * Rule violations found after parsing (names, limits, references, ports, …) are collected as
//!   [`Violation`]s, each naming the field path, and map to `ClientException`, as ECS answers them.
//!
//! This module also turns a `serde_path_to_error` failure into the matching variant
//! ([`from_serde`]); it only reads the document, never changes it.

use serde_json::Value;
use std::fmt;

/// One broken rule: where (`containerDefinitions[0].portMappings[0].hostPort`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl Violation {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskDefError {
    /// The document (or the definition it holds) is larger than ECS allows.
    #[error(
        "task definition is {bytes} bytes; the limit is {limit} bytes (ECS allows 64 KiB of compact JSON)"
    )]
    TooLarge { bytes: usize, limit: usize },
    /// Not JSON at all.
    #[error("invalid JSON at line {line} column {column}: {message}")]
    InvalidJson { line: usize, column: usize, message: String },
    /// JSON, but neither a RegisterTaskDefinition object, DescribeTaskDefinition output, nor an
    /// array of container definitions.
    #[error("{0}")]
    Shape(String),
    /// A bare `containerDefinitions` array and no family given.
    #[error(
        "the document is a bare containerDefinitions array (Terraform's format) and carries no \
         family: give one with --family NAME"
    )]
    FamilyRequired,
    /// A field ECS does not know (usually a typo).
    #[error("Unknown parameter in {parent}: \"{field}\"{}", suggestion_text(.suggestion))]
    UnknownField { parent: String, field: String, suggestion: Option<String> },
    /// A required parameter of a nested object is absent.
    #[error("Missing required parameter in {parent}: \"{field}\"")]
    MissingField { parent: String, field: String },
    /// A value of the wrong JSON type, worded as the aws CLI does.
    #[error(
        "Invalid type for parameter {path}, value: {value}, type: {found}, valid types: {expected}"
    )]
    InvalidType { path: String, value: String, found: String, expected: String },
    /// Any other failure to read a field (kept with its path).
    #[error("Invalid value for parameter {path}: {message}")]
    InvalidValue { path: String, message: String },
    /// Parsed, but breaks one or more ECS rules. Display joins them with "; ".
    #[error("{}", join_violations(.0))]
    Invalid(Vec<Violation>),
}

impl TaskDefError {
    /// The ECS error type (`__type`) this error is answered with.
    pub fn ecs_error_type(&self) -> &'static str {
        match self {
            TaskDefError::Invalid(_) | TaskDefError::TooLarge { .. } => "ClientException",
            TaskDefError::InvalidJson { .. }
            | TaskDefError::Shape(_)
            | TaskDefError::FamilyRequired
            | TaskDefError::UnknownField { .. }
            | TaskDefError::MissingField { .. }
            | TaskDefError::InvalidType { .. }
            | TaskDefError::InvalidValue { .. } => "InvalidParameterException",
        }
    }

    /// The rule violations, for callers that list them one per line (empty for other variants).
    pub fn violations(&self) -> &[Violation] {
        match self {
            TaskDefError::Invalid(v) => v,
            _ => &[],
        }
    }
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean \"{s}\"?)"),
        None => String::new(),
    }
}

fn join_violations(v: &[Violation]) -> String {
    if v.is_empty() {
        return "invalid task definition".to_string();
    }
    v.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; ")
}

/// Path segments as ECS/aws CLI print them: `containerDefinitions[0].portMappings[0].hostPort`.
pub(crate) fn render_path(segments: &[PathSegment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            PathSegment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSegment {
    Key(String),
    Index(usize),
}

/// The segments of a `serde_path_to_error` path (enum/unknown segments are skipped).
pub(crate) fn segments(path: &serde_path_to_error::Path) -> Vec<PathSegment> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(PathSegment::Index(*index)),
            Segment::Map { key } => Some(PathSegment::Key(key.clone())),
            Segment::Enum { variant } => Some(PathSegment::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// The value the document holds at `segments`, if any.
pub(crate) fn value_at<'v>(root: &'v Value, segments: &[PathSegment]) -> Option<&'v Value> {
    let mut cur = root;
    for s in segments {
        cur = match (s, cur) {
            (PathSegment::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSegment::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Python's name for a JSON value's type, as the aws CLI prints it.
pub(crate) fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

/// Python's name for what serde expected (`"expected i64"` → `<class 'int'>`).
fn python_expected(expected: &str) -> String {
    let e = expected.trim();
    let class = if ["i64", "i32", "u32", "u16", "u64", "integer"].iter().any(|t| e.contains(t)) {
        "int"
    } else if e.contains("f64") || e.contains("f32") {
        "float"
    } else if e.contains("bool") {
        "bool"
    } else if e.contains("string") {
        "str"
    } else if e.contains("sequence") {
        "list"
    } else if e.contains("map") || e.starts_with("struct") {
        "dict"
    } else {
        return e.to_string();
    };
    format!("<class '{class}'>")
}

/// The value rendered for a message: JSON, cut at 80 characters.
pub(crate) fn show_value(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// The text between the first pair of backticks in `msg` after `prefix`.
fn backticked_after<'m>(msg: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = msg.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('`')?;
    let end = rest.find('`')?;
    Some(&rest[..end])
}

/// Every backticked name in `msg` (serde's "expected one of `a`, `b`" list).
fn backticked_all(msg: &str) -> Vec<&str> {
    msg.split('`').skip(1).step_by(2).collect()
}

/// What a deserialisation failure was about, read from serde's message (serde gives no
/// structured detail; the wording of these four messages has been stable since serde 1.0).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SerdeProblem {
    UnknownField { field: String, expected: Vec<String> },
    MissingField(String),
    InvalidType { expected: String },
    Other(String),
}

pub(crate) fn classify(message: &str) -> SerdeProblem {
    if let Some(field) = backticked_after(message, "unknown field ") {
        let expected = message
            .split_once(", expected")
            .map(|(_, list)| backticked_all(list).into_iter().map(str::to_string).collect())
            .unwrap_or_default();
        return SerdeProblem::UnknownField { field: field.to_string(), expected };
    }
    if let Some(field) = backticked_after(message, "missing field ") {
        return SerdeProblem::MissingField(field.to_string());
    }
    if message.starts_with("invalid type: ")
        && let Some((_, expected)) = message.rsplit_once(", expected ")
    {
        return SerdeProblem::InvalidType { expected: expected.to_string() };
    }
    SerdeProblem::Other(message.to_string())
}

/// Turns a failed typed read of `root` into a `TaskDefError` naming the path.
pub(crate) fn from_serde(
    root: &Value,
    err: &serde_path_to_error::Error<serde_json::Error>,
) -> TaskDefError {
    let segs = segments(err.path());
    let message = err.inner().to_string();
    match classify(&message) {
        SerdeProblem::UnknownField { field, expected } => {
            // The path may or may not already end in the unknown key; the parent is what holds it.
            let mut parent = segs.clone();
            if parent.last() == Some(&PathSegment::Key(field.clone())) {
                parent.pop();
            }
            let suggestion = closest(&field, &expected);
            TaskDefError::UnknownField { parent: parent_name(&parent), field, suggestion }
        }
        SerdeProblem::MissingField(field) => {
            TaskDefError::MissingField { parent: parent_name(&segs), field }
        }
        SerdeProblem::InvalidType { expected } => {
            let path = render_path(&segs);
            match value_at(root, &segs) {
                Some(v) => TaskDefError::InvalidType {
                    path,
                    value: show_value(v),
                    found: python_type(v).to_string(),
                    expected: python_expected(&expected),
                },
                None => TaskDefError::InvalidValue { path, message },
            }
        }
        SerdeProblem::Other(message) => {
            TaskDefError::InvalidValue { path: parent_name(&segs), message }
        }
    }
}

/// The aws CLI calls the document root "input".
fn parent_name(segs: &[PathSegment]) -> String {
    if segs.is_empty() { "input".to_string() } else { render_path(segs) }
}

/// The known name nearest to a typo, if it is near enough to be a likely meaning.
pub(crate) fn closest(field: &str, known: &[String]) -> Option<String> {
    let lower = field.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_reads_serde_messages() {
        assert_eq!(
            classify("unknown field `portMaping`, expected one of `containerPort`, `hostPort`"),
            SerdeProblem::UnknownField {
                field: "portMaping".into(),
                expected: vec!["containerPort".into(), "hostPort".into()],
            }
        );
        assert_eq!(classify("missing field `name`"), SerdeProblem::MissingField("name".into()));
        assert_eq!(
            classify("invalid type: string \"3003\", expected i64"),
            SerdeProblem::InvalidType { expected: "i64".into() }
        );
    }

    #[test]
    fn closest_suggests_near_names_only() {
        let known = vec!["portMappings".to_string(), "memoryReservation".to_string()];
        assert_eq!(closest("portMapping", &known).as_deref(), Some("portMappings"));
        assert_eq!(closest("memoryreservation", &known).as_deref(), Some("memoryReservation"));
        assert_eq!(closest("zzz", &known), None);
    }

    #[test]
    fn invalid_display_joins_all_violations_on_one_line() {
        let e = TaskDefError::Invalid(vec![Violation::new("a", "x"), Violation::new("b", "y")]);
        assert_eq!(e.to_string(), "a: x; b: y");
        assert_eq!(e.ecs_error_type(), "ClientException");
    }

    #[test]
    fn python_expected_names_classes() {
        assert_eq!(python_expected("i64"), "<class 'int'>");
        assert_eq!(python_expected("a string"), "<class 'str'>");
        assert_eq!(python_expected("a sequence"), "<class 'list'>");
        assert_eq!(python_expected("struct PortMapping"), "<class 'dict'>");
    }
}
