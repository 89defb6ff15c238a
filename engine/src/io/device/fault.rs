//! An in-memory device that lies the way disks lie, driven by a seed so that
//! every failure replays exactly.
//!
//! It keeps two images: what is durable, and the writes accepted since the
//! last flush. A simulated power cut drops writes that were never flushed and
//! may tear them at 512-byte sector granularity (a prefix of them, or any
//! subset of their sectors). It can also fail a flush or a write with EIO,
//! lose a write it acknowledged, misdirect a write to another block, flip
//! bits in durable data and return EIO for chosen blocks on read.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Mutex, OnceLock};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{
    check_meta_io, check_zone_io, Device, Geometry, Immutability, IoBackend, META_BYTES,
    META_COPY_BYTES,
};
use crate::error::Result;
use crate::io::buffer::BLOCK_SIZE;

const SECTOR: usize = 512;

/// How a power cut treats the writes not yet flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unflushed write is lost.
    DropAll,
    /// A prefix of the unflushed writes survives whole, the next is torn after a random number of sectors.
    TornPrefix,
    /// Each 512-byte sector of each unflushed write independently survives or not (reordering).
    RandomSectors,
    /// One of the above, chosen by the seed at each power cut.
    Any,
}

/// Faults to inject, counted in device operations (each write and each flush is one operation).
#[derive(Debug, Clone)]
pub struct FaultConfig {
    pub seed: u64,
    /// After this many operations the power fails: that operation and all later ones return EIO until [`FaultDevice::power_cut`].
    pub power_cut_after_ops: Option<u64>,
    /// The flush with this ordinal (1-based) fails with EIO; its unflushed writes are lost.
    pub fail_flush_at: Option<u64>,
    /// The write with this ordinal (1-based) fails with EIO.
    pub fail_write_at: Option<u64>,
    /// Probability that a write is acknowledged but never stored.
    pub lost_write_prob: f64,
    /// Probability that a write lands one zone-relative block away from where it was aimed.
    pub misdirect_prob: f64,
    pub crash_mode: CrashMode,
}

impl FaultConfig {
    pub fn new(seed: u64) -> Self {
        FaultConfig {
            seed,
            power_cut_after_ops: None,
            fail_flush_at: None,
            fail_write_at: None,
            lost_write_prob: 0.0,
            misdirect_prob: 0.0,
            crash_mode: CrashMode::Any,
        }
    }
}

/// What the device has done, for tests to assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultLog {
    pub ops: u64,
    pub writes: u64,
    pub flushes: u64,
    pub power_cuts: u64,
    pub lost_writes: u64,
    pub misdirected_writes: u64,
    pub torn_sectors_dropped: u64,
}

struct State {
    durable: HashMap<u64, Box<[u8]>>,
    pending: Vec<(u64, Vec<u8>)>,
    powered: bool,
    config: FaultConfig,
    rng: StdRng,
    log: FaultLog,
    read_errors: HashSet<u64>,
}

pub struct FaultDevice {
    name: String,
    state: Mutex<State>,
    geometry: OnceLock<Geometry>,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected EIO: {what}"))
}

impl FaultDevice {
    pub fn new(name: &str, config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        FaultDevice {
            name: name.to_string(),
            state: Mutex::new(State {
                durable: HashMap::new(),
                pending: Vec::new(),
                powered: true,
                config,
                rng,
                log: FaultLog::default(),
                read_errors: HashSet::new(),
            }),
            geometry: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the fault plan (keeps the data). Used to arm a new fault after a reopen.
    pub fn set_config(&self, config: FaultConfig) {
        let mut s = self.lock();
        s.rng = StdRng::seed_from_u64(config.seed);
        s.config = config;
        s.log.ops = 0;
        s.log.writes = 0;
        s.log.flushes = 0;
    }

    pub fn log(&self) -> FaultLog {
        self.lock().log.clone()
    }

    /// Whether the simulated power has failed (operations return EIO).
    pub fn powered(&self) -> bool {
        self.lock().powered
    }

    /// Cut the power now: resolve unflushed writes by the crash mode, then
    /// power back on so that the store can be reopened.
    pub fn power_cut(&self) {
        let mut s = self.lock();
        let pending = std::mem::take(&mut s.pending);
        let mode = match s.config.crash_mode {
            CrashMode::Any => match s.rng.random_range(0..3) {
                0 => CrashMode::DropAll,
                1 => CrashMode::TornPrefix,
                _ => CrashMode::RandomSectors,
            },
            m => m,
        };
        match mode {
            CrashMode::DropAll | CrashMode::Any => {}
            CrashMode::TornPrefix => {
                let keep = s.rng.random_range(0..=pending.len());
                for (i, (off, data)) in pending.into_iter().enumerate() {
                    if i < keep {
                        s.apply(off, &data);
                    } else if i == keep {
                        let sectors = data.len() / SECTOR;
                        let n = s.rng.random_range(0..=sectors);
                        s.apply(off, &data[..n * SECTOR]);
                        s.log.torn_sectors_dropped += (sectors - n) as u64;
                    }
                }
            }
            CrashMode::RandomSectors => {
                for (off, data) in pending {
                    for (i, sector) in data.chunks(SECTOR).enumerate() {
                        if s.rng.random_bool(0.5) {
                            s.apply(off + (i * SECTOR) as u64, sector);
                        } else {
                            s.log.torn_sectors_dropped += 1;
                        }
                    }
                }
            }
        }
        s.powered = true;
        s.config.power_cut_after_ops = None;
        s.log.power_cuts += 1;
    }

    /// Flip bit `bit` (0..8) of the durable byte at `offset` in `zone`.
    pub fn flip_bit(&self, zone: u32, offset: u64, bit: u8) {
        let abs = self.zone_abs(zone, offset);
        let mut s = self.lock();
        let block = abs / BLOCK_SIZE as u64;
        let b = s
            .durable
            .entry(block)
            .or_insert_with(|| vec![0u8; BLOCK_SIZE].into_boxed_slice());
        b[(abs % BLOCK_SIZE as u64) as usize] ^= 1 << (bit % 8);
    }

    /// Make reads of the block holding `offset` in `zone` fail with EIO (a latent sector error).
    pub fn fail_reads_at(&self, zone: u32, offset: u64) {
        let abs = self.zone_abs(zone, offset);
        self.lock().read_errors.insert(abs / BLOCK_SIZE as u64);
    }

    fn zone_abs(&self, zone: u32, offset: u64) -> u64 {
        META_BYTES + zone as u64 * self.geometry().zone_size + offset
    }

    fn write_abs(&self, abs: u64, data: &[u8], is_zone: bool) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.log.writes += 1;
        if s.config.fail_write_at == Some(s.log.writes) {
            return Err(eio("write failed"));
        }
        let mut target = abs;
        if is_zone {
            let (lost, misdirect) = (s.config.lost_write_prob, s.config.misdirect_prob);
            if lost > 0.0 && s.rng.random_bool(lost) {
                s.log.lost_writes += 1;
                return Ok(());
            }
            if misdirect > 0.0 && s.rng.random_bool(misdirect) {
                s.log.misdirected_writes += 1;
                target = abs + BLOCK_SIZE as u64;
            }
        }
        s.pending.push((target, data.to_vec()));
        Ok(())
    }

    fn read_abs(&self, abs: u64, buf: &mut [u8]) -> io::Result<()> {
        let s = self.lock();
        if !s.powered {
            return Err(eio("device lost power"));
        }
        let first = abs / BLOCK_SIZE as u64;
        let last = (abs + buf.len() as u64).div_ceil(BLOCK_SIZE as u64);
        for b in first..last {
            if s.read_errors.contains(&b) {
                return Err(eio(&format!("latent read error at block {b}")));
            }
        }
        let mut pos = abs;
        let mut i = 0usize;
        while i < buf.len() {
            let block = pos / BLOCK_SIZE as u64;
            let within = (pos % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - within).min(buf.len() - i);
            match s.durable.get(&block) {
                Some(d) => buf[i..i + n].copy_from_slice(&d[within..within + n]),
                None => buf[i..i + n].fill(0),
            }
            i += n;
            pos += n as u64;
        }
        for (off, data) in &s.pending {
            let (lo, hi) = (
                abs.max(*off),
                (abs + buf.len() as u64).min(off + data.len() as u64),
            );
            if lo < hi {
                buf[(lo - abs) as usize..(hi - abs) as usize]
                    .copy_from_slice(&data[(lo - off) as usize..(hi - off) as usize]);
            }
        }
        Ok(())
    }
}

impl State {
    /// Count one operation; fail it if the power has gone.
    fn tick(&mut self) -> io::Result<()> {
        if !self.powered {
            return Err(eio("device lost power"));
        }
        self.log.ops += 1;
        if self
            .config
            .power_cut_after_ops
            .is_some_and(|n| self.log.ops > n)
        {
            self.powered = false;
            return Err(eio("device lost power"));
        }
        Ok(())
    }

    fn apply(&mut self, off: u64, data: &[u8]) {
        let mut pos = off;
        let mut i = 0usize;
        while i < data.len() {
            let block = pos / BLOCK_SIZE as u64;
            let within = (pos % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - within).min(data.len() - i);
            let b = self
                .durable
                .entry(block)
                .or_insert_with(|| vec![0u8; BLOCK_SIZE].into_boxed_slice());
            b[within..within + n].copy_from_slice(&data[i..i + n]);
            i += n;
            pos += n as u64;
        }
    }
}

impl Device for FaultDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn io_backend(&self) -> IoBackend {
        IoBackend::Simulated
    }
    fn direct_io(&self) -> bool {
        true
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
        self.read_abs(copy as u64 * META_COPY_BYTES, buf)
    }

    fn write_meta(&self, copy: u8, buf: &[u8]) -> io::Result<()> {
        check_meta_io(copy, buf.len())?;
        self.write_abs(copy as u64 * META_COPY_BYTES, buf, false)
    }

    fn read_zone(&self, zone: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_zone_io(self.geometry(), zone, offset, buf.len())?;
        self.read_abs(self.zone_abs(zone, offset), buf)
    }

    fn write_zone(&self, zone: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        check_zone_io(self.geometry(), zone, offset, data.len())?;
        self.write_abs(self.zone_abs(zone, offset), data, true)
    }

    fn flush(&self) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.log.flushes += 1;
        if s.config.fail_flush_at == Some(s.log.flushes) {
            // fsyncgate: the failed writes are gone, and the caller cannot know which.
            s.pending.clear();
            return Err(eio("flush failed"));
        }
        let pending = std::mem::take(&mut s.pending);
        for (off, data) in pending {
            s.apply(off, &data);
        }
        Ok(())
    }

    fn zone_extent(&self, _zone: u32) -> io::Result<u64> {
        Ok(self.geometry().zone_size)
    }

    fn seal_zone(&self, _zone: u32) -> io::Result<Immutability> {
        Ok(Immutability::NotApplicable)
    }

    fn reset_zone(&self, zone: u32, _authority: &super::ResetAuthority) -> io::Result<()> {
        self.flush()?;
        let first = self.zone_abs(zone, 0) / BLOCK_SIZE as u64;
        let blocks = self.geometry().zone_size / BLOCK_SIZE as u64;
        let mut s = self.lock();
        s.durable
            .retain(|b, _| !(first..first + blocks).contains(b));
        Ok(())
    }
}
