//! The write-and-flush path of file-backed devices: io_uring with a linked
//! chain of writes ending in fdatasync, or pwrite + fdatasync where io_uring
//! is unavailable (detected once, when the device is opened).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Mutex;

use io_uring::{opcode, squeue, types, IoUring};

use super::IoBackend;

/// A write of `len` bytes at absolute file `offset` on `fd`.
pub(crate) struct RawWrite<'a> {
    pub fd: BorrowedFd<'a>,
    pub offset: u64,
    pub data: &'a [u8],
}

const RING_ENTRIES: u32 = 64;

/// Submits writes and flushes for one device.
pub(crate) struct Submitter {
    ring: Option<Mutex<IoUring>>,
}

impl Submitter {
    /// Probe io_uring; fall back to pwrite when the kernel or a sandbox refuses it.
    /// `STELE_IO_BACKEND=pwrite` forces the fallback (to test it, or to work around a kernel bug).
    pub fn new() -> Self {
        let forced_pwrite = std::env::var("STELE_IO_BACKEND").is_ok_and(|v| v == "pwrite");
        let ring = if forced_pwrite {
            None
        } else {
            match IoUring::new(RING_ENTRIES) {
                Ok(r) => Some(Mutex::new(r)),
                Err(e) => {
                    tracing::warn!("io_uring unavailable ({e}); using pwrite + fdatasync");
                    None
                }
            }
        };
        Submitter { ring }
    }

    pub fn backend(&self) -> IoBackend {
        if self.ring.is_some() {
            IoBackend::IoUring
        } else {
            IoBackend::Pwrite
        }
    }

    /// Write every entry of `writes` fully, then fdatasync every fd in `sync`.
    /// Returns only after all of it completed; any failure or short write is an error.
    pub fn write_and_sync(
        &self,
        writes: &[RawWrite<'_>],
        sync: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        match &self.ring {
            Some(ring) => {
                let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
                // A chain longer than the ring is split into rounds; each round
                // completes before the next starts, so ordering is preserved.
                let total = writes.len() + sync.len();
                if total <= RING_ENTRIES as usize {
                    submit_chain(&mut ring, writes, sync)
                } else {
                    for w in writes.chunks(RING_ENTRIES as usize) {
                        submit_chain(&mut ring, w, &[])?;
                    }
                    for s in sync.chunks(RING_ENTRIES as usize) {
                        submit_chain(&mut ring, &[], s)?;
                    }
                    Ok(())
                }
            }
            None => {
                for w in writes {
                    pwrite_all(w.fd, w.data, w.offset)?;
                }
                for fd in sync {
                    fdatasync(*fd)?;
                }
                Ok(())
            }
        }
    }

    pub fn sync(&self, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        self.write_and_sync(&[], fds)
    }
}

fn submit_chain(
    ring: &mut IoUring,
    writes: &[RawWrite<'_>],
    sync: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let n = writes.len() + sync.len();
    if n == 0 {
        return Ok(());
    }
    let mut expected = Vec::with_capacity(n);
    {
        let mut sq = ring.submission();
        for (i, w) in writes.iter().enumerate() {
            let len = u32::try_from(w.data.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "single write over 4 GiB")
            })?;
            let mut e = opcode::Write::new(types::Fd(w.fd.as_raw_fd()), w.data.as_ptr(), len)
                .offset(w.offset)
                .build()
                .user_data(i as u64);
            if i + 1 < n {
                e = e.flags(squeue::Flags::IO_LINK);
            }
            expected.push(len as i32);
            // SAFETY: the buffer behind `w.data` is borrowed for the whole call
            // and this function waits for every completion before returning, so
            // the kernel never reads it after the borrow ends.
            unsafe { sq.push(&e) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        for (j, fd) in sync.iter().enumerate() {
            let i = writes.len() + j;
            let mut e = opcode::Fsync::new(types::Fd(fd.as_raw_fd()))
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(i as u64);
            if i + 1 < n {
                e = e.flags(squeue::Flags::IO_LINK);
            }
            expected.push(0);
            // SAFETY: an fsync entry references no memory.
            unsafe { sq.push(&e) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
    }
    ring.submit_and_wait(n)?;
    let mut done = 0;
    let mut first_err: Option<io::Error> = None;
    while done < n {
        let cqes: Vec<_> = ring.completion().collect();
        if cqes.is_empty() {
            ring.submit_and_wait(n - done)?;
            continue;
        }
        for cqe in cqes {
            done += 1;
            let i = cqe.user_data() as usize;
            let res = cqe.result();
            let want = expected.get(i).copied().unwrap_or(0);
            if first_err.is_none() {
                if res < 0 {
                    first_err = Some(io::Error::from_raw_os_error(-res));
                } else if i < writes.len() && res != want {
                    first_err = Some(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short write: {res} of {want} bytes"),
                    ));
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub(crate) fn pwrite_all(fd: BorrowedFd<'_>, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = nix::sys::uio::pwrite(fd, data, offset as i64).map_err(io::Error::from)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwrite wrote 0 bytes",
            ));
        }
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// pread that fills `buf`, zero-filling past the end of the file.
pub(crate) fn pread_fill(fd: BorrowedFd<'_>, buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    let mut pos = 0;
    while pos < buf.len() {
        let n =
            nix::sys::uio::pread(fd, &mut buf[pos..], offset as i64).map_err(io::Error::from)?;
        if n == 0 {
            buf[pos..].fill(0);
            break;
        }
        pos += n;
        offset += n as u64;
    }
    Ok(())
}

pub(crate) fn fdatasync(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::unistd::fdatasync(fd).map_err(io::Error::from)
}
