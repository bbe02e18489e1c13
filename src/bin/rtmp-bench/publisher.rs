//! The publisher: an FLV file sent in real time, looped, with timestamps that keep growing.
//!
//! It runs on its own thread with a blocking socket: one connection needs no event loop,
//! and keeping it off the players' loops means a busy player loop cannot delay the media
//! it is measuring. Every message's send time is compared with its schedule
//! (publish start + timestamp): that lag is reported, so a late publisher is not
//! mistaken for a slow server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtmp_edge::flv::{FlvReader, FlvTag, FlvTagType};
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::media::{classify_audio, classify_video};
use rtmp_edge::sessions::{ClientSession, ClientSessionConfig, ClientSessionEvent, PublishMode};
use rtmp_edge::time::RtmpTimestamp;

use crate::shared::Shared;
use crate::tls;
use crate::url::RtmpUrl;

/// The publisher's connection: plain TCP, or TLS over it.
trait Connection: Read + Write {}
impl<T: Read + Write> Connection for T {}

/// An FLV file's tags, ready to loop.
pub struct Media {
    tags: Vec<FlvTag>,
    first_timestamp: u32,
    /// Timestamp distance from one loop's first tag to the next loop's first tag.
    loop_duration: u32,
}

impl Media {
    /// Reads the whole file; fails on a malformed or empty one.
    pub fn load(path: &str) -> Result<Media, String> {
        let reader = FlvReader::open(path).map_err(|e| format!("{path}: {e}"))?;
        let tags = reader.collect::<Result<Vec<_>, _>>().map_err(|e| format!("{path}: {e}"))?;
        let media_timestamps: Vec<u32> =
            tags.iter().filter(|t| t.tag_type == FlvTagType::Video).map(|t| t.timestamp.value()).collect();
        let (Some(first), Some(last)) = (tags.first(), tags.iter().map(|t| t.timestamp.value()).max()) else {
            return Err(format!("{path}: no tags"));
        };
        let first_timestamp = first.timestamp.value();
        let frame = match media_timestamps.as_slice() {
            [.., a, b] if b > a => b - a,
            _ => 40,
        };
        let loop_duration = last.saturating_sub(first_timestamp).saturating_add(frame);
        Ok(Media { tags, first_timestamp, loop_duration })
    }
}

/// Publishes until `shared.stop_publisher` or `duration`, whichever is first, stamping
/// each media message with a sequence number of generation `stamps` when given.
/// Errors end up in `shared.publisher_error`.
pub fn run(
    url: RtmpUrl,
    tls: Option<Arc<rustls::ClientConfig>>,
    media: Arc<Media>,
    shared: Arc<Shared>,
    duration: Option<Duration>,
    stamps: Option<u32>,
) {
    if let Err(error) = publish(&url, tls.as_ref(), &media, &shared, duration, stamps) {
        eprintln!("publisher: {error}");
        if let Ok(mut slot) = shared.publisher_error.lock() {
            *slot = Some(error);
        }
    }
    shared.publisher_done.store(true, Ordering::SeqCst);
}

fn io_reason(context: &str, error: &io::Error) -> String {
    format!("{context}: {}", crate::player::reason_for(error))
}

fn publish(
    url: &RtmpUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
    media: &Media,
    shared: &Shared,
    duration: Option<Duration>,
    stamps: Option<u32>,
) -> Result<(), String> {
    let tcp = TcpStream::connect_timeout(&url.addr, Duration::from_secs(5)).map_err(|e| io_reason("publisher connect", &e))?;
    tcp.set_nodelay(true).map_err(|e| io_reason("publisher", &e))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| io_reason("publisher", &e))?;
    // Options are set through a second handle once the first is wrapped in TLS.
    let control = tcp.try_clone().map_err(|e| io_reason("publisher", &e))?;
    let mut socket: Box<dyn Connection> = match (&url.tls_server_name, tls) {
        (Some(name), Some(settings)) => {
            Box::new(rustls::StreamOwned::new(tls::connect(settings, name).map_err(|e| format!("publisher TLS: {e}"))?, tcp))
        }
        _ => Box::new(tcp),
    };
    let mut buffer = vec![0u8; 64 * 1024];

    let mut handshake = Handshake::new(HandshakeRole::Client, 0);
    socket.write_all(&handshake.start()).map_err(|e| io_reason("publisher handshake", &e))?;
    let remaining = loop {
        let n = read_some(&mut socket, &mut buffer).map_err(|e| io_reason("publisher handshake", &e))?;
        let input = buffer.get(..n).unwrap_or_default();
        match handshake.process(input).map_err(|e| format!("publisher handshake: {e}"))? {
            HandshakeProgress::InProgress { response } => socket.write_all(&response),
            HandshakeProgress::Completed { response, remaining } => {
                socket.write_all(&response).map_err(|e| io_reason("publisher handshake", &e))?;
                break remaining;
            }
        }
        .map_err(|e| io_reason("publisher handshake", &e))?;
    };

    let mut session = ClientSession::new(ClientSessionConfig::default());
    let session_error = |e: rtmp_edge::sessions::SessionError| format!("publisher session: {e}");
    session.connect(&url.app, &url.tc_url).map_err(session_error)?;
    session.request_publishing(&url.stream, PublishMode::Live).map_err(session_error)?;
    session.handle_input(&remaining).map_err(session_error)?;
    let setup_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut started = false;
        while let Some(event) = session.poll_event() {
            match event {
                ClientSessionEvent::PublishStarted { .. } => started = true,
                ClientSessionEvent::RequestRejected { kind, status } => {
                    return Err(format!("publisher: {kind:?} rejected: {} {}", status.code, status.description));
                }
                _ => {}
            }
        }
        socket.write_all(&session.take_outbound()).map_err(|e| io_reason("publisher setup", &e))?;
        if started {
            break;
        }
        if Instant::now() > setup_deadline {
            return Err("publisher: no NetStream.Publish.Start within 10 s".to_string());
        }
        let n = read_some(&mut socket, &mut buffer).map_err(|e| io_reason("publisher setup", &e))?;
        session.handle_input(buffer.get(..n).unwrap_or_default()).map_err(session_error)?;
    }

    control.set_nonblocking(true).map_err(|e| io_reason("publisher", &e))?;
    let start = Instant::now();
    shared.publish_start_us.store(shared.micros_since_base(start), Ordering::SeqCst);
    shared.publisher_live.store(true, Ordering::SeqCst);
    let end = duration.map(|d| start + d);
    let mut loop_offset: u32 = 0;
    let mut stamped: u32 = 0;
    'outer: for pass in 0u64.. {
        for tag in &media.tags {
            if pass > 0 && is_configuration(tag) {
                continue;
            }
            let timestamp = loop_offset.wrapping_add(tag.timestamp.value().wrapping_sub(media.first_timestamp));
            let due = start + Duration::from_millis(u64::from(timestamp));
            if end.is_some_and(|end| due >= end) || shared.stop_publisher.load(Ordering::Relaxed) {
                break 'outer;
            }
            // Wait for the message's time, answering the server meanwhile. The socket is
            // non-blocking here: SO_RCVTIMEO counts in scheduler ticks (4 ms at HZ=250),
            // far too coarse, while a plain sleep wakes within tens of microseconds.
            loop {
                match socket.read(&mut buffer) {
                    Ok(0) => return Err("publisher: server closed the connection".to_string()),
                    Ok(n) => {
                        session.handle_input(buffer.get(..n).unwrap_or_default()).map_err(session_error)?;
                        while let Some(event) = session.poll_event() {
                            if let ClientSessionEvent::RequestRejected { status, .. } = event {
                                return Err(format!("publisher: rejected while publishing: {}", status.code));
                            }
                        }
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_reason("publisher", &e)),
                }
                if session.has_outbound() {
                    write_all(&mut socket, &session.take_outbound()).map_err(|e| io_reason("publisher", &e))?;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(5)));
            }
            let lag = Instant::now().saturating_duration_since(due);
            let rtmp_timestamp = RtmpTimestamp::new(timestamp);
            let data = match stamps {
                Some(generation) if !is_configuration(tag) => {
                    stamped = stamped.wrapping_add(1);
                    crate::sequence::stamp(&tag.data, generation, stamped - 1)
                }
                _ => tag.data.clone(),
            };
            // publish_tag sends onMetaData script tags as @setDataFrame metadata.
            session.publish_tag(&FlvTag { timestamp: rtmp_timestamp, data, ..tag.clone() }).map_err(session_error)?;
            let sent_us = shared.micros_since_base(Instant::now());
            if tag.tag_type != FlvTagType::Script {
                // Before the write: a player may read the message before write_all returns.
                shared.record_sent(timestamp, sent_us);
                if tag.tag_type == FlvTagType::Video && classify_video(&tag.data).is_ok_and(|h| h.is_keyframe() && !h.is_sequence_header()) {
                    shared.last_keyframe_timestamp.store(timestamp, Ordering::SeqCst);
                }
            }
            write_all(&mut socket, &session.take_outbound()).map_err(|e| io_reason("publisher", &e))?;
            if tag.tag_type != FlvTagType::Script {
                shared.published_media.fetch_add(1, Ordering::SeqCst);
                shared.publisher_timestamp.store(timestamp, Ordering::SeqCst);
                if let Ok(mut histogram) = shared.publisher_lag.lock() {
                    histogram.record(lag.as_micros() as u64);
                }
            }
        }
        loop_offset = loop_offset.wrapping_add(media.loop_duration);
    }
    shared.publisher_live.store(false, Ordering::SeqCst);
    session.stop().map_err(session_error)?;
    let _ = write_all(&mut socket, &session.take_outbound());
    Ok(())
}

/// Sequence headers and metadata: sent once, not again on every loop of the file.
fn is_configuration(tag: &FlvTag) -> bool {
    match tag.tag_type {
        FlvTagType::Script => true,
        FlvTagType::Video => classify_video(&tag.data).is_ok_and(|h| h.is_sequence_header()),
        FlvTagType::Audio => classify_audio(&tag.data).is_ok_and(|h| h.is_sequence_header()),
    }
}

fn read_some(socket: &mut dyn Connection, buffer: &mut [u8]) -> io::Result<usize> {
    match socket.read(buffer)? {
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")),
        n => Ok(n),
    }
}

/// `write_all` on a non-blocking socket: a full socket buffer means the server is not
/// reading fast enough, so the publisher waits (and the lag shows in its histogram).
fn write_all(socket: &mut dyn Connection, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match socket.write(bytes) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "server closed the connection")),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(200)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
