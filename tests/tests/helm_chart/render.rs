//! # render — Helm-style rendering of `charts/berth` without Helm
//!
//! Go's text/template comes from the `gotmpl` crate (a port with Go-compatible output: actions,
//! pipelines, `define`/`template`, `with`/`range`/`if`, variables, whitespace trimming, Go's
//! builtins `printf`, `eq`, `lt`, `and`, `not`, `len`, `index`, …). On top of it this module adds
//! what Helm adds, only as far as the chart uses it:
//!
//! * the data: `.Values` (values.yaml deep-merged with the overrides), `.Release.{Name,
//!   Namespace, Service, IsInstall, IsUpgrade, Revision}`, `.Chart.{Name, Version, AppVersion,
//!   Description, Type}`, `.Template.{Name, BasePath}`;
//! * the Sprig/Helm functions listed in [`SPRIG_SUBSET`], with Sprig's argument order and
//!   semantics (`default` treats nil, false, 0, "" and empty collections as empty; `indent` pads
//!   every line, empty ones too; `toYaml` drops the trailing newline; `required` fails on nil or
//!   ""; `fail` always fails);
//! * `include` of the named templates of every `templates/_*.tpl` file;
//! * Helm's file handling: files starting with `_` are not rendered, a rendered file is split into
//!   documents on `---` lines, and documents that are empty or only comments are dropped.
//!
//! Stricter than Helm on purpose: a missing map key is an error (`missingkey=error`), so a
//! template that reads a value path values.yaml lacks fails the test instead of rendering
//! `<no value>`. Not supported (the chart must not use them): other Sprig functions (`dict`,
//! `list`, `toJson`, `b64enc`, `sha256sum`, …), `tpl`, `lookup`, `.Files`, `.Capabilities`,
//! subcharts, `values.schema.json`, hooks.

use anyhow::{Context as _, Result, anyhow, bail};
use gotmpl::{FuncMap, MissingKey, Template, TemplateError, Value};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The Sprig/Helm functions this renderer implements (the chart's `_helpers.tpl` names the same
/// list: a chart change that needs another one must add it here).
pub const SPRIG_SUBSET: &[&str] = &[
    "include",
    "default",
    "trunc",
    "trimSuffix",
    "contains",
    "replace",
    "quote",
    "toYaml",
    "nindent",
    "indent",
    "until",
    "add1",
    "int",
    "required",
    "fail",
];

/// One rendered template file.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Path under the chart, e.g. `templates/controller-statefulset.yaml`.
    pub file: String,
    pub text: String,
}

/// `helm template NAME CHART --namespace NAMESPACE --set …`, with `overrides` merged over
/// values.yaml. Returns every template file (NOTES.txt included) in path order.
pub fn render(
    chart: &Path,
    name: &str,
    namespace: &str,
    overrides: &Yaml,
) -> Result<Vec<Rendered>> {
    let chart_yaml: Yaml = read_yaml(&chart.join("Chart.yaml"))?;
    let mut values: Yaml = read_yaml(&chart.join("values.yaml"))?;
    merge(&mut values, overrides);
    let chart_name = chart_yaml
        .get("name")
        .and_then(Yaml::as_str)
        .ok_or_else(|| anyhow!("Chart.yaml: name is required"))?
        .to_string();

    let mut helpers = String::new();
    let mut files = Vec::new();
    let dir = chart.join("templates");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let file = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path())?;
        if file.starts_with('_') {
            helpers.push_str(&text);
            helpers.push('\n');
        } else {
            files.push((format!("templates/{file}"), text));
        }
    }

    let helpers_template: Arc<OnceLock<Template>> = Arc::new(OnceLock::new());
    let funcs = sprig(helpers_template.clone());
    let parsed = Template::new("_helpers")
        .missing_key(MissingKey::Error)
        .funcs(funcs.clone())
        .parse(&helpers)
        .context("parsing templates/_*.tpl")?;
    // The cycle (the helpers' `include` reaching the helpers) lives as long as the test.
    let _ = helpers_template.set(parsed);

    let mut out = Vec::new();
    for (file, text) in files {
        let data = context(&chart_yaml, &chart_name, &values, name, namespace, &file)?;
        let template = Template::new(&file)
            .missing_key(MissingKey::Error)
            .funcs(funcs.clone())
            .parse(&helpers)
            .and_then(|t| t.parse(&text))
            .with_context(|| format!("parsing {file}"))?;
        let text =
            template.execute_to_string(&data).with_context(|| format!("rendering {file}"))?;
        out.push(Rendered { file, text });
    }
    Ok(out)
}

/// Splits a rendered file into YAML documents the way Helm does, dropping empty ones.
pub fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    docs
}

fn read_yaml(path: &Path) -> Result<Yaml> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Deep merge like Helm's `--set`/`-f`: maps merge key by key, anything else replaces.
pub fn merge(base: &mut Yaml, over: &Yaml) {
    match (base, over) {
        (Yaml::Mapping(b), Yaml::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn context(
    chart_yaml: &Yaml,
    chart_name: &str,
    values: &Yaml,
    name: &str,
    namespace: &str,
    file: &str,
) -> Result<Value> {
    let field = |key: &str| chart_yaml.get(key).map(to_value).unwrap_or(Value::String("".into()));
    let map = |entries: Vec<(&str, Value)>| {
        Value::Map(Arc::new(entries.into_iter().map(|(k, v)| (Arc::from(k), v)).collect()))
    };
    let s = |v: &str| Value::String(v.into());
    Ok(map(vec![
        ("Values", to_value(values)),
        (
            "Release",
            map(vec![
                ("Name", s(name)),
                ("Namespace", s(namespace)),
                ("Service", s("Helm")),
                ("IsInstall", Value::Bool(true)),
                ("IsUpgrade", Value::Bool(false)),
                ("Revision", Value::Int(1)),
            ]),
        ),
        (
            "Chart",
            map(vec![
                ("Name", s(chart_name)),
                ("Version", field("version")),
                ("AppVersion", field("appVersion")),
                ("Description", field("description")),
                ("Type", field("type")),
            ]),
        ),
        (
            "Template",
            map(vec![
                ("Name", s(&format!("{chart_name}/{file}"))),
                ("BasePath", s(&format!("{chart_name}/templates"))),
            ]),
        ),
    ]))
}

/// serde_yaml → template value (YAML keys become strings, as in Helm).
pub fn to_value(y: &Yaml) -> Value {
    match y {
        Yaml::Null => Value::Nil,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (None, Some(u), _) => Value::Uint(u),
            (_, _, f) => Value::Float(f.unwrap_or(f64::NAN)),
        },
        Yaml::String(s) => Value::String(s.as_str().into()),
        Yaml::Sequence(items) => Value::List(items.iter().map(to_value).collect()),
        Yaml::Mapping(m) => Value::Map(Arc::new(
            m.iter().map(|(k, v)| (Arc::from(scalar_key(k).as_str()), to_value(v))).collect(),
        )),
        Yaml::Tagged(t) => to_value(&t.value),
    }
}

fn scalar_key(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_string(),
    }
}

/// Template value → serde_yaml (for `toYaml`).
fn to_yaml(v: &Value) -> gotmpl::Result<Yaml> {
    Ok(match v {
        Value::Nil => Yaml::Null,
        Value::Bool(b) => Yaml::Bool(*b),
        Value::Int(i) => Yaml::Number((*i).into()),
        Value::Uint(u) => Yaml::Number((*u).into()),
        Value::Float(f) => Yaml::Number((*f).into()),
        Value::String(s) => Yaml::String(s.to_string()),
        Value::List(items) => {
            Yaml::Sequence(items.iter().map(to_yaml).collect::<gotmpl::Result<_>>()?)
        }
        Value::Map(m) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, v) in m.iter() {
                out.insert(Yaml::String(k.to_string()), to_yaml(v)?);
            }
            Yaml::Mapping(out)
        }
        Value::Function(_) => return Err(exec("toYaml: cannot serialize a function")),
    })
}

fn exec(message: impl Into<String>) -> TemplateError {
    TemplateError::Exec(message.into())
}

fn arity(name: &str, args: &[Value], n: usize) -> gotmpl::Result<()> {
    if args.len() == n {
        Ok(())
    } else {
        Err(TemplateError::ArgCount { name: name.into(), expected: n, got: args.len() })
    }
}

/// Sprig's `empty`: nil, false, 0, "" and empty collections.
fn is_empty(v: &Value) -> bool {
    !v.is_truthy() && !matches!(v, Value::Function(_))
}

/// Sprig's `toString` of a scalar (`%v`), "" for nil.
fn text(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        other => other.to_string(),
    }
}

/// Sprig's `int` (spf13/cast `ToInt`): numbers truncate, strings parse (decimal), else 0.
fn to_int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.trim().parse::<i64>().unwrap_or(0),
        Value::Bool(b) => i64::from(*b),
        other => other.as_int().unwrap_or(0),
    }
}

fn string(s: String) -> Value {
    Value::String(s.into())
}

fn indent(width: i64, s: &str) -> String {
    let pad = " ".repeat(usize::try_from(width).unwrap_or(0));
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// Go's `strconv.Quote` for the strings a chart quotes (printable text): backslash, quote and
/// control characters escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The functions of [`SPRIG_SUBSET`]; `include` executes a named template of `helpers`.
fn sprig(helpers: Arc<OnceLock<Template>>) -> FuncMap {
    type F = Arc<dyn Fn(&[Value]) -> gotmpl::Result<Value> + Send + Sync>;
    let mut m: BTreeMap<String, F> = BTreeMap::new();
    let mut add = |name: &str, f: F| {
        m.insert(name.to_string(), f);
    };
    add(
        "include",
        Arc::new(move |args| {
            arity("include", args, 2)?;
            let name =
                args[0].as_str().ok_or_else(|| exec("include: the name must be a string"))?;
            let template = helpers.get().ok_or_else(|| exec("include: helpers not parsed yet"))?;
            template.execute_template_to_string(name, &args[1]).map(string)
        }),
    );
    add(
        "default",
        Arc::new(|args| {
            // `default DEFAULT VALUE`; a pipeline's value is the last argument, possibly absent.
            match args {
                [d] => Ok(d.clone()),
                [d, v] => Ok(if is_empty(v) { d.clone() } else { v.clone() }),
                _ => Err(TemplateError::ArgCount {
                    name: "default".into(),
                    expected: 2,
                    got: args.len(),
                }),
            }
        }),
    );
    add(
        "trunc",
        Arc::new(|args| {
            arity("trunc", args, 2)?;
            let n = to_int(&args[0]);
            let s: Vec<char> = text(&args[1]).chars().collect();
            let len = s.len() as i64;
            let kept: String = if n >= 0 {
                s.iter().take(n.min(len) as usize).collect()
            } else {
                s.iter().skip((len + n).max(0) as usize).collect()
            };
            Ok(string(kept))
        }),
    );
    add(
        "trimSuffix",
        Arc::new(|args| {
            arity("trimSuffix", args, 2)?;
            let (suffix, s) = (text(&args[0]), text(&args[1]));
            Ok(string(s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string()))
        }),
    );
    add(
        "contains",
        Arc::new(|args| {
            arity("contains", args, 2)?;
            Ok(Value::Bool(text(&args[1]).contains(text(&args[0]).as_str())))
        }),
    );
    add(
        "replace",
        Arc::new(|args| {
            arity("replace", args, 3)?;
            Ok(string(text(&args[2]).replace(text(&args[0]).as_str(), &text(&args[1]))))
        }),
    );
    add(
        "quote",
        Arc::new(|args| {
            let parts: Vec<String> = args
                .iter()
                .filter(|a| !matches!(a, Value::Nil))
                .map(|a| go_quote(&text(a)))
                .collect();
            Ok(string(parts.join(" ")))
        }),
    );
    add(
        "toYaml",
        Arc::new(|args| {
            arity("toYaml", args, 1)?;
            let yaml = serde_yaml::to_string(&to_yaml(&args[0])?)
                .map_err(|e| exec(format!("toYaml: {e}")))?;
            Ok(string(yaml.trim_end_matches('\n').to_string()))
        }),
    );
    add(
        "indent",
        Arc::new(|args| {
            arity("indent", args, 2)?;
            Ok(string(indent(to_int(&args[0]), &text(&args[1]))))
        }),
    );
    add(
        "nindent",
        Arc::new(|args| {
            arity("nindent", args, 2)?;
            Ok(string(format!("\n{}", indent(to_int(&args[0]), &text(&args[1])))))
        }),
    );
    add(
        "until",
        Arc::new(|args| {
            arity("until", args, 1)?;
            let n = to_int(&args[0]);
            if n > 10_000 {
                return Err(exec(format!("until: {n} is too large for a chart")));
            }
            Ok(Value::List((0..n.max(0)).map(Value::Int).collect()))
        }),
    );
    add(
        "add1",
        Arc::new(|args| {
            arity("add1", args, 1)?;
            Ok(Value::Int(to_int(&args[0]) + 1))
        }),
    );
    add(
        "int",
        Arc::new(|args| {
            arity("int", args, 1)?;
            Ok(Value::Int(to_int(&args[0])))
        }),
    );
    add(
        "required",
        Arc::new(|args| {
            arity("required", args, 2)?;
            match &args[1] {
                Value::Nil => Err(exec(text(&args[0]))),
                Value::String(s) if s.is_empty() => Err(exec(text(&args[0]))),
                v => Ok(v.clone()),
            }
        }),
    );
    add(
        "fail",
        Arc::new(|args| {
            arity("fail", args, 1)?;
            Err(exec(text(&args[0])))
        }),
    );
    m
}

/// Renders with `overrides` and fails unless rendering fails with a message containing `needle`.
pub fn expect_failure(chart: &Path, overrides: &Yaml, needle: &str) -> Result<()> {
    match render(chart, "berth", "default", overrides) {
        Ok(_) => bail!("rendering with {overrides:?} succeeded; expected an error with {needle:?}"),
        Err(e) => {
            let message = format!("{e:#}");
            if message.contains(needle) {
                Ok(())
            } else {
                bail!("rendering failed with {message:?}; expected {needle:?}")
            }
        }
    }
}
