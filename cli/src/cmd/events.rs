//! `berth events`: the cluster event stream (`SubscribeEvents`), printed as JSON lines (one
//! event per line, exactly the server's JSON: the ECS EventBridge envelope plus `index`) or, with
//! `-o table`, as [`crate::output::events`] rows.
//!
//! Data flow: arguments → [`Subscription`] (pattern text read from a file or taken inline, types
//! checked) → connect (the first `--endpoint` that answers, as every command) → stream → print
//! and flush each event, remembering the last printed index.
//!
//! Resume: when the stream breaks (a transport error, UNAVAILABLE: the controller stopped or
//! was killed, a leader change), it reconnects with [`Backoff`] through the endpoints (the one
//! that broke last) and asks again from the last printed index + 1, so what is printed has no gap
//! and no duplicate; one note per break goes to stderr. It gives up after [`GIVE_UP_AFTER`]
//! without a controller serving. OUT_OF_RANGE (trimmed; the message names the oldest index) and
//! INVALID_ARGUMENT (a bad pattern or type) end it at once with the server's message.
//!
//! A closed stdout (`berth events --follow | head`) ends the command quietly with success, also
//! while it waits for an event (a closed pipe is watched, not only noticed at the next write).

use crate::client::{self, Api};
use crate::error::CliError;
use crate::output::{self, Format};
use berth_proto::model::event::detail_type;
use berth_proto::v1::{EventMessage, SubscribeEventsRequest};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::Code;

/// First pause before reconnecting: long enough not to spin on a refused connection, short
/// enough that a leader change (about an election timeout, ~1 s) costs little more than itself.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between reconnection rounds.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// With no controller serving for this long, give up: longer than any election or rolling
/// restart, short enough that a script notices a dead cluster.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep streaming live events once the backlog is printed (otherwise stop at the log's end
    /// as of the request).
    #[arg(long)]
    pub follow: bool,
    /// First index wanted (default: the oldest retained event). Below retention: an error
    /// naming the oldest available index.
    #[arg(long, value_name = "N")]
    pub from_index: Option<u64>,
    /// An EventBridge event pattern: inline JSON (starting with `{`) or a file holding it.
    #[arg(long, value_name = "FILE|JSON")]
    pub pattern: Option<String>,
    /// Only these detail-types: TASK, INSTANCE, SERVICE, DEPLOYMENT (repeatable, or comma
    /// separated; any case).
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',', value_parser = parse_type)]
    pub types: Vec<String>,
}

/// `task` → `TASK`; also the full ECS detail-type (`ECS Task State Change`).
fn parse_type(s: &str) -> Result<String, String> {
    detail_type(s)
        .map(|(short, _)| short.to_string())
        .ok_or_else(|| format!("'{}' is not one of TASK, INSTANCE, SERVICE, DEPLOYMENT", s.trim()))
}

/// The pattern's JSON text: the argument itself when it starts with `{` (after trimming),
/// else the contents of the file it names.
pub fn pattern_text(arg: &str) -> Result<String, CliError> {
    if arg.trim_start().starts_with('{') {
        return Ok(arg.trim().to_string());
    }
    std::fs::read_to_string(arg)
        .map_err(|source| CliError::ReadFile { path: PathBuf::from(arg), source })
}

/// What is asked of the server, and from where to resume.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub from_index: Option<u64>,
    pub pattern: String,
    pub types: Vec<String>,
    pub follow: bool,
}

impl Subscription {
    pub fn from_args(args: &EventsArgs) -> Result<Subscription, CliError> {
        let pattern = args.pattern.as_deref().map(pattern_text).transpose()?.unwrap_or_default();
        Ok(Subscription {
            from_index: args.from_index,
            pattern,
            types: args.types.clone(),
            follow: args.follow,
        })
    }

    /// The request after `last` was printed: from `last + 1`, or as first asked.
    pub fn request(&self, last: Option<u64>) -> SubscribeEventsRequest {
        SubscribeEventsRequest {
            from_index: last.map(|l| l + 1).or(self.from_index),
            pattern: self.pattern.clone(),
            detail_types: self.types.clone(),
            follow: self.follow,
        }
    }
}

/// Whether a stream that ended with `code` is resumed elsewhere: transport failures and a
/// controller that cannot serve now. OUT_OF_RANGE, INVALID_ARGUMENT and the rest are answers.
pub fn resumable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
    )
}

/// Pauses between reconnection rounds: [`BACKOFF_FIRST`], doubling up to [`BACKOFF_MAX`].
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_FIRST }
    }
}

impl Backoff {
    pub fn pause(&mut self) -> Duration {
        let p = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        p
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// Writes events to stdout (or a test buffer), flushing each line.
pub struct Printer<W: Write> {
    out: W,
    table: bool,
}

impl<W: Write> Printer<W> {
    /// JSON lines unless `-o table` was given explicitly (`events` defaults to JSON lines).
    pub fn new(out: W, format: Option<Format>) -> Printer<W> {
        Printer { out, table: format == Some(Format::Table) }
    }

    pub fn header(&mut self) -> std::io::Result<()> {
        if self.table {
            self.out.write_all(output::events::events_header().as_bytes())?;
            self.out.flush()?;
        }
        Ok(())
    }

    pub fn event(&mut self, m: &EventMessage) -> std::io::Result<()> {
        if self.table {
            self.out.write_all(output::events::event_row(&m.json).as_bytes())?;
        } else {
            self.out.write_all(m.json.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}

/// Why one stream stopped.
enum Stop {
    /// The server ended it (the log's end, without `--follow`).
    Ended,
    /// The server refused or broke it.
    Status(tonic::Status),
    /// Stdout failed.
    Output(std::io::Error),
}

pub async fn run(
    args: EventsArgs,
    endpoints: &[String],
    stale: bool,
    format: Option<Format>,
) -> anyhow::Result<()> {
    let sub = Subscription::from_args(&args)?;
    let endpoints: Vec<String> =
        endpoints.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
    // Events are cluster-wide; the cluster argument only fills the client's field.
    let mut api = Api::connect(&endpoints, berth_proto::model::DEFAULT_CLUSTER, stale).await?;
    let mut printer = Printer::new(std::io::stdout(), format);
    if let Err(e) = printer.header() {
        return quiet_on_broken_pipe(e);
    }
    let mut last: Option<u64> = None;
    let mut backoff = Backoff::default();
    // When the current outage began (no controller serving since).
    let mut down_since: Option<Instant> = None;
    let closed = stdout_closed();
    tokio::pin!(closed);
    loop {
        let stop =
            stream_once(&mut api, &sub, &mut printer, &mut last, &mut down_since, &mut closed)
                .await;
        let status = match stop {
            Stop::Ended => return Ok(()),
            Stop::Output(e) => return quiet_on_broken_pipe(e),
            Stop::Status(s) if resumable(s.code()) => s,
            Stop::Status(s) => return Err(CliError::from(s).into()),
        };
        if down_since.is_none() {
            backoff.reset();
            down_since = Some(Instant::now());
            let next = match sub.request(last).from_index {
                Some(i) => format!("at index {i}"),
                None => "from the oldest event".into(),
            };
            eprintln!(
                "note: event stream from {} broke ({:?}: {}); reconnecting, resuming {next}",
                api.endpoint(),
                status.code(),
                status.message()
            );
        }
        api =
            reconnect(&endpoints, api.endpoint(), stale, &mut backoff, down_since, &status).await?;
    }
}

/// One subscription on `api`, printing until it stops.
async fn stream_once<W: Write>(
    api: &mut Api,
    sub: &Subscription,
    printer: &mut Printer<W>,
    last: &mut Option<u64>,
    down_since: &mut Option<Instant>,
    stdout_closed: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Stop {
    let mut stream = match api.grpc().subscribe_events(sub.request(*last)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Stop::Status(s),
    };
    *down_since = None;
    loop {
        let next = tokio::select! {
            m = stream.message() => m,
            () = stdout_closed.as_mut() => {
                return Stop::Output(std::io::ErrorKind::BrokenPipe.into());
            }
        };
        match next {
            Ok(Some(m)) => {
                // The server sends in index order; never print one twice across a resume.
                if last.is_some_and(|l| m.index <= l) {
                    continue;
                }
                if let Err(e) = printer.event(&m) {
                    return Stop::Output(e);
                }
                *last = Some(m.index);
            }
            Ok(None) => return Stop::Ended,
            Err(s) => return Stop::Status(s),
        }
    }
}

/// Tries every endpoint, the one that broke (`broken`) last, pausing between rounds, until one
/// accepts a connection or [`GIVE_UP_AFTER`] has passed since `down_since`.
async fn reconnect(
    endpoints: &[String],
    broken: &str,
    stale: bool,
    backoff: &mut Backoff,
    down_since: Option<Instant>,
    cause: &tonic::Status,
) -> anyhow::Result<Api> {
    let since = down_since.unwrap_or_else(Instant::now);
    let at = endpoints.iter().position(|e| client::with_scheme(e) == broken).unwrap_or(0);
    let order: Vec<&String> =
        (1..=endpoints.len()).map(|k| &endpoints[(at + k) % endpoints.len()]).collect();
    let mut last_error = format!("{:?}: {}", cause.code(), cause.message());
    loop {
        if since.elapsed() >= GIVE_UP_AFTER {
            return Err(CliError::Timeout {
                secs: GIVE_UP_AFTER.as_secs(),
                what: "a controller to serve the event stream".into(),
                detail: last_error,
            }
            .into());
        }
        tokio::time::sleep(backoff.pause()).await;
        for endpoint in &order {
            match Api::connect(std::slice::from_ref(*endpoint), "default", stale).await {
                Ok(api) => return Ok(api),
                Err(e) => last_error = e.to_string(),
            }
        }
    }
}

/// Resolves when stdout is a pipe whose reader has gone (`| head`): an idle `--follow` would
/// otherwise only notice at its next write. Never resolves where that cannot be watched (a
/// regular file, a terminal, non-Unix).
async fn stdout_closed() {
    #[cfg(unix)]
    {
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;
        // SAFETY: `Stdout::as_raw_fd` is always fd 1, which this process never closes, so it
        // stays open and the same file description for the whole life of the `AsyncFd`.
        let registered =
            unsafe { AsyncFd::register_with_interest(std::io::stdout(), Interest::ERROR) };
        if let Ok(fd) = registered
            && fd.ready(Interest::ERROR).await.is_ok()
        {
            return;
        }
    }
    std::future::pending::<()>().await
}

fn quiet_on_broken_pipe(e: std::io::Error) -> anyhow::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(anyhow::Error::from(e).context("writing events to stdout"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_take_short_or_full_names_in_any_case() {
        assert_eq!(parse_type("task").as_deref(), Ok("TASK"));
        assert_eq!(parse_type(" Deployment ").as_deref(), Ok("DEPLOYMENT"));
        assert_eq!(parse_type("ECS Service Action").as_deref(), Ok("SERVICE"));
        assert!(parse_type("NODE").unwrap_err().contains("'NODE'"));
    }

    #[test]
    fn inline_patterns_start_with_a_brace_else_name_a_file() {
        assert_eq!(
            pattern_text("  {\"source\": [\"aws.ecs\"]} ").unwrap(),
            r#"{"source": ["aws.ecs"]}"#
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, r#"{"detail-type": ["ECS Task State Change"]}"#).unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(pattern_text(path).unwrap(), r#"{"detail-type": ["ECS Task State Change"]}"#);
        let missing = dir.path().join("nope.json");
        let err = pattern_text(missing.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("cannot read {}", missing.display())), "{err}");
    }

    #[test]
    fn a_resumed_request_starts_after_the_last_printed_index() {
        let sub = Subscription {
            from_index: Some(5),
            pattern: String::new(),
            types: vec!["TASK".into()],
            follow: true,
        };
        assert_eq!(sub.request(None).from_index, Some(5));
        assert_eq!(sub.request(Some(9)).from_index, Some(10));
        let from_oldest = Subscription { from_index: None, ..sub.clone() };
        assert_eq!(from_oldest.request(None).from_index, None);
        let r = sub.request(Some(9));
        assert!(r.follow);
        assert_eq!(r.detail_types, ["TASK"]);
    }

    #[test]
    fn only_transport_and_availability_failures_resume() {
        assert!(resumable(Code::Unavailable));
        assert!(resumable(Code::Unknown));
        assert!(!resumable(Code::OutOfRange));
        assert!(!resumable(Code::InvalidArgument));
        assert!(!resumable(Code::NotFound));
    }

    #[test]
    fn backoff_doubles_from_100ms_to_2s() {
        let mut b = Backoff::default();
        let pauses: Vec<u64> = (0..7).map(|_| b.pause().as_millis() as u64).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.pause(), BACKOFF_FIRST);
    }

    #[test]
    fn json_lines_by_default_table_only_when_asked() {
        let m = EventMessage {
            index: 3,
            detail_type: "ECS Service Action".into(),
            json: r#"{"index":3,"detail-type":"ECS Service Action"}"#.into(),
        };
        for format in [None, Some(Format::Json)] {
            let mut buf = Vec::new();
            let mut p = Printer::new(&mut buf, format);
            p.header().unwrap();
            p.event(&m).unwrap();
            assert_eq!(String::from_utf8(buf).unwrap(), format!("{}\n", m.json));
        }
        let mut buf = Vec::new();
        let mut p = Printer::new(&mut buf, Some(Format::Table));
        p.header().unwrap();
        p.event(&m).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("INDEX "), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("3 "), "{text}");
    }
}
