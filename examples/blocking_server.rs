//! The library without the relay: a blocking `std::net` server that accepts one RTMP
//! connection, accepts whatever it asks for, and prints each frame it receives.
//!
//! Run it, then publish to it:
//! `cargo run --example blocking_server` and
//! `ffmpeg -re -i input.flv -c copy -f flv rtmp://127.0.0.1:1936/live/stream`

use std::io::{Read, Write};
use std::net::TcpListener;

use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:1936")?;
    let (mut socket, peer) = listener.accept()?;
    println!("{peer} connected");

    // 1. Handshake: feed bytes until it completes; keep the bytes that follow it.
    let mut handshake = Handshake::new(HandshakeRole::Server, 0);
    let mut buffer = [0u8; 64 * 1024];
    let leftover = loop {
        let read = socket.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        match handshake.process(&buffer[..read])? {
            HandshakeProgress::InProgress { response } => socket.write_all(&response)?,
            HandshakeProgress::Completed { response, remaining } => {
                socket.write_all(&response)?;
                break remaining;
            }
        }
    };

    // 2. Session: feed bytes, then drain events and output until both are empty.
    let mut session = ServerSession::new(ServerSessionConfig::default());
    let mut input = leftover.to_vec();
    loop {
        session.handle_input(&input)?;
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
        input.clear();
        input.extend_from_slice(&buffer[..read]);
    }
}
