//! Devices: where the bytes of a store live.
//!
//! A [`Device`] is raw block storage divided into a metadata area (two
//! superblock copies) and fixed-size zones. Three implementations:
//!
//! * [`FileDevice`]: one regular file or a block device, zones laid out one
//!   after another behind a 2 MiB metadata area, opened with `O_DIRECT`.
//! * [`ZoneDirDevice`]: a directory holding a `superblock` file and one file
//!   per zone; sealed zone files are marked immutable (`FS_IMMUTABLE_FL`).
//! * [`FaultDevice`]: an in-memory device that injects power cuts, torn and
//!   lost writes, misdirected writes, bit flips and I/O errors, for tests.
//!
//! A `Device` moves bytes and nothing else. The write-once rules (append only
//! at the write pointer, nothing into a sealed zone) are enforced one layer up,
//! by [`crate::log::zone::ZonedDevice`], which is the only writer the store uses.

mod fault;
mod file;
mod uring;
mod zonedir;

pub use fault::{CrashMode, FaultConfig, FaultDevice};
pub use file::FileDevice;
pub use zonedir::ZoneDirDevice;

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Bytes reserved at the start of each device for the two superblock copies.
pub const META_BYTES: u64 = 2 << 20;
/// Bytes of one superblock copy's slot inside the metadata area.
pub const META_COPY_BYTES: u64 = META_BYTES / 2;

/// Zone geometry of a device, fixed when the store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub zone_size: u64,
    pub zone_count: u32,
}

/// How a device submits writes and flushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring with linked write and fdatasync submissions.
    IoUring,
    /// pwrite followed by fdatasync, where io_uring is unavailable.
    Pwrite,
    /// In-memory simulation (tests).
    Simulated,
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoBackend::IoUring => "io_uring",
            IoBackend::Pwrite => "pwrite+fdatasync",
            IoBackend::Simulated => "simulated",
        })
    }
}

/// What sealing a zone did beyond recording it in the superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Immutability {
    /// The zone's file now carries FS_IMMUTABLE_FL: even root cannot write, rename or unlink it.
    FileFlagSet,
    /// The device has no per-zone file to flag (one file or a block device).
    NotApplicable,
    /// The file system or the process's capabilities refused the flag; the reason says which.
    Unavailable(String),
}

/// One write of a durable batch: `data` at `offset` inside `zone`.
pub struct ZoneWrite<'a> {
    pub zone: u32,
    pub offset: u64,
    pub data: &'a [u8],
}

/// Raw block storage. Offsets and lengths of zone I/O are multiples of 4 KiB.
pub trait Device: Send + Sync {
    /// A human-readable name: the path, or the simulator's label.
    fn name(&self) -> &str;
    /// How writes and flushes are submitted.
    fn io_backend(&self) -> IoBackend;
    /// Whether the device is opened with O_DIRECT (bypassing the page cache).
    fn direct_io(&self) -> bool;

    /// Fix the zone geometry (from a new or a read superblock) and check that
    /// the device is large enough for it.
    fn attach(&self, geometry: Geometry) -> Result<()>;
    /// The geometry given to [`Device::attach`].
    fn geometry(&self) -> Geometry;

    /// Read `buf.len()` bytes from the start of superblock slot `copy` (0 or 1).
    fn read_meta(&self, copy: u8, buf: &mut [u8]) -> io::Result<()>;
    /// Write `buf` at the start of superblock slot `copy` (0 or 1). Not durable until [`Device::flush`].
    fn write_meta(&self, copy: u8, buf: &[u8]) -> io::Result<()>;

    /// Read `buf.len()` bytes at `offset` inside `zone`. Bytes never written read as zero.
    fn read_zone(&self, zone: u32, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Write `data` at `offset` inside `zone`. Not durable until [`Device::flush`].
    fn write_zone(&self, zone: u32, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Make every completed write durable (fdatasync or the device flush).
    fn flush(&self) -> io::Result<()>;

    /// Write all of `writes` and make them durable before returning.
    fn write_durable(&self, writes: &[ZoneWrite<'_>]) -> io::Result<()> {
        for w in writes {
            self.write_zone(w.zone, w.offset, w.data)?;
        }
        self.flush()
    }

    /// How many bytes of `zone` exist on the medium (for detecting truncation).
    fn zone_extent(&self, zone: u32) -> io::Result<u64>;

    /// Called once a zone is sealed and flushed: make it immutable below the store where the medium allows.
    fn seal_zone(&self, zone: u32) -> io::Result<Immutability>;

    /// Erase a zone so it reads as zeros and can be written from offset 0 again
    /// (lifting the immutable flag where one was set). Only the retention
    /// engine can call this: the [`ResetAuthority`] cannot be made outside the engine.
    fn reset_zone(&self, zone: u32, authority: &ResetAuthority) -> io::Result<()>;
}

/// Proof that a zone reset comes from the retention engine, which resets a
/// zone only after every record in it has left retention and is unheld, and
/// after writing an audit record with the zone's hash. Nothing outside the
/// engine can construct one.
pub struct ResetAuthority(());

impl ResetAuthority {
    pub(crate) fn retention_engine() -> Self {
        ResetAuthority(())
    }
}

/// Open the device at `path`: a directory is a [`ZoneDirDevice`], anything else a [`FileDevice`].
pub fn open_path(path: &Path) -> Result<Arc<dyn Device>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io(&path.display().to_string(), "open device", None, None, e))?;
    if meta.is_dir() {
        Ok(Arc::new(ZoneDirDevice::open(path)?))
    } else {
        Ok(Arc::new(FileDevice::open(path)?))
    }
}

/// Record `geometry` in `cell` (once); attaching again with another geometry is an error.
pub(crate) fn set_geometry(
    cell: &std::sync::OnceLock<Geometry>,
    name: &str,
    geometry: Geometry,
) -> Result<()> {
    let set = *cell.get_or_init(|| geometry);
    if set != geometry {
        return Err(Error::invalid(
            "geometry",
            format!("device {name} already attached as {set:?}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_zone_io(
    geometry: Geometry,
    zone: u32,
    offset: u64,
    len: usize,
) -> io::Result<()> {
    let end = offset.checked_add(len as u64);
    if zone >= geometry.zone_count || end.is_none_or(|e| e > geometry.zone_size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("zone {zone} offset {offset} len {len} outside geometry {geometry:?}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_meta_io(copy: u8, len: usize) -> io::Result<()> {
    if copy > 1 || len as u64 > META_COPY_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("superblock slot {copy} with {len} bytes is outside the metadata area"),
        ));
    }
    Ok(())
}
