//! Playing: the session's media and metadata events as an iterator of FLV tags.

use std::collections::VecDeque;

use super::connection::Connection;
use super::Error;
use crate::flv::FlvTag;
use crate::sessions::{codes, ClientSession, ClientSessionEvent};

/// `NetStream.Play.Complete`: a recorded stream played to its end.
const PLAY_COMPLETE: &str = "NetStream.Play.Complete";

/// A stream being played, from [`Client::play`](super::Client::play).
///
/// Iterates the stream as FLV tags: `onMetaData` as a script tag, then audio, video and
/// other data tags, each with its RTMP timestamp; writing them to an
/// [`FlvWriter`](crate::flv::FlvWriter) records the stream. The iterator ends when the
/// stream does: NetStream.Play.Stop or Play.Complete, or, unless
/// [`set_end_on_unpublish(false)`](Self::set_end_on_unpublish), when its publisher stops
/// (NetStream.Play.UnpublishNotify, StreamEOF or StreamDry); or when the server closes the
/// connection. An error ends it too.
#[derive(Debug)]
pub struct Player {
    connection: Connection,
    stream_id: u32,
    events: VecDeque<ClientSessionEvent>,
    waiting: bool,
    end_on_unpublish: bool,
    finished: bool,
}

impl Player {
    pub(super) fn new(connection: Connection, stream_id: u32, events: VecDeque<ClientSessionEvent>) -> Player {
        // What came with Play.Start already says whether the stream waits; the iterator
        // goes over these events again in order, to the same end.
        let waiting = events.iter().fold(false, |waiting, event| match event {
            ClientSessionEvent::WaitingForPublisher { stream_id: id, .. } if *id == stream_id => true,
            ClientSessionEvent::StreamBegin { stream_id: id } if *id == stream_id => false,
            _ => waiting,
        });
        Player { connection, stream_id, events, waiting, end_on_unpublish: true, finished: false }
    }

    /// Whether the server said the stream has no publisher at the moment (see
    /// [`ClientSessionEvent::WaitingForPublisher`]); it turns false at StreamBegin. As
    /// current as what came with Play.Start, then as the last tag the iterator returned.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// The message stream id the server plays on.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// With `false`, the iterator goes on past the publisher stopping and waits for the
    /// next one (with [`Options::idle_timeout`](super::Options::idle_timeout) `None`, as
    /// long as it takes). The default, `true`, ends there, as ffmpeg and rtmpdump do.
    pub fn set_end_on_unpublish(&mut self, end_on_unpublish: bool) {
        self.end_on_unpublish = end_on_unpublish;
    }

    /// The session, for anything the iterator does not cover.
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.connection.session
    }

    /// Stops playing (deleteStream) and closes the connection.
    pub fn close(mut self) -> Result<(), Error> {
        self.connection.session.stop()?;
        self.connection.close()
    }

    /// What the iterator does with an event that is not a tag: true when the stream ended.
    fn ends_stream(&mut self, event: ClientSessionEvent) -> Result<bool, Error> {
        match event {
            ClientSessionEvent::WaitingForPublisher { stream_id, .. } if stream_id == self.stream_id => {
                self.waiting = true;
            }
            ClientSessionEvent::StreamBegin { stream_id } if stream_id == self.stream_id => self.waiting = false,
            ClientSessionEvent::StreamEof { stream_id } | ClientSessionEvent::StreamDry { stream_id }
                if stream_id == self.stream_id =>
            {
                return Ok(self.end_on_unpublish);
            }
            ClientSessionEvent::StatusReceived { stream_id, status } if stream_id == self.stream_id => {
                let code = status.code.as_str();
                let unpublished = code == codes::PLAY_UNPUBLISH_NOTIFY && self.end_on_unpublish;
                return Ok(unpublished || code == codes::PLAY_STOP || code == PLAY_COMPLETE);
            }
            ClientSessionEvent::RequestRejected { kind, status } => return Err(Error::Rejected { kind, status }),
            _ => {}
        }
        Ok(false)
    }

    fn next_tag(&mut self) -> Result<Option<FlvTag>, Error> {
        loop {
            while let Some(event) = self.events.pop_front().or_else(|| self.connection.session.poll_event()) {
                if let Some(tag) = event.to_flv_tag() {
                    return Ok(Some(tag));
                }
                if self.ends_stream(event)? {
                    return Ok(None);
                }
            }
            if !self.connection.read()? {
                return Ok(None);
            }
        }
    }
}

impl Iterator for Player {
    type Item = Result<FlvTag, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let result = self.next_tag();
        if !matches!(result, Ok(Some(_))) {
            self.finished = true;
        }
        result.transpose()
    }
}
