//! A device that is a directory: a `superblock` file holding the two
//! superblock slots, and one file per zone (`zone-000042`), created when the
//! zone is first written. Sealed zone files are marked immutable with
//! FS_IMMUTABLE_FL (what `chattr +i` sets): once set, even root's write,
//! truncate, rename and unlink fail until a holder of CAP_LINUX_IMMUTABLE
//! clears it. Open zone files are append-only (FS_APPEND_FL, `chattr +a`)
//! and written through O_APPEND, so the newest records cannot be cut off or
//! overwritten by truncating or rewriting the file either: every write must
//! start exactly at the file's end, which is the zone's write pointer. The
//! only bytes the device itself ever cuts are those past the write pointer
//! (a torn tail recovery discarded), just before the first write after open.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::file::open_direct;
use super::uring::{pread_fill, RawWrite, Submitter};
use super::{
    check_meta_io, check_zone_io, Device, Geometry, Immutability, IoBackend, ZoneWrite, META_BYTES,
    META_COPY_BYTES,
};
use crate::error::{Error, Result};

const SUPERBLOCK_FILE: &str = "superblock";
/// The inode flag `chattr +i` sets (linux/fs.h).
const FS_IMMUTABLE_FL: libc::c_int = 0x0000_0010;
/// The inode flag `chattr +a` sets (linux/fs.h).
const FS_APPEND_FL: libc::c_int = 0x0000_0020;

struct ZoneFile {
    file: File,
    writable: bool,
    /// Where the next append lands (the file's length) for a writable file.
    end: std::sync::atomic::AtomicU64,
}

pub struct ZoneDirDevice {
    name: String,
    dir: PathBuf,
    meta: File,
    direct: bool,
    submitter: Submitter,
    geometry: OnceLock<Geometry>,
    zones: Mutex<HashMap<u32, Arc<ZoneFile>>>,
    dirty: Mutex<HashSet<u32>>,
    /// The superblock file was written since it was last synced.
    meta_dirty: AtomicBool,
    dir_dirty: Mutex<bool>,
}

impl ZoneDirDevice {
    /// Create the directory (it must be absent or empty) and its superblock file.
    pub fn create(dir: &Path, geometry: Geometry) -> Result<Self> {
        let name = dir.display().to_string();
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir)
                .map_err(|e| Error::io(&name, "read directory", None, None, e))?;
            if entries.next().is_some() {
                return Err(Error::AlreadyExists { path: name });
            }
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(&name, "create directory", None, None, e))?;
        let (meta, direct) = open_direct(&dir.join(SUPERBLOCK_FILE), true)
            .map_err(|e| Error::io(&name, "create superblock file", None, None, e))?;
        meta.set_len(META_BYTES)
            .map_err(|e| Error::io(&name, "size superblock file", None, None, e))?;
        let dev = Self::new(name, dir, meta, direct);
        *dev.dir_dirty.lock().unwrap_or_else(|p| p.into_inner()) = true;
        dev.attach(geometry)?;
        Ok(dev)
    }

    pub fn open(dir: &Path) -> Result<Self> {
        let name = dir.display().to_string();
        let sb = dir.join(SUPERBLOCK_FILE);
        if !sb.exists() {
            return Err(Error::NotAStore {
                path: name,
                reason: format!("no {SUPERBLOCK_FILE} file in the directory"),
            });
        }
        let (meta, direct) = open_direct(&sb, false)
            .map_err(|e| Error::io(&name, "open superblock file", None, None, e))?;
        let len = meta
            .metadata()
            .map_err(|e| Error::io(&name, "stat superblock file", None, None, e))?
            .len();
        if len < META_BYTES {
            return Err(Error::Truncated {
                path: sb.display().to_string(),
                expected: META_BYTES,
                found: len,
            });
        }
        Ok(Self::new(name, dir, meta, direct))
    }

    fn new(name: String, dir: &Path, meta: File, direct: bool) -> Self {
        ZoneDirDevice {
            name,
            dir: dir.to_path_buf(),
            meta,
            direct,
            submitter: Submitter::new(),
            geometry: OnceLock::new(),
            zones: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            meta_dirty: AtomicBool::new(true),
            dir_dirty: Mutex::new(false),
        }
    }

    /// The path of zone `zone`'s file.
    pub fn zone_path(&self, zone: u32) -> PathBuf {
        self.dir.join(format!("zone-{zone:06}"))
    }

    /// Whether zone `zone`'s file carries FS_IMMUTABLE_FL.
    pub fn zone_file_immutable(&self, zone: u32) -> io::Result<bool> {
        let f = File::open(self.zone_path(zone))?;
        Ok(get_flags(&f)? & FS_IMMUTABLE_FL != 0)
    }

    fn zone_file(&self, zone: u32, for_write: bool) -> io::Result<Option<Arc<ZoneFile>>> {
        let mut zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(z) = zones.get(&zone) {
            if z.writable || !for_write {
                return Ok(Some(z.clone()));
            }
        }
        let path = self.zone_path(zone);
        let zf = if for_write {
            let existed = path.exists();
            let file = open_append(&path)?;
            if !existed {
                *self.dir_dirty.lock().unwrap_or_else(|p| p.into_inner()) = true;
            }
            let end = file.metadata()?.len();
            append_only(&file, zone);
            ZoneFile {
                file,
                writable: true,
                end: end.into(),
            }
        } else {
            let mut opts = OpenOptions::new();
            opts.read(true);
            if self.direct {
                opts.custom_flags(libc::O_DIRECT);
            }
            match opts.open(&path) {
                Ok(file) => ZoneFile {
                    file,
                    writable: false,
                    end: 0.into(),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        let zf = Arc::new(zf);
        zones.insert(zone, zf.clone());
        Ok(Some(zf))
    }

    fn dir_file(&self) -> io::Result<File> {
        File::open(&self.dir)
    }
}

fn get_flags(f: &File) -> io::Result<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer, which points
    // at a live local; the fd is open for the duration of the call.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            libc::FS_IOC_GETFLAGS,
            &mut flags as *mut libc::c_int,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}

fn set_immutable(f: &File) -> io::Result<()> {
    set_flags(f, (get_flags(f)? | FS_IMMUTABLE_FL) & !FS_APPEND_FL)
}

/// A zone file opened for appending only (O_DIRECT where the file system has it).
fn open_append(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).append(true).create(true);
    match opts.clone().custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => opts.open(path),
        Err(e) => Err(e),
    }
}

/// Mark an open zone file append-only. Without CAP_LINUX_IMMUTABLE or on a
/// file system without the flag the zone is still written by appends only
/// (O_APPEND); the file is then merely not protected from other writers.
fn append_only(f: &File, zone: u32) {
    let r = get_flags(f).and_then(|fl| {
        if fl & FS_APPEND_FL == 0 {
            set_flags(f, fl | FS_APPEND_FL)
        } else {
            Ok(())
        }
    });
    if let Err(e) = r {
        tracing::debug!(zone, "open zone file not marked append-only: {e}");
    }
}

/// Cut a writable zone file back to `len` (bytes past the write pointer
/// only: a discarded torn tail), lifting the append-only flag for the cut.
fn cut_tail(zf: &ZoneFile, len: u64) -> io::Result<()> {
    let flags = get_flags(&zf.file).unwrap_or(0);
    if flags & FS_APPEND_FL != 0 {
        set_flags(&zf.file, flags & !FS_APPEND_FL)?;
    }
    let cut = zf.file.set_len(len);
    if flags & FS_APPEND_FL != 0 {
        set_flags(&zf.file, flags)?;
    }
    cut?;
    zf.end.store(len, Ordering::Release);
    Ok(())
}

fn set_flags(f: &File, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer, which points
    // at a live local; the fd is open for the duration of the call.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            libc::FS_IOC_SETFLAGS,
            &flags as *const libc::c_int,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Device for ZoneDirDevice {
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
        pread_fill(self.meta.as_fd(), buf, copy as u64 * META_COPY_BYTES)
    }

    fn write_meta(&self, copy: u8, buf: &[u8]) -> io::Result<()> {
        check_meta_io(copy, buf.len())?;
        let w = RawWrite {
            fd: self.meta.as_fd(),
            offset: copy as u64 * META_COPY_BYTES,
            data: buf,
        };
        let written = self.submitter.write_and_sync(&[w], &[]);
        // Dirty once the write has completed (or failed): a flush that began
        // before then may have missed it, so the next flush syncs the file.
        self.meta_dirty.store(true, Ordering::Release);
        written
    }

    fn read_zone(&self, zone: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_zone_io(self.geometry(), zone, offset, buf.len())?;
        match self.zone_file(zone, false)? {
            Some(z) => pread_fill(z.file.as_fd(), buf, offset),
            None => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    fn write_zone(&self, zone: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_batch(&[ZoneWrite { zone, offset, data }], false)
    }

    fn flush(&self) -> io::Result<()> {
        self.write_batch(&[], true)
    }

    fn write_durable(&self, writes: &[ZoneWrite<'_>]) -> io::Result<()> {
        self.write_batch(writes, true)
    }

    fn zone_extent(&self, zone: u32) -> io::Result<u64> {
        match std::fs::metadata(self.zone_path(zone)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn seal_zone(&self, zone: u32) -> io::Result<Immutability> {
        // Make sure the zone's bytes are durable, then trade the writable handle for a read-only one.
        self.flush()?;
        self.zones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&zone);
        let Some(zf) = self.zone_file(zone, false)? else {
            return Ok(Immutability::NotApplicable);
        };
        match set_immutable(&zf.file) {
            Ok(()) => Ok(Immutability::FileFlagSet),
            Err(e) => {
                let why = match e.raw_os_error() {
                    Some(libc::EPERM) => "the process lacks CAP_LINUX_IMMUTABLE".to_string(),
                    Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) => {
                        "the file system has no immutable flag".to_string()
                    }
                    _ => e.to_string(),
                };
                tracing::warn!(zone, "could not mark sealed zone file immutable: {why}");
                Ok(Immutability::Unavailable(why))
            }
        }
    }

    fn reset_zone(&self, zone: u32, _authority: &super::ResetAuthority) -> io::Result<()> {
        self.zones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&zone);
        let path = self.zone_path(zone);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let flags = get_flags(&f)?;
        if flags & (FS_IMMUTABLE_FL | FS_APPEND_FL) != 0 {
            set_flags(&f, flags & !(FS_IMMUTABLE_FL | FS_APPEND_FL))?;
        }
        drop(f);
        std::fs::remove_file(&path)?;
        self.dir_file()?.sync_all()
    }
}

impl ZoneDirDevice {
    /// Every write must land at its zone file's end (the files are written
    /// with O_APPEND): bytes past a write's offset are a discarded torn tail
    /// and are cut first; a file shorter than a write's offset is refused.
    /// Advances each file's end as if the writes had landed; a failed write
    /// poisons the store, and reopening reads the ends again.
    fn check_appends(&self, writes: &[ZoneWrite<'_>], files: &[Arc<ZoneFile>]) -> io::Result<()> {
        for (w, zf) in writes.iter().zip(files) {
            let end = zf.end.load(Ordering::Acquire);
            if w.offset < end {
                tracing::info!(
                    zone = w.zone,
                    from = w.offset,
                    to = end,
                    "cutting a discarded tail"
                );
                cut_tail(zf, w.offset)?;
            } else if w.offset > end {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "zone {} file ends at {end}, before the write at {}: the file was cut below the store",
                        w.zone, w.offset
                    ),
                ));
            }
            zf.end
                .store(w.offset + w.data.len() as u64, Ordering::Release);
        }
        Ok(())
    }

    fn write_batch(&self, writes: &[ZoneWrite<'_>], durable: bool) -> io::Result<()> {
        let mut files = Vec::with_capacity(writes.len());
        for w in writes {
            check_zone_io(self.geometry(), w.zone, w.offset, w.data.len())?;
            let zf = self
                .zone_file(w.zone, true)?
                .expect("zone file opened for write");
            files.push(zf);
        }
        self.check_appends(writes, &files)?;
        let raw: Vec<RawWrite<'_>> = writes
            .iter()
            .zip(&files)
            .map(|(w, zf)| RawWrite {
                fd: zf.file.as_fd(),
                offset: w.offset,
                data: w.data,
            })
            .collect();
        if !durable {
            let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            dirty.extend(writes.iter().map(|w| w.zone));
            drop(dirty);
            return self.submitter.write_and_sync(&raw, &[]);
        }
        // Durable: every zone written now or since the last flush, the
        // superblock file, and the directory if a zone file was created.
        let mut sync_files: Vec<Arc<ZoneFile>> = files.clone();
        let pending: Vec<u32> = self
            .dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for z in pending {
            if let Some(zf) = self.zone_file(z, true)? {
                sync_files.push(zf);
            }
        }
        sync_files.sort_by_key(|f| f.file.as_raw_fd());
        sync_files.dedup_by_key(|f| f.file.as_raw_fd());
        let mut fds: Vec<_> = sync_files.iter().map(|f| f.file.as_fd()).collect();
        // The superblock file only when it was written since its last sync:
        // an fdatasync of a clean file still costs the device a cache flush.
        let meta_dirty = self.meta_dirty.swap(false, Ordering::AcqRel);
        if meta_dirty {
            fds.push(self.meta.as_fd());
        }
        if let Err(e) = self.submitter.write_and_sync(&raw, &fds) {
            if meta_dirty {
                self.meta_dirty.store(true, Ordering::Release);
            }
            return Err(e);
        }
        let mut dir_dirty = self.dir_dirty.lock().unwrap_or_else(|p| p.into_inner());
        if *dir_dirty {
            let d = self.dir_file()?;
            d.sync_all()?;
            *dir_dirty = false;
        }
        Ok(())
    }
}
