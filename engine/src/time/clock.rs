//! The compliance clock: the time retention decisions are made by.
//!
//! It never goes backwards, and it moves forward no faster than the time
//! that really elapsed (the kernel's CLOCK_BOOTTIME, which no one can set)
//! plus a drift budget, while following the system clock when it can.
//! Elapsed time is read with the `clock_gettime` system call itself, not
//! through the C library or the vDSO, so a preloaded library (libfaketime,
//! say) that fakes the process's view of time cannot speed it up; it is
//! cross-checked with `/proc/uptime`, and a disagreement is an anomaly
//! (the smaller of the two is believed). So:
//! * winding the system clock forward does not expire records early: the
//!   compliance clock catches up at most `drift_budget_ppm` faster than real
//!   time;
//! * winding it back does not un-expire anything or move the clock back: the
//!   compliance clock holds until the system clock is ahead of it again;
//! * time while the machine was off is not counted (it cannot be measured);
//!   the clock catches up within the drift budget afterwards.
//!
//! Its value, the boot it was taken in and the boot-time reading are
//! persisted in the superblock at every checkpoint, authenticated with a key
//! derived from the store's root key, so editing the device cannot move it.
//! Anomalies (jumps, restarts) are kept for the audit trail and counted.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Where time comes from. The real source reads the system clock,
/// CLOCK_BOOTTIME and the kernel's boot id.
pub trait TimeSource: Send + Sync {
    /// The system (wall) clock, UTC microseconds.
    fn system_us(&self) -> i64;
    /// Nanoseconds since boot, counting suspend; cannot be set.
    fn boottime_ns(&self) -> u64;
    /// Identifies the current boot.
    fn boot_id(&self) -> [u8; 16];
    /// A second reading of time since boot from another path into the
    /// kernel (`/proc/uptime`), to cross-check [`TimeSource::boottime_ns`].
    fn uptime_ns(&self) -> Option<u64> {
        None
    }
    /// A clock of the process's that something fakes ([`interposed_clock`]).
    fn interposed(&self) -> Option<(&'static str, i64)> {
        None
    }
}

/// CLOCK_BOOTTIME by the system call itself, bypassing the C library and
/// the vDSO (which a preloaded library can interpose on).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn raw_clock(id: libc::clockid_t) -> Option<(i64, i64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let ret: i64;
    // SAFETY: `clock_gettime(id, &mut ts)` writes one `timespec`
    // into `ts`, which lives on this stack frame for the whole call and is
    // not aliased; the kernel touches no other memory, on success or on
    // error (it returns -EFAULT/-EINVAL without writing). The x86_64 syscall
    // ABI clobbers only rax, rcx and r11, all declared.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_clock_gettime => ret,
            in("rdi") i64::from(id),
            in("rsi") &mut ts as *mut libc::timespec,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (ret == 0).then_some((ts.tv_sec, ts.tv_nsec))
}

/// Elsewhere the C library's `syscall` wrapper (still not the vDSO).
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn raw_clock(id: libc::clockid_t) -> Option<(i64, i64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above: the kernel writes one `timespec` into `ts`, which
    // outlives the call, and nothing else, on every path.
    let ret = unsafe { libc::syscall(libc::SYS_clock_gettime, id, &mut ts as *mut libc::timespec) };
    (ret == 0).then_some((ts.tv_sec as i64, ts.tv_nsec as i64))
}

/// A clock the process reads through the C library that differs from the
/// kernel's by more than a second: something (a preloaded library) fakes
/// the process's view of time. Its name and the gap (library minus kernel, s).
pub fn interposed_clock() -> Option<(&'static str, i64)> {
    use nix::time::{clock_gettime, ClockId};
    let clocks = [
        ("CLOCK_MONOTONIC", ClockId::CLOCK_MONOTONIC),
        ("CLOCK_BOOTTIME", ClockId::CLOCK_BOOTTIME),
    ];
    clocks.into_iter().find_map(|(name, id)| {
        let lib = clock_gettime(id).ok()?;
        let (secs, _) = raw_clock(id.as_raw())?;
        let gap = lib.tv_sec() - secs;
        (gap.abs() > 1).then_some((name, gap))
    })
}

/// The smaller of the source's two readings of time since boot.
fn believed_elapsed_ns(src: &dyn TimeSource) -> u64 {
    let raw = src.boottime_ns();
    src.uptime_ns().map_or(raw, |u| raw.min(u))
}

/// Parse the first field of `/proc/uptime` ("12345.67 …") as nanoseconds.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut frac_ns = 0u64;
    let mut scale = 100_000_000u64;
    for c in frac.chars().take(9) {
        frac_ns += u64::from(c.to_digit(10)?) * scale;
        scale /= 10;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// The machine's clocks.
pub struct SystemTimeSource;

impl TimeSource for SystemTimeSource {
    fn system_us(&self) -> i64 {
        crate::time::timestamp::now_us()
    }

    fn boottime_ns(&self) -> u64 {
        raw_clock(libc::CLOCK_BOOTTIME)
            .map(|(s, ns)| s.max(0) as u64 * 1_000_000_000 + ns.max(0) as u64)
            .unwrap_or(0)
    }

    fn uptime_ns(&self) -> Option<u64> {
        parse_uptime(&std::fs::read_to_string("/proc/uptime").ok()?)
    }

    fn interposed(&self) -> Option<(&'static str, i64)> {
        interposed_clock()
    }

    fn boot_id(&self) -> [u8; 16] {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
        let mut out = [0u8; 16];
        if let Ok(b) = hex::decode(hex) {
            if b.len() == 16 {
                out.copy_from_slice(&b);
            }
        }
        out
    }
}

/// What the superblock keeps of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockReading {
    pub compliance_us: i64,
    pub boot_id: [u8; 16],
    pub boottime_ns: u64,
}

// Where each field of an encoded reading starts (docs/FORMAT.md,
// "Superblock", bytes 144..176), each from the one before it.
const COMPLIANCE_US_AT: usize = 0;
const BOOT_ID_AT: usize = COMPLIANCE_US_AT + 8;
const BOOTTIME_NS_AT: usize = BOOT_ID_AT + 16;
/// The bytes of an encoded reading.
pub const CLOCK_READING_LEN: usize = BOOTTIME_NS_AT + 8;
const _: () = assert!(CLOCK_READING_LEN == 176 - 144);

impl ClockReading {
    pub fn to_bytes(&self) -> [u8; CLOCK_READING_LEN] {
        let mut b = [0u8; CLOCK_READING_LEN];
        b[COMPLIANCE_US_AT..BOOT_ID_AT].copy_from_slice(&self.compliance_us.to_le_bytes());
        b[BOOT_ID_AT..BOOTTIME_NS_AT].copy_from_slice(&self.boot_id);
        b[BOOTTIME_NS_AT..].copy_from_slice(&self.boottime_ns.to_le_bytes());
        b
    }

    /// The reading [`ClockReading::to_bytes`] encoded.
    pub fn from_bytes(b: &[u8; CLOCK_READING_LEN]) -> ClockReading {
        let compliance: [u8; 8] = b[COMPLIANCE_US_AT..BOOT_ID_AT].try_into().expect("8 bytes");
        let boottime: [u8; 8] = b[BOOTTIME_NS_AT..].try_into().expect("8 bytes");
        ClockReading {
            compliance_us: i64::from_le_bytes(compliance),
            boot_id: b[BOOT_ID_AT..BOOTTIME_NS_AT].try_into().expect("16 bytes"),
            boottime_ns: u64::from_le_bytes(boottime),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// The system clock moved ahead of elapsed time by more than the budget.
    ForwardJump,
    /// The system clock fell behind the compliance clock.
    BackwardJump,
    /// The store was opened in a new boot: the downtime could not be measured.
    Restart,
    /// The two readings of time since boot (the system call and
    /// `/proc/uptime`) disagree: something is interposing on one of them.
    /// `gap_us` is the first minus the second.
    ElapsedDisagrees,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAnomaly {
    pub kind: AnomalyKind,
    pub system_us: i64,
    pub compliance_us: i64,
    /// System minus compliance time when it was noticed.
    pub gap_us: i64,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct ClockStats {
    pub forward_jumps: AtomicU64,
    pub backward_jumps: AtomicU64,
    pub restarts: AtomicU64,
    pub elapsed_disagreements: AtomicU64,
    /// System minus compliance time at the last reading.
    pub gap_us: AtomicI64,
}

#[derive(Debug)]
struct State {
    value_us: i64,
    at_ns: u64,
    boot_id: [u8; 16],
    ahead: bool,
    behind: bool,
    disagree: bool,
}

/// Gaps below this are ordinary clock discipline, not anomalies.
const TOLERANCE_US: i64 = 2_000_000;

/// The two readings of time since boot may differ by this much (the
/// uptime file has 10 ms resolution and is read a moment apart).
const ELAPSED_TOLERANCE_NS: u64 = 1_000_000_000;

pub struct ComplianceClock {
    src: Arc<dyn TimeSource>,
    drift_ppm: u32,
    state: Mutex<State>,
    pending: Mutex<Vec<ClockAnomaly>>,
    pub stats: ClockStats,
}

impl ComplianceClock {
    /// A clock starting at the system time (a new store).
    pub fn start(src: Arc<dyn TimeSource>, drift_ppm: u32) -> ComplianceClock {
        let reading = ClockReading {
            compliance_us: src.system_us(),
            boot_id: src.boot_id(),
            boottime_ns: believed_elapsed_ns(src.as_ref()),
        };
        ComplianceClock::resume(src, drift_ppm, reading)
    }

    /// Resume from a persisted reading.
    pub fn resume(src: Arc<dyn TimeSource>, drift_ppm: u32, r: ClockReading) -> ComplianceClock {
        let boot = src.boot_id();
        let now_ns = believed_elapsed_ns(src.as_ref());
        let same_boot = boot == r.boot_id && now_ns >= r.boottime_ns;
        let clock = ComplianceClock {
            drift_ppm,
            state: Mutex::new(State {
                value_us: r.compliance_us,
                // In the same boot the time since the reading is real elapsed time; otherwise none is counted.
                at_ns: if same_boot { r.boottime_ns } else { now_ns },
                boot_id: boot,
                ahead: false,
                behind: false,
                disagree: false,
            }),
            pending: Mutex::new(Vec::new()),
            stats: ClockStats::default(),
            src,
        };
        if !same_boot {
            let sys = clock.src.system_us();
            clock.stats.restarts.fetch_add(1, Ordering::Relaxed);
            clock.record(ClockAnomaly {
                kind: AnomalyKind::Restart,
                system_us: sys,
                compliance_us: r.compliance_us,
                gap_us: sys - r.compliance_us,
            });
        }
        clock.now_us();
        clock
    }

    /// Note that the process's own clock is faked (`gap_us`: library minus kernel).
    pub fn record_interposed(&self, gap_us: i64) {
        self.stats
            .elapsed_disagreements
            .fetch_add(1, Ordering::Relaxed);
        self.record(ClockAnomaly {
            kind: AnomalyKind::ElapsedDisagrees,
            system_us: self.src.system_us(),
            compliance_us: self.now_us(),
            gap_us,
        });
    }

    /// The source's verdict on the process's own clocks.
    pub fn interposed(&self) -> Option<(&'static str, i64)> {
        self.src.interposed()
    }

    fn record(&self, a: ClockAnomaly) {
        tracing::warn!(?a, "compliance clock anomaly");
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(a);
    }

    /// Time since boot: the smaller of the two readings; a disagreement
    /// beyond [`ELAPSED_TOLERANCE_NS`] is recorded once per episode.
    fn elapsed_ns(&self, st: &mut State, sys: i64) -> u64 {
        let raw = self.src.boottime_ns();
        let Some(uptime) = self.src.uptime_ns() else {
            return raw;
        };
        let off = raw.abs_diff(uptime) > ELAPSED_TOLERANCE_NS;
        if off && !st.disagree {
            self.stats
                .elapsed_disagreements
                .fetch_add(1, Ordering::Relaxed);
            self.record(ClockAnomaly {
                kind: AnomalyKind::ElapsedDisagrees,
                system_us: sys,
                compliance_us: st.value_us,
                gap_us: ((raw as i128 - uptime as i128) / 1000) as i64,
            });
        }
        st.disagree = off;
        raw.min(uptime)
    }

    /// The compliance time now, UTC microseconds.
    pub fn now_us(&self) -> i64 {
        let sys = self.src.system_us();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now_ns = self.elapsed_ns(&mut st, sys);
        let elapsed_us = (now_ns.saturating_sub(st.at_ns) / 1000) as i64;
        let allowed =
            elapsed_us.saturating_add(elapsed_us.saturating_mul(self.drift_ppm as i64) / 1_000_000);
        let gap = sys - st.value_us;
        if gap > 0 {
            st.value_us += gap.min(allowed);
        }
        st.at_ns = st.at_ns.max(now_ns);
        let left = sys - st.value_us;
        self.stats.gap_us.store(left, Ordering::Relaxed);
        let value = st.value_us;
        if left > TOLERANCE_US {
            if !st.ahead {
                st.ahead = true;
                self.stats.forward_jumps.fetch_add(1, Ordering::Relaxed);
                drop(st);
                self.record(ClockAnomaly {
                    kind: AnomalyKind::ForwardJump,
                    system_us: sys,
                    compliance_us: value,
                    gap_us: left,
                });
                return value;
            }
        } else if left < -TOLERANCE_US {
            if !st.behind {
                st.behind = true;
                self.stats.backward_jumps.fetch_add(1, Ordering::Relaxed);
                drop(st);
                self.record(ClockAnomaly {
                    kind: AnomalyKind::BackwardJump,
                    system_us: sys,
                    compliance_us: value,
                    gap_us: left,
                });
                return value;
            }
        } else {
            st.ahead = false;
            st.behind = false;
        }
        value
    }

    /// The reading to persist.
    pub fn reading(&self) -> ClockReading {
        let v = self.now_us();
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        ClockReading {
            compliance_us: v,
            boot_id: st.boot_id,
            boottime_ns: st.at_ns,
        }
    }

    /// Anomalies not yet written to the audit trail.
    pub fn take_anomalies(&self) -> Vec<ClockAnomaly> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn drift_ppm(&self) -> u32 {
        self.drift_ppm
    }
}

pub use crate::time::timestamp::utc;

/// A time source wound by hand: for simulations of years of retention in
/// seconds, and for tests. `advance` moves real (boot) time and the system
/// clock separately, so a wound or rolled-back system clock can be staged.
#[derive(Default)]
pub struct ManualTime {
    pub system_us: AtomicI64,
    pub boottime_ns: AtomicU64,
    pub boot: Mutex<[u8; 16]>,
    /// When set, `/proc/uptime` is staged as reading this much less than
    /// boot time (an interposed clock); unset, there is no second reading.
    pub uptime_lag_ns: Mutex<Option<u64>>,
}

impl ManualTime {
    /// Starting at system time `system_us`, boot time 1 s.
    pub fn starting_at(system_us: i64) -> Arc<ManualTime> {
        let t = ManualTime::default();
        t.system_us.store(system_us, Ordering::SeqCst);
        t.boottime_ns.store(1_000_000_000, Ordering::SeqCst);
        Arc::new(t)
    }

    /// Let `real_us` of real time pass while the system clock moves by `system_us`.
    pub fn advance(&self, real_us: i64, system_us: i64) {
        self.boottime_ns
            .fetch_add(real_us.max(0) as u64 * 1000, Ordering::SeqCst);
        self.system_us.fetch_add(system_us, Ordering::SeqCst);
    }

    /// Both clocks move together by `us`.
    pub fn pass(&self, us: i64) {
        self.advance(us, us);
    }
}

impl TimeSource for ManualTime {
    fn system_us(&self) -> i64 {
        self.system_us.load(Ordering::SeqCst)
    }
    fn boottime_ns(&self) -> u64 {
        self.boottime_ns.load(Ordering::SeqCst)
    }
    fn boot_id(&self) -> [u8; 16] {
        *self.boot.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn uptime_ns(&self) -> Option<u64> {
        let lag = (*self.uptime_lag_ns.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some(self.boottime_ns().saturating_sub(lag))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    type TestTime = ManualTime;

    const DAY_US: i64 = 86_400_000_000;

    fn setup() -> (Arc<TestTime>, ComplianceClock) {
        let t = Arc::new(TestTime::default());
        t.system_us.store(1_000 * DAY_US, Ordering::SeqCst);
        t.boottime_ns.store(5_000_000_000, Ordering::SeqCst);
        let c = ComplianceClock::start(t.clone(), 1000);
        (t, c)
    }

    fn tick(t: &TestTime, real_us: i64, system_us: i64) {
        t.boottime_ns
            .fetch_add(real_us as u64 * 1000, Ordering::SeqCst);
        t.system_us.fetch_add(system_us, Ordering::SeqCst);
    }

    #[test]
    fn follows_the_system_clock_in_normal_time() {
        let (t, c) = setup();
        let start = c.now_us();
        tick(&t, 3_600_000_000, 3_600_000_000);
        assert_eq!(c.now_us() - start, 3_600_000_000);
        assert!(c.take_anomalies().is_empty());
    }

    #[test]
    fn a_forward_jump_advances_no_faster_than_elapsed_time_plus_budget() {
        let (t, c) = setup();
        let start = c.now_us();
        // The system clock jumps ten years; one real second passes.
        tick(&t, 1_000_000, 3650 * DAY_US);
        let after = c.now_us();
        assert!(after - start <= 1_001_000, "moved {} µs", after - start);
        let a = c.take_anomalies();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AnomalyKind::ForwardJump);
        // A day of real time later it has caught up by at most a day plus 1000 ppm.
        tick(&t, DAY_US, DAY_US);
        let later = c.now_us();
        assert!(later - after <= DAY_US + DAY_US / 1000);
        assert!(later - after >= DAY_US);
        assert!(c.take_anomalies().is_empty(), "one jump, one anomaly");
    }

    #[test]
    fn a_rollback_never_moves_it_back() {
        let (t, c) = setup();
        tick(&t, 1_000_000, 1_000_000);
        let before = c.now_us();
        tick(&t, 1_000_000, -365 * DAY_US);
        let after = c.now_us();
        assert!(after >= before);
        assert_eq!(after, before, "it holds while the system clock is behind");
        assert_eq!(c.take_anomalies()[0].kind, AnomalyKind::BackwardJump);
        assert_eq!(c.stats.backward_jumps.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_disagreeing_uptime_is_an_anomaly_and_the_smaller_reading_is_believed() {
        let (t, c) = setup();
        let start = c.now_us();
        // Something speeds up one reading of elapsed time by a year.
        *t.uptime_lag_ns.lock().unwrap() = Some(365 * DAY_US as u64 * 1000);
        tick(&t, 1_000_000, 365 * DAY_US);
        let after = c.now_us();
        assert!(after - start <= 1_001_000, "moved {} µs", after - start);
        let kinds: Vec<_> = c.take_anomalies().iter().map(|a| a.kind).collect();
        assert!(kinds.contains(&AnomalyKind::ElapsedDisagrees), "{kinds:?}");
        assert_eq!(c.stats.elapsed_disagreements.load(Ordering::Relaxed), 1);
        // While it lasts it is not recorded again.
        tick(&t, 1_000_000, 1_000_000);
        c.now_us();
        assert!(!c
            .take_anomalies()
            .iter()
            .any(|a| a.kind == AnomalyKind::ElapsedDisagrees));
    }

    #[test]
    fn nothing_interposes_on_this_process_clock() {
        assert_eq!(interposed_clock(), None);
    }

    #[test]
    fn uptime_parses() {
        assert_eq!(parse_uptime("12345.67 9999.00\n"), Some(12_345_670_000_000));
        assert_eq!(parse_uptime("7 1"), Some(7_000_000_000));
        assert_eq!(parse_uptime("x"), None);
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn the_system_call_and_proc_uptime_agree_here() {
        let s = SystemTimeSource;
        let raw = s.boottime_ns();
        let up = s.uptime_ns().expect("/proc/uptime is readable");
        assert!(raw > 0);
        assert!(
            raw.abs_diff(up) < ELAPSED_TOLERANCE_NS,
            "raw {raw} uptime {up}"
        );
    }

    #[test]
    fn a_restart_counts_no_downtime_and_a_reading_resumes() {
        let (t, c) = setup();
        tick(&t, 10_000_000, 10_000_000);
        let r = c.reading();
        // Same boot: the real time since the reading counts.
        tick(&t, 5_000_000, 5_000_000);
        let same = ComplianceClock::resume(t.clone(), 1000, r);
        assert_eq!(same.now_us(), r.compliance_us + 5_000_000);
        // A new boot a week later: the week is not counted.
        *t.boot.lock().unwrap() = [9; 16];
        t.boottime_ns.store(1_000_000_000, Ordering::SeqCst);
        tick(&t, 0, 7 * DAY_US);
        let rebooted = ComplianceClock::resume(t.clone(), 1000, r);
        assert_eq!(rebooted.now_us(), r.compliance_us);
        let kinds: Vec<_> = rebooted.take_anomalies().iter().map(|a| a.kind).collect();
        assert_eq!(kinds, vec![AnomalyKind::Restart, AnomalyKind::ForwardJump]);
    }
}
