//! Fuzz-style properties of the cluster query language parser: whatever the text — arbitrary
//! Unicode, or a soup of the language's own tokens, which reaches far deeper into the parser —
//! `Expr::parse` never panics, and it either returns an expression that prints to text parsing
//! back to the same expression (and evaluates without panicking), or an error whose position is
//! a character boundary inside the input (the input's length meaning its end) with a message.
//! The same holds through `Constraint::parse("memberOf(…)")`, whose positions are shifted into
//! the whole constraint text.

use berth_scheduler::query::{Expr, MAX_EXPRESSION_LENGTH, MAX_NESTING};
use berth_scheduler::{Constraint, InstanceView, SchedulerError};
use proptest::prelude::*;

/// Subjects, operators (symbolic and word forms), connectives, punctuation and values of every
/// kind the parser types: bare, quoted (with escapes, unterminated), regexes (valid and not),
/// versions, dates, counts, booleans.
const TOKENS: &[&str] = &[
    "attribute:ecs.instance-type",
    "attribute:stack",
    "attribute:",
    "ec2InstanceId",
    "registeredAt",
    "runningTasksCount",
    "agentConnected",
    "agentVersion",
    "task:group",
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "=~",
    "!~",
    "=",
    "!",
    "~",
    "&",
    "|",
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "exists",
    "!exists",
    "not_exists",
    "in",
    "!in",
    "not_in",
    "matches",
    "not_matches",
    "and",
    "or",
    "not",
    "&&",
    "||",
    "(",
    ")",
    "[",
    "]",
    ",",
    "'",
    "'quoted value'",
    r"'it\'s'",
    r"'\",
    "m5.*",
    "m5.(large|xlarge)",
    "i-[0-9a-f]{8}",
    "(unclosed",
    "[a-",
    "a{2,1}",
    "\\",
    "1.14.5",
    "1.x",
    "2018-06-18",
    "2018-06-18T22:28:28Z",
    "2018-13-45",
    "12",
    "-3",
    "4294967296",
    "true",
    "false",
    "service:web",
    "é",
    "日本",
    "\u{0}",
];

fn soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            proptest::sample::select(TOKENS.to_vec()),
            proptest::sample::select(vec!["", " ", "  ", "\t"]),
        ),
        0..24,
    )
    .prop_map(|parts| parts.into_iter().flat_map(|(t, sep)| [t, sep]).collect())
}

/// A grammar-shaped expression: terms of a random subject, operator and value (not always a
/// fitting one) joined by connectives, some negated or parenthesised; then, often, one token
/// of the soup spliced in or one removed, so most inputs parse or fail deep inside.
fn near_valid() -> impl Strategy<Value = String> {
    let subject = proptest::sample::select(&TOKENS[..9]);
    let operator = proptest::sample::select(&TOKENS[9..36]);
    let value = prop_oneof![
        proptest::sample::select(&TOKENS[47..]).prop_map(str::to_owned),
        proptest::collection::vec(proptest::sample::select(&TOKENS[47..]), 1..4)
            .prop_map(|v| format!("[{}]", v.join(", "))),
        Just(String::new()),
    ];
    let fitting = prop_oneof![
        (
            proptest::sample::select(vec!["attribute:stack", "attribute:ecs.instance-type"]),
            proptest::sample::select(vec![
                "==", "!=", ">", "<=", "=~", "!~", "equals", "in", "not_in"
            ]),
            proptest::sample::select(vec!["m5.*", "12", "'quoted value'", "[a, 'b c']", "x-1"]),
        )
            .prop_map(|(s, o, v)| format!("{s} {o} {v}")),
        proptest::sample::select(vec![
            "attribute:stack exists",
            "attribute:gpu !exists",
            "task:group == service:web",
            "task:group !in [service:db, service:api]",
            "runningTasksCount < 3",
            "agentVersion >= 1.14.5",
            "registeredAt < 2018-06-18",
            "agentConnected == true",
            "ec2InstanceId =~ i-[0-9a-f]{8}",
        ])
        .prop_map(str::to_owned),
    ];
    let random = (subject, operator, value).prop_map(|(s, o, v)| format!("{s} {o} {v}"));
    let term = (prop_oneof![3 => fitting, 1 => random], 0u8..4).prop_map(|(t, wrap)| match wrap {
        0 => format!("not {t}"),
        1 => format!("({t})"),
        _ => t,
    });
    let joiner = proptest::sample::select(vec![" and ", " or ", " && ", " || ", " AND "]);
    (
        proptest::collection::vec((term, joiner), 1..5),
        proptest::option::weighted(
            0.3,
            (any::<prop::sample::Index>(), proptest::sample::select(TOKENS)),
        ),
        proptest::option::weighted(0.3, any::<prop::sample::Index>()),
    )
        .prop_map(|(terms, insert, remove)| {
            let mut words: Vec<String> =
                terms.into_iter().flat_map(|(t, j)| [t, j.trim().to_owned()]).collect();
            words.pop();
            let mut words: Vec<String> = words.join(" ").split(' ').map(str::to_owned).collect();
            if let Some((at, token)) = insert {
                words.insert(at.index(words.len() + 1), token.to_owned());
            }
            if let Some(at) = remove {
                words.remove(at.index(words.len()));
            }
            words.join(" ")
        })
}

fn instance() -> InstanceView {
    InstanceView {
        id: "i-0123abcd".into(),
        active: true,
        agent_connected: true,
        attributes: [
            ("ecs.instance-type".to_owned(), "m5.large".to_owned()),
            ("stack".to_owned(), "12".to_owned()),
        ]
        .into(),
        tasks_by_group: [("service:web".to_owned(), 1)].into(),
        registered_at_millis: 1_529_360_908_500,
        running_tasks_count: 1,
        agent_version: "1.14.5".into(),
        ..Default::default()
    }
}

/// The property every input must satisfy (see the module doc).
fn check(text: &str) -> Result<(), TestCaseError> {
    match Expr::parse(text) {
        Ok(expr) => {
            let printed = expr.to_string();
            let back = Expr::parse(&printed);
            prop_assert!(
                back.is_ok(),
                "{:?} printed as {:?}, which fails: {:?}",
                text,
                printed,
                back
            );
            prop_assert_eq!(back.ok(), Some(expr.clone()), "{:?} printed as {:?}", text, printed);
            // Evaluation is total: it must not panic, whatever the expression.
            let _ = expr.eval(&instance());
            let _ = expr.is_static();
        }
        Err(e) => {
            prop_assert!(
                e.position <= text.len(),
                "{:?}: position {} past the end",
                text,
                e.position
            );
            prop_assert!(
                text.is_char_boundary(e.position),
                "{:?}: position {} splits a character",
                text,
                e.position
            );
            prop_assert!(!e.message.is_empty(), "{:?}: empty message", text);
        }
    }
    let constraint = format!("memberOf({text})");
    match Constraint::parse(&constraint) {
        Err(SchedulerError::InvalidExpression(e)) => {
            prop_assert!(
                e.position <= constraint.len(),
                "{:?}: position {}",
                constraint,
                e.position
            );
            prop_assert!(
                constraint.is_char_boundary(e.position),
                "{:?}: position {}",
                constraint,
                e.position
            );
        }
        Ok(c) => prop_assert_eq!(Constraint::parse(&c.to_string()).ok(), Some(c)),
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics_and_errors_point_inside_it(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn printable_ascii_never_panics_and_errors_point_inside_it(text in "[ -~]{0,80}") {
        check(&text)?;
    }

    #[test]
    fn near_valid_expressions_round_trip_or_fail_with_a_position(text in near_valid()) {
        check(&text)?;
    }

    #[test]
    fn token_soups_never_panic_and_errors_point_inside_them(text in soup()) {
        check(&text)?;
    }
}

/// Ways to nest a term once (`( not … )` twice), with what closes them.
const NESTERS: [(&str, &str); 4] = [("(", ")"), ("not ", ""), ("!", ""), ("( not ", " )")];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deep_and_long_inputs_are_rejected_with_a_position(
        (opener, closer) in proptest::sample::select(NESTERS.to_vec()),
        depth in 0usize..(3 * MAX_NESTING),
    ) {
        let text = format!("{}attribute:a exists{}", opener.repeat(depth), closer.repeat(depth));
        check(&text)?;
        // Each opener nests once ("( not " twice); past the limit the parser refuses.
        let levels = depth * if opener == "( not " { 2 } else { 1 };
        prop_assert_eq!(Expr::parse(&text).is_ok(), levels <= MAX_NESTING, "{} levels", levels);
    }
}

#[test]
fn an_overlong_expression_is_rejected_at_the_first_character_past_the_limit() {
    let text = format!("attribute:a == '{}'", "é".repeat(MAX_EXPRESSION_LENGTH));
    let err = Expr::parse(&text).unwrap_err();
    let limit_at = text.char_indices().nth(MAX_EXPRESSION_LENGTH).map(|(at, _)| at);
    assert_eq!(Some(err.position), limit_at);
    assert!(err.message.contains("longer than 2000 characters"), "{}", err.message);
}
