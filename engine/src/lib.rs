//! The Stele storage engine: an append-only, zoned, encrypted and checksummed
//! log with block-level write-once enforcement, group commit and crash-safe
//! recovery. [`Store`] is the entry point.

pub mod buffer;
pub mod device;
pub mod error;
pub mod frame;
pub mod keys;
pub mod record;
pub mod superblock;
pub mod zone;

pub use error::{Error, Location, Result, WormViolation};
