//! `SubscribeEvents`: a filtered subscription to this controller's copy of the event log
//! (`crate::events`). Followers serve it too: every member applies the same log, so each holds
//! the same events, in the same order, under the same indexes.

use super::{Api, R};
use crate::events::subscribe::{self, Filter, SubscribeError};
use berth_proto::v1::{EventMessage, SubscribeEventsRequest};
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt as _, wrappers::ReceiverStream};
use tonic::{Response, Status};

pub type EventStream = Pin<Box<dyn Stream<Item = Result<EventMessage, Status>> + Send>>;

/// gRPC metadata of an OUT_OF_RANGE refusal: the oldest index still available.
pub const OLDEST_INDEX_METADATA: &str = "x-berth-oldest-index";

pub(super) fn subscribe(api: &Api, r: SubscribeEventsRequest) -> R<EventStream> {
    let filter = Filter::new(&r.pattern, &r.detail_types).map_err(status)?;
    let rx =
        subscribe::subscribe(api.events.clone(), filter, r.from_index, r.follow).map_err(status)?;
    let stream = ReceiverStream::new(rx).map(|item| match item {
        Ok(e) => Ok(EventMessage {
            index: e.index,
            detail_type: e.detail_type.clone(),
            json: e.json.clone(),
        }),
        Err(e) => Err(status(e)),
    });
    Ok(Response::new(Box::pin(stream)))
}

/// The gRPC status of a subscription error: OUT_OF_RANGE (with the oldest index in
/// [`OLDEST_INDEX_METADATA`]) or INVALID_ARGUMENT naming the bad filter element.
pub fn status(e: SubscribeError) -> Status {
    match &e {
        SubscribeError::Trimmed { oldest, .. } => {
            let mut s = Status::out_of_range(e.to_string());
            if let Ok(v) = oldest.to_string().parse() {
                s.metadata_mut().insert(OLDEST_INDEX_METADATA, v);
            }
            s
        }
        SubscribeError::Closing { .. } => Status::unavailable(e.to_string()),
        SubscribeError::InvalidFilter(m) => {
            Status::invalid_argument(format!("InvalidParameterException: {m}"))
        }
    }
}
