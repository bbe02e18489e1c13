//! Arbitrary bytes (after the handshake) into a ServerSession that accepts every request,
//! as a permissive server would. It must not panic, and output must keep being drainable.
#![no_main]

#[path = "common/recorded.rs"]
mod recorded;

use libfuzzer_sys::fuzz_target;
use rtmp_edge::chunk_io::ChunkDecoderLimits;
use rtmp_edge::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent};

fuzz_target!(
    init: {
        // What recorded clients (and servers) sent after their handshake.
        recorded::write_if_asked(|| recorded::wire_with_read_sizes(&[64], recorded::chunk_stream));
    },
    |data: &[u8]| {
        let Some((&read_size, input)) = data.split_first() else {
            return;
        };
        let config = ServerSessionConfig {
            limits: ChunkDecoderLimits {
                max_message_length: 16 * 1024,
                max_chunk_size: 4096,
                max_chunk_streams: 8,
                max_partial_bytes: 32 * 1024,
            },
            max_streams: 4,
            ..ServerSessionConfig::default()
        };
        let mut session = ServerSession::new(config);
        let read_size = usize::from(read_size).max(1);
        for read in input.chunks(read_size) {
            if session.handle_input(read).is_err() {
                return;
            }
            while let Some(event) = session.poll_event() {
                match event {
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishRequested { request_id, .. }
                    | ServerSessionEvent::PlayRequested { request_id, .. } => {
                        // Accepting may fail (e.g. the stream was deleted meanwhile); that is an
                        // answer, not a crash.
                        let _ = session.accept_request(request_id);
                    }
                    _ => {}
                }
            }
            let _ = session.take_outbound();
            assert!(!session.has_outbound());
        }
    }
);
