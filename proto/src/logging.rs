//! Logging setup of every Berth binary (`berth-controller`, `berth-agent`, `berth dev`): `tracing` to
//! **stderr** (stdout stays for command output), filtered by `RUST_LOG` (default `info`), as
//! human-readable text or, with `--log-format json`, one JSON object per line (tracing-subscriber's
//! json formatter: `timestamp`, `level`, `fields`, `target`, and the span fields such as task and
//! instance ids). Here, in the crate every binary shares, so the three behave alike.

use clap::ValueEnum;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colors only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `try_init`: one already installed (tests) wins.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).try_init()
        }
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Makes any panic — on any thread or task — end the process (status 101) after it is
/// printed and logged, as an unrecovered panic does in Go daemons (etcd, Nomad, SwarmKit). A
/// daemon whose Raft loop or a listener task died must not linger half-alive and still
/// accept connections; its supervisor (systemd, Kubernetes, `--restart`) starts it again.
/// Binaries only (`berth-controller`, `berth-agent`, `berth dev`): a test harness reports
/// panics itself.
pub fn exit_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        tracing::error!(panic = %info, "panic: exiting (this is a bug; please report it)");
        std::process::exit(101);
    }));
}
