//! Time: the compliance clock retention decisions go by, and the one check
//! every time entering the store passes. Below the log, which stamps each
//! checkpoint with the clock's reading.

pub mod clock;
pub mod timestamp;
