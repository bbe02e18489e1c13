use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::time::RtmpTimestamp;

fn payload(timestamp: u32, type_id: u8, stream: u32, data: &[u8]) -> MessagePayload {
    MessagePayload {
        timestamp: RtmpTimestamp::new(timestamp),
        type_id,
        message_stream_id: stream,
        data: Bytes::copy_from_slice(data),
    }
}

fn decode_all(decoder: &mut ChunkDecoder) -> Vec<MessagePayload> {
    let mut out = Vec::new();
    while let Some(message) = decoder.next_message().unwrap() {
        out.push(message);
    }
    out
}

fn decoder() -> ChunkDecoder {
    ChunkDecoder::new(ChunkDecoderLimits::default())
}

#[test]
fn fmt0_single_chunk_message_is_a_slice_of_the_input() {
    let mut decoder = decoder();
    decoder.push(&[0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x09, 0x01, 0x00, 0x00, 0x00, 7, 8, 9]);
    let messages = decode_all(&mut decoder);
    assert_eq!(messages, vec![payload(256, 9, 1, &[7, 8, 9])]);
    assert_eq!(decoder.buffered_len(), 0);
}

#[test]
fn fmt1_fmt2_fmt3_headers_build_on_the_previous_one() {
    let mut decoder = decoder();
    decoder.push(&[
        // fmt 0: ts 1000, len 2, type 8, stream 1
        0x04, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x02, 0x08, 0x01, 0x00, 0x00, 0x00, 0xAA, 0xBB,
        // fmt 1: delta 20, len 1, type 9
        0x44, 0x00, 0x00, 0x14, 0x00, 0x00, 0x01, 0x09, 0xCC,
        // fmt 2: delta 33
        0x84, 0x00, 0x00, 0x21, 0xDD,
        // fmt 3: new message, same delta 33
        0xC4, 0xEE,
    ]);
    let messages = decode_all(&mut decoder);
    assert_eq!(
        messages,
        vec![
            payload(1000, 8, 1, &[0xAA, 0xBB]),
            payload(1020, 9, 1, &[0xCC]),
            payload(1053, 9, 1, &[0xDD]),
            payload(1086, 9, 1, &[0xEE]),
        ]
    );
}

#[test]
fn two_and_three_byte_chunk_stream_ids_decode() {
    let mut decoder = decoder();
    decoder.push(&[0x00, 0x06, 0, 0, 5, 0, 0, 1, 20, 0, 0, 0, 0, 0x42]);
    decoder.push(&[0x01, 0x10, 0x02, 0, 0, 6, 0, 0, 1, 20, 0, 0, 0, 0, 0x43]);
    let messages = decode_all(&mut decoder);
    assert_eq!(messages, vec![payload(5, 20, 0, &[0x42]), payload(6, 20, 0, &[0x43])]);
}

#[test]
fn multi_chunk_messages_interleave_on_different_chunk_streams() {
    let video: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let audio: Vec<u8> = (0..200u32).map(|i| (i * 3) as u8).collect();
    let mut bytes = Vec::new();
    // video header + first 128
    bytes.extend_from_slice(&[0x06, 0, 0, 10, 0, 0x01, 0x2C, 9, 1, 0, 0, 0]);
    bytes.extend_from_slice(&video[..128]);
    // audio header + first 128
    bytes.extend_from_slice(&[0x04, 0, 0, 11, 0, 0, 200, 8, 1, 0, 0, 0]);
    bytes.extend_from_slice(&audio[..128]);
    // video continuation
    bytes.push(0xC6);
    bytes.extend_from_slice(&video[128..256]);
    // audio continuation (ends audio)
    bytes.push(0xC4);
    bytes.extend_from_slice(&audio[128..]);
    // video end
    bytes.push(0xC6);
    bytes.extend_from_slice(&video[256..]);

    let mut decoder = decoder();
    decoder.push(&bytes);
    let messages = decode_all(&mut decoder);
    assert_eq!(messages, vec![payload(11, 8, 1, &audio), payload(10, 9, 1, &video)]);
    assert_eq!(decoder.partial_bytes(), 0);
}

#[test]
fn byte_at_a_time_input_gives_the_same_messages() {
    let mut encoder = ChunkEncoder::new();
    let mut wire = BytesMut::new();
    let originals: Vec<MessagePayload> = (0..20u32)
        .map(|i| payload(i * 40, if i % 2 == 0 { 9 } else { 8 }, 1, &vec![i as u8; (i * 37) as usize]))
        .collect();
    for message in &originals {
        let csid = if message.type_id == 9 { csid::VIDEO } else { csid::AUDIO };
        encoder.encode(csid, message, &mut wire).unwrap();
    }
    let mut decoder = decoder();
    let mut decoded = Vec::new();
    for byte in wire.iter() {
        decoder.push(&[*byte]);
        decoded.extend(decode_all(&mut decoder));
    }
    assert_eq!(decoded, originals);
}

#[test]
fn set_chunk_size_applies_at_the_byte_where_it_ends() {
    let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x01, 0x00]; // size 256
    bytes.extend_from_slice(&[0x06, 0, 0, 0, 0, 0x01, 0x00, 9, 1, 0, 0, 0]);
    bytes.extend_from_slice(&[0x5A; 256]); // one chunk at the new size
    let mut decoder = decoder();
    decoder.push(&bytes);
    let messages = decode_all(&mut decoder);
    assert_eq!(messages.len(), 2);
    assert_eq!(decoder.chunk_size(), 256);
    assert_eq!(messages[1].data.len(), 256);
}

#[test]
fn abort_discards_the_partial_message() {
    let mut bytes = vec![0x06, 0, 0, 0, 0, 0x01, 0x00, 9, 1, 0, 0, 0];
    bytes.extend_from_slice(&[1; 128]);
    bytes.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 6]); // abort csid 6
    bytes.extend_from_slice(&[0x06, 0, 0, 5, 0, 0, 1, 9, 1, 0, 0, 0, 0x77]);
    let mut decoder = decoder();
    decoder.push(&bytes);
    let messages = decode_all(&mut decoder);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].type_id, 2);
    assert_eq!(messages[1], payload(5, 9, 1, &[0x77]));
    assert_eq!(decoder.partial_bytes(), 0);
}

fn extended_message_bytes(repeat_on_type3: bool) -> Vec<u8> {
    // fmt 0 with extended timestamp 0x01000000, 200-byte video body at chunk size 128.
    let mut bytes = vec![0x06, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00];
    bytes.extend_from_slice(&[0x11; 128]);
    bytes.push(0xC6);
    if repeat_on_type3 {
        bytes.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
    }
    bytes.extend_from_slice(&[0x22; 72]);
    bytes
}

#[test]
fn extended_timestamp_repeated_on_type3_is_consumed() {
    let mut decoder = decoder();
    decoder.push(&extended_message_bytes(true));
    let messages = decode_all(&mut decoder);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].timestamp.value(), 0x0100_0000);
    assert_eq!(&messages[0].data[128..], &[0x22; 72][..]);
}

#[test]
fn extended_timestamp_not_repeated_on_type3_is_also_accepted() {
    let mut decoder = decoder();
    decoder.push(&extended_message_bytes(false));
    let messages = decode_all(&mut decoder);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].timestamp.value(), 0x0100_0000);
    assert_eq!(&messages[0].data[128..], &[0x22; 72][..]);
}

#[test]
fn extended_delta_on_fmt1_adds_to_the_previous_timestamp() {
    let mut decoder = decoder();
    decoder.push(&[0x06, 0, 0, 10, 0, 0, 1, 9, 1, 0, 0, 0, 0xAB]);
    decoder.push(&[0x46, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 0x01, 0x00, 0x00, 0x00, 0xCD]);
    let messages = decode_all(&mut decoder);
    assert_eq!(messages[1].timestamp.value(), 0x0100_000A);
}

#[test]
fn encoder_picks_the_smallest_header() {
    let mut encoder = ChunkEncoder::new();
    let mut out = BytesMut::new();
    encoder.encode(4, &payload(1000, 8, 1, &[1, 2]), &mut out).unwrap();
    encoder.encode(4, &payload(1020, 9, 1, &[3]), &mut out).unwrap();
    encoder.encode(4, &payload(1053, 9, 1, &[4]), &mut out).unwrap();
    encoder.encode(4, &payload(1086, 9, 1, &[5]), &mut out).unwrap();
    encoder.encode(4, &payload(1086, 9, 2, &[6]), &mut out).unwrap();
    assert_eq!(
        &out[..],
        &[
            0x04, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x02, 0x08, 0x01, 0x00, 0x00, 0x00, 1, 2, //
            0x44, 0x00, 0x00, 0x14, 0x00, 0x00, 0x01, 0x09, 3, //
            0x84, 0x00, 0x00, 0x21, 4, //
            0xC4, 5, //
            0x04, 0x00, 0x04, 0x3E, 0x00, 0x00, 0x01, 0x09, 0x02, 0x00, 0x00, 0x00, 6,
        ][..]
    );
}

#[test]
fn encoder_uses_fmt0_when_time_goes_backwards() {
    let mut encoder = ChunkEncoder::new();
    let mut out = BytesMut::new();
    encoder.encode(4, &payload(1000, 8, 1, &[1]), &mut out).unwrap();
    out.clear();
    encoder.encode(4, &payload(900, 8, 1, &[1]), &mut out).unwrap();
    assert_eq!(out[0] >> 6, 0);
}

#[test]
fn standalone_encoding_repeats_the_extended_timestamp_on_continuations() {
    let message = payload(0x0100_0000, 9, 1, &[0x11; 200]);
    let mut out = BytesMut::new();
    ChunkEncoder::encode_standalone(6, &message, 128, &mut out).unwrap();
    let mut expected = vec![0x06, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0, 1, 0, 0, 0];
    expected.extend_from_slice(&[0x11; 128]);
    expected.extend_from_slice(&[0xC6, 1, 0, 0, 0]);
    expected.extend_from_slice(&[0x11; 72]);
    assert_eq!(&out[..], &expected[..]);
    assert_eq!(
        ChunkEncoder::standalone_encoded_len(6, 200, 128, message.timestamp),
        expected.len()
    );
}

#[test]
fn standalone_encoding_is_independent_of_earlier_headers() {
    let mut decoder = decoder();
    for timestamp in [5u32, 5, 3, 100] {
        let mut out = BytesMut::new();
        ChunkEncoder::encode_standalone(6, &payload(timestamp, 9, 1, b"x"), 128, &mut out).unwrap();
        decoder.push(&out);
        let messages = decode_all(&mut decoder);
        assert_eq!(messages, vec![payload(timestamp, 9, 1, b"x")]);
    }
}

#[test]
fn encoder_rejects_bad_arguments() {
    let mut encoder = ChunkEncoder::new();
    let mut out = BytesMut::new();
    assert_eq!(encoder.set_chunk_size(0), Err(ChunkError::InvalidChunkSize { size: 0, max: MAX_CHUNK_SIZE }));
    assert!(encoder.set_chunk_size(0x8000_0000).is_err());
    assert_eq!(
        encoder.encode(1, &payload(0, 8, 1, b""), &mut out),
        Err(ChunkError::InvalidChunkStreamId { chunk_stream_id: 1 })
    );
    assert!(out.is_empty());
}

#[test]
fn oversized_message_length_is_rejected_before_any_body_arrives() {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits { max_message_length: 1000, ..Default::default() });
    decoder.push(&[0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]);
    assert_eq!(
        decoder.next_message(),
        Err(ChunkError::MessageTooLong { chunk_stream_id: 6, length: 0xFF_FFFF, max: 1000 })
    );
}

/// A peer's SetChunkSize message (fmt 0 on chunk stream 2) asking for `size`.
fn set_chunk_size_message(size: u32) -> Vec<u8> {
    let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
    bytes.extend_from_slice(&size.to_be_bytes());
    bytes
}

#[test]
fn chunk_size_with_the_top_bit_or_over_the_limit_is_rejected() {
    let mut limited = ChunkDecoder::new(ChunkDecoderLimits { max_chunk_size: 65536, ..Default::default() });
    limited.push(&set_chunk_size_message(65537));
    assert_eq!(limited.next_message(), Err(ChunkError::InvalidChunkSize { size: 65537, max: 65536 }));
    let mut decoder = decoder();
    decoder.push(&set_chunk_size_message(0x8000_0000));
    assert_eq!(
        decoder.next_message(),
        Err(ChunkError::InvalidChunkSize { size: 0x8000_0000, max: 16 * 1024 * 1024 })
    );
}

// Issue 9 defect 4: chunk size 1 made every byte of a message cost a chunk header and a
// reassembly step. Real peers never go under the default of 128.
#[test]
fn peer_chunk_sizes_below_128_are_refused() {
    for size in [0, 1, 127] {
        let mut decoder = decoder();
        decoder.push(&set_chunk_size_message(size));
        assert_eq!(
            decoder.next_message(),
            Err(ChunkError::ChunkSizeBelowMinimum { size, min: 128 }),
            "chunk size {size}"
        );
        assert_eq!(decoder.chunk_size(), 128, "the refused size is not applied");
        assert_eq!(decoder.set_chunk_size(size), Err(ChunkError::ChunkSizeBelowMinimum { size, min: 128 }));
    }
}

#[test]
fn peer_chunk_size_128_is_accepted_and_applied() {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    assert_eq!(decoder.set_chunk_size(4096), Ok(()));
    let mut bytes = set_chunk_size_message(128);
    // A 129-byte message now takes two chunks.
    bytes.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 129, 9, 1, 0, 0, 0]);
    bytes.extend_from_slice(&[0x5A; 128]);
    bytes.extend_from_slice(&[0xC6, 0x5B]);
    decoder.push(&bytes);
    let messages = decode_all(&mut decoder);
    assert_eq!(messages[0], payload(0, 1, 0, &128u32.to_be_bytes()));
    assert_eq!(decoder.chunk_size(), 128);
    let mut body = vec![0x5A; 128];
    body.push(0x5B);
    assert_eq!(messages[1..], [payload(0, 9, 1, &body)]);
}

/// 64 chunk streams, each announcing a 16 MiB video message (the largest length a header
/// can carry) and sending its first 128-byte chunk, as one run of bytes per stream; and a
/// decoder whose limits let them.
fn sixty_four_announced_messages() -> (ChunkDecoder, Vec<Vec<u8>>) {
    let streams = 64u32;
    let announced = 0xFF_FFFFu32;
    let decoder = ChunkDecoder::new(ChunkDecoderLimits {
        max_message_length: announced,
        max_chunk_streams: streams as usize,
        max_partial_bytes: streams as usize * announced as usize,
        ..Default::default()
    });
    let [_, l0, l1, l2] = announced.to_be_bytes();
    let chunks = (3..3 + streams)
        .map(|csid| {
            // One-byte basic headers up to chunk stream 63, two-byte ones from 64.
            let mut chunk = match u8::try_from(csid) {
                Ok(id) if id < 64 => vec![id],
                _ => vec![0, (csid - 64) as u8],
            };
            chunk.extend_from_slice(&[0, 0, 0, l0, l1, l2, 9, 1, 0, 0, 0]);
            chunk.extend_from_slice(&[0xAB; 128]);
            chunk
        })
        .collect();
    (decoder, chunks)
}

// Issue 9 defect 4: each chunk stream reserved min(announced length, 64 KiB) on its first
// chunk, so 64 streams that each sent 128 bytes made the decoder hold 4 MiB.
#[test]
fn reassembly_holds_what_arrived_not_what_the_header_announced() {
    let (mut decoder, chunks) = sixty_four_announced_messages();
    for chunk in &chunks {
        decoder.push(chunk);
        assert_eq!(decoder.next_message(), Ok(None));
    }
    assert_eq!(decoder.partial_bytes(), 64 * 128);
    assert_eq!(decoder.partial_capacity(), 64 * 128);
    assert_eq!(decoder.buffered_len(), 0);
}

// Bytes that arrived after a chunk may be reserved for, once: the first stream's buffer
// takes room for all that follows it, and the others find it taken.
#[test]
fn reassembly_reserves_what_arrived_in_one_read_once() {
    let (mut decoder, chunks) = sixty_four_announced_messages();
    let read = chunks.concat();
    decoder.push(&read);
    assert_eq!(decoder.next_message(), Ok(None));
    let after_the_first_chunk = read.len() - chunks[0].len();
    assert_eq!(decoder.partial_bytes(), 64 * 128);
    assert_eq!(decoder.partial_capacity(), 128 + after_the_first_chunk + 63 * 128);
    assert!(decoder.partial_capacity() < 2 * read.len(), "{} bytes sent", read.len());
}

#[test]
fn reassembly_capacity_doubles_and_stops_at_the_announced_length() {
    let body: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
    let mut bytes = vec![0x06, 0, 0, 0, 0, 0x02, 0x58, 9, 1, 0, 0, 0]; // 600 bytes
    bytes.extend_from_slice(&body[..128]);
    let mut decoder = decoder();
    decoder.push(&bytes);
    assert_eq!(decoder.next_message(), Ok(None));
    let mut capacities = vec![decoder.partial_capacity()];
    for piece in body[128..].chunks(128) {
        decoder.push(&[0xC6]);
        decoder.push(piece);
        match decoder.next_message() {
            Ok(None) => capacities.push(decoder.partial_capacity()),
            Ok(Some(message)) => assert_eq!(message, payload(0, 9, 1, &body)),
            Err(error) => panic!("{error}"),
        }
    }
    // 128 bytes in 128, 256 in 256, 384 in 512, 512 in 512; then the last 88 complete it.
    assert_eq!(capacities, [128, 256, 512, 512]);
    assert_eq!((decoder.partial_bytes(), decoder.partial_capacity()), (0, 0));
}

#[test]
fn type3_on_an_unknown_chunk_stream_is_an_error() {
    let mut decoder = decoder();
    decoder.push(&[0xC5, 0x00]);
    assert_eq!(decoder.next_message(), Err(ChunkError::NoPreviousHeader { chunk_stream_id: 5, fmt: 3 }));
}

#[test]
fn too_many_chunk_streams_is_an_error() {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits { max_chunk_streams: 2, ..Default::default() });
    for id in [3u8, 4, 5] {
        decoder.push(&[id, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0]);
    }
    assert!(decoder.next_message().unwrap().is_some());
    assert!(decoder.next_message().unwrap().is_some());
    assert_eq!(decoder.next_message(), Err(ChunkError::TooManyChunkStreams { max: 2 }));
}

#[test]
fn partial_messages_are_bounded_across_chunk_streams() {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits { max_partial_bytes: 1000, ..Default::default() });
    // Two 600-byte messages started at once on different chunk streams.
    let mut bytes = vec![0x06, 0, 0, 0, 0, 0x02, 0x58, 9, 1, 0, 0, 0];
    bytes.extend_from_slice(&[0; 128]);
    bytes.extend_from_slice(&[0x07, 0, 0, 0, 0, 0x02, 0x58, 9, 1, 0, 0, 0]);
    bytes.extend_from_slice(&[0; 128]);
    decoder.push(&bytes);
    assert_eq!(decoder.next_message(), Err(ChunkError::PartialMessagesTooLarge { bytes: 1200, max: 1000 }));
}

#[test]
fn new_header_in_the_middle_of_a_message_is_an_error() {
    let mut bytes = vec![0x06, 0, 0, 0, 0, 0x01, 0x00, 9, 1, 0, 0, 0];
    bytes.extend_from_slice(&[0; 128]);
    bytes.extend_from_slice(&[0x86, 0, 0, 1]);
    bytes.extend_from_slice(&[0; 128]);
    let mut decoder = decoder();
    decoder.push(&bytes);
    assert_eq!(decoder.next_message(), Err(ChunkError::HeaderChangedMidMessage { chunk_stream_id: 6 }));
}

fn arbitrary_message() -> impl Strategy<Value = (u32, MessagePayload)> {
    (
        prop::sample::select(vec![3u32, 4, 6, 63, 64, 300, 65599]),
        any::<u32>(),
        prop::sample::select(vec![8u8, 9, 18, 20]),
        0u32..3,
        prop::collection::vec(any::<u8>(), 0..700),
    )
        .prop_map(|(csid, timestamp, type_id, stream, data)| (csid, payload(timestamp, type_id, stream, &data)))
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(
        messages in prop::collection::vec(arbitrary_message(), 1..40),
        chunk_size in prop::sample::select(vec![128u32, 129, 200, 4096, 60000]),
        split in 1usize..600,
    ) {
        let mut encoder = ChunkEncoder::new();
        let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
        let mut wire = BytesMut::new();
        let mut control = MessagePayload {
            timestamp: RtmpTimestamp::ZERO, type_id: 1, message_stream_id: 0,
            data: Bytes::copy_from_slice(&chunk_size.to_be_bytes()),
        };
        encoder.encode(2, &control, &mut wire).unwrap();
        encoder.set_chunk_size(chunk_size).unwrap();
        for (csid, message) in &messages {
            encoder.encode(*csid, message, &mut wire).unwrap();
        }
        let mut decoded = Vec::new();
        for piece in wire.chunks(split) {
            decoder.push(piece);
            while let Some(message) = decoder.next_message().unwrap() {
                decoded.push(message);
            }
        }
        control.data = Bytes::copy_from_slice(&chunk_size.to_be_bytes());
        let expected: Vec<MessagePayload> =
            std::iter::once(control).chain(messages.into_iter().map(|(_, m)| m)).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        input in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let limits = ChunkDecoderLimits {
            max_message_length: 4096,
            max_chunk_size: 65536,
            max_chunk_streams: 8,
            max_partial_bytes: 8192,
        };
        let mut decoder = ChunkDecoder::new(limits);
        for piece in input.chunks(97) {
            decoder.push(piece);
            loop {
                match decoder.next_message() {
                    Ok(Some(message)) => prop_assert!(message.data.len() <= 4096),
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
            }
            prop_assert!(decoder.partial_bytes() <= 8192);
            prop_assert!(decoder.partial_capacity() <= 8192);
        }
    }

    #[test]
    fn mutated_valid_streams_never_panic(
        messages in prop::collection::vec(arbitrary_message(), 1..10),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut encoder = ChunkEncoder::new();
        let mut wire = BytesMut::new();
        for (csid, message) in &messages {
            encoder.encode(*csid, message, &mut wire).unwrap();
        }
        let mut bytes = wire.to_vec();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.next_message() {}
    }
}
