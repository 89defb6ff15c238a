//! The log: write-once zones, the superblock, the group-commit pipeline that
//! seals and writes batches, and the scanner that finds frames again. It
//! knows frames and zones, and no policy.

pub mod commit;
pub mod scan;
pub mod superblock;
pub mod verify;
pub mod zone;
