//! Chunk layer throughput on real media: the 278 tags of `tests/fixtures/h264_aac.flv`
//! (4 s of 250 kbit/s H.264 + 64 kbit/s AAC) as RTMP messages, at chunk sizes 128 (the
//! protocol default, what a player gets from a server that never raises it) and 4096 (what
//! nginx-rtmp, ffmpeg and this relay switch to).
//!
//! Each group measures rtmp_edge and rml_rtmp 0.8 on the same input, so the report shows
//! them side by side:
//!
//! - `decode`: the whole chunk stream fed in 16 KiB reads (one socket read's worth), every
//!   message drained; throughput counts the chunk stream's bytes.
//! - `encode`: every message encoded with header compression into one connection's output;
//!   throughput counts the message bodies.
//! - `encode_standalone`: every message encoded on its own with a full header into its own
//!   buffer, which is what a relay does once per frame to share the bytes with every
//!   subscriber (rml_rtmp: `serialize` with `force_uncompressed`); throughput counts bodies.
//!
//! Run with `cargo bench --bench chunk_io`; see README "Performance" for numbers.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rtmp_edge::chunk_io::{csid, ChunkDecoder, ChunkDecoderLimits, ChunkEncoder, MessagePayload};
use rtmp_edge::flv::{FlvReader, FlvTagType};

const CHUNK_SIZES: [u32; 2] = [128, 4096];

/// How much a connection reads from its socket at once.
const READ_SIZE: usize = 16 * 1024;

/// The fixture's tags as (chunk stream id, our payload, rml_rtmp's payload), on stream 1.
struct Inputs {
    messages: Vec<(u32, MessagePayload)>,
    rml_messages: Vec<rml_rtmp::messages::MessagePayload>,
    body_bytes: u64,
}

fn inputs() -> Inputs {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h264_aac.flv");
    let file = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let reader = FlvReader::new(Bytes::from(file)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut messages = Vec::new();
    let mut rml_messages = Vec::new();
    for tag in reader {
        let tag = tag.unwrap_or_else(|e| panic!("{path}: {e}"));
        let chunk_stream_id = match tag.tag_type {
            FlvTagType::Audio => csid::AUDIO,
            FlvTagType::Video => csid::VIDEO,
            FlvTagType::Script => csid::DATA,
        };
        let message = tag.to_message(1);
        rml_messages.push(rml_rtmp::messages::MessagePayload {
            timestamp: rml_rtmp::time::RtmpTimestamp::new(message.timestamp.value()),
            type_id: message.type_id,
            message_stream_id: message.message_stream_id,
            data: message.data.clone(),
        });
        messages.push((chunk_stream_id, message));
    }
    let body_bytes = messages.iter().map(|(_, m)| m.data.len() as u64).sum();
    Inputs { messages, rml_messages, body_bytes }
}

/// The chunk stream a peer sending at `chunk_size` produces for the fixture (our encoder;
/// both decoders are checked to read it back whole before anything is timed).
fn wire(inputs: &Inputs, chunk_size: u32) -> Vec<u8> {
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(chunk_size).expect("valid chunk size");
    let mut out = BytesMut::new();
    for (chunk_stream_id, message) in &inputs.messages {
        encoder.encode(*chunk_stream_id, message, &mut out).expect("encodable fixture message");
    }
    out.to_vec()
}

fn decode_ours(wire: &[u8], chunk_size: u32) -> usize {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    decoder.set_chunk_size(chunk_size).expect("valid chunk size");
    let mut count = 0;
    for read in wire.chunks(READ_SIZE) {
        decoder.push(read);
        while let Some(message) = decoder.next_message().expect("valid chunk stream") {
            black_box(&message);
            count += 1;
        }
    }
    count
}

fn decode_rml(wire: &[u8], chunk_size: u32) -> usize {
    let mut deserializer = ChunkDeserializer::new();
    deserializer.set_max_chunk_size(chunk_size as usize).expect("valid chunk size");
    let mut count = 0;
    for read in wire.chunks(READ_SIZE) {
        let mut input = read;
        while let Some(message) = deserializer.get_next_message(input).expect("valid chunk stream") {
            black_box(&message);
            input = &[];
            count += 1;
        }
    }
    count
}

fn decode(c: &mut Criterion) {
    let inputs = inputs();
    let mut group = c.benchmark_group("decode");
    for chunk_size in CHUNK_SIZES {
        let wire = wire(&inputs, chunk_size);
        assert_eq!(decode_ours(&wire, chunk_size), inputs.messages.len());
        assert_eq!(decode_rml(&wire, chunk_size), inputs.messages.len());
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::new("rtmp_edge", chunk_size), &wire, |b, wire| {
            b.iter(|| decode_ours(wire, chunk_size))
        });
        group.bench_with_input(BenchmarkId::new("rml_rtmp", chunk_size), &wire, |b, wire| {
            b.iter(|| decode_rml(wire, chunk_size))
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let inputs = inputs();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(inputs.body_bytes));
    for chunk_size in CHUNK_SIZES {
        let wire_len = wire(&inputs, chunk_size).len();
        group.bench_function(BenchmarkId::new("rtmp_edge", chunk_size), |b| {
            b.iter(|| {
                let mut encoder = ChunkEncoder::new();
                encoder.set_chunk_size(chunk_size).expect("valid chunk size");
                let mut out = BytesMut::with_capacity(wire_len);
                for (chunk_stream_id, message) in &inputs.messages {
                    encoder.encode(*chunk_stream_id, message, &mut out).expect("encodable");
                }
                out
            })
        });
        group.bench_function(BenchmarkId::new("rml_rtmp", chunk_size), |b| {
            b.iter(|| {
                let mut serializer = ChunkSerializer::new();
                let time = rml_rtmp::time::RtmpTimestamp::new(0);
                black_box(serializer.set_max_chunk_size(chunk_size, time).expect("valid chunk size"));
                for message in &inputs.rml_messages {
                    black_box(serializer.serialize(message, false, false).expect("encodable"));
                }
            })
        });
    }
    group.finish();
}

fn encode_standalone(c: &mut Criterion) {
    let inputs = inputs();
    let mut group = c.benchmark_group("encode_standalone");
    group.throughput(Throughput::Bytes(inputs.body_bytes));
    for chunk_size in CHUNK_SIZES {
        group.bench_function(BenchmarkId::new("rtmp_edge", chunk_size), |b| {
            b.iter(|| {
                for (chunk_stream_id, message) in &inputs.messages {
                    let length = ChunkEncoder::standalone_encoded_len(
                        *chunk_stream_id,
                        message.data.len(),
                        chunk_size,
                        message.timestamp,
                    );
                    let mut out = BytesMut::with_capacity(length);
                    ChunkEncoder::encode_standalone(*chunk_stream_id, message, chunk_size, &mut out)
                        .expect("encodable");
                    black_box(out.freeze());
                }
            })
        });
        group.bench_function(BenchmarkId::new("rml_rtmp", chunk_size), |b| {
            b.iter(|| {
                let mut serializer = ChunkSerializer::new();
                let time = rml_rtmp::time::RtmpTimestamp::new(0);
                black_box(serializer.set_max_chunk_size(chunk_size, time).expect("valid chunk size"));
                for message in &inputs.rml_messages {
                    black_box(serializer.serialize(message, true, false).expect("encodable"));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode, encode_standalone);
criterion_main!(benches);
