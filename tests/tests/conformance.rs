//! The Amazon ECS agent's own conformance cases (`../shared/fixtures/ecs-agent-simpletests`, see
//! its README) run against one `berth dev` on the real Docker engine.
//!
//! Flow: `scripts/conformance-images.sh` provides the images the cases name (a local registry on
//! 127.0.0.1:51670, busybox, an Ubuntu bionic minbase for ubuntu, busybox httpd for nginx);
//! then, a few cases at a time, each case's task definition is registered with the CLI, one task is
//! run and polled until STOPPED within the case's `Timeout` (plus [`START_MARGIN`]), and every
//! container named in `ExitCodes` must have exited with that code. Cases a single host cannot
//! support are skipped with their reason ([`skip_reason`]).
//!
//! Output: `case NAME: pass|fail (reason)|skip (reason)` per case, then
//! `CONFORMANCE ecs-agent-simpletests passed=P failed=F skipped=S`.
//!
//! Ratchet: `tests/conformance-passing.txt` lists the cases that passed when it was last updated;
//! the test fails if one of them does not pass, and names (without failing) the cases that pass
//! but are not listed yet, so the list only grows.

use berth_tests::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many cases run at once. Most cases are one or two idle shell containers; six keep the
/// cases that wait out their whole Timeout (today: the features still missing) from adding up
/// to more than ~5 minutes, and stay far below the dev instance's CPU and memory.
const PARALLEL_CASES: usize = 6;

/// Added to a case's `Timeout`: placement and image checks happen before the ECS agent's clock
/// would start (its suite times from the task's RUNNING), and the CLI polls add a little.
const START_MARGIN: Duration = Duration::from_secs(30);

/// Between two `berth task describe` polls of one case.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

const BASELINE: &str = "tests/conformance-passing.txt";

struct Case {
    name: String,
    task_definition: PathBuf,
    exit_codes: BTreeMap<String, i64>,
    timeout: Duration,
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

impl Outcome {
    fn line(&self, name: &str) -> String {
        match self {
            Outcome::Pass => format!("case {name}: pass"),
            Outcome::Fail(why) => match known_failure(name) {
                Some(known) => format!("case {name}: fail ({why}) — known: {known}"),
                None => format!("case {name}: fail ({why})"),
            },
            Outcome::Skip(why) => format!("case {name}: skip ({why})"),
        }
    }
}

#[test]
fn ecs_agent_simpletests_pass() {
    if !require_docker("ecs_agent_simpletests_pass") {
        return;
    }
    let Some(fixtures) = fixtures_dir() else {
        eprintln!("SKIP: ../shared/fixtures is absent");
        return;
    };
    let suite = fixtures.join("ecs-agent-simpletests");
    if !ensure_conformance_images() {
        return;
    }

    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut runnable = Vec::new();
    for dir in case_dirs(&suite) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        match load_case(&name, &dir) {
            Ok(case) => runnable.push(case),
            Err(outcome) => {
                outcomes.insert(name, outcome);
            }
        }
    }
    // Longest Timeout first, so a slow case does not start last and stretch the run.
    runnable.sort_by(|a, b| b.timeout.cmp(&a.timeout).then(a.name.cmp(&b.name)));

    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path(), &["--task-settle-secs", "1"]);
    let started = Instant::now();
    let queue = Mutex::new(VecDeque::from(runnable));
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_CASES {
            s.spawn(|| {
                loop {
                    // A statement of its own: in `while let` the guard would live through the
                    // body and run the cases one at a time.
                    let next = queue.lock().unwrap().pop_front();
                    let Some(case) = next else { break };
                    let began = started.elapsed().as_secs();
                    let outcome = run_case(&dev.endpoint, &case);
                    eprintln!(
                        "  [{began:>3}s–{:>3}s] {}",
                        started.elapsed().as_secs(),
                        outcome.line(&case.name)
                    );
                    results.lock().unwrap().push((case.name, outcome));
                }
            });
        }
    });
    outcomes.extend(results.into_inner().unwrap());

    let count = |f: fn(&Outcome) -> bool| outcomes.values().filter(|o| f(o)).count();
    let mut summary: Vec<String> =
        outcomes.iter().map(|(name, outcome)| outcome.line(name)).collect();
    summary.push(format!(
        "CONFORMANCE ecs-agent-simpletests passed={} failed={} skipped={}",
        count(|o| matches!(o, Outcome::Pass)),
        count(|o| matches!(o, Outcome::Fail(_))),
        count(|o| matches!(o, Outcome::Skip(_))),
    ));
    let summary = summary.join("\n") + "\n";
    print!("{summary}");
    // cargo test shows a passing test's output only with --nocapture: .ci/run prints this file.
    let file = workspace_root().join("target").join("conformance-summary.txt");
    if let Err(e) = std::fs::write(&file, &summary) {
        eprintln!("cannot write {}: {e}", file.display());
    }
    check_baseline(&outcomes, &dev);
}

/// Runs `scripts/conformance-images.sh`; false (printing why) when this host lacks one of its
/// prerequisites and Docker tests are not required.
fn ensure_conformance_images() -> bool {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/conformance-images.sh"))
        .output()
        .expect("running scripts/conformance-images.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2)
        && !std::env::var("BERTH_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
    {
        eprintln!("SKIP ecs_agent_simpletests_pass: {}", stderr.trim());
        return false;
    }
    assert!(out.status.success(), "conformance-images.sh failed: {stderr}");
    println!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
    println!("images ready in {:.1}s", started.elapsed().as_secs_f64());
    true
}

fn case_dirs(suite: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite)
        .unwrap_or_else(|e| panic!("reading {}: {e}", suite.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("test.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The case in `dir`, or the outcome it has without running (a skip, or a malformed case).
fn load_case(name: &str, dir: &Path) -> Result<Case, Outcome> {
    let test = read_json(&dir.join("test.json"));
    let task_definition = dir.join("task-definition.json");
    let td = read_json(&task_definition);
    if let Some(why) = skip_reason(&td) {
        return Err(Outcome::Skip(why));
    }
    let exit_codes: BTreeMap<String, i64> = test["ExitCodes"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_i64()?))).collect())
        .unwrap_or_default();
    if exit_codes.is_empty() {
        return Err(Outcome::Fail("test.json names no ExitCodes".into()));
    }
    let timeout = test["Timeout"].as_str().and_then(parse_go_duration).ok_or_else(|| {
        Outcome::Fail(format!("test.json Timeout {:?} unreadable", test["Timeout"]))
    })?;
    Ok(Case { name: name.to_string(), task_definition, exit_codes, timeout })
}

/// Cases that run and fail here for a reason outside Berth, with that reason (printed beside the
/// failure; they stay out of the ratchet, so they are not hidden: the count says `failed`).
/// None today: `add-drop-capabilities` passes since the ubuntu image is a real bionic (its capsh
/// prints no `Current IAB` line), `init-process` since the agent runs the init as `/dev/init`.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

fn known_failure(name: &str) -> Option<&'static str> {
    KNOWN_FAILURES.iter().find(|(case, _)| *case == name).map(|(_, why)| *why)
}

/// Why a single Linux host cannot run this case, if it cannot.
fn skip_reason(td: &Value) -> Option<String> {
    let images: Vec<&str> = td["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .collect();
    // awsvpc cases run: the agent gives each awsvpc task a network namespace and address of its
    // own, and the ENI-style hostname ip-A-B-C-D.<region>.compute.internal (README, awsvpc).
    if images.iter().any(|i| i.ends_with(":parallel-pull-fts")) {
        return Some(
            "parallel-pull image set: consul, redis, httpd, registry, debian… tagged \
             parallel-pull-fts are the ECS suite's own image builds, not reproducible offline \
             (and the case checks pull concurrency of 4 daemon tasks, not exit codes)"
                .into(),
        );
    }
    let privileged = td["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["privileged"] == true);
    if privileged && let Some(why) = privileged_refused() {
        return Some(format!(
            "privileged: this host's Docker engine cannot start any privileged container \
             ({why})"
        ));
    }
    if let Some(i) = images.iter().find(|i| i.starts_with("amazon/testnnp")) {
        return Some(format!(
            "{i}: the ECS suite's prebuilt no-new-privileges probe (a setuid binary), \
             only on Docker Hub"
        ));
    }
    None
}

/// Whether the engine refuses privileged containers outright, once per process: the same
/// container runs unprivileged but not with `--privileged`, and the runtime says it could not
/// apply the capabilities (a sandboxed Docker whose host lacks some in its bounding set, so
/// runc cannot grant the full set). Any other outcome (it runs, the control fails too, another
/// error) lets the case run and pass or fail on its own.
fn privileged_refused() -> Option<String> {
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            let run = |privileged: bool| {
                let mut args = vec!["run", "--rm", "--network", "none"];
                if privileged {
                    args.push("--privileged");
                }
                args.extend(["busybox:latest", "true"]);
                Command::new("docker").args(&args).output().ok()
            };
            if !run(false)?.status.success() {
                return None;
            }
            let out = run(true)?;
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || !err.contains("unable to apply caps") {
                return None;
            }
            let line = err.lines().find(|l| l.contains("unable to apply caps")).unwrap_or("");
            let host = match missing_bounding_caps() {
                Some(caps) if !caps.is_empty() => {
                    format!("; this host's bounding set lacks {}", caps.join(", "))
                }
                _ => String::new(),
            };
            Some(format!(
                "probe `docker run --privileged busybox:latest true` fails where the same \
                 run without --privileged succeeds: {}{host}",
                line.trim()
            ))
        })
        .clone()
}

/// The capabilities the kernel knows (`cap_last_cap`) that this process's bounding set lacks
/// (`CapBnd` of /proc/self/status); `None` when either is unreadable.
fn missing_bounding_caps() -> Option<Vec<String>> {
    /// Linux capability names by number (capability.h), 0 to 40.
    const NAMES: &str = "chown dac_override dac_read_search fowner fsetid kill setgid setuid \
        setpcap linux_immutable net_bind_service net_broadcast net_admin net_raw ipc_lock \
        ipc_owner sys_module sys_rawio sys_chroot sys_ptrace sys_pacct sys_admin sys_boot \
        sys_nice sys_resource sys_time sys_tty_config mknod lease audit_write audit_control \
        setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf \
        checkpoint_restore";
    let last: u32 =
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok()?.trim().parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?.trim();
    let bounding = u64::from_str_radix(hex, 16).ok()?;
    Some(
        (0..=last.min(63))
            .filter(|bit| bounding & (1u64 << bit) == 0)
            .map(|bit| match NAMES.split_whitespace().nth(bit as usize) {
                Some(name) => format!("cap_{name}"),
                None => format!("capability {bit}"),
            })
            .collect(),
    )
}

/// A Go `time.Duration` string as test.json writes it ("2m", "90s", "1m30s").
fn parse_go_duration(s: &str) -> Option<Duration> {
    let (mut total, mut num) = (0u64, String::new());
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: u64 = std::mem::take(&mut num).parse().ok()?;
        total += n * match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
    }
    (num.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

/// Register, run one task, wait for STOPPED, compare exit codes.
fn run_case(endpoint: &str, case: &Case) -> Outcome {
    let file = case.task_definition.to_string_lossy();
    let td = match berth_json(endpoint, &["taskdef", "register", &file]) {
        Ok(td) => td,
        Err(e) => return Outcome::Fail(format!("register: {}", first_line(&e))),
    };
    let Some(arn) = td["taskDefinitionArn"].as_str() else {
        return Outcome::Fail(format!("register returned no taskDefinitionArn: {td}"));
    };
    let run = match berth_json(endpoint, &["task", "run", "--taskdef", arn]) {
        Ok(run) => run,
        Err(e) => return Outcome::Fail(format!("task run: {}", first_line(&e))),
    };
    let Some(task) = run["tasks"].as_array().and_then(|t| t.first()) else {
        return Outcome::Fail(format!("task run started no task: {}", run["failures"]));
    };
    let id = task_id(task);

    let limit = case.timeout + START_MARGIN;
    let deadline = Instant::now() + limit;
    let mut last = task.clone();
    loop {
        if let Ok(t) = berth_json(endpoint, &["task", "describe", &id]) {
            last = t;
        }
        if last["lastStatus"] == "STOPPED" {
            return compare_exit_codes(&last, &case.exit_codes);
        }
        if Instant::now() >= deadline {
            let _ = berth(endpoint, &["task", "stop", &id, "--reason", "conformance timeout"]);
            return Outcome::Fail(format!(
                "not STOPPED within {}s: task {}, containers {}",
                limit.as_secs(),
                last["lastStatus"].as_str().unwrap_or("?"),
                containers_summary(&last)
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn compare_exit_codes(task: &Value, want: &BTreeMap<String, i64>) -> Outcome {
    let containers: BTreeMap<&str, &Value> = task["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?, c)))
        .collect();
    let mut wrong = Vec::new();
    for (name, code) in want {
        match containers.get(name.as_str()).map(|c| (c["exitCode"].as_i64(), *c)) {
            Some((Some(got), _)) if got == *code => {}
            Some((Some(got), _)) => wrong.push(format!("{name} exited {got}, want {code}")),
            Some((None, c)) => wrong.push(format!(
                "{name} has no exit code, want {code}{}",
                c["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default()
            )),
            None => wrong.push(format!("no container {name}")),
        }
    }
    if wrong.is_empty() {
        return Outcome::Pass;
    }
    let stopped = task["stoppedReason"].as_str().unwrap_or_default();
    Outcome::Fail(format!("{}; task stoppedReason: {stopped:?}", wrong.join("; ")))
}

/// `name=STATUS[/exit]` for every container of a task.
fn containers_summary(task: &Value) -> String {
    let parts: Vec<String> = task["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let exit = c["exitCode"].as_i64().map(|e| format!("/{e}")).unwrap_or_default();
            format!(
                "{}={}{exit}",
                c["name"].as_str().unwrap_or("?"),
                c["lastStatus"].as_str().unwrap_or("?")
            )
        })
        .collect();
    parts.join(" ")
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// Cases listed in the baseline must pass; passing cases missing from it are named.
fn check_baseline(outcomes: &BTreeMap<String, Outcome>, dev: &Dev) {
    let path = workspace_root().join(BASELINE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let listed: BTreeSet<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let mut regressions = Vec::new();
    for name in &listed {
        match outcomes.get(*name) {
            Some(Outcome::Pass) => {}
            Some(other) => regressions.push(other.line(name)),
            None => regressions.push(format!("case {name}: listed in {BASELINE} but not a case")),
        }
    }
    let new: Vec<&str> = outcomes
        .iter()
        .filter(|(name, o)| matches!(o, Outcome::Pass) && !listed.contains(name.as_str()))
        .map(|(name, _)| name.as_str())
        .collect();
    if !new.is_empty() {
        println!("passing but not in {BASELINE} (please add them): {}", new.join(" "));
    }
    if !regressions.is_empty() {
        let log = dev.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        panic!(
            "conformance cases listed in {BASELINE} no longer pass:\n{}\n\
             --- berth dev log, last 40 lines ---\n{tail}",
            regressions.join("\n"),
        );
    }
}
