//! Recursive-descent parser: text → [`Expr`], or a [`ParseError`] with the byte position.
//!
//! ```text
//! or    := and  { ("or"  | "||") and }        left-associative
//! and   := unary { ("and" | "&&") unary }     left-associative
//! unary := ("not" | "!") unary | "(" or ")" | term
//! term  := subject operator [argument]
//! ```
//!
//! So `not` binds tightest, then `and`, then `or` (Berth's decision, ECS-NOTES top). Keywords,
//! subjects and word operators are case-insensitive; attribute names and values are kept as
//! written. Each term is checked as it is read: the operator must be one ECS documents for the
//! subject, `exists` takes no argument, only `in` / `!in` take a `[list]` (a single value is
//! also accepted there), and values must parse for their subject (a version, a date, a count,
//! `true`/`false`, a regular expression).

use regex::Regex;

use super::MAX_EXPRESSION_LENGTH;
use super::ParseError;
use super::ast::{Expr, Operator, Subject, Term, Typed};
use super::lexer::{Mode, Tok, Token, token};
use super::literal::{DateRange, Version};

/// Deepest nesting of parentheses and `not` accepted; keeps recursion (parse, print, evaluate,
/// drop) far from the stack limit whatever the input.
pub const MAX_NESTING: usize = 100;

/// Regex programs larger than this are rejected (a pathological `=~` must not cost the
/// controller megabytes per evaluation).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    if let Some((at, _)) = src.char_indices().nth(MAX_EXPRESSION_LENGTH) {
        return Err(ParseError::new(
            at,
            format!("expression is longer than {MAX_EXPRESSION_LENGTH} characters"),
        ));
    }
    let mut p = Parser { src, at: 0, depth: 0 };
    let expr = p.or()?;
    let next = p.peek(Mode::Expression)?;
    if next.tok != Tok::End {
        return Err(p.error(&next, "expected 'and', 'or' or the end of the expression"));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next unread character.
    at: usize,
    depth: usize,
}

fn is_keyword(tok: &Tok, word: &str, symbol: &str) -> bool {
    match tok {
        Tok::Word(w) => w.eq_ignore_ascii_case(word),
        Tok::Symbol(s) => *s == symbol,
        _ => false,
    }
}

impl Parser<'_> {
    fn peek(&self, mode: Mode) -> Result<Token, ParseError> {
        token(self.src, self.at, mode)
    }

    fn next(&mut self, mode: Mode) -> Result<Token, ParseError> {
        let t = self.peek(mode)?;
        self.at = t.end;
        Ok(t)
    }

    fn error(&self, found: &Token, expected: &str) -> ParseError {
        ParseError::new(found.start, format!("{expected}, found {}", found.describe(self.src)))
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while is_keyword(&self.peek(Mode::Expression)?.tok, "or", "||") {
            self.next(Mode::Expression)?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while is_keyword(&self.peek(Mode::Expression)?.tok, "and", "&&") {
            self.next(Mode::Expression)?;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let t = self.peek(Mode::Expression)?;
        let nests = is_keyword(&t.tok, "not", "!") || t.tok == Tok::LParen;
        if nests {
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return Err(ParseError::new(
                    t.start,
                    format!("expression nests deeper than {MAX_NESTING} levels"),
                ));
            }
        }
        let expr = if is_keyword(&t.tok, "not", "!") {
            self.next(Mode::Expression)?;
            Expr::Not(Box::new(self.unary()?))
        } else if t.tok == Tok::LParen {
            self.next(Mode::Expression)?;
            let inner = self.or()?;
            let close = self.next(Mode::Expression)?;
            if close.tok != Tok::RParen {
                let msg = format!("expected ')' to close the '(' at {}", t.start);
                return Err(self.error(&close, &msg));
            }
            inner
        } else {
            Expr::Term(self.term()?)
        };
        if nests {
            self.depth -= 1;
        }
        Ok(expr)
    }

    fn term(&mut self) -> Result<Term, ParseError> {
        let t = self.next(Mode::Expression)?;
        let subject = match &t.tok {
            Tok::Word(w) => subject(w).ok_or_else(|| {
                ParseError::new(t.start, format!("unknown subject '{w}': expected {SUBJECTS}"))
            })?,
            _ => return Err(self.error(&t, &format!("expected a condition ({SUBJECTS})"))),
        };
        let subject_text = &self.src[t.start..t.end];
        let op_token = self.next(Mode::Expression)?;
        let operator = self.operator(&op_token).ok_or_else(|| {
            self.error(&op_token, &format!("expected an operator after '{subject_text}'"))
        })?;
        if !subject.operators().contains(&operator) {
            let allowed: Vec<&str> = subject.operators().iter().map(|o| o.symbol()).collect();
            return Err(ParseError::new(
                op_token.start,
                format!(
                    "operator '{operator}' is not supported for {subject} (supported: {})",
                    allowed.join(", ")
                ),
            ));
        }
        let values = self.argument(operator)?;
        let mut typed = Vec::with_capacity(values.len());
        for (at, value) in &values {
            typed
                .push(typed_value(&subject, operator, value).map_err(|m| ParseError::new(*at, m))?);
        }
        let pattern = match operator {
            Operator::Matches | Operator::NotMatches => {
                let (at, source) = &values[0];
                Some(compile(source).map_err(|m| ParseError::new(*at, m))?)
            }
            _ => None,
        };
        let values = values.into_iter().map(|(_, v)| v).collect();
        Ok(Term { subject, operator, values, typed, pattern })
    }

    /// The operator `t` starts, reading a following `exists` / `in` after a lone `!`.
    fn operator(&mut self, t: &Token) -> Option<Operator> {
        use Operator::*;
        match &t.tok {
            Tok::Symbol("==") => Some(Eq),
            Tok::Symbol("!=") => Some(Ne),
            Tok::Symbol(">") => Some(Gt),
            Tok::Symbol(">=") => Some(Ge),
            Tok::Symbol("<") => Some(Lt),
            Tok::Symbol("<=") => Some(Le),
            Tok::Symbol("=~") => Some(Matches),
            Tok::Symbol("!~") => Some(NotMatches),
            Tok::Symbol("!") => {
                let next = self.peek(Mode::Expression).ok()?;
                let op = match &next.tok {
                    Tok::Word(w) if w.eq_ignore_ascii_case("exists") => NotExists,
                    Tok::Word(w) if w.eq_ignore_ascii_case("in") => NotIn,
                    _ => return None,
                };
                self.at = next.end;
                Some(op)
            }
            Tok::Word(w) => Some(match w.to_ascii_lowercase().as_str() {
                "equals" => Eq,
                "not_equals" => Ne,
                "greater_than" => Gt,
                "greater_than_equal" => Ge,
                "less_than" => Lt,
                "less_than_equal" => Le,
                "exists" => Exists,
                "not_exists" => NotExists,
                "in" => In,
                "not_in" => NotIn,
                "matches" => Matches,
                "not_matches" => NotMatches,
                _ => return None,
            }),
            _ => None,
        }
    }

    /// The operator's values with their positions: none, a list, or one literal.
    fn argument(&mut self, operator: Operator) -> Result<Vec<(usize, String)>, ParseError> {
        match operator {
            Operator::Exists | Operator::NotExists => return Ok(Vec::new()),
            Operator::In | Operator::NotIn if self.peek(Mode::Value)?.tok == Tok::LBracket => {
                self.next(Mode::Value)?;
                let mut values = vec![self.literal(operator)?];
                loop {
                    let t = self.next(Mode::Value)?;
                    match t.tok {
                        Tok::Comma => values.push(self.literal(operator)?),
                        Tok::RBracket => return Ok(values),
                        _ => return Err(self.error(&t, "expected ',' or ']' in the list")),
                    }
                }
            }
            _ => {}
        }
        Ok(vec![self.literal(operator)?])
    }

    fn literal(&mut self, operator: Operator) -> Result<(usize, String), ParseError> {
        let t = self.next(Mode::Value)?;
        match t.tok {
            Tok::Word(w) | Tok::Quoted(w) => Ok((t.start, w)),
            Tok::LBracket => Err(ParseError::new(
                t.start,
                format!("a [list] is only allowed after in or !in, not after '{operator}'"),
            )),
            _ => Err(self.error(&t, &format!("expected a value after '{operator}'"))),
        }
    }
}

const SUBJECTS: &str = "attribute:NAME, ec2InstanceId, registeredAt, runningTasksCount, \
                        agentConnected, agentVersion or task:group";

fn subject(word: &str) -> Option<Subject> {
    if let Some((prefix, name)) = word.split_once(':')
        && prefix.eq_ignore_ascii_case("attribute")
    {
        return (!name.is_empty()).then(|| Subject::Attribute(name.to_owned()));
    }
    let lower = word.to_ascii_lowercase();
    Some(match lower.as_str() {
        "ec2instanceid" => Subject::InstanceId,
        "registeredat" => Subject::RegisteredAt,
        "runningtaskscount" => Subject::RunningTasksCount,
        "agentconnected" => Subject::AgentConnected,
        "agentversion" => Subject::AgentVersion,
        "task:group" => Subject::TaskGroup,
        _ => return None,
    })
}

/// Pre-parses `value` for `subject`, or says what was expected.
fn typed_value(subject: &Subject, operator: Operator, value: &str) -> Result<Typed, String> {
    if matches!(operator, Operator::Matches | Operator::NotMatches) {
        return Ok(Typed::Text(None));
    }
    Ok(match subject {
        Subject::Attribute(_) => Typed::Text(value.parse::<f64>().ok().filter(|n| n.is_finite())),
        Subject::InstanceId | Subject::TaskGroup => Typed::Text(None),
        Subject::AgentConnected => match value.to_ascii_lowercase().as_str() {
            "true" => Typed::Bool(true),
            "false" => Typed::Bool(false),
            _ => return Err(format!("expected true or false for agentConnected, found '{value}'")),
        },
        Subject::AgentVersion => Typed::Version(Version::parse(value).ok_or_else(|| {
            format!("expected a version such as 1.14.5 for agentVersion, found '{value}'")
        })?),
        Subject::RegisteredAt => Typed::Date(DateRange::parse(value).ok_or_else(|| {
            format!(
                "expected a date such as 2018-06-18, 2018-06-18T22:28:28, 2018-06-18T22:28:28Z \
                 or 2018-06-18T22:28:28+00:00 for registeredAt, found '{value}'"
            )
        })?),
        Subject::RunningTasksCount => {
            Typed::Count(value.parse::<u32>().map(i64::from).map_err(|_| {
                format!("expected a whole number for runningTasksCount, found '{value}'")
            })?)
        }
    })
}

/// Compiles `source` to match a whole value. The pattern is first compiled on its own, so a
/// stray `)` cannot escape the `^(?:…)$` wrapper and turn a full match into a partial one.
fn compile(source: &str) -> Result<Regex, String> {
    let build = |pattern: &str| {
        regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| {
            let detail = e.to_string();
            let last = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            format!("invalid regular expression '{source}': {last}")
        })
    };
    build(source)?;
    build(&format!("^(?:{source})$"))
}
