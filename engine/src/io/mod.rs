//! The I/O layer: block devices behind one trait (a file, a directory of zone
//! files, io_uring, a fault-injecting simulator) and the aligned buffers
//! O_DIRECT needs. It knows bytes, offsets and durability, nothing of frames.

pub mod buffer;
pub mod device;
