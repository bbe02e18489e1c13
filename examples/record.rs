//! Records any RTMP stream to an FLV file, with the sans-IO pieces driven by hand over a
//! blocking `std::net::TcpStream`: the handshake loop, then the session loop. This is
//! what `rtmp_edge::blocking` does for you; read it to drive the library from any other
//! I/O.
//!
//! ```text
//! cargo run --example record -- rtmp://127.0.0.1/live/stream out.flv
//! ```
//!
//! It stops when the publisher does (NetStream.Play.UnpublishNotify, Play.Stop, StreamEOF
//! or StreamDry) or the server closes the connection.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;

use rtmp_edge::flv::FlvWriter;
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::sessions::{codes, ClientSession, ClientSessionConfig, ClientSessionEvent};
use rtmp_edge::url::{RtmpUrl, Scheme};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, out] = args.as_slice() else {
        return Err("usage: record rtmp://HOST[:PORT]/APP/STREAM OUT.flv".into());
    };
    let url = RtmpUrl::parse(url)?;
    if url.scheme() == Scheme::Rtmps {
        return Err("rtmps:// needs a TLS stream under the same loop; this example is plain TCP".into());
    }
    let mut socket = TcpStream::connect((url.host(), url.port()))?;
    socket.set_nodelay(true)?;
    let mut buffer = vec![0u8; 64 * 1024];

    // 1. Handshake. A client speaks first (C0+C1), then answers what arrives until the
    //    handshake completes. Bytes after S2 in the same read are already chunk data.
    //    The epoch is the C1 time field; peers only echo it, so 0 will do.
    let mut handshake = Handshake::new(HandshakeRole::Client, 0);
    socket.write_all(&handshake.start())?;
    let leftover = loop {
        let read = socket.read(&mut buffer)?;
        if read == 0 {
            return Err("server closed the connection during the handshake".into());
        }
        match handshake.process(&buffer[..read])? {
            HandshakeProgress::InProgress { response } => socket.write_all(&response)?,
            HandshakeProgress::Completed { response, remaining } => {
                socket.write_all(&response)?;
                break remaining;
            }
        }
    };

    // 2. Session. Queue connect + play, then: write what the session has to say, read,
    //    feed the bytes, drain the events. Acks and ping answers come out of handle_input
    //    and go with the next write.
    let mut session = ClientSession::new(ClientSessionConfig::default());
    session.play(&url)?;
    session.handle_input(&leftover)?;
    let mut writer = FlvWriter::new(BufWriter::new(File::create(out)?), true, true)?;
    let mut tags = 0usize;
    'session: loop {
        while let Some(event) = session.poll_event() {
            // Media and metadata both become tags: a recorder that wrote only
            // MediaReceived would lose onMetaData.
            if let Some(tag) = event.to_flv_tag() {
                writer.write_tag(&tag)?;
                tags += 1;
                continue;
            }
            match event {
                ClientSessionEvent::PlaybackStarted { stream_name, .. } => println!("playing {stream_name}"),
                ClientSessionEvent::WaitingForPublisher { .. } => println!("waiting for a publisher"),
                // A refusal is an event, not an error from a call: never ignore it.
                ClientSessionEvent::RequestRejected { kind, status } => {
                    return Err(format!("server refused {kind:?}: {} {}", status.code, status.description).into());
                }
                ClientSessionEvent::StatusReceived { status, .. }
                    if status.code == codes::PLAY_UNPUBLISH_NOTIFY || status.code == codes::PLAY_STOP =>
                {
                    break 'session;
                }
                ClientSessionEvent::StreamEof { .. } | ClientSessionEvent::StreamDry { .. } => break 'session,
                _ => {}
            }
        }
        socket.write_all(&session.take_outbound())?;
        let read = socket.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        session.handle_input(&buffer[..read])?;
    }
    writer.flush()?;
    println!("recorded {tags} tags to {out}");
    Ok(())
}
