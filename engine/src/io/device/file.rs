//! A device that is one regular file or one block device.
//!
//! Layout: bytes `[0, META_BYTES)` hold the two superblock slots; zone `z`
//! occupies `[META_BYTES + z * zone_size, META_BYTES + (z + 1) * zone_size)`.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::OnceLock;

use super::uring::{pread_fill, RawWrite, Submitter};
use super::{
    check_meta_io, check_zone_io, Device, Geometry, Immutability, IoBackend, ZoneWrite, META_BYTES,
    META_COPY_BYTES,
};
use crate::error::{Error, Result};

pub struct FileDevice {
    name: String,
    file: File,
    direct: bool,
    block_device: bool,
    submitter: Submitter,
    geometry: OnceLock<Geometry>,
}

/// Open `path` read-write, with O_DIRECT when the file system supports it.
pub(crate) fn open_direct(path: &Path, create: bool) -> io::Result<(File, bool)> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(create);
    match opts.clone().custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok((f, true)),
        // tmpfs and some overlay setups refuse O_DIRECT with EINVAL.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok((opts.open(path)?, false)),
        Err(e) => Err(e),
    }
}

impl FileDevice {
    /// Create a new file-backed device of `geometry` at `path` (a new regular
    /// file, or an existing block device large enough for it).
    pub fn create(path: &Path, geometry: Geometry) -> Result<Self> {
        let name = path.display().to_string();
        let is_block = std::fs::metadata(path)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false);
        if !is_block
            && path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        {
            return Err(Error::AlreadyExists { path: name });
        }
        let (file, direct) = open_direct(path, !is_block)
            .map_err(|e| Error::io(&name, "create device", None, None, e))?;
        if !is_block {
            let len = META_BYTES + geometry.zone_size * geometry.zone_count as u64;
            file.set_len(len)
                .map_err(|e| Error::io(&name, "size device", None, None, e))?;
        }
        let dev = FileDevice::from_file(name, file, direct, is_block);
        dev.attach(geometry)?;
        Ok(dev)
    }

    /// Open an existing file-backed device; call [`Device::attach`] with the superblock's geometry before zone I/O.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let is_block = std::fs::metadata(path)
            .map_err(|e| Error::io(&name, "open device", None, None, e))?
            .file_type()
            .is_block_device();
        let (file, direct) =
            open_direct(path, false).map_err(|e| Error::io(&name, "open device", None, None, e))?;
        Ok(FileDevice::from_file(name, file, direct, is_block))
    }

    fn from_file(name: String, file: File, direct: bool, block_device: bool) -> Self {
        FileDevice {
            name,
            file,
            direct,
            block_device,
            submitter: Submitter::new(),
            geometry: OnceLock::new(),
        }
    }

    fn len(&self) -> io::Result<u64> {
        if self.block_device {
            (&self.file).seek(SeekFrom::End(0))
        } else {
            Ok(self.file.metadata()?.len())
        }
    }

    fn zone_base(&self, zone: u32) -> u64 {
        META_BYTES + zone as u64 * self.geometry().zone_size
    }
}

impl Device for FileDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn io_backend(&self) -> IoBackend {
        self.submitter.backend()
    }
    fn direct_io(&self) -> bool {
        self.direct
    }

    fn attach(&self, geometry: Geometry) -> Result<()> {
        let need = META_BYTES + geometry.zone_size * geometry.zone_count as u64;
        let have = self
            .len()
            .map_err(|e| Error::io(&self.name, "stat device", None, None, e))?;
        if have < need {
            return Err(Error::Truncated {
                path: self.name.clone(),
                expected: need,
                found: have,
            });
        }
        super::set_geometry(&self.geometry, &self.name, geometry)
    }

    fn geometry(&self) -> Geometry {
        *self
            .geometry
            .get()
            .expect("device attached before zone I/O")
    }

    fn read_meta(&self, copy: u8, buf: &mut [u8]) -> io::Result<()> {
        check_meta_io(copy, buf.len())?;
        pread_fill(self.file.as_fd(), buf, copy as u64 * META_COPY_BYTES)
    }

    fn write_meta(&self, copy: u8, buf: &[u8]) -> io::Result<()> {
        check_meta_io(copy, buf.len())?;
        let w = RawWrite {
            fd: self.file.as_fd(),
            offset: copy as u64 * META_COPY_BYTES,
            data: buf,
        };
        self.submitter.write_and_sync(&[w], &[])
    }

    fn read_zone(&self, zone: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_zone_io(self.geometry(), zone, offset, buf.len())?;
        pread_fill(self.file.as_fd(), buf, self.zone_base(zone) + offset)
    }

    fn write_zone(&self, zone: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        check_zone_io(self.geometry(), zone, offset, data.len())?;
        let w = RawWrite {
            fd: self.file.as_fd(),
            offset: self.zone_base(zone) + offset,
            data,
        };
        self.submitter.write_and_sync(&[w], &[])
    }

    fn flush(&self) -> io::Result<()> {
        self.submitter.sync(&[self.file.as_fd()])
    }

    fn write_durable(&self, writes: &[ZoneWrite<'_>]) -> io::Result<()> {
        let mut raw = Vec::with_capacity(writes.len());
        for w in writes {
            check_zone_io(self.geometry(), w.zone, w.offset, w.data.len())?;
            raw.push(RawWrite {
                fd: self.file.as_fd(),
                offset: self.zone_base(w.zone) + w.offset,
                data: w.data,
            });
        }
        self.submitter.write_and_sync(&raw, &[self.file.as_fd()])
    }

    fn zone_extent(&self, zone: u32) -> io::Result<u64> {
        let g = self.geometry();
        let len = self.len()?;
        Ok(len.saturating_sub(self.zone_base(zone)).min(g.zone_size))
    }

    fn seal_zone(&self, _zone: u32) -> io::Result<Immutability> {
        Ok(Immutability::NotApplicable)
    }

    fn reset_zone(&self, zone: u32, _authority: &super::ResetAuthority) -> io::Result<()> {
        // Write zeros over the zone (a block device has no holes to punch), then flush.
        let g = self.geometry();
        let zeros = crate::io::buffer::AlignedBuf::zeroed((1 << 20).min(g.zone_size as usize));
        let mut off = 0u64;
        while off < g.zone_size {
            let n = (zeros.len() as u64).min(g.zone_size - off) as usize;
            self.write_zone(zone, off, &zeros[..n])?;
            off += n as u64;
        }
        self.flush()
    }
}
