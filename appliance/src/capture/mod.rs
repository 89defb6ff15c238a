//! Capture: everything that turns what arrives from outside (webhook
//! deliveries, NDJSON batches, chat exports, media downloads) into records.

pub mod chat_export;
pub mod media;
pub mod ndjson;
pub mod whatsapp;
