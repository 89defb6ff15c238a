//! The disk's own limits, measured on the same file system as the store.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

use stele_engine::io::buffer::AlignedBuf;

pub struct RawRates {
    /// Sequential O_DIRECT writes of 4 MiB, one fdatasync at the end (MB/s).
    pub seq_write_mbs: f64,
    /// Sequential O_DIRECT writes of 4 MiB, fdatasync after each (MB/s).
    pub seq_write_synced_mbs: f64,
    /// 4 KiB O_DIRECT append + fdatasync pairs per second.
    pub syncs_per_s: f64,
    pub direct: bool,
}

pub fn measure(dir: &Path) -> std::io::Result<RawRates> {
    let path = dir.join("raw.bin");
    let _ = std::fs::remove_file(&path);
    let (f, direct) = match OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
    {
        Ok(f) => (f, true),
        Err(_) => (
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?,
            false,
        ),
    };
    let mut buf = AlignedBuf::zeroed(4 << 20);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 31) as u8;
    }
    let total: u64 = 512 << 20;
    let t = Instant::now();
    let mut off = 0;
    while off < total {
        f.write_all_at(&buf, off)?;
        off += buf.len() as u64;
    }
    f.sync_data()?;
    let seq_write_mbs = total as f64 / t.elapsed().as_secs_f64() / 1e6;
    let t = Instant::now();
    let mut off2 = 0;
    while off2 < total / 2 {
        f.write_all_at(&buf, off + off2)?;
        f.sync_data()?;
        off2 += buf.len() as u64;
    }
    let seq_write_synced_mbs = (total / 2) as f64 / t.elapsed().as_secs_f64() / 1e6;
    let small = AlignedBuf::zeroed(4096);
    let t = Instant::now();
    let mut n = 0u64;
    let base = off + off2;
    while t.elapsed().as_secs_f64() < 2.0 {
        f.write_all_at(&small, base + n * 4096)?;
        f.sync_data()?;
        n += 1;
    }
    let syncs_per_s = n as f64 / t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(RawRates {
        seq_write_mbs,
        seq_write_synced_mbs,
        syncs_per_s,
        direct,
    })
}
