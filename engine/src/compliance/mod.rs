//! Compliance: the audit trail, and the policy built on the log through it —
//! legal holds, retention and zone reclaim, erasure by crypto-shredding,
//! corroborated time, and the configuration on the record.

pub mod audit;
pub mod configuration;
pub mod corroboration;
pub mod erasure;
pub mod hold;
pub mod retention;
pub mod state;
