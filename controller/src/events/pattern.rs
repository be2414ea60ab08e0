//! # events::pattern — EventBridge event patterns: compile once, match many events
//!
//! Owns the pattern language of Amazon EventBridge rules (content filtering), so that Berth's event
//! subscriptions filter exactly as an EventBridge rule would.
//!
//! Data flow: JSON text → [`Pattern::parse`] → `compile_object` (validates every element and
//! reports the JSONPath of the first bad one, lowercases ignore-case operands, splits wildcards,
//! masks CIDR networks) → [`Pattern`], a tree of `ObjectNode`s whose leaves are `Vec<Matcher>` →
//! [`Pattern::matches`] walks an event alongside the tree without allocating.
//!
//! Must not touch: IO, the store, async, clocks. Pure and self-contained; `serde_json` only.
//!
//! Semantics follow EventBridge (and its open-source engine, aws/event-ruler). Where the docs are
//! silent, the choices made here are:
//! * The top-level pattern `{}` is accepted and matches every event (EventBridge rejects it; Berth
//!   uses it as "subscribe to everything"). A nested empty object (`{"detail": {}}`) and an empty
//!   `$or` alternative are rejected, as in EventBridge ("Empty objects are not allowed").
//! * Arrays in the event are flattened (nested arrays too): a leaf matches if any element matches;
//!   a nested pattern matches an array of objects if one element matches the whole sub-pattern
//!   (array-consistent, like `rulesForJSONEvent`). An array without objects counts as "absent" for a
//!   nested pattern.
//! * `anything-but` on an array field matches when some element is not excluded. It matches string
//!   and number values only: a value of the other kind is never excluded (`{"anything-but": "x"}`
//!   matches `5`), and `true`/`false`/`null`/objects never match.
//! * `exists` looks at leaves only: `exists: true` needs a scalar (incl. `null`) or an array holding
//!   one; an object value, an empty array or a missing key satisfy `exists: false` instead. A
//!   missing parent object also satisfies `exists: false`.
//! * `$or` must be an array of at least two non-empty objects (EventBridge would silently treat a
//!   malformed `$or` as a field name; we reject it). Each alternative is ANDed with its siblings.
//! * Numbers compare as `f64` (integers above 2^53 may compare equal to neighbours); numeric bounds
//!   must lie within ±5e9, EventBridge's limit; a range needs lower < upper.
//! * `cidr` requires `address/length`; host bits are masked off; IPv4 never matches IPv6.
//! * Events that are not JSON objects match nothing.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// The key that introduces alternatives at an object level.
const OR_KEY: &str = "$or";
/// EventBridge accepts numeric bounds only within ±5.0e9.
const NUMERIC_LIMIT: f64 = 5.0e9;
/// Offending values longer than this are shortened in error messages.
const SHOWN_VALUE_MAX: usize = 60;
/// The message for a malformed `numeric` array.
const NUMERIC_SHAPE: &str =
    r#""numeric" expects pairs of operator and number, e.g. [">", 0, "<=", 5]"#;

/// A compiled EventBridge event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: ObjectNode,
}

/// Why a pattern was rejected, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid event pattern at {path}: {message}")]
pub struct PatternError {
    /// JSONPath-like location of the bad element, e.g. `$.detail.lastStatus[1]`.
    pub path: String,
    /// The rule that was broken.
    pub message: String,
}

impl Pattern {
    /// Parses the JSON text of a pattern.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| PatternError { path: "$".to_owned(), message: e.to_string() })?;
        Pattern::from_value(&value)
    }

    /// Compiles a parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Pattern, PatternError> {
        match value {
            Value::Object(map) => Ok(Pattern { root: compile_object(map, "$", true)? }),
            other => fail("$", format!("a pattern must be a JSON object, got {}", show(other))),
        }
    }

    /// The pattern `{}`: matches every event.
    pub fn any() -> Pattern {
        Pattern { root: ObjectNode::default() }
    }

    /// True if `event` (a JSON object) matches.
    pub fn matches(&self, event: &Value) -> bool {
        event.as_object().is_some_and(|map| self.root.matches(Some(map)))
    }
}

// ---- compiled form ---------------------------------------------------------------------------

/// One object level of a pattern: all `fields` must match, and one of `any_of` if it is not empty.
#[derive(Debug, Clone, PartialEq, Default)]
struct ObjectNode {
    fields: Vec<(String, FieldNode)>,
    any_of: Vec<ObjectNode>,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldNode {
    Nested(ObjectNode),
    /// Alternatives, ORed.
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// Ignore-case operands are stored lowercased (char by char, as matching folds them).
#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Literal),
    Prefix(String),
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(NumericRange),
    Exists(bool),
    Cidr(Cidr),
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    Prefix(String),
    Suffix(String),
    IgnoreCase(Vec<String>),
    Wildcards(Vec<Wildcard>),
}

/// `parts` joined by `*`; a single part means no star at all.
#[derive(Debug, Clone, PartialEq)]
struct Wildcard {
    parts: Vec<String>,
}

/// A bound is `(value, inclusive)`.
#[derive(Debug, Clone, PartialEq)]
struct NumericRange {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Cidr {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

// ---- compilation -----------------------------------------------------------------------------

fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, PatternError> {
    Err(error(path, message))
}

fn error(path: &str, message: impl Into<String>) -> PatternError {
    PatternError { path: path.to_owned(), message: message.into() }
}

/// Renders an offending value for a message, shortened if long.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN_VALUE_MAX {
        return text;
    }
    let mut short: String = text.chars().take(SHOWN_VALUE_MAX).collect();
    short.push('…');
    short
}

fn quote(text: &str) -> String {
    Value::from(text).to_string()
}

fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$'));
    if plain { format!("{parent}.{key}") } else { format!("{parent}[{}]", quote(key)) }
}

fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

fn is_operator_name(key: &str) -> bool {
    const OPERATORS: [&str; 8] = [
        "prefix",
        "suffix",
        "equals-ignore-case",
        "wildcard",
        "anything-but",
        "numeric",
        "exists",
        "cidr",
    ];
    OPERATORS.contains(&key)
}

fn compile_object(
    map: &Map<String, Value>,
    path: &str,
    allow_empty: bool,
) -> Result<ObjectNode, PatternError> {
    if map.is_empty() && !allow_empty {
        return fail(path, "an empty object is not allowed; omit the field to ignore it");
    }
    let mut node = ObjectNode::default();
    for (key, value) in map {
        let child = key_path(path, key);
        if key == OR_KEY {
            node.any_of = compile_or(value, &child)?;
            continue;
        }
        let field = match value {
            Value::Object(sub) => FieldNode::Nested(compile_object(sub, &child, false)?),
            Value::Array(items) => FieldNode::Leaf(compile_leaf(items, &child)?),
            other => return Err(scalar_field_error(key, other, &child)),
        };
        node.fields.push((key.clone(), field));
    }
    Ok(node)
}

fn scalar_field_error(key: &str, value: &Value, path: &str) -> PatternError {
    if key == "exists" {
        return error(
            path,
            r#""exists" is allowed only on leaf fields, inside the leaf's array: "field": [{"exists": true}]"#,
        );
    }
    if is_operator_name(key) {
        let name = quote(key);
        return error(
            path,
            format!(r#"operator {name} must be inside a leaf's array: [{{{name}: …}}]"#),
        );
    }
    error(path, format!("a leaf must be an array of values or operators, got {}", show(value)))
}

fn compile_or(value: &Value, path: &str) -> Result<Vec<ObjectNode>, PatternError> {
    let items = match value {
        Value::Array(items) if items.len() >= 2 => items,
        other => {
            let got = match other {
                Value::Array(items) => items.len().to_string(),
                _ => show(other),
            };
            let message = format!("\"$or\" takes an array of at least two patterns, got {got}");
            return fail(path, message);
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item_path = index_path(path, i);
            match item {
                Value::Object(map) => compile_object(map, &item_path, false),
                other => {
                    let got = show(other);
                    fail(&item_path, format!(r#"a "$or" alternative must be an object, got {got}"#))
                }
            }
        })
        .collect()
}

fn compile_leaf(items: &[Value], path: &str) -> Result<Vec<Matcher>, PatternError> {
    if items.is_empty() {
        return fail(path, "a leaf's array must not be empty (it would match nothing)");
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item_path = index_path(path, i);
            match item {
                Value::Object(op) => compile_operator(op, &item_path),
                Value::Array(_) => {
                    let got = show(item);
                    fail(
                        &item_path,
                        format!("a leaf alternative must be a value or operator, got {got}"),
                    )
                }
                Value::String(text) => Ok(Matcher::Exact(Literal::Str(text.clone()))),
                Value::Number(_) => Ok(Matcher::Exact(Literal::Num(number(item, &item_path)?))),
                Value::Bool(b) => Ok(Matcher::Exact(Literal::Bool(*b))),
                Value::Null => Ok(Matcher::Exact(Literal::Null)),
            }
        })
        .collect()
}

fn number(value: &Value, path: &str) -> Result<f64, PatternError> {
    value.as_f64().ok_or_else(|| error(path, format!("expected a number, got {}", show(value))))
}

fn string_operand<'a>(
    operator: &str,
    value: &'a Value,
    path: &str,
) -> Result<&'a str, PatternError> {
    value.as_str().ok_or_else(|| {
        error(path, format!("{} takes a string, got {}", quote(operator), show(value)))
    })
}

/// The one `(name, operand)` pair of an operator object.
fn single_entry<'a>(
    op: &'a Map<String, Value>,
    path: &str,
) -> Result<(&'a String, &'a Value), PatternError> {
    let mut entries = op.iter();
    match (entries.next(), op.len()) {
        (Some(entry), 1) => Ok(entry),
        (None, _) => fail(path, "an operator object must have exactly one key, got none"),
        _ => {
            let keys = op.keys().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
            fail(
                path,
                format!("an operator object must have exactly one key, got {}: {keys}", op.len()),
            )
        }
    }
}

fn compile_operator(op: &Map<String, Value>, path: &str) -> Result<Matcher, PatternError> {
    let (name, operand) = single_entry(op, path)?;
    let op_path = key_path(path, name);
    Ok(match name.as_str() {
        "prefix" => match affix_operand("prefix", operand, &op_path)? {
            (s, false) => Matcher::Prefix(s),
            (s, true) => Matcher::PrefixIgnoreCase(s),
        },
        "suffix" => match affix_operand("suffix", operand, &op_path)? {
            (s, false) => Matcher::Suffix(s),
            (s, true) => Matcher::SuffixIgnoreCase(s),
        },
        "equals-ignore-case" => {
            Matcher::EqualsIgnoreCase(fold(string_operand(name, operand, &op_path)?))
        }
        "wildcard" => Matcher::Wildcard(Wildcard::compile(
            string_operand(name, operand, &op_path)?,
            &op_path,
        )?),
        "anything-but" => Matcher::AnythingBut(compile_anything_but(operand, &op_path)?),
        "numeric" => Matcher::Numeric(compile_numeric(operand, &op_path)?),
        "exists" => match operand {
            Value::Bool(b) => Matcher::Exists(*b),
            other => {
                return fail(&op_path, format!(r#""exists" takes true or false, got {other}"#));
            }
        },
        "cidr" => Matcher::Cidr(Cidr::compile(string_operand(name, operand, &op_path)?, &op_path)?),
        other => return fail(path, format!("unknown operator {}", quote(other))),
    })
}

/// The operand of `prefix`/`suffix`: a string, or `{"equals-ignore-case": string}` (→ folded, true).
fn affix_operand(name: &str, operand: &Value, path: &str) -> Result<(String, bool), PatternError> {
    match operand {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Object(inner) => {
            let (key, value) = single_entry(inner, path)?;
            if key != "equals-ignore-case" {
                let (name, key) = (quote(name), quote(key));
                let message =
                    format!(r#"{name} accepts only {{"equals-ignore-case": …}}, got {key}"#);
                return fail(path, message);
            }
            let inner_path = key_path(path, key);
            Ok((fold(string_operand(key, value, &inner_path)?), true))
        }
        other => fail(path, format!("{} takes a string, got {}", quote(name), show(other))),
    }
}

fn compile_anything_but(operand: &Value, path: &str) -> Result<AnythingBut, PatternError> {
    match operand {
        Value::String(s) => Ok(AnythingBut::Strings(vec![s.clone()])),
        Value::Number(_) => Ok(AnythingBut::Numbers(vec![number(operand, path)?])),
        Value::Array(items) => compile_anything_but_list(items, path),
        Value::Object(inner) => {
            let (key, value) = single_entry(inner, path)?;
            let inner_path = key_path(path, key);
            match key.as_str() {
                "prefix" | "suffix" => {
                    let text = string_operand(key, value, &inner_path)?;
                    if text.is_empty() {
                        let message =
                            format!(r#"{} inside "anything-but" must not be empty"#, quote(key));
                        return fail(&inner_path, message);
                    }
                    Ok(if key == "prefix" {
                        AnythingBut::Prefix(text.to_owned())
                    } else {
                        AnythingBut::Suffix(text.to_owned())
                    })
                }
                "equals-ignore-case" => Ok(AnythingBut::IgnoreCase(
                    string_list(key, value, &inner_path)?
                        .into_iter()
                        .map(|(text, _)| fold(text))
                        .collect(),
                )),
                "wildcard" => string_list(key, value, &inner_path)?
                    .into_iter()
                    .map(|(text, at)| Wildcard::compile(text, &at))
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Wildcards),
                other => {
                    let got = quote(other);
                    let message = format!(
                        r#""anything-but" accepts "prefix", "suffix", "equals-ignore-case" or "wildcard" in an object, got {got}"#
                    );
                    fail(path, message)
                }
            }
        }
        other => {
            let got = show(other);
            fail(
                path,
                format!(
                    r#""anything-but" takes a string, a number, a list or an object, got {got}"#
                ),
            )
        }
    }
}

fn compile_anything_but_list(items: &[Value], path: &str) -> Result<AnythingBut, PatternError> {
    let Some(first) = items.first() else {
        return fail(path, "an \"anything-but\" list must not be empty");
    };
    if first.is_number() {
        let mut numbers = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = index_path(path, i);
            if !item.is_number() {
                return Err(mixed_list_error(item, &at));
            }
            numbers.push(number(item, &at)?);
        }
        return Ok(AnythingBut::Numbers(numbers));
    }
    let mut strings = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => strings.push(s.clone()),
            other => return Err(mixed_list_error(other, &index_path(path, i))),
        }
    }
    Ok(AnythingBut::Strings(strings))
}

fn mixed_list_error(item: &Value, path: &str) -> PatternError {
    error(
        path,
        format!("an \"anything-but\" list must be all strings or all numbers, got {}", show(item)),
    )
}

/// A string or a non-empty array of strings, each with its path.
fn string_list<'a>(
    name: &str,
    value: &'a Value,
    path: &str,
) -> Result<Vec<(&'a str, String)>, PatternError> {
    let items = match value {
        Value::String(s) => return Ok(vec![(s.as_str(), path.to_owned())]),
        Value::Array(items) if !items.is_empty() => items,
        other => {
            let message = format!(
                "{} takes a string or a non-empty list of strings, got {}",
                quote(name),
                show(other)
            );
            return fail(path, message);
        }
    };
    let mut texts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = index_path(path, i);
        texts.push((string_operand(name, item, &at)?, at));
    }
    Ok(texts)
}

fn compile_numeric(operand: &Value, path: &str) -> Result<NumericRange, PatternError> {
    let items = match operand {
        Value::Array(items) if items.len() == 2 || items.len() == 4 => items,
        _ => return fail(path, NUMERIC_SHAPE),
    };
    let operator = |i: usize| -> Result<&str, PatternError> {
        match &items[i] {
            Value::String(op) if matches!(op.as_str(), "=" | "<" | "<=" | ">" | ">=") => Ok(op),
            other => {
                let message = format!(r#"unknown numeric operator {other}; use = < <= > >="#);
                fail(&index_path(path, i), message)
            }
        }
    };
    let bound = |i: usize| -> Result<f64, PatternError> {
        let at = index_path(path, i);
        let value = &items[i];
        if !value.is_number() {
            return fail(&at, format!("a numeric bound must be a number, got {}", show(value)));
        }
        let n = number(value, &at)?;
        if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&n) {
            return fail(&at, format!("a numeric bound must lie within ±5e9, got {}", show(value)));
        }
        Ok(n)
    };
    let first = operator(0)?;
    let first_bound = bound(1)?;
    if items.len() == 2 {
        let b = Some((first_bound, first.contains('=')));
        let (lower, upper) = match first {
            "=" => (b, b),
            ">" | ">=" => (b, None),
            _ => (None, b),
        };
        return Ok(NumericRange { lower, upper });
    }
    if !matches!(first, ">" | ">=") {
        let message = format!(r#"a numeric range must start with ">" or ">=", got "{first}""#);
        return fail(&index_path(path, 0), message);
    }
    let second = operator(2)?;
    if !matches!(second, "<" | "<=") {
        let message = format!(r#"a numeric range must end with "<" or "<=", got "{second}""#);
        return fail(&index_path(path, 2), message);
    }
    let second_bound = bound(3)?;
    if first_bound >= second_bound {
        let message =
            format!("a numeric range needs lower < upper, got {first_bound}, {second_bound}");
        return fail(path, message);
    }
    Ok(NumericRange {
        lower: Some((first_bound, first == ">=")),
        upper: Some((second_bound, second == "<=")),
    })
}

impl Wildcard {
    /// `*` is any run of characters, `\*` a star, `\\` a backslash; `**` and other escapes are errors.
    fn compile(text: &str, path: &str) -> Result<Wildcard, PatternError> {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut previous_was_star = false;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if previous_was_star {
                        return fail(
                            path,
                            r#"consecutive wildcard characters ("**") are not allowed"#,
                        );
                    }
                    parts.push(std::mem::take(&mut current));
                    previous_was_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => current.push(escaped),
                    Some(other) => {
                        let message =
                            format!(r#"a backslash may escape only "*" or "\", got "\{other}""#);
                        return fail(path, message);
                    }
                    None => return fail(path, "a wildcard must not end in a lone backslash"),
                },
                other => current.push(other),
            }
            previous_was_star = false;
        }
        parts.push(current);
        Ok(Wildcard { parts })
    }

    fn matches(&self, text: &str) -> bool {
        let [first, middle @ .., last] = self.parts.as_slice() else {
            return self.parts.first().is_some_and(|only| only == text);
        };
        let Some(rest) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some(mut rest) = rest.strip_suffix(last.as_str()) else {
            return false;
        };
        for part in middle {
            match rest.find(part.as_str()) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        true
    }
}

impl Cidr {
    fn compile(text: &str, path: &str) -> Result<Cidr, PatternError> {
        let got = quote(text);
        let message =
            format!(r#""cidr" takes "address/prefix-length", e.g. "10.0.0.0/24", got {got}"#);
        let bad = || error(path, message.as_str());
        let (address, length) = text.split_once('/').ok_or_else(bad)?;
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let length: u32 = length.parse().map_err(|_| bad())?;
        match address {
            IpAddr::V4(v4) if length <= 32 => {
                let mask = u32::MAX.checked_shl(32 - length).unwrap_or(0);
                Ok(Cidr::V4 { network: u32::from(v4) & mask, mask })
            }
            IpAddr::V6(v6) if length <= 128 => {
                let mask = u128::MAX.checked_shl(128 - length).unwrap_or(0);
                Ok(Cidr::V6 { network: u128::from(v6) & mask, mask })
            }
            _ => Err(bad()),
        }
    }

    fn contains(&self, text: &str) -> bool {
        match (self, text.parse::<IpAddr>()) {
            (Cidr::V4 { network, mask }, Ok(IpAddr::V4(ip))) => u32::from(ip) & mask == *network,
            (Cidr::V6 { network, mask }, Ok(IpAddr::V6(ip))) => u128::from(ip) & mask == *network,
            _ => false,
        }
    }
}

// ---- matching --------------------------------------------------------------------------------

impl ObjectNode {
    /// `event` is `None` when this level is absent from the event.
    fn matches(&self, event: Option<&Map<String, Value>>) -> bool {
        let fields = self.fields.iter().all(|(key, node)| {
            let value = event.and_then(|map| map.get(key));
            match node {
                FieldNode::Leaf(alternatives) => {
                    alternatives.iter().any(|m| m.matches_field(value))
                }
                FieldNode::Nested(sub) => sub.matches_nested(value),
            }
        });
        fields && (self.any_of.is_empty() || self.any_of.iter().any(|alt| alt.matches(event)))
    }

    /// Arrays of objects are flattened: one element must match the whole sub-pattern.
    fn matches_nested(&self, value: Option<&Value>) -> bool {
        match value {
            Some(Value::Object(map)) => self.matches(Some(map)),
            Some(Value::Array(items)) if items.iter().any(is_container) => items
                .iter()
                .filter(|item| is_container(item))
                .any(|item| self.matches_nested(Some(item))),
            _ => self.matches(None),
        }
    }
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Object(_) | Value::Array(_))
}

/// True if the field holds a leaf: a scalar (incl. null), or an array holding one.
fn has_leaf(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Object(_)) => false,
        Some(Value::Array(items)) => items.iter().any(|item| has_leaf(Some(item))),
        Some(_) => true,
    }
}

impl Matcher {
    fn matches_field(&self, value: Option<&Value>) -> bool {
        match self {
            Matcher::Exists(wanted) => has_leaf(value) == *wanted,
            _ => value.is_some_and(|v| self.matches_value(v)),
        }
    }

    fn matches_value(&self, value: &Value) -> bool {
        match value {
            Value::Array(items) => items.iter().any(|item| self.matches_value(item)),
            Value::Object(_) => false,
            scalar => self.matches_scalar(scalar),
        }
    }

    fn matches_scalar(&self, value: &Value) -> bool {
        let text = value.as_str();
        match self {
            Matcher::Exact(literal) => literal.matches(value),
            Matcher::Prefix(p) => text.is_some_and(|s| s.starts_with(p.as_str())),
            Matcher::PrefixIgnoreCase(p) => text.is_some_and(|s| starts_with_folded(s, p)),
            Matcher::Suffix(p) => text.is_some_and(|s| s.ends_with(p.as_str())),
            Matcher::SuffixIgnoreCase(p) => text.is_some_and(|s| ends_with_folded(s, p)),
            Matcher::EqualsIgnoreCase(p) => text.is_some_and(|s| equals_folded(s, p)),
            Matcher::Wildcard(w) => text.is_some_and(|s| w.matches(s)),
            Matcher::AnythingBut(ab) => ab.matches(value),
            Matcher::Numeric(range) => value.as_f64().is_some_and(|n| range.contains(n)),
            Matcher::Cidr(cidr) => text.is_some_and(|s| cidr.contains(s)),
            Matcher::Exists(_) => false,
        }
    }
}

impl Literal {
    fn matches(&self, value: &Value) -> bool {
        match self {
            Literal::Str(s) => value.as_str() == Some(s.as_str()),
            Literal::Num(n) => value.as_f64() == Some(*n),
            Literal::Bool(b) => value.as_bool() == Some(*b),
            Literal::Null => value.is_null(),
        }
    }
}

impl AnythingBut {
    /// Strings and numbers only; a value of the other kind is never excluded.
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (AnythingBut::Numbers(excluded), Value::Number(_)) => {
                value.as_f64().is_some_and(|n| !excluded.contains(&n))
            }
            (AnythingBut::Numbers(_), Value::String(_)) => true,
            (_, Value::Number(_)) => true,
            (AnythingBut::Strings(excluded), Value::String(s)) => !excluded.contains(s),
            (AnythingBut::Prefix(p), Value::String(s)) => !s.starts_with(p.as_str()),
            (AnythingBut::Suffix(p), Value::String(s)) => !s.ends_with(p.as_str()),
            (AnythingBut::IgnoreCase(excluded), Value::String(s)) => {
                !excluded.iter().any(|p| equals_folded(s, p))
            }
            (AnythingBut::Wildcards(excluded), Value::String(s)) => {
                !excluded.iter().any(|w| w.matches(s))
            }
            _ => false,
        }
    }
}

impl NumericRange {
    fn contains(&self, n: f64) -> bool {
        let above = match self.lower {
            Some((bound, true)) => n >= bound,
            Some((bound, false)) => n > bound,
            None => true,
        };
        let below = match self.upper {
            Some((bound, true)) => n <= bound,
            Some((bound, false)) => n < bound,
            None => true,
        };
        above && below
    }
}

/// `folded` is already lowercased with [`fold`]; `text` is folded on the fly, without allocating.
fn equals_folded(text: &str, folded: &str) -> bool {
    text.chars().flat_map(char::to_lowercase).eq(folded.chars())
}

fn starts_with_folded(text: &str, folded: &str) -> bool {
    let mut chars = text.chars().flat_map(char::to_lowercase);
    folded.chars().all(|c| chars.next() == Some(c))
}

fn ends_with_folded(text: &str, folded: &str) -> bool {
    let mut chars = text.chars().rev().flat_map(|c| c.to_lowercase().rev());
    folded.chars().rev().all(|c| chars.next() == Some(c))
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
