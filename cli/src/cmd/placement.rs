//! Placement flags shared by `service create|update` and `task run`: `--strategy
//! 'spread(attribute:ecs.availability-zone),binpack(memory)'`, repeated `--constraint
//! 'distinctInstance'` / `--constraint 'memberOf(EXPR)'`, and the dry-run table. The text is only
//! split into ECS `{type, field}` / `{type, expression}`; the controller validates it with the
//! scheduler's parser and answers errors with their position.

use crate::output::Table;
use berth_proto::model::PlacementExplanation;
use berth_proto::v1::{PlacementConstraint, PlacementStrategy};

/// `name(arg)` → (`name`, `arg`); `name` → (`name`, ``).
fn call(text: &str) -> (String, String) {
    let t = text.trim();
    match (t.find('('), t.ends_with(')')) {
        (Some(open), true) => {
            (t[..open].trim().to_string(), t[open + 1..t.len() - 1].trim().to_string())
        }
        _ => (t.to_string(), String::new()),
    }
}

/// Splits `a(x),b(y)` on the commas outside parentheses.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for ch in text.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    parts.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

pub fn strategies(flags: &[String]) -> Vec<PlacementStrategy> {
    flags
        .iter()
        .flat_map(|f| split_top_level(f))
        .map(|s| {
            let (r#type, field) = call(&s);
            PlacementStrategy { r#type, field }
        })
        .collect()
}

pub fn constraints(flags: &[String]) -> Vec<PlacementConstraint> {
    flags
        .iter()
        .map(|c| {
            let (r#type, expression) = call(c);
            PlacementConstraint { r#type, expression }
        })
        .collect()
}

/// Prints a dry run's PlacementExplanation reply (table or JSON).
pub fn print_explanation(
    out: crate::output::Format,
    json: &str,
) -> Result<(), crate::error::CliError> {
    print!("{}", crate::output::show(out, json, "placement explanation", explanation_table)?);
    Ok(())
}

pub fn explanation_table(e: &PlacementExplanation) -> String {
    let mut out = format!(
        "Strategies:  {}\nConstraints: {}\n",
        e.strategies.join(", "),
        if e.constraints.is_empty() { "-".to_string() } else { e.constraints.join(", ") }
    );
    for t in &e.tasks {
        match (&t.container_instance_id, &t.failure) {
            (Some(id), _) => out.push_str(&format!("\nTask {}: → {id}\n", t.task_index)),
            (None, Some(f)) => out.push_str(&format!(
                "\nTask {}: cannot be placed: {} {}\n",
                t.task_index,
                f.reason,
                f.detail.clone().unwrap_or_default()
            )),
            (None, None) => out.push_str(&format!("\nTask {}: not placed\n", t.task_index)),
        }
        let mut table = Table::new(&["INSTANCE", "CHOSEN", "REJECTED BY", "DETAIL", "SCORES"]);
        for c in &t.candidates {
            table.row(vec![
                c.container_instance_id.clone(),
                if c.chosen { "yes".into() } else { String::new() },
                c.rejected_by.clone().unwrap_or_default(),
                c.detail.clone().unwrap_or_default(),
                c.scores.iter().map(|s| format!("{s}")).collect::<Vec<_>>().join(" "),
            ]);
        }
        out.push_str(&table.render_indented("  "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_lists_split_outside_parentheses() {
        let s = strategies(&[
            "spread(attribute:ecs.availability-zone), binpack(memory)".into(),
            "random".into(),
        ]);
        let pairs: Vec<(&str, &str)> =
            s.iter().map(|p| (p.r#type.as_str(), p.field.as_str())).collect();
        assert_eq!(
            pairs,
            [("spread", "attribute:ecs.availability-zone"), ("binpack", "memory"), ("random", "")]
        );
    }

    #[test]
    fn member_of_keeps_its_expression_whole() {
        let c = constraints(&[
            "memberOf(attribute:a in [x, y] and not(task:group == g))".into(),
            "distinctInstance".into(),
        ]);
        assert_eq!(c[0].r#type, "memberOf");
        assert_eq!(c[0].expression, "attribute:a in [x, y] and not(task:group == g)");
        assert_eq!((c[1].r#type.as_str(), c[1].expression.as_str()), ("distinctInstance", ""));
    }
}
