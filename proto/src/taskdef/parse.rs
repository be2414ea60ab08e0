//! From document text to a typed (not yet validated) `TaskDefinition`.
//!
//! Flow: text → `serde_json::Value` (syntax errors keep line/column) → shape detection
//! (RegisterTaskDefinition object, DescribeTaskDefinition output, or a bare Terraform array)
//! → read-only describe fields stripped → family override applied → typed read with
//! `serde_path_to_error`, so every type mismatch or unknown field names its path.
//!
//! Every change made to the user's document here is reported as a warning. Rules about values
//! (names, limits, references) are not checked here; see `validate`.

use super::error::{self, PathSegment, SerdeProblem, TaskDefError};
use crate::model::TaskDefinition;
use serde_json::{Map, Value};

/// Documents above this many bytes are refused before parsing (the 64 KiB ECS limit applies to
/// the compact definition afterwards; pretty-printed input may be a few times larger).
pub(crate) const MAX_RAW_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Fields of DescribeTaskDefinition output that RegisterTaskDefinition does not take.
pub(crate) const READ_ONLY_FIELDS: [&str; 9] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "compatibilities",
    "requiresAttributes",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// How many empty unknown fields one document may have dropped before we stop retrying.
const MAX_DROPPED_EMPTY_FIELDS: usize = 32;

/// Parses `document` into a `TaskDefinition`, pushing a warning for every change made on the way.
pub(crate) fn parse_document(
    document: &str,
    family_override: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<TaskDefinition, TaskDefError> {
    if document.len() > MAX_RAW_DOCUMENT_BYTES {
        return Err(TaskDefError::TooLarge {
            bytes: document.len(),
            limit: MAX_RAW_DOCUMENT_BYTES,
        });
    }
    // Editors on Windows save JSON with a byte order mark; JSON itself forbids it.
    let document = match document.strip_prefix('\u{feff}') {
        Some(rest) => {
            warnings.push("the document starts with a UTF-8 byte order mark; ignored".to_string());
            rest
        }
        None => document,
    };
    if document.trim().is_empty() {
        return Err(TaskDefError::Shape("the task definition document is empty".to_string()));
    }
    let value: Value = serde_json::from_str(document).map_err(|e| invalid_json(&e))?;
    let mut object = into_register_object(value, family_override, warnings)?;
    strip_read_only(&mut object, warnings);
    apply_family_override(&mut object, family_override, warnings);
    read_typed(Value::Object(object), warnings)
}

pub(crate) fn invalid_json(e: &serde_json::Error) -> TaskDefError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    TaskDefError::InvalidJson { line: e.line(), column: e.column(), message }
}

/// Reduces the three accepted shapes to a RegisterTaskDefinition input object.
fn into_register_object(
    value: Value,
    family_override: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, TaskDefError> {
    match value {
        Value::Array(containers) => {
            let Some(family) = family_override else {
                return Err(TaskDefError::FamilyRequired);
            };
            warnings.push(format!(
                "the document is a bare containerDefinitions array (Terraform's format); \
                 registering it as family \"{family}\""
            ));
            let mut object = Map::new();
            object.insert("family".to_string(), Value::String(family.to_string()));
            object.insert("containerDefinitions".to_string(), Value::Array(containers));
            Ok(object)
        }
        Value::Object(mut outer) if outer.contains_key("taskDefinition") => {
            if let Some(other) = outer.keys().find(|k| *k != "taskDefinition" && *k != "tags") {
                return Err(TaskDefError::UnknownField {
                    parent: "input".to_string(),
                    field: other.clone(),
                    suggestion: None,
                });
            }
            let inner = outer.remove("taskDefinition").unwrap_or(Value::Null);
            let Value::Object(mut inner) = inner else {
                return Err(TaskDefError::InvalidType {
                    path: "taskDefinition".to_string(),
                    value: error::show_value(&inner),
                    found: error::python_type(&inner).to_string(),
                    expected: "<class 'dict'>".to_string(),
                });
            };
            let tags = outer.remove("tags").filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
            let moved_tags = match tags {
                Some(tags) if !inner.contains_key("tags") => {
                    inner.insert("tags".to_string(), tags);
                    " and its tags"
                }
                _ => "",
            };
            warnings.push(format!(
                "the document is DescribeTaskDefinition output; registering its taskDefinition{moved_tags}"
            ));
            Ok(inner)
        }
        Value::Object(object) => Ok(object),
        other => Err(TaskDefError::Shape(format!(
            "expected a JSON object (RegisterTaskDefinition input) or an array of container \
             definitions, found {}",
            error::python_type(&other)
        ))),
    }
}

fn strip_read_only(object: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    let removed: Vec<&str> =
        READ_ONLY_FIELDS.iter().copied().filter(|f| object.remove(*f).is_some()).collect();
    if !removed.is_empty() {
        warnings.push(format!(
            "ignored read-only fields of DescribeTaskDefinition output: {}",
            removed.join(", ")
        ));
    }
}

fn apply_family_override(
    object: &mut Map<String, Value>,
    family_override: Option<&str>,
    warnings: &mut Vec<String>,
) {
    let Some(family) = family_override else {
        return;
    };
    match object.get("family") {
        Some(Value::String(f)) if f == family => {}
        Some(old) => {
            warnings.push(format!(
                "family {} in the document replaced by --family \"{family}\"",
                error::show_value(old)
            ));
            object.insert("family".to_string(), Value::String(family.to_string()));
        }
        None => {
            object.insert("family".to_string(), Value::String(family.to_string()));
        }
    }
}

/// The typed read. An unknown field whose value is empty (`null`, `[]`, `{}`) carries nothing, so
/// it is dropped with a warning and the read retried (the ECS agent's own suite registers
/// `"portBindings": []`); any other unknown field is an error.
fn read_typed(
    mut value: Value,
    warnings: &mut Vec<String>,
) -> Result<TaskDefinition, TaskDefError> {
    for _ in 0..=MAX_DROPPED_EMPTY_FIELDS {
        let err = match serde_path_to_error::deserialize::<_, TaskDefinition>(&value) {
            Ok(def) => return Ok(def),
            Err(err) => err,
        };
        let message = err.inner().to_string();
        if let SerdeProblem::UnknownField { field, .. } = error::classify(&message) {
            let mut parent = error::segments(err.path());
            if parent.last() == Some(&PathSegment::Key(field.clone())) {
                parent.pop();
            }
            if remove_if_empty(&mut value, &parent, &field) {
                let mut full = parent.clone();
                full.push(PathSegment::Key(field.clone()));
                warnings.push(format!(
                    "ignored unknown empty field {} (not an ECS parameter)",
                    error::render_path(&full)
                ));
                continue;
            }
        }
        return Err(error::from_serde(&value, &err));
    }
    Err(TaskDefError::Shape(format!(
        "more than {MAX_DROPPED_EMPTY_FIELDS} unknown empty fields; refusing the document"
    )))
}

fn remove_if_empty(root: &mut Value, parent: &[PathSegment], field: &str) -> bool {
    let mut cur = root;
    for s in parent {
        cur = match (s, cur) {
            (PathSegment::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (PathSegment::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    let Value::Object(m) = cur else { return false };
    let empty = match m.get(field) {
        Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    if empty {
        m.remove(field);
    }
    empty
}
