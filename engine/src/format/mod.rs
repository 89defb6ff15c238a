//! What a frame is, byte for byte (docs/FORMAT.md): the frame header and
//! body, the record envelope inside it, where a frame sits and what the
//! index keeps of it, the media manifest, and the Merkle tree over every frame.

pub mod frame;
pub mod location;
pub mod manifest;
pub mod merkle;
pub mod record;
