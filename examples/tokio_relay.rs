//! A minimal RTMP relay on tokio: publishers publish, players play, each stream fanned out
//! through a `tokio::sync::broadcast` channel. The protocol is the library's sans-IO
//! `Handshake` and `ServerSession`, exactly as the mio relay uses them: only the I/O
//! differs.
//!
//! ```text
//! cargo run --example tokio_relay -- 127.0.0.1:1935
//! ffmpeg -re -i input.flv -c copy -f flv rtmp://127.0.0.1/live/stream
//! ffmpeg -i rtmp://127.0.0.1/live/stream -c copy -f flv out.flv
//! ```
//!
//! It prints one line per publish and play (the test waits on them). Late joiners get the
//! metadata and sequence headers first, then video from the next keyframe. A player that
//! falls more than `CHANNEL_FRAMES` behind is disconnected. That is what "minimal" leaves
//! out: the real relay bounds queues in bytes and age, and drops frames before
//! disconnecting anyone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rtmp_edge::bytes::Bytes;
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::media::{classify_audio, classify_video};
use rtmp_edge::sessions::{MediaKind, ServerSession, ServerSessionConfig, ServerSessionEvent};
use rtmp_edge::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How many frames a player may fall behind its stream before it is disconnected.
const CHANNEL_FRAMES: usize = 4096;

/// What a stream's publisher sends its players.
#[derive(Clone, Debug)]
enum Frame {
    Started,
    Media { kind: MediaKind, timestamp: RtmpTimestamp, data: Bytes },
    Stopped,
}

/// One stream: its channel, and what a player joining late needs first.
struct Stream {
    frames: broadcast::Sender<Frame>,
    publishing: bool,
    metadata: Option<Frame>,
    video_header: Option<Frame>,
    audio_header: Option<Frame>,
}

impl Stream {
    fn new() -> Stream {
        Stream { frames: broadcast::channel(CHANNEL_FRAMES).0, publishing: false, metadata: None, video_header: None, audio_header: None }
    }
}

type Streams = Arc<Mutex<HashMap<String, Stream>>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:1935".to_string());
    let listener = TcpListener::bind(&address).await?;
    println!("listening on {}", listener.local_addr()?);
    let streams: Streams = Arc::default();
    loop {
        let (socket, peer) = listener.accept().await?;
        let streams = streams.clone();
        tokio::spawn(async move {
            if let Err(error) = serve(socket, streams).await {
                eprintln!("{peer}: {error}");
            }
        });
    }
}

/// What a connection does once it asked.
enum Role {
    Undecided,
    Publisher { key: String },
    Player { key: String, stream_id: u32, frames: broadcast::Receiver<Frame>, keyframe_seen: bool },
}

async fn serve(mut socket: TcpStream, streams: Streams) -> Result<(), Error> {
    socket.set_nodelay(true)?;
    let mut buffer = vec![0u8; 64 * 1024];

    // The handshake: feed what arrives, send what it answers, keep what follows it.
    let mut handshake = Handshake::new(HandshakeRole::Server, 0);
    let leftover = loop {
        let read = socket.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        match handshake.process(&buffer[..read])? {
            HandshakeProgress::InProgress { response } => socket.write_all(&response).await?,
            HandshakeProgress::Completed { response, remaining } => {
                socket.write_all(&response).await?;
                break remaining;
            }
        }
    };

    let mut role = Role::Undecided;
    let result = run_session(&mut socket, leftover, &mut role, &streams).await;
    // However the connection ended, a publisher leaves its stream.
    leave(&role, &streams);
    result
}

/// The session loop: drain events, write, then wait for the peer or the stream.
async fn run_session(socket: &mut TcpStream, leftover: Bytes, role: &mut Role, streams: &Streams) -> Result<(), Error> {
    let mut session = ServerSession::new(ServerSessionConfig::default());
    let mut buffer = vec![0u8; 64 * 1024];
    session.handle_input(&leftover)?;
    loop {
        handle_events(&mut session, role, streams)?;
        if session.has_outbound() {
            socket.write_all(&session.take_outbound()).await?;
        }
        // Wait for the peer's bytes or, for a player, its stream's next frame.
        let frame = async {
            match &mut *role {
                Role::Player { frames, .. } => Some(frames.recv().await),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            read = socket.read(&mut buffer) => match read? {
                0 => return Ok(()),
                read => session.handle_input(&buffer[..read])?,
            },
            Some(frame) = frame => match frame {
                Ok(frame) => forward(&mut session, role, frame)?,
                Err(broadcast::error::RecvError::Lagged(missed)) => return Err(format!("player fell {missed} frames behind").into()),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

fn handle_events(session: &mut ServerSession, role: &mut Role, streams: &Streams) -> Result<(), Error> {
    while let Some(event) = session.poll_event() {
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => session.accept_request(request_id)?,
            ServerSessionEvent::PublishRequested { request_id, app, stream_name, .. } => {
                let key = stream_key(&app, &stream_name);
                let mut streams = streams.lock().map_err(|_| "streams lock poisoned")?;
                let stream = streams.entry(key.clone()).or_insert_with(Stream::new);
                if stream.publishing || !matches!(role, Role::Undecided) {
                    session.reject_request(request_id, "Stream is already being published.")?;
                    continue;
                }
                session.accept_request(request_id)?;
                stream.publishing = true;
                let _ = stream.frames.send(Frame::Started);
                println!("publish {key}");
                *role = Role::Publisher { key };
            }
            ServerSessionEvent::PlayRequested { request_id, app, stream_name, stream_id, .. } => {
                let key = stream_key(&app, &stream_name);
                let mut streams = streams.lock().map_err(|_| "streams lock poisoned")?;
                let stream = streams.entry(key.clone()).or_insert_with(Stream::new);
                if !matches!(role, Role::Undecided) {
                    session.reject_request(request_id, "One stream per connection here.")?;
                    continue;
                }
                // Subscribing under the lock: no frame slips between the cached headers
                // and the channel.
                let frames = stream.frames.subscribe();
                if stream.publishing {
                    session.accept_request(request_id)?;
                    for frame in [&stream.metadata, &stream.video_header, &stream.audio_header].into_iter().flatten() {
                        if let Frame::Media { kind, timestamp, data } = frame {
                            session.send_media(stream_id, *kind, *timestamp, data.clone())?;
                        }
                    }
                    println!("play {key}");
                } else {
                    // Tells the player it waits: Play.Start now, StreamBegin when a publisher comes.
                    session.accept_play_waiting(request_id)?;
                    println!("play {key} (waiting for its publisher)");
                }
                *role = Role::Player { key, stream_id, frames, keyframe_seen: false };
            }
            ServerSessionEvent::MetadataReceived { timestamp, metadata, .. } => {
                publish(role, streams, Frame::Media { kind: MediaKind::Data, timestamp, data: metadata.raw })?
            }
            ServerSessionEvent::MediaReceived { kind, timestamp, data, .. } => {
                publish(role, streams, Frame::Media { kind, timestamp, data })?
            }
            ServerSessionEvent::PublishFinished { .. } | ServerSessionEvent::PlayFinished { .. } => {
                leave(role, streams);
                *role = Role::Undecided;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A publisher's frame: cached when a late joiner needs it, then sent to every player.
fn publish(role: &Role, streams: &Streams, frame: Frame) -> Result<(), Error> {
    let Role::Publisher { key } = role else { return Ok(()) };
    let mut streams = streams.lock().map_err(|_| "streams lock poisoned")?;
    let Some(stream) = streams.get_mut(key) else { return Ok(()) };
    if let Frame::Media { kind, data, .. } = &frame {
        match kind {
            MediaKind::Data => stream.metadata = Some(frame.clone()),
            MediaKind::Video if classify_video(data).is_ok_and(|h| h.is_sequence_header()) => {
                stream.video_header = Some(frame.clone())
            }
            MediaKind::Audio if classify_audio(data).is_ok_and(|h| h.is_sequence_header()) => {
                stream.audio_header = Some(frame.clone())
            }
            _ => {}
        }
    }
    // No players is not an error: the frame simply goes nowhere.
    let _ = stream.frames.send(frame);
    Ok(())
}

/// A frame from the stream to this player; video waits for a keyframe.
fn forward(session: &mut ServerSession, role: &mut Role, frame: Frame) -> Result<(), Error> {
    let Role::Player { key, stream_id, keyframe_seen, .. } = role else { return Ok(()) };
    let stream_name = key.split_once('/').map_or(key.as_str(), |(_, name)| name);
    match frame {
        Frame::Started => session.notify_publish_started(*stream_id, stream_name)?,
        Frame::Stopped => {
            *keyframe_seen = false;
            session.notify_publish_stopped(*stream_id, stream_name)?
        }
        Frame::Media { kind: MediaKind::Video, timestamp, data } => {
            let header = classify_video(&data);
            let starts_here = header.as_ref().is_ok_and(|h| h.is_keyframe());
            *keyframe_seen |= starts_here;
            if *keyframe_seen || header.is_ok_and(|h| h.is_sequence_header()) {
                session.send_media(*stream_id, MediaKind::Video, timestamp, data)?;
            }
        }
        Frame::Media { kind, timestamp, data } => session.send_media(*stream_id, kind, timestamp, data)?,
    }
    Ok(())
}

/// A publisher leaving clears its stream's caches and tells its players.
fn leave(role: &Role, streams: &Streams) {
    let Role::Publisher { key } = role else { return };
    let Ok(mut streams) = streams.lock() else { return };
    if let Some(stream) = streams.get_mut(key) {
        stream.publishing = false;
        stream.metadata = None;
        stream.video_header = None;
        stream.audio_header = None;
        let _ = stream.frames.send(Frame::Stopped);
        println!("unpublish {key}");
    }
}

/// `app/name`, without the query string that carries tokens.
fn stream_key(app: &str, stream_name: &str) -> String {
    let name = stream_name.split_once('?').map_or(stream_name, |(name, _)| name);
    format!("{app}/{name}")
}
