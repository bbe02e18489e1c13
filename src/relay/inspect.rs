//! Decodes a `--dump` file (a connection's raw inbound bytes) into a readable message list.

use std::io::{self, Write};

use crate::chunk_io::{ChunkDecoder, ChunkDecoderLimits};
use crate::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use crate::messages::RtmpMessage;

/// Writes one line per message found in `bytes`: the client's handshake, then every chunked
/// message with its type, stream, timestamp, size and (for AMF) contents. Stops with a line
/// saying why at the first error or at the end of the input.
pub fn inspect(bytes: &[u8], out: &mut impl Write) -> io::Result<()> {
    let mut handshake = Handshake::new(HandshakeRole::Server, 0);
    let remaining = match handshake.process(bytes) {
        Ok(HandshakeProgress::Completed { remaining, .. }) => {
            writeln!(out, "handshake: C0+C1+C2 (3073 bytes), digest scheme {:?}", handshake.peer_digest_scheme())?;
            remaining
        }
        Ok(HandshakeProgress::InProgress { .. }) => {
            writeln!(out, "handshake: incomplete ({} bytes)", bytes.len())?;
            return Ok(());
        }
        Err(error) => {
            writeln!(out, "handshake: error: {error}")?;
            return Ok(());
        }
    };
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    decoder.push(&remaining);
    let mut index = 0usize;
    loop {
        match decoder.next_message() {
            Ok(Some(payload)) => {
                index += 1;
                let summary = match RtmpMessage::decode(&payload) {
                    Ok(RtmpMessage::Audio { data }) => format!("audio, first bytes {:02x?}", &data[..data.len().min(4)]),
                    Ok(RtmpMessage::Video { data }) => format!("video, first bytes {:02x?}", &data[..data.len().min(5)]),
                    Ok(message) => format!("{message:?}"),
                    Err(error) => format!("undecodable: {error}"),
                };
                writeln!(
                    out,
                    "#{index} type={} stream={} ts={} size={}: {summary}",
                    payload.type_id,
                    payload.message_stream_id,
                    payload.timestamp.value(),
                    payload.data.len()
                )?;
            }
            Ok(None) => {
                let left = decoder.buffered_len() + decoder.partial_bytes();
                writeln!(out, "end: {index} messages, {left} bytes of an incomplete message left")?;
                return Ok(());
            }
            Err(error) => {
                writeln!(out, "error after {index} messages: {error}")?;
                return Ok(());
            }
        }
    }
}
