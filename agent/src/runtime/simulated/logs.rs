//! Container output in the [`SimulatedRuntime`]: nothing runs, so a container has output only
//! when test code writes it ([`SimulatedRuntime::append_log`], kept as lines). A container
//! nobody wrote to yields the one line [`SIMULATED_NO_LOGS`] on stderr, so a reader can tell a
//! fake from a silent process. `tail` counts the written lines; `timestamps` is ignored (the
//! fake keeps no times). With `follow`, the stream delivers later writes and ends once the
//! container is no longer running (exited, stopped or removed), as the engine's does.

use super::{SimState, SimulatedRuntime, find_mut};
use crate::runtime::{ContainerState, LogChunk, LogSource, LogStream, LogsOptions, RuntimeError};
use std::sync::Arc;
use tokio::sync::Notify;

/// What a simulated container that no test wrote to "printed".
pub const SIMULATED_NO_LOGS: &str = "berth: simulated runtime: this container has no output\n";

impl SimulatedRuntime {
    /// Records `text` as output of the container (`id` or name) on `source`, as if its process
    /// wrote it, and wakes followers. Returns false if there is no such container.
    pub fn append_log(&self, id_or_name: &str, source: LogSource, text: &str) -> bool {
        let mut st = self.lock();
        let Some(id) = find_mut(&mut st.containers, id_or_name).map(|c| c.id.clone()) else {
            return false;
        };
        let lines = st.logs.entry(id).or_default();
        for line in text.split_inclusive('\n') {
            lines.push(LogChunk { source, data: bytes::Bytes::copy_from_slice(line.as_bytes()) });
        }
        st.log_changed.notify_waiters();
        true
    }
}

/// Followers re-read the state whenever it may have changed (output written, container
/// exited, stopped or removed).
pub(super) fn notify_followers(st: &SimState) {
    st.log_changed.notify_waiters();
}

struct Follow {
    rt: SimulatedRuntime,
    id: String,
    /// Index of the next written line to deliver.
    next: usize,
    pending: std::collections::VecDeque<LogChunk>,
    follow: bool,
    changed: Arc<Notify>,
}

enum Read {
    Chunks(Vec<LogChunk>),
    Wait,
    End,
}

impl Follow {
    fn read(&mut self) -> Read {
        let st = self.rt.lock();
        let running = st.containers.get(&self.id).map(|c| c.state == ContainerState::Running);
        let lines = st.logs.get(&self.id).map(|l| &l[self.next.min(l.len())..]).unwrap_or(&[]);
        if !lines.is_empty() {
            let out = lines.to_vec();
            self.next += out.len();
            return Read::Chunks(out);
        }
        if self.follow && running == Some(true) { Read::Wait } else { Read::End }
    }
}

pub(super) fn logs(
    rt: &SimulatedRuntime,
    id: &str,
    opts: LogsOptions,
) -> Result<LogStream, RuntimeError> {
    let mut st = rt.lock();
    let Some(id) = find_mut(&mut st.containers, id).map(|c| c.id.clone()) else {
        return Err(RuntimeError::NotFound(format!("container {id}")));
    };
    let mut pending = std::collections::VecDeque::new();
    let written = st.logs.get(&id).map_or(0, Vec::len);
    let start = match (opts.tail, st.logs.contains_key(&id)) {
        (_, false) => {
            pending.push_back(LogChunk {
                source: LogSource::Stderr,
                data: bytes::Bytes::from_static(SIMULATED_NO_LOGS.as_bytes()),
            });
            0
        }
        (Some(n), true) => written.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
        (None, true) => 0,
    };
    let changed = st.log_changed.clone();
    drop(st);
    let state = Follow { rt: rt.clone(), id, next: start, pending, follow: opts.follow, changed };
    let stream = futures::stream::unfold(state, |mut f| async move {
        loop {
            if let Some(chunk) = f.pending.pop_front() {
                return Some((Ok(chunk), f));
            }
            let changed = f.changed.clone();
            let notified = changed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before reading, so a write between the read and the wait is not lost.
            notified.as_mut().enable();
            match f.read() {
                Read::Chunks(chunks) => f.pending.extend(chunks),
                Read::End => return None,
                Read::Wait => notified.await,
            }
        }
    });
    Ok(Box::pin(stream))
}
