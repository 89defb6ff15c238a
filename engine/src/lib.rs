//! The Stele storage engine: an append-only, zoned, encrypted and checksummed
//! log with block-level write-once enforcement, group commit and crash-safe
//! recovery. [`Store`] is the entry point.
//!
//! Layers, bottom to top (docs/ARCHITECTURE.md): [`io`], [`time`], [`crypto`],
//! [`format`], [`index`], [`log`], [`compliance`], [`integrity`], [`store`].
//! A layer uses only the layers below it; [`error`] is shared by all.

pub mod compliance;
pub mod crypto;
pub mod error;
pub mod format;
pub mod index;
pub mod integrity;
pub mod io;
pub mod log;
pub mod store;
pub mod time;

pub use crypto::kek::{FileKek, KeyProvider, Pkcs11Config, Pkcs11Kek};
pub use crypto::keyring::Keyring;
pub use crypto::keys::{DataKey, Keys};
pub use error::{Error, Location, Result, WormViolation};
pub use format::frame::FrameKind;
pub use format::record::{NewRecord, Receipt, Record};
pub use store::{
    BackgroundScrub, BlobRef, OpenReport, PendingAppend, Store, StoreOptions, VerifyReport,
};
