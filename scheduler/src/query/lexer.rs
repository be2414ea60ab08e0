//! Tokens of the cluster query language, read on demand by the parser in one of two modes.
//!
//! * [`Mode::Expression`] (subjects, operators, keywords): a word is a run of characters other
//!   than whitespace, `( ) [ ] , '` and the operator characters `= ! < > & | ~`, so
//!   `attribute:ecs.instance-type==x` splits where a reader expects; symbolic operators are read
//!   longest first (`!=` before `!`).
//! * [`Mode::Value`] (after an operator, inside a list): a bare literal runs to whitespace, `'`,
//!   or a `,` `)` `]` that closes nothing opened inside the literal (brackets `( [ {` nest), so
//!   `m5.*`, `>5`, `i-[0-9a-f]{8}`, `m5.(large|xlarge)` and `2018-06-18T22:28:28+00:00` need no
//!   quotes, while `not(task:group == db)` and `in [a, b]` still end where a reader expects. A
//!   literal cannot start with `( ) [ ] ,`; values with spaces or quotes must be single-quoted.
//!
//! Quoted literals use single or double quotes (`'a b'`, `"a b"`: users coming from JSON or a
//! shell write both); inside them `\` escapes the next character (so `\'`, `\"` and `\\`). A
//! bare literal may contain `"` but not start with it. Every token carries its byte offset,
//! which is what errors report.

use super::ParseError;

/// What to read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Expression,
    Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// A bare word or literal.
    Word(String),
    /// A single-quoted literal, unescaped.
    Quoted(String),
    /// A symbolic operator or connective: `== != =~ !~ >= <= > < && || !`.
    Symbol(&'static str),
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Byte offset of the first character.
    pub(crate) start: usize,
    /// Byte offset just past the token.
    pub(crate) end: usize,
}

impl Token {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self, src: &str) -> String {
        match self.tok {
            Tok::End => "the end of the expression".to_owned(),
            _ => format!("'{}'", &src[self.start..self.end]),
        }
    }
}

const SYMBOLS: [&str; 11] = ["==", "!=", "=~", "!~", ">=", "<=", "&&", "||", ">", "<", "!"];
const OPERATOR_CHARS: &[char] = &['=', '!', '<', '>', '&', '|', '~'];
const PUNCTUATION: &[char] = &['(', ')', '[', ']', ',', '\''];

/// Reads the token starting at or after byte `at` of `src`.
pub(crate) fn token(src: &str, at: usize, mode: Mode) -> Result<Token, ParseError> {
    let rest = &src[at..];
    let skipped = rest.len() - rest.trim_start().len();
    let start = at + skipped;
    let rest = &src[start..];
    let Some(first) = rest.chars().next() else {
        return Ok(Token { tok: Tok::End, start, end: start });
    };
    let single = |tok| Ok(Token { tok, start, end: start + 1 });
    match first {
        '(' => return single(Tok::LParen),
        ')' => return single(Tok::RParen),
        '[' => return single(Tok::LBracket),
        ']' => return single(Tok::RBracket),
        ',' => return single(Tok::Comma),
        '\'' | '"' => return quoted(src, start, first),
        _ => {}
    }
    if mode == Mode::Expression && OPERATOR_CHARS.contains(&first) {
        return match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            Some(s) => Ok(Token { tok: Tok::Symbol(s), start, end: start + s.len() }),
            None => Err(ParseError::new(start, format!("unexpected character '{first}'"))),
        };
    }
    let len = match mode {
        Mode::Expression => rest
            .find(|c: char| {
                c.is_whitespace() || PUNCTUATION.contains(&c) || OPERATOR_CHARS.contains(&c)
            })
            .unwrap_or(rest.len()),
        Mode::Value => bare_literal_len(rest),
    };
    Ok(Token { tok: Tok::Word(rest[..len].to_owned()), start, end: start + len })
}

/// Length in bytes of the bare literal at the start of `rest` (see the module doc).
pub(crate) fn bare_literal_len(rest: &str) -> usize {
    let mut depth = 0usize;
    for (k, c) in rest.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ')' | ']' => return k,
            ',' if depth == 0 => return k,
            '\'' => return k,
            c if c.is_whitespace() => return k,
            _ => {}
        }
    }
    rest.len()
}

fn quoted(src: &str, start: usize, quote: char) -> Result<Token, ParseError> {
    let mut value = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            c if c == quote => {
                return Ok(Token { tok: Tok::Quoted(value), start, end: start + 1 + k + 1 });
            }
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err(ParseError::new(start, format!("unterminated quoted literal: expected a closing {quote}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &str, mode: Mode) -> Vec<Tok> {
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            let t = token(src, at, mode).unwrap();
            at = t.end;
            if t.tok == Tok::End {
                return out;
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn expression_mode_splits_words_at_operators() {
        assert_eq!(
            all("attribute:a.b-c==x&&!(y)", Mode::Expression),
            [
                Tok::Word("attribute:a.b-c".into()),
                Tok::Symbol("=="),
                Tok::Word("x".into()),
                Tok::Symbol("&&"),
                Tok::Symbol("!"),
                Tok::LParen,
                Tok::Word("y".into()),
                Tok::RParen,
            ]
        );
        assert_eq!(
            all("!exists", Mode::Expression),
            [Tok::Symbol("!"), Tok::Word("exists".into())]
        );
    }

    #[test]
    fn value_mode_keeps_operator_characters_in_bare_literals() {
        assert_eq!(
            all("m5.*|c5.* x[0-9,a]{1,2}) [a,'b c']", Mode::Value),
            [
                Tok::Word("m5.*|c5.*".into()),
                Tok::Word("x[0-9,a]{1,2}".into()),
                Tok::RParen,
                Tok::LBracket,
                Tok::Word("a".into()),
                Tok::Comma,
                Tok::Quoted("b c".into()),
                Tok::RBracket,
            ]
        );
    }

    #[test]
    fn quoted_literals_unescape_and_report_unterminated_start() {
        assert_eq!(all(r"'it\'s \\ ok'", Mode::Value), [Tok::Quoted(r"it's \ ok".into())]);
        let err = token("x == 'open", 5, Mode::Value).unwrap_err();
        assert_eq!(err.position, 5);
    }

    #[test]
    fn lone_operator_character_is_an_error_at_its_position() {
        let err = token("a = b", 1, Mode::Expression).unwrap_err();
        assert_eq!((err.position, err.message.as_str()), (2, "unexpected character '='"));
    }
}
