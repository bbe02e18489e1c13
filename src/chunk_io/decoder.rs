//! (in progress)
/// Limits for the decoder.
#[derive(Clone, Debug)]
pub struct ChunkDecoderLimits;
/// Chunk decoder.
#[derive(Debug)]
pub struct ChunkDecoder;
