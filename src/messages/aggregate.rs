//! Aggregate messages (type 22): several audio, video and data messages in one body.
//!
//! Each sub-message is laid out like an FLV tag: type (1 byte), body size (3), timestamp
//! (3, then 1 extension byte holding bits 24-31), stream id (3), the body, then a 4-byte
//! back-pointer (the sub-message's total size, which readers do not need and is not checked).

use bytes::Bytes;

use super::error::{AggregateProblem, MessageError};
use super::type_id;
use crate::chunk_io::MessagePayload;
use crate::time::RtmpTimestamp;

const HEADER_LENGTH: usize = 11;
const BACK_POINTER_LENGTH: usize = 4;

/// Splits an aggregate message into its sub-messages, lazily and without copying.
///
/// Sub-message bodies are slices of `aggregate.data`. Timestamps are rebased so that the first
/// sub-message lands on the aggregate's own timestamp and later ones keep their offset from the
/// first (wrapping). Sub-messages take the aggregate's message stream id: the id inside the
/// sub-message header is an FLV field that writers leave at 0.
///
/// A malformed sub-message yields one `Err`, after which the iterator ends.
pub fn split_aggregate(aggregate: &MessagePayload) -> AggregateSubMessages {
    AggregateSubMessages {
        data: aggregate.data.clone(),
        position: 0,
        timestamp: aggregate.timestamp,
        first_timestamp: None,
        message_stream_id: aggregate.message_stream_id,
        failed: false,
    }
}

/// Iterator over an aggregate's sub-messages; see [`split_aggregate`].
#[derive(Clone, Debug)]
pub struct AggregateSubMessages {
    data: Bytes,
    position: usize,
    timestamp: RtmpTimestamp,
    first_timestamp: Option<RtmpTimestamp>,
    message_stream_id: u32,
    failed: bool,
}

impl AggregateSubMessages {
    fn next_sub_message(&mut self) -> Result<MessagePayload, MessageError> {
        let start = self.position;
        let error = |problem| MessageError::Aggregate {
            offset: start,
            problem,
        };
        let rest = self.data.get(start..).unwrap_or_default();
        let header: [u8; HEADER_LENGTH] = rest
            .get(..HEADER_LENGTH)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(error(AggregateProblem::TruncatedHeader {
                remaining: rest.len(),
            }))?;
        let [sub_type, s0, s1, s2, t0, t1, t2, t_high, ..] = header;
        if !matches!(
            sub_type,
            type_id::AUDIO | type_id::VIDEO | type_id::AMF0_DATA | type_id::AMF3_DATA
        ) {
            return Err(error(AggregateProblem::UnexpectedType(sub_type)));
        }
        let size = usize::from(s0) << 16 | usize::from(s1) << 8 | usize::from(s2);
        let timestamp = RtmpTimestamp::new(u32::from_be_bytes([t_high, t0, t1, t2]));
        let body_start = start + HEADER_LENGTH;
        let remaining = rest.len().saturating_sub(HEADER_LENGTH);
        // size is at most 2^24 - 1, so these sums cannot overflow.
        if size + BACK_POINTER_LENGTH > remaining {
            return Err(error(AggregateProblem::SubMessagePastEnd {
                size,
                remaining,
            }));
        }
        let body = self.data.slice(body_start..body_start + size);
        self.position = body_start + size + BACK_POINTER_LENGTH;
        let first = *self.first_timestamp.get_or_insert(timestamp);
        Ok(MessagePayload {
            timestamp: self.timestamp + (timestamp - first),
            type_id: sub_type,
            message_stream_id: self.message_stream_id,
            data: body,
        })
    }
}

impl Iterator for AggregateSubMessages {
    type Item = Result<MessagePayload, MessageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.data.len() {
            return None;
        }
        let result = self.next_sub_message();
        self.failed = result.is_err();
        Some(result)
    }
}

impl std::iter::FusedIterator for AggregateSubMessages {}
