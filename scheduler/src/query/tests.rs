//! Unit tests of the query language: every operator and word form, quoting, lists, precedence,
//! parentheses, regex full match, version and date comparison, `task:group`, errors with
//! positions, and the Display round trip. The fuzz-style properties are in `tests/query.rs`.

use super::*;
use crate::view::InstanceView;

fn instance() -> InstanceView {
    InstanceView {
        id: "i-abcd1234".into(),
        active: true,
        agent_connected: true,
        attributes: [
            ("ecs.instance-type", "m5.large"),
            ("ecs.availability-zone", "us-east-1a"),
            ("stack", "prod"),
            ("slots", "12"),
            ("ecs.capability.task-eni", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        tasks_by_group: [("service:web".to_owned(), 2), ("family:batch".to_owned(), 0)].into(),
        registered_at_millis: 1_529_360_908_500, // 2018-06-18T22:28:28.500Z
        running_tasks_count: 2,
        agent_version: "1.14.5".into(),
        ..Default::default()
    }
}

#[track_caller]
fn holds(text: &str) -> bool {
    let expr = Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let back = Expr::parse(&expr.to_string()).unwrap();
    assert_eq!(back, expr, "{text} printed as {expr}");
    expr.eval(&instance())
}

#[track_caller]
fn error(text: &str) -> ParseError {
    Expr::parse(text).expect_err(text)
}

#[test]
fn equality_operators_and_word_forms() {
    assert!(holds("attribute:ecs.instance-type == m5.large"));
    assert!(holds("attribute:ecs.instance-type equals m5.large"));
    assert!(!holds("attribute:ecs.instance-type == t2.small"));
    assert!(holds("attribute:ecs.instance-type != t2.small"));
    assert!(holds("attribute:ecs.instance-type not_equals t2.small"));
    assert!(holds("attribute:ecs.instance-type EQUALS m5.large"));
}

#[test]
fn ordering_operators_compare_numbers_numerically_and_text_lexically() {
    assert!(holds("attribute:slots > 9")); // 12 > 9 as numbers, though "12" < "9" as text
    assert!(holds("attribute:slots greater_than 9"));
    assert!(holds("attribute:slots >= 12"));
    assert!(holds("attribute:slots greater_than_equal 12"));
    assert!(holds("attribute:slots < 12.5"));
    assert!(holds("attribute:slots less_than 13"));
    assert!(holds("attribute:slots <= 12"));
    assert!(holds("attribute:slots less_than_equal 12"));
    assert!(!holds("attribute:slots < 12"));
    assert!(holds("attribute:stack > dev"));
    assert!(!holds("attribute:missing < 100"));
}

#[test]
fn exists_and_not_exists_take_no_argument() {
    assert!(holds("attribute:ecs.capability.task-eni exists"));
    assert!(holds("attribute:missing !exists"));
    assert!(holds("attribute:missing ! exists"));
    assert!(holds("attribute:missing not_exists"));
    assert!(!holds("attribute:stack !exists"));
    assert_eq!(
        Expr::parse("attribute:a exists and attribute:b !exists").unwrap().to_string(),
        "attribute:a exists and attribute:b !exists"
    );
    let e = error("attribute:a exists b");
    assert_eq!(e.position, 19);
}

#[test]
fn in_and_not_in_take_lists_of_bare_or_quoted_literals() {
    assert!(holds("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"));
    assert!(holds("attribute:ecs.availability-zone in [us-east-1b,us-east-1a]"));
    assert!(!holds("attribute:ecs.availability-zone !in [us-east-1a, us-east-1b]"));
    assert!(holds("attribute:ecs.availability-zone not_in ['us-east-1c']"));
    assert!(holds("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']"));
    assert!(holds("ec2InstanceId in i-abcd1234"));
    let e = error("ec2InstanceId in [a, ]");
    assert_eq!(e.position, 21);
    let e = error("ec2InstanceId in [a b]");
    assert_eq!(
        (e.position, e.message.as_str()),
        (20, "expected ',' or ']' in the list, found 'b'")
    );
    assert!(error("ec2InstanceId == [a]").message.contains("only allowed after in"));
}

#[test]
fn quoted_literals_may_hold_spaces_quotes_and_punctuation() {
    let mut inst = instance();
    inst.attributes.insert("note".into(), "it's (a, b)".into());
    let e = Expr::parse(r"attribute:note == 'it\'s (a, b)'").unwrap();
    assert!(e.eval(&inst));
    assert_eq!(e.to_string(), r"attribute:note == 'it\'s (a, b)'");
    assert_eq!(Expr::parse(&e.to_string()).unwrap(), e);
    assert!(Expr::parse("attribute:note == ''").unwrap().eval(&InstanceView {
        attributes: [("note".to_owned(), String::new())].into(),
        ..Default::default()
    }));
}

#[test]
fn regex_matches_the_whole_value() {
    assert!(holds("attribute:ecs.instance-type =~ m5.*"));
    assert!(holds("attribute:ecs.instance-type matches m5\\..+"));
    assert!(!holds("attribute:ecs.instance-type =~ m5")); // a prefix is not a match
    assert!(!holds("attribute:ecs.instance-type =~ large"));
    assert!(holds("attribute:ecs.instance-type !~ g2.*"));
    assert!(holds("attribute:ecs.instance-type not_matches g2.*"));
    assert!(holds("attribute:ecs.instance-type =~ 'm5.(large|xlarge)'"));
    assert!(holds("attribute:ecs.instance-type =~ c5.*|m5.*"));
    assert!(!holds("attribute:missing =~ .*"));
    assert!(holds("ec2InstanceId =~ i-[0-9a-f]{8}"));
    // A stray ')' cannot escape the whole-value anchoring.
    let e = error("attribute:a =~ 'x)|(y'");
    assert_eq!(e.position, 15);
    assert!(e.message.starts_with("invalid regular expression 'x)|(y'"), "{}", e.message);
    assert!(error("attribute:a =~ '(?=x)'").message.contains("invalid regular expression"));
}

#[test]
fn agent_connected_compares_booleans() {
    assert!(holds("agentConnected == true"));
    assert!(holds("agentConnected != FALSE"));
    assert!(holds("agentConnected in [true]"));
    assert!(holds("agentConnected =~ t.*"));
    assert!(error("agentConnected == yes").message.contains("true or false"));
    assert!(error("agentConnected > true").message.contains("not supported for agentConnected"));
}

#[test]
fn agent_version_compares_as_versions() {
    assert!(holds("agentVersion < 1.14.10")); // text order would say "1.14.5" > "1.14.10"
    assert!(holds("agentVersion >= 1.14.5"));
    assert!(holds("agentVersion == 1.14.5.0"));
    assert!(holds("agentVersion > 1.9"));
    assert!(!holds("agentVersion < 1.14.5"));
    assert!(holds("agentVersion <= 1.14.5"));
    assert!(holds("agentVersion != 1.20.0"));
    let unknown = InstanceView { agent_version: String::new(), ..instance() };
    assert!(!Expr::parse("agentVersion < 99").unwrap().eval(&unknown));
    assert!(Expr::parse("agentVersion != 99").unwrap().eval(&unknown));
    let e = error("agentVersion < latest");
    assert_eq!(e.position, 15);
    assert!(error("agentVersion exists").message.contains("not supported"));
}

#[test]
fn registered_at_compares_dates_as_spans() {
    // Registered 2018-06-18T22:28:28.500Z.
    assert!(holds("registeredAt == 2018-06-18"));
    assert!(holds("registeredAt == 2018-06-18T22:28:28Z"));
    assert!(holds("registeredAt == 2018-06-18T22:28:28+00:00"));
    assert!(holds("registeredAt == 2018-06-18T22:28:28"));
    assert!(holds("registeredAt == 2018-06-19T00:28:28+02:00"));
    assert!(!holds("registeredAt == 2018-06-18T22:28:29"));
    assert!(holds("registeredAt < 2018-06-19"));
    assert!(!holds("registeredAt < 2018-06-18"));
    assert!(holds("registeredAt <= 2018-06-18"));
    assert!(holds("registeredAt > 2018-06-17"));
    assert!(!holds("registeredAt > 2018-06-18"));
    assert!(holds("registeredAt >= 2018-06-18"));
    assert!(holds("registeredAt != 2018-02-13"));
    assert!(holds("registeredAt greater_than 2018-02-13"));
    assert!(holds("registeredAt == 2018-06-18T22:28:28.500Z"));
    let e = error("registeredAt < 2018-02-30");
    assert_eq!(e.position, 15);
    assert!(e.message.contains("expected a date"));
}

#[test]
fn running_tasks_count_compares_numbers() {
    assert!(holds("runningTasksCount == 2"));
    assert!(holds("runningTasksCount < 3"));
    assert!(holds("runningTasksCount >= 2"));
    assert!(!holds("runningTasksCount > 2"));
    assert!(error("runningTasksCount == two").message.contains("whole number"));
    assert!(error("runningTasksCount in [1]").message.contains("not supported"));
}

#[test]
fn task_group_holds_for_instances_running_a_matching_group() {
    assert!(holds("task:group == service:web"));
    assert!(!holds("task:group == family:batch")); // count 0 means none running
    assert!(!holds("task:group == service:db"));
    assert!(holds("task:group != service:db"));
    assert!(!holds("task:group != service:web"));
    assert!(holds("task:group in [service:db, service:web]"));
    assert!(holds("task:group !in [service:db]"));
    assert!(holds("task:group =~ service:.*"));
    assert!(!holds("task:group =~ family:.*"));
    assert!(holds("task:group !~ family:.*"));
    assert!(holds("not(task:group == database)"));
    assert!(error("task:group exists").message.contains("not supported for task:group"));
}

#[test]
fn precedence_is_not_then_and_then_or() {
    // a or b and c  ==  a or (b and c)
    let e = Expr::parse("ec2InstanceId == x or ec2InstanceId == y and agentConnected == false")
        .unwrap();
    assert!(matches!(e, Expr::Or(..)));
    // not a and b  ==  (not a) and b
    let e = Expr::parse("not ec2InstanceId == x and agentConnected == true").unwrap();
    assert!(matches!(e, Expr::And(ref l, _) if matches!(**l, Expr::Not(_))));
    assert!(e.eval(&instance()));
    assert!(holds("attribute:stack == dev or attribute:stack == prod and agentConnected == true"));
    assert!(!holds(
        "(attribute:stack == dev or attribute:stack == prod) and agentConnected == false"
    ));
    assert!(holds("attribute:stack == dev || attribute:stack == prod && !agentConnected == false"));
    assert!(holds("NOT attribute:stack == dev AND attribute:stack == prod OR attribute:x exists"));
}

#[test]
fn parentheses_group_and_print_only_where_needed() {
    let cases = [
        ("(a1)", "attribute:a == 1"),
        ("((a1 or b1)) and c1", "(attribute:a == 1 or attribute:b == 1) and attribute:c == 1"),
        ("a1 or (b1 or c1)", "attribute:a == 1 or (attribute:b == 1 or attribute:c == 1)"),
        ("(a1 or b1) or c1", "attribute:a == 1 or attribute:b == 1 or attribute:c == 1"),
        ("a1 and (b1 and c1)", "attribute:a == 1 and (attribute:b == 1 and attribute:c == 1)"),
        ("not (a1 and b1)", "not (attribute:a == 1 and attribute:b == 1)"),
        ("!!a1", "not not attribute:a == 1"),
    ];
    for (short, canonical) in cases {
        let text = short
            .replace("a1", "attribute:a == 1")
            .replace("b1", "attribute:b == 1")
            .replace("c1", "attribute:c == 1");
        let e = Expr::parse(&text).unwrap();
        assert_eq!(e.to_string(), canonical, "{text}");
        assert_eq!(Expr::parse(canonical).unwrap(), e);
    }
    let e = error("(attribute:a == 1 or attribute:b == 2");
    assert_eq!(e.position, 37);
    assert_eq!(e.message, "expected ')' to close the '(' at 0, found the end of the expression");
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    let e = error("attribute:ecs.instance-type");
    assert_eq!(
        e.to_string(),
        "at 27: expected an operator after 'attribute:ecs.instance-type', found the end of the expression"
    );
    let e = error("attribute:ecs.instance-type is m5.large");
    assert_eq!(
        e.to_string(),
        "at 28: expected an operator after 'attribute:ecs.instance-type', found 'is'"
    );
    let e = error("color == red");
    assert_eq!(e.position, 0);
    assert!(e.message.starts_with("unknown subject 'color'"));
    assert_eq!(error("attribute: == x").position, 0);
    assert_eq!(
        error("").message,
        "expected a condition (attribute:NAME, ec2InstanceId, registeredAt, runningTasksCount, agentConnected, agentVersion or task:group), found the end of the expression"
    );
    assert_eq!(error("agentConnected == true and").position, 26);
    assert_eq!(error("agentConnected == true agentConnected == true").position, 23);
    assert_eq!(
        error("attribute:a == ").message,
        "expected a value after '==', found the end of the expression"
    );
    assert_eq!(error("attribute:a = b").position, 12);
    assert_eq!(error("attribute:a ! b").position, 12);
}

#[test]
fn length_and_nesting_are_bounded() {
    let long = format!("attribute:a == {}", "x".repeat(MAX_EXPRESSION_LENGTH));
    let e = error(&long);
    assert_eq!(e.position, MAX_EXPRESSION_LENGTH);
    let ok = format!("attribute:a == {}", "x".repeat(MAX_EXPRESSION_LENGTH - 15));
    assert!(Expr::parse(&ok).is_ok());
    let deep =
        format!("{}attribute:a exists{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1));
    assert!(error(&deep).message.contains("nests deeper"));
    let nots = format!("{}attribute:a exists", "not ".repeat(MAX_NESTING));
    assert!(Expr::parse(&nots).is_ok());
}

#[test]
fn static_expressions_exclude_placement_dependent_subjects() {
    assert!(Expr::parse("attribute:a exists or agentVersion > 1").unwrap().is_static());
    assert!(!Expr::parse("attribute:a exists or not task:group == x").unwrap().is_static());
    assert!(!Expr::parse("runningTasksCount < 5").unwrap().is_static());
}

#[test]
fn double_quoted_literals_read_like_single_quoted_ones() {
    assert_eq!(
        Expr::parse(r#"attribute:ecs.availability-zone =~ "a.*""#).unwrap(),
        Expr::parse("attribute:ecs.availability-zone =~ 'a.*'").unwrap()
    );
    let mut inst = instance();
    inst.attributes.insert("note".into(), "say \"hi\"".into());
    let e = Expr::parse(r#"attribute:note == "say \"hi\"""#).unwrap();
    assert!(e.eval(&inst));
    // A value that starts with a double quote prints quoted, so it reads back the same.
    let e = Expr::parse(r#"attribute:note == '"x'"#).unwrap();
    assert_eq!(Expr::parse(&e.to_string()).unwrap(), e);
    let err = Expr::parse(r#"attribute:note == "open"#).unwrap_err();
    assert_eq!(err.position, 18, "{err}");
}

/// Fuzz finding (`fuzz/`, target `query`): a bare value with an unclosed bracket printed bare
/// inside a list (`[=[]`), which reads back as another literal and then fails to parse.
#[test]
fn unbalanced_bracket_values_print_quoted_and_read_back() {
    for text in
        ["attribute:ecs.availability-zone in =[", "attribute:a == x(", "attribute:a in [b]]"]
    {
        let Ok(e) = Expr::parse(text) else { continue };
        let shown = e.to_string();
        assert_eq!(Expr::parse(&shown).unwrap_or_else(|err| panic!("{shown}: {err}")), e, "{text}");
    }
    let e = Expr::parse("attribute:ecs.availability-zone in =[").unwrap();
    assert_eq!(e.to_string(), "attribute:ecs.availability-zone in ['=[']");
}
