//! The Stele storage engine: an append-only, zoned, encrypted and checksummed
//! log with block-level write-once enforcement, group commit and crash-safe
//! recovery. [`Store`] is the entry point.

pub mod anchor;
pub mod audit;
pub mod blob;
pub mod buffer;
pub mod clock;
pub mod commit;
pub mod compliance;
pub mod configuration;
pub mod corroboration;
pub mod device;
pub mod erasure;
pub mod error;
pub mod export;
pub mod frame;
pub mod hold;
pub mod index;
pub mod kek;
pub mod key_custody;
pub mod keyring;
pub mod keys;
pub mod location;
pub mod merkle;
pub mod record;
pub mod retention;
pub mod scan;
pub mod scrub;
pub mod store;
pub mod superblock;
pub mod timestamp;
pub mod treehead;
pub mod zone;

pub use error::{Error, Location, Result, WormViolation};
pub use frame::FrameKind;
pub use kek::{FileKek, KeyProvider, Pkcs11Config, Pkcs11Kek};
pub use keyring::Keyring;
pub use keys::{DataKey, Keys};
pub use record::{NewRecord, Receipt, Record};
pub use store::{
    BackgroundScrub, BlobRef, OpenReport, PendingAppend, Store, StoreOptions, VerifyReport,
};
