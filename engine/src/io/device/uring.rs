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

/// Push `writes` then `sync` as one linked chain, submit it and wait for
/// every completion. Nothing can fail between the first push and the last
/// completion except the wait itself, which is retried, so this never returns
/// while the kernel may still read a buffer of `writes`, and it never leaves
/// entries in the submission queue for a later call to submit.
fn submit_chain(
    ring: &mut IoUring,
    writes: &[RawWrite<'_>],
    sync: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let n = writes.len() + sync.len();
    if n == 0 {
        return Ok(());
    }
    // Everything that can be refused is checked before the first push.
    let mut expected = Vec::with_capacity(n);
    for w in writes {
        let len = u32::try_from(w.data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "single write over 4 GiB"))?;
        expected.push(len as i32);
    }
    expected.resize(n, 0);
    {
        let sq = ring.submission();
        if !sq.is_empty() || sq.capacity() < n {
            return Err(io::Error::other(format!(
                "io_uring submission queue holds {} entries and room for {}; a chain of {n} needs it empty",
                sq.len(),
                sq.capacity()
            )));
        }
    }
    push_chain(ring, writes, sync, &expected);
    reap(ring, n, writes.len(), &expected)
}

fn link(e: squeue::Entry, i: usize, n: usize) -> squeue::Entry {
    let e = e.user_data(i as u64);
    if i + 1 < n {
        e.flags(squeue::Flags::IO_LINK)
    } else {
        e
    }
}

/// Push the chain into an empty queue with room for it (checked by the caller).
fn push_chain(ring: &mut IoUring, writes: &[RawWrite<'_>], sync: &[BorrowedFd<'_>], len: &[i32]) {
    let n = writes.len() + sync.len();
    let mut sq = ring.submission();
    for (i, w) in writes.iter().enumerate() {
        let e = opcode::Write::new(types::Fd(w.fd.as_raw_fd()), w.data.as_ptr(), len[i] as u32)
            .offset(w.offset)
            .build();
        // SAFETY: the buffer behind `w.data` is borrowed for the whole call
        // of `submit_chain`, which returns only after `reap` has seen every
        // completion of this chain (or aborts the process), so the kernel
        // never reads it after the borrow ends. The push cannot fail: the
        // queue was empty with room for the whole chain.
        let pushed = unsafe { sq.push(&link(e, i, n)) };
        assert!(
            pushed.is_ok(),
            "the submission queue had room for the chain"
        );
    }
    for (j, fd) in sync.iter().enumerate() {
        let e = opcode::Fsync::new(types::Fd(fd.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        // SAFETY: an fsync entry references no memory; room was checked as above.
        let pushed = unsafe { sq.push(&link(e, writes.len() + j, n)) };
        assert!(
            pushed.is_ok(),
            "the submission queue had room for the chain"
        );
    }
}

/// Submit and wait until all `n` completions of the chain are in; the first
/// failure among them is the result.
fn reap(ring: &mut IoUring, n: usize, writes: usize, expected: &[i32]) -> io::Result<()> {
    let mut done = 0;
    let mut first_err: Option<io::Error> = None;
    let mut wait_errors = 0u32;
    while done < n {
        if let Err(e) = ring.submit_and_wait(n - done) {
            // Entries may be in flight: the only way out is through their completions.
            let transient = matches!(
                e.raw_os_error(),
                Some(libc_errno::EINTR | libc_errno::EAGAIN | libc_errno::EBUSY)
            );
            wait_errors += 1;
            if !transient && wait_errors > 100 {
                tracing::error!(error = %e, "io_uring wait keeps failing with writes in flight; stopping the process (the log recovers on restart)");
                std::process::abort();
            }
        }
        for cqe in ring.completion() {
            done += 1;
            let i = cqe.user_data() as usize;
            let res = cqe.result();
            let want = expected.get(i).copied().unwrap_or(0);
            if first_err.is_some() {
                continue;
            }
            if res < 0 {
                first_err = Some(io::Error::from_raw_os_error(-res));
            } else if i < writes && res != want {
                first_err = Some(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("short write: {res} of {want} bytes"),
                ));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The errno values a wait may be interrupted with.
mod libc_errno {
    pub const EINTR: i32 = nix::errno::Errno::EINTR as i32;
    pub const EAGAIN: i32 = nix::errno::Errno::EAGAIN as i32;
    pub const EBUSY: i32 = nix::errno::Errno::EBUSY as i32;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_failed_chain_leaves_nothing_for_the_next() {
        let s = Submitter::new();
        if s.backend() != IoBackend::IoUring {
            // The pwrite path has no queue to leave anything in.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let ro = std::fs::File::open(&path).unwrap();
        let data = vec![7u8; 4096];
        let bad = [RawWrite {
            fd: ro.as_fd(),
            offset: 0,
            data: &data,
        }];
        assert!(
            s.write_and_sync(&bad, &[]).is_err(),
            "a write to a read-only fd fails"
        );
        let rw = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        // More writes than the ring holds: split into rounds, all in order.
        let bufs: Vec<Vec<u8>> = (0..150u8).map(|i| vec![i; 512]).collect();
        let writes: Vec<RawWrite<'_>> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| RawWrite {
                fd: rw.as_fd(),
                offset: i as u64 * 512,
                data: b,
            })
            .collect();
        s.write_and_sync(&writes, &[rw.as_fd()]).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 150 * 512);
        for (i, chunk) in back.chunks(512).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8), "block {i}");
        }
        let mut ring = s.ring.as_ref().unwrap().lock().unwrap();
        assert!(ring.submission().is_empty());
    }
}
