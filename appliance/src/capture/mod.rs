//! Capture: everything that turns what arrives from outside (webhook
//! deliveries, NDJSON batches, chat exports, media downloads) into records.

pub mod chat_export;
pub mod claim;
pub mod media;
pub mod metrics;
pub mod ndjson;
pub mod service;
pub mod timestamp;
pub mod whatsapp;

pub use service::{Capture, Item, Outcome};
