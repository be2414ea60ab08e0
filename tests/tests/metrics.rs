//! Observability end to end (issue 8): `/metrics` of a `berth dev` controller and agent parse as
//! Prometheus text exposition 0.0.4, carry the contract's series (`charts/berth/METRICS.md`)
//! and move (`berth_tasks_started_total` after a `berth task run`); `promtool check metrics`
//! accepts both scrapes when promtool is installed; `--log-format json` gives one JSON object
//! per stderr line; `/readyz` is 503 on a controller without quorum and 200 with one.

use berth_tests::cluster::ControllerCluster;
use berth_tests::{Dev, ensure_images, require_docker, wait_until};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `GET path` on `addr` (HTTP/1.0): status and body.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("value {s:?} is not a number")),
    }
}

/// `k="v",k2="v2"` (escapes `\\`, `\"`, `\n`).
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").ok_or_else(|| format!("label in {s:?}"))?;
        if !valid_name(key) || key.contains(':') {
            return Err(format!("label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?} in {s:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {s:?}")),
            }
        };
        if out.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} twice in {s:?}"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(out)
}

/// A strict reader of the text format 0.0.4 as the `prometheus` crate writes it: `# HELP` and
/// `# TYPE` before a family's samples, one TYPE per family, samples of a histogram `X` only
/// as `X_bucket` (with `le`, ending at `+Inf`), `X_sum`, `X_count`, and `_count` equal to the
/// `+Inf` bucket. Answers the samples, or the first rule broken (with the line).
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at("second TYPE for a family".into()));
                    }
                }
                _ => return Err(at("malformed comment".into())),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value".into()))?;
        let value = parse_value(value).map_err(at)?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').ok_or_else(|| at("unclosed labels".into()))?;
                (name, parse_labels(inner).map_err(at)?)
            }
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name) {
            return Err(at("bad metric name".into()));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        let kind = types.get(family).ok_or_else(|| at("sample before its TYPE".into()))?;
        if kind == "histogram" && family == name {
            return Err(at("a histogram sample without _bucket/_sum/_count".into()));
        }
        if name.ends_with("_bucket") && kind == "histogram" && !labels.contains_key("le") {
            return Err(at("bucket without le".into()));
        }
        if kind == "counter" && value < 0.0 {
            return Err(at("negative counter".into()));
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let counts: Vec<&Sample> =
            samples.iter().filter(|s| s.name == format!("{family}_count")).collect();
        for count in counts {
            let mut inf_labels = count.labels.clone();
            inf_labels.insert("le".into(), "+Inf".into());
            let inf = samples
                .iter()
                .find(|s| s.name == format!("{family}_bucket") && s.labels == inf_labels)
                .ok_or_else(|| format!("{family}: no +Inf bucket for {:?}", count.labels))?;
            if inf.value != count.value {
                return Err(format!(
                    "{family}: _count {} != +Inf bucket {}",
                    count.value, inf.value
                ));
            }
        }
    }
    Ok(samples)
}

/// Sum of the samples named `name` whose labels include `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn scrape(addr: &str) -> Vec<Sample> {
    let (status, body) = get(addr, "/metrics").unwrap_or_else(|| panic!("GET {addr}/metrics"));
    assert_eq!(status, 200, "{body}");
    parse_exposition(&body).unwrap_or_else(|e| panic!("{addr}/metrics does not parse: {e}\n{body}"))
}

/// Runs `promtool check metrics` on `text`; `None` when promtool is not installed.
fn promtool_check(text: &str) -> Option<Result<(), String>> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some(if out.status.success() { Ok(()) } else { Err(said) })
}

/// The `fields.<key>` of the first JSON log line whose message contains `message`.
fn logged_field(log: &str, message: &str, key: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"].as_str().is_some_and(|m| m.contains(message)))
        .and_then(|v| v["fields"][key].as_str().map(str::to_string))
}

#[test]
fn dev_metrics_parse_carry_the_contract_and_move() {
    if !require_docker("dev_metrics_parse_carry_the_contract_and_move") {
        return;
    }
    ensure_images();
    let tmp = tempfile::tempdir().expect("tmp");
    let dev = Dev::start(tmp.path(), &["--log-format", "json"]);
    let log = dev.log();
    let controller = logged_field(&log, "controller HTTP port serving", "http_addr")
        .unwrap_or_else(|| panic!("no controller HTTP address in the log:\n{log}"));
    let agent = logged_field(&log, "operator HTTP API bound", "bound")
        .unwrap_or_else(|| panic!("no agent HTTP address in the log:\n{log}"));
    // Structured logs: every line but the banner is one JSON object with level and message.
    for line in log.lines().filter(|l| !l.is_empty() && !l.starts_with("berth dev:")) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
    }

    assert_eq!(get(&controller, "/readyz").map(|r| r.0), Some(200), "controller ready");
    wait_until("the agent is ready", WAIT, || (get(&agent, "/readyz")?.0 == 200).then_some(()));

    let before = scrape(&controller);
    let started_before = value(&before, "berth_tasks_started_total", &[]).expect("started");
    for name in [
        "berth_raft_term",
        "berth_raft_leader_changes_total",
        "berth_raft_commit_index",
        "berth_raft_applied_index",
        "berth_raft_proposal_duration_seconds_count",
        "berth_raft_log_entries",
        "berth_raft_snapshots_total",
        "berth_raft_snapshot_duration_seconds_count",
        "berth_api_requests_total",
        "berth_api_request_duration_seconds_count",
        "berth_scheduler_placements_total",
        "berth_scheduler_placement_duration_seconds_count",
        "berth_tasks_stopped_total",
        "berth_deployments",
        "berth_events_subscribers",
        "berth_events_appended_total",
        "berth_events_subscriber_lag",
    ] {
        assert!(value(&before, name, &[]).is_some(), "{name} missing from the controller");
    }
    assert!(value(&before, "berth_raft_term", &[]).unwrap_or(0.0) >= 1.0);
    assert!(value(&before, "berth_raft_applied_index", &[]) >= Some(1.0));
    // `berth dev` waited for instances over the API before this scrape.
    assert!(value(&before, "berth_api_requests_total", &[("code", "OK")]) >= Some(1.0));

    let def = serde_json::json!({
        "family": "metrics-sleep",
        "containerDefinitions": [{"name": "main", "image": "busybox:latest",
            "command": ["sleep", "300"], "memory": 32, "essential": true}]
    });
    let def_path = tmp.path().join("def.json");
    std::fs::write(&def_path, def.to_string()).expect("write def");
    dev.json(&["taskdef", "register", &def_path.to_string_lossy()]);
    let run = dev.json(&["task", "run", "--taskdef", "metrics-sleep"]);
    let task = run["tasks"][0]["taskArn"].as_str().expect("a task").to_string();

    let after = wait_until("berth_tasks_started_total moves", WAIT, || {
        let s = scrape(&controller);
        (value(&s, "berth_tasks_started_total", &[])? >= started_before + 1.0).then_some(s)
    });
    assert!(value(&after, "berth_scheduler_placements_total", &[]) >= Some(1.0));
    assert!(
        value(&after, "berth_api_requests_total", &[("method", "RunTask"), ("code", "OK")])
            >= Some(1.0)
    );
    assert!(value(&after, "berth_raft_proposal_duration_seconds_count", &[]) >= Some(1.0));
    assert!(value(&after, "berth_events_appended_total", &[]) >= Some(1.0));

    let agent_scrape = wait_until("the agent runs the task and says so", WAIT, || {
        let s = scrape(&agent);
        (value(&s, "berth_agent_running_tasks", &[])? >= 1.0).then_some(s)
    });
    assert!(
        value(&agent_scrape, "berth_agent_container_starts_total", &[("result", "success")])
            >= Some(1.0)
    );
    assert!(
        value(
            &agent_scrape,
            "berth_agent_docker_request_duration_seconds_count",
            &[("operation", "start")]
        ) >= Some(1.0)
    );
    assert!(value(&agent_scrape, "berth_agent_image_pull_duration_seconds_count", &[]).is_some());
    assert!(
        value(&agent_scrape, "berth_agent_image_pulls_total", &[("result", "failure")]).is_some()
    );
    assert_eq!(value(&agent_scrape, "berth_agent_connected", &[]), Some(1.0));
    wait_until("a heartbeat round trip is observed", WAIT, || {
        let s = scrape(&agent);
        (value(&s, "berth_agent_heartbeat_rtt_seconds_count", &[])? >= 1.0).then_some(())
    });

    let out = dev.berth(&["task", "stop", &task]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("berth_tasks_stopped_total moves", WAIT, || {
        let s = scrape(&controller);
        (value(&s, "berth_tasks_stopped_total", &[])? >= 1.0).then_some(())
    });

    // promtool, when installed (CI installs Debian's `prometheus` package).
    for addr in [&controller, &agent] {
        let (_, text) = get(addr, "/metrics").expect("scrape");
        match promtool_check(&text) {
            Some(result) => result.unwrap_or_else(|e| panic!("promtool on {addr}: {e}")),
            None => {
                eprintln!("promtool not installed (Debian package `prometheus`): check skipped")
            }
        }
    }
}

/// The HTTP address a controller member logged (`--http-listen 127.0.0.1:0`).
fn member_http(log_path: &Path) -> Option<String> {
    let log = std::fs::read_to_string(log_path).ok()?;
    logged_field(&log, "controller HTTP port serving", "http_addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_without_quorum_and_200_with_one() {
    let mut cluster = ControllerCluster::start_with_args(
        3,
        &["--http-listen", "127.0.0.1:0", "--log-format", "json"],
    );
    let leader = cluster.wait_leader(WAIT).await;
    let survivor = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let path = cluster.member(survivor).log_path.clone();
    let addr = wait_until("the survivor logs its HTTP address", WAIT, || member_http(&path));
    wait_until("ready with a quorum", WAIT, || (get(&addr, "/readyz")?.0 == 200).then_some(()));

    let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != survivor).collect();
    for id in &others {
        cluster.crash(*id);
    }
    let body = wait_until("503 without a quorum", WAIT, || {
        let (status, body) = get(&addr, "/readyz")?;
        (status == 503).then_some(body)
    });
    let reason: Value = serde_json::from_str(&body).expect("a JSON reason");
    assert_eq!(reason["ready"], false, "{body}");
    assert!(reason["reason"].as_str().is_some_and(|r| r.contains("leader")), "{body}");
    let scrape = scrape(&addr);
    assert!(
        value(&scrape, "berth_raft_leader_changes_total", &[]) >= Some(2.0),
        "saw a leader and its loss"
    );

    cluster.restart(others[0]);
    wait_until("ready again once a quorum is back", WAIT, || {
        (get(&addr, "/readyz")?.0 == 200).then_some(())
    });
}
