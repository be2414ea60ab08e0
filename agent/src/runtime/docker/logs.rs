//! `DockerRuntime::logs`: the engine's `GET /containers/{id}/logs` through bollard, stdout and
//! stderr both, mapped to [`LogChunk`]s. The container is inspected first so that a missing one
//! is a [`RuntimeError::NotFound`] before any streaming starts (bollard's stream is lazy and
//! would only fail on its first item). With `follow`, the engine ends the stream when the
//! container exits; bollard's request timeout covers only the response head, so a quiet follow
//! is not cut.

use super::map_err;
use crate::runtime::{LogChunk, LogSource, LogStream, LogsOptions, RuntimeError};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;

pub(super) async fn logs(
    docker: &Docker,
    id: &str,
    opts: LogsOptions,
) -> Result<LogStream, RuntimeError> {
    docker.inspect_container(id, None).await.map_err(|e| map_err(&format!("logs {id}"), e))?;
    let tail = opts.tail.map_or_else(|| "all".to_string(), |n| n.to_string());
    let query = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .follow(opts.follow)
        .timestamps(opts.timestamps)
        .tail(&tail)
        .build();
    let context = format!("logs {id}");
    let stream = docker.logs(id, Some(query)).filter_map(move |item| {
        let out = match item {
            Ok(LogOutput::StdErr { message }) => {
                Some(Ok(LogChunk { source: LogSource::Stderr, data: message }))
            }
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                Some(Ok(LogChunk { source: LogSource::Stdout, data: message }))
            }
            // Never sent by the logs endpoint; nothing a reader wants.
            Ok(LogOutput::StdIn { .. }) => None,
            Err(e) => Some(Err(map_err(&context, e))),
        };
        std::future::ready(out)
    });
    Ok(Box::pin(stream))
}
