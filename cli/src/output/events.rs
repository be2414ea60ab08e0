//! The `berth events -o table` view: one fixed-width row per event, printed as each arrives
//! (a stream cannot be measured first, so the columns have set widths; a longer cell pushes the
//! rest of its row right instead of being cut).
//!
//! Columns: INDEX, TIME (the envelope's), TYPE (TASK / INSTANCE / SERVICE / DEPLOYMENT), RESOURCE
//! (the last ARN segment of `resources[0]`), SUMMARY (per detail-type, see [`summary`]).

use berth_proto::model::arn_tail;
use berth_proto::model::event::detail_type;
use serde_json::Value;

/// Column widths: an index up to 9,999,999; `2026-12-04T02:03:02Z`; `DEPLOYMENT`; a task id (32
/// hex digits).
const WIDTHS: [usize; 4] = [7, 20, 10, 32];

/// The header line (with its newline).
pub fn events_header() -> String {
    line(["INDEX", "TIME", "TYPE", "RESOURCE"], "SUMMARY")
}

/// One event's row (with its newline), from the event's JSON text; what is missing shows as `-`.
pub fn event_row(json: &str) -> String {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let index = v.get("index").and_then(Value::as_u64).map(|i| i.to_string());
    let time = text(&v, "time");
    let full_type = text(&v, "detail-type");
    let short = detail_type(&full_type)
        .map(|(short, _)| short.to_string())
        .unwrap_or_else(|| full_type.clone());
    let resource = v
        .get("resources")
        .and_then(|r| r.get(0))
        .and_then(Value::as_str)
        .map(|r| arn_tail(r).to_string())
        .unwrap_or_default();
    let detail = v.get("detail").unwrap_or(&Value::Null);
    line(
        [&index.unwrap_or_default(), &time, &short, &resource].map(|c| dash(c)),
        &dash(&summary(&short, detail)),
    )
}

/// TASK: `lastStatus/desiredStatus v<version>`; INSTANCE: `status agentConnected=… v<version>`;
/// SERVICE and DEPLOYMENT: `eventName`, then `: reason` if there is one.
pub fn summary(short_type: &str, detail: &Value) -> String {
    let version = detail.get("version").map(|v| format!(" v{}", scalar(v))).unwrap_or_default();
    match short_type {
        "TASK" => format!(
            "{}/{}{version}",
            dash(&text(detail, "lastStatus")),
            dash(&text(detail, "desiredStatus"))
        ),
        "INSTANCE" => format!(
            "{} agentConnected={}{version}",
            dash(&text(detail, "status")),
            detail.get("agentConnected").map(scalar).unwrap_or_else(|| "-".into())
        ),
        _ => {
            let name = text(detail, "eventName");
            match text(detail, "reason") {
                reason if reason.is_empty() => name,
                reason => format!("{}: {reason}", dash(&name)),
            }
        }
    }
}

fn line<S: AsRef<str>>(cells: [S; 4], last: &str) -> String {
    let mut out = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS) {
        let cell = cell.as_ref();
        out.push_str(cell);
        out.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count()) + 3));
    }
    out.push_str(last);
    let mut out = out.trim_end().to_string();
    out.push('\n');
    out
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).map(scalar).unwrap_or_default()
}

/// A string without its quotes; any other JSON value as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail_type: &str, resource: &str, detail: Value) -> String {
        json!({
            "version": "0", "id": "x", "detail-type": detail_type, "source": "aws.ecs",
            "account": "000000000000", "time": "2026-12-04T02:03:02Z", "region": "local",
            "resources": [resource], "detail": detail, "index": 42,
        })
        .to_string()
    }

    #[test]
    fn header_and_task_row_line_up() {
        let row = event_row(&event(
            "ECS Task State Change",
            "arn:aws:ecs:local:000000000000:task/default/0123456789abcdef0123456789abcdef",
            json!({"lastStatus": "RUNNING", "desiredStatus": "RUNNING", "version": 3}),
        ));
        assert_eq!(
            events_header(),
            "INDEX     TIME                   TYPE         RESOURCE                           SUMMARY\n"
        );
        assert_eq!(
            row,
            "42        2026-12-04T02:03:02Z   TASK         0123456789abcdef0123456789abcdef   RUNNING/RUNNING v3\n"
        );
        assert_eq!(row.find("RUNNING"), events_header().find("SUMMARY"));
    }

    #[test]
    fn instance_service_and_deployment_summaries() {
        let row = event_row(&event(
            "ECS Container Instance State Change",
            "arn:aws:ecs:local:000000000000:container-instance/default/i-1",
            json!({"status": "ACTIVE", "agentConnected": false, "version": 7}),
        ));
        assert!(row.contains("   INSTANCE     i-1 "), "{row}");
        assert!(row.ends_with("   ACTIVE agentConnected=false v7\n"), "{row}");

        let row = event_row(&event(
            "ECS Service Action",
            "arn:aws:ecs:local:000000000000:service/default/web",
            json!({"eventName": "SERVICE_TASK_PLACEMENT_FAILURE", "reason": "RESOURCE:MEMORY"}),
        ));
        assert!(row.contains("   SERVICE      web "), "{row}");
        assert!(row.ends_with("   SERVICE_TASK_PLACEMENT_FAILURE: RESOURCE:MEMORY\n"), "{row}");

        let detail = json!({"eventName": "SERVICE_STEADY_STATE"});
        assert_eq!(summary("SERVICE", &detail), "SERVICE_STEADY_STATE");
        let detail = json!({"eventName": "SERVICE_DEPLOYMENT_COMPLETED",
                            "reason": "ECS deployment ecs-svc/1 completed."});
        assert_eq!(
            summary("DEPLOYMENT", &detail),
            "SERVICE_DEPLOYMENT_COMPLETED: ECS deployment ecs-svc/1 completed."
        );
    }

    #[test]
    fn missing_fields_show_dashes_and_long_cells_push_right() {
        let row = event_row(r#"{"index": 1, "detail-type": "Something New", "detail": {}}"#);
        assert_eq!(
            row,
            "1         -                      Something New   -                                  -\n"
        );
        assert_eq!(summary("TASK", &json!({})), "-/-");
        assert_eq!(event_row("not json").split_whitespace().collect::<Vec<_>>(), ["-"; 5]);
    }
}
