//! The cluster query AST and its canonical text form.
//!
//! [`Expr`] is what the parser builds and the evaluator walks. `Display` prints the canonical
//! form — symbolic operators, `and`/`or`/`not` in lower case, parentheses only where precedence
//! needs them, literals quoted only when they must be — and parsing that text gives back an equal
//! `Expr` (the round trip the property tests check).
//!
//! A [`Term`] keeps its values as written plus a private, pre-parsed form (number, version, date
//! range, compiled regex) so evaluation never re-parses; equality compares only what was written.

use std::fmt;

use regex::Regex;

use super::lexer::bare_literal_len;
use super::literal::{DateRange, Version};

/// A parsed cluster query expression (ECS-NOTES §2.5). Build one with [`Expr::parse`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A single `subject operator [argument]` condition.
    Term(Term),
    /// `not` / `!`.
    Not(Box<Expr>),
    /// `and` / `&&`.
    And(Box<Expr>, Box<Expr>),
    /// `or` / `||`.
    Or(Box<Expr>, Box<Expr>),
}

/// What a term tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `attribute:NAME`: a built-in or custom attribute of the instance.
    Attribute(String),
    /// `ec2InstanceId`: Berth's container instance id.
    InstanceId,
    /// `registeredAt`: when the instance registered.
    RegisteredAt,
    /// `runningTasksCount`: non-stopped tasks on the instance (changes as a batch is placed).
    RunningTasksCount,
    /// `agentConnected`: `true` / `false`.
    AgentConnected,
    /// `agentVersion`: compared as a dotted version.
    AgentVersion,
    /// `task:group`: true when the instance runs at least one task of a matching group (changes
    /// as a batch is placed).
    TaskGroup,
}

/// A comparison. Word forms (`equals`, `not_in`, …) parse to the same variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

/// One condition. Construct through [`Expr::parse`]; the fields are public to read.
#[derive(Debug, Clone)]
pub struct Term {
    pub subject: Subject,
    pub operator: Operator,
    /// The values as written (unquoted): none for `exists`, one or more for `in`, else one.
    pub values: Vec<String>,
    /// Pre-parsed values, one per entry of `values` (private: always derived from them).
    pub(crate) typed: Vec<Typed>,
    /// The compiled, whole-value-anchored pattern of `=~` / `!~`.
    pub(crate) pattern: Option<Regex>,
}

impl PartialEq for Term {
    fn eq(&self, other: &Self) -> bool {
        self.subject == other.subject
            && self.operator == other.operator
            && self.values == other.values
    }
}

/// A value pre-parsed for its subject.
#[derive(Debug, Clone)]
pub(crate) enum Typed {
    /// Compared as text (attributes also numerically when both sides are numbers).
    Text(Option<f64>),
    Bool(bool),
    Version(Version),
    Date(DateRange),
    Count(i64),
}

impl Subject {
    /// The operators ECS documents for this subject (attributes take them all).
    pub fn operators(&self) -> &'static [Operator] {
        use Operator::*;
        match self {
            Subject::Attribute(_) => {
                &[Eq, Ne, Gt, Ge, Lt, Le, Exists, NotExists, In, NotIn, Matches, NotMatches]
            }
            Subject::InstanceId | Subject::AgentConnected | Subject::TaskGroup => {
                &[Eq, Ne, In, NotIn, Matches, NotMatches]
            }
            Subject::RegisteredAt | Subject::RunningTasksCount | Subject::AgentVersion => {
                &[Eq, Ne, Gt, Ge, Lt, Le]
            }
        }
    }

    /// True when the subject's value can change while a batch is being placed.
    pub fn depends_on_placements(&self) -> bool {
        matches!(self, Subject::RunningTasksCount | Subject::TaskGroup)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Attribute(name) => write!(f, "attribute:{name}"),
            Subject::InstanceId => f.write_str("ec2InstanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::AgentConnected => f.write_str("agentConnected"),
            Subject::AgentVersion => f.write_str("agentVersion"),
            Subject::TaskGroup => f.write_str("task:group"),
        }
    }
}

impl Operator {
    /// The symbolic form (`==`, `!exists`, `=~`, …), which `Display` prints.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Eq => "==",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Exists => "exists",
            Operator::NotExists => "!exists",
            Operator::In => "in",
            Operator::NotIn => "!in",
            Operator::Matches => "=~",
            Operator::NotMatches => "!~",
        }
    }

    /// The operator whose result this one negates (`!=` → `==`), if it is a negated form.
    pub fn negates(self) -> Option<Operator> {
        match self {
            Operator::Ne => Some(Operator::Eq),
            Operator::NotExists => Some(Operator::Exists),
            Operator::NotIn => Some(Operator::In),
            Operator::NotMatches => Some(Operator::Matches),
            _ => None,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// True when every `(`, `[`, `{` in `value` is closed, in order (the lexer's depth count ends at 0).
fn brackets_balance(value: &str) -> bool {
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => {}
        }
    }
    depth == 0
}

/// Prints `value` bare when the lexer would read it back whole, else single-quoted with `\`
/// escaping `'` and `\`.
fn write_literal(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    // Brackets must balance too: inside a list, `[=[]` would read `=[]` as one literal.
    let bare = !value.is_empty()
        && !value.starts_with(['(', '[', '"'])
        && bare_literal_len(value) == value.len()
        && brackets_balance(value);
    if bare {
        return f.write_str(value);
    }
    f.write_str("'")?;
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("'")
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.subject, self.operator)?;
        match self.operator {
            Operator::Exists | Operator::NotExists => Ok(()),
            Operator::In | Operator::NotIn => {
                f.write_str(" [")?;
                for (k, v) in self.values.iter().enumerate() {
                    if k > 0 {
                        f.write_str(", ")?;
                    }
                    write_literal(f, v)?;
                }
                f.write_str("]")
            }
            _ => {
                f.write_str(" ")?;
                write_literal(f, self.values.first().map_or("", String::as_str))
            }
        }
    }
}

/// Binding strength: `or` 0, `and` 1, `not` and terms 2.
impl Expr {
    fn write(&self, f: &mut fmt::Formatter<'_>, context: u8) -> fmt::Result {
        let (own, open) = match self {
            Expr::Or(..) => (0, context > 0),
            Expr::And(..) => (1, context > 1),
            _ => (2, false),
        };
        if open {
            f.write_str("(")?;
        }
        match self {
            Expr::Term(t) => write!(f, "{t}")?,
            Expr::Not(inner) => {
                f.write_str("not ")?;
                inner.write(f, 2)?;
            }
            // Operators associate to the left, so a right operand of the same kind needs parentheses.
            Expr::And(l, r) => {
                l.write(f, own)?;
                f.write_str(" and ")?;
                r.write(f, own + 1)?;
            }
            Expr::Or(l, r) => {
                l.write(f, own)?;
                f.write_str(" or ")?;
                r.write(f, own + 1)?;
            }
        }
        if open {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}
