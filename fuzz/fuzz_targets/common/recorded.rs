//! Seeds from the committed recordings (`tests/fixtures`): real ffmpeg, rtmpdump and
//! nginx-rtmp wire bytes and the FLV fixtures, cut to what each target reads.
//!
//! A target writes its seeds when `FUZZ_SEEDS` names a directory (`scripts/fuzz.sh` sets it
//! to the run's corpus, which libFuzzer reads after this init), so no generated corpus is
//! committed and the seeds follow the recordings. The recordings are parsed with the
//! library itself.
#![allow(dead_code)] // each target uses part of this

use std::path::{Path, PathBuf};

use rtmp_edge::chunk_io::{ChunkDecoder, ChunkDecoderLimits, MessagePayload};
use rtmp_edge::handshake::PACKET_LEN;
use rtmp_edge::messages::{type_id, RtmpMessage};

/// C0 or S0, then two 1536-byte packets.
pub const HANDSHAKE_LEN: usize = 1 + 2 * PACKET_LEN;
/// The longest seed: long enough for a session's commands and its first frames.
pub const MAX_SEED: usize = 32 * 1024;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read_dir_sorted(dir: &Path, extension: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().map(|name| name.to_string_lossy().replace('.', "_")).unwrap_or_default();
            let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (name, bytes)
        })
        .collect()
}

/// Every wire recording: (name, bytes), `*.c2s` (client to server) and `*.s2c`.
pub fn wire() -> Vec<(String, Vec<u8>)> {
    let dir = fixtures().join("wire");
    let mut files = read_dir_sorted(&dir, "c2s");
    files.extend(read_dir_sorted(&dir, "s2c"));
    files
}

/// Every FLV fixture.
pub fn flv_files() -> Vec<(String, Vec<u8>)> {
    let root = fixtures();
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("ertmp"), root.join("media")] {
        files.extend(read_dir_sorted(&dir, "flv"));
    }
    files
}

/// The chunk stream of a recording (what follows the handshake), at most `MAX_SEED` long.
pub fn chunk_stream(recording: &[u8]) -> &[u8] {
    let rest = recording.get(HANDSHAKE_LEN..).unwrap_or_default();
    &rest[..rest.len().min(MAX_SEED)]
}

/// The messages of a recording, decoded with the chunk sizes its sender announced.
pub fn messages(recording: &[u8]) -> Vec<MessagePayload> {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    decoder.push(recording.get(HANDSHAKE_LEN..).unwrap_or_default());
    let mut messages = Vec::new();
    while let Ok(Some(message)) = decoder.next_message() {
        if message.type_id == type_id::SET_CHUNK_SIZE {
            if let Ok(RtmpMessage::SetChunkSize { size }) = RtmpMessage::decode(&message) {
                let _ = decoder.set_chunk_size(size);
            }
        }
        messages.push(message);
    }
    messages
}

/// Writes `seeds()` into the directory `FUZZ_SEEDS` names, if it is set.
pub fn write_if_asked(seeds: impl FnOnce() -> Vec<(String, Vec<u8>)>) {
    let Some(dir) = std::env::var_os("FUZZ_SEEDS") else { return };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    for (name, bytes) in seeds() {
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    }
}

/// `prefix` then `bytes`: targets whose first input byte picks a read size.
pub fn with_prefix(prefix: u8, bytes: &[u8]) -> Vec<u8> {
    let mut seed = vec![prefix];
    seed.extend_from_slice(bytes);
    seed
}

/// For every wire recording, the part `cut` takes, behind each read-size prefix (for targets
/// whose first input byte picks how much they read at a time).
pub fn wire_with_read_sizes(prefixes: &[u8], cut: impl Fn(&[u8]) -> &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, bytes) in wire() {
        for &prefix in prefixes {
            seeds.push((format!("{name}_{prefix}"), with_prefix(prefix, cut(&bytes))));
        }
    }
    seeds
}
