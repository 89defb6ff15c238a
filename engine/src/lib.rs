//! The Stele storage engine: an append-only, zoned, encrypted and checksummed
//! log with block-level write-once enforcement, group commit and crash-safe
//! recovery. [`Store`] is the entry point.

pub mod buffer;
pub mod commit;
pub mod device;
pub mod error;
pub mod frame;
pub mod index;
pub mod keys;
pub mod record;
pub mod scan;
pub mod store;
pub mod superblock;
pub mod zone;

pub use error::{Error, Location, Result, WormViolation};
pub use frame::FrameKind;
pub use keys::{KeyFile, Keys};
pub use record::{NewRecord, Receipt, Record};
pub use store::{BlobRef, OpenReport, PendingAppend, Store, StoreOptions, VerifyReport};
