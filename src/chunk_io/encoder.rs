//! (in progress)
/// Chunk encoder.
#[derive(Debug)]
pub struct ChunkEncoder;
