//! Integrity: proving what the log holds — signed tree heads, export bundles
//! with their offline verifier, and the scrubber that re-reads stored frames.

pub mod export;
pub mod scrub;
pub mod treehead;
