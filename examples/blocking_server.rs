//! The library without the relay: a blocking `std::net` server that accepts one RTMP
//! connection, accepts whatever it asks for, and prints each frame it receives.
//!
//! Run it, then publish to it:
//!
//! ```text
//! cargo run --example blocking_server -- 127.0.0.1:1936
//! ffmpeg -re -i input.flv -c copy -f flv rtmp://127.0.0.1:1936/live/stream
//! ```
//!
//! The address defaults to 127.0.0.1:1936; port 0 picks a free one (the first line
//! printed says which).

use std::io::{Read, Write};
use std::net::TcpListener;

use rtmp_edge::blocking;
use rtmp_edge::handshake::HandshakeRole;
use rtmp_edge::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:1936".to_string());
    let listener = TcpListener::bind(&address)?;
    println!("listening on {}", listener.local_addr()?);
    let (mut socket, peer) = listener.accept()?;
    println!("{peer} connected");

    // 1. Handshake: the blocking helper runs the sans-IO handshake loop and hands back
    //    the bytes that followed it, which are already chunk data.
    let leftover = blocking::handshake(&mut socket, HandshakeRole::Server)?;

    // 2. Session: feed bytes, then drain events and output until both are empty.
    let mut session = ServerSession::new(ServerSessionConfig::default());
    let mut buffer = vec![0u8; 64 * 1024];
    session.handle_input(&leftover)?;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                ServerSessionEvent::ConnectionRequested { request_id, request } => {
                    println!("connect to app {:?}", request.app);
                    session.accept_request(request_id)?;
                }
                ServerSessionEvent::PublishRequested { request_id, stream_name, .. } => {
                    println!("publish {stream_name:?}");
                    session.accept_request(request_id)?;
                }
                ServerSessionEvent::MetadataReceived { timestamp, metadata, .. } => {
                    println!("metadata at {timestamp}: {} bytes", metadata.raw.len());
                }
                ServerSessionEvent::MediaReceived { kind, timestamp, data, .. } => {
                    println!("{kind:?} at {timestamp}: {} bytes", data.len());
                }
                other => println!("{other:?}"),
            }
        }
        socket.write_all(&session.take_outbound())?;
        let read = socket.read(&mut buffer)?;
        if read == 0 {
            println!("{peer} disconnected");
            return Ok(());
        }
        session.handle_input(&buffer[..read])?;
    }
}
