//! Publishing: FLV tags in, with the server's acks, pings and statuses handled.

use std::collections::VecDeque;

use bytes::Bytes;

use super::connection::Connection;
use super::Error;
use crate::flv::FlvTag;
use crate::sessions::{ClientSession, ClientSessionEvent, MediaKind};
use crate::time::RtmpTimestamp;

/// A stream being published, from [`Client::publish`](super::Client::publish).
///
/// Each send writes the message, then reads whatever the server sent meanwhile without
/// waiting for more: acknowledgement windows and ping requests are answered there, and a
/// publish the server revoked is an [`Error::Rejected`]. Sending is as fast as the socket
/// takes it; a live source paces itself by the tags' timestamps.
#[derive(Debug)]
pub struct Publisher {
    connection: Connection,
}

impl Publisher {
    pub(super) fn new(connection: Connection) -> Publisher {
        Publisher { connection }
    }

    /// Sends one FLV tag (audio, video, `onMetaData` or other script data; see
    /// [`ClientSession::publish_tag`]).
    pub fn send_tag(&mut self, tag: &FlvTag) -> Result<(), Error> {
        self.connection.session.publish_tag(tag)?;
        self.service()
    }

    /// Sends one message body of `kind`, as it is.
    pub fn send_media(&mut self, kind: MediaKind, timestamp: RtmpTimestamp, data: Bytes) -> Result<(), Error> {
        self.connection.session.publish_media(kind, timestamp, data)?;
        self.service()
    }

    /// The session, for anything the sends do not cover.
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.connection.session
    }

    /// Stops publishing (FCUnpublish, deleteStream), waits for the server to close, and
    /// closes.
    pub fn finish(mut self) -> Result<(), Error> {
        self.connection.session.stop()?;
        self.connection.close()
    }

    /// Writes what is queued, then answers whatever has arrived.
    fn service(&mut self) -> Result<(), Error> {
        self.connection.flush()?;
        let open = self.connection.read_available()?;
        let events: VecDeque<_> = std::iter::from_fn(|| self.connection.session.poll_event()).collect();
        self.handle_events(events)?;
        if open {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    pub(super) fn handle_events(&mut self, events: VecDeque<ClientSessionEvent>) -> Result<(), Error> {
        for event in events {
            if let ClientSessionEvent::RequestRejected { kind, status } = event {
                return Err(Error::Rejected { kind, status });
            }
        }
        Ok(())
    }
}
