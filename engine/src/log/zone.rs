//! Zones and the write-once rules.
//!
//! [`ZonedDevice`] wraps a raw [`Device`] and is the only way the store
//! writes zone data. Like a zoned (ZNS) SSD it keeps a write pointer per zone
//! and accepts exactly one kind of write: an append that starts at the write
//! pointer of a zone that is not sealed. Writes below the pointer
//! (overwrites), above it (holes), past the zone end, into a sealed zone, and
//! truncation are refused here, with a typed error, before any byte moves.
//! A failed write or flush poisons the device until the store is reopened.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result, WormViolation};
use crate::io::buffer::BLOCK_SIZE;
use crate::io::device::{Device, Geometry, Immutability, ZoneWrite};

/// The life of a zone: empty → open → sealed. Only zone reset (by
/// retention, once every record in the zone has left retention and is
/// unheld) takes a sealed zone on: sealed → resetting → empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ZoneCondition {
    Empty = 0,
    Open = 1,
    Sealed = 2,
    /// Being erased by a zone reset; never written or read as part of the log.
    Resetting = 3,
}

impl ZoneCondition {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(ZoneCondition::Empty),
            1 => Some(ZoneCondition::Open),
            2 => Some(ZoneCondition::Sealed),
            3 => Some(ZoneCondition::Resetting),
            _ => None,
        }
    }
}

/// A zone's condition and write pointer (bytes from the start of the zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneState {
    pub condition: ZoneCondition,
    pub write_pointer: u64,
    /// Sequence number of the first frame in the zone (meaningful when not empty).
    pub first_seq: u64,
}

impl ZoneState {
    pub const EMPTY: ZoneState = ZoneState {
        condition: ZoneCondition::Empty,
        write_pointer: 0,
        first_seq: 0,
    };
}

/// A device with write pointers: the write-once layer.
pub struct ZonedDevice {
    device: Arc<dyn Device>,
    zones: Mutex<Vec<ZoneState>>,
    poisoned: Mutex<Option<String>>,
}

impl ZonedDevice {
    /// Wrap `device` (already attached) with the zone states read from the superblock.
    pub fn new(device: Arc<dyn Device>, zones: Vec<ZoneState>) -> Self {
        assert_eq!(
            zones.len(),
            device.geometry().zone_count as usize,
            "one state per zone"
        );
        ZonedDevice {
            device,
            zones: Mutex::new(zones),
            poisoned: Mutex::new(None),
        }
    }

    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    pub fn name(&self) -> &str {
        self.device.name()
    }

    pub fn geometry(&self) -> Geometry {
        self.device.geometry()
    }

    /// The state of `zone`, or a typed error if the device has no such zone.
    pub fn zone(&self, zone: u32) -> Result<ZoneState> {
        self.lock()
            .get(zone as usize)
            .copied()
            .ok_or_else(|| self.no_such_zone(zone))
    }

    fn no_such_zone(&self, zone: u32) -> Error {
        Error::invalid(
            "zone",
            format!(
                "zone {zone} does not exist on {} ({} zones)",
                self.name(),
                self.geometry().zone_count
            ),
        )
    }

    pub fn zones(&self) -> Vec<ZoneState> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ZoneState>> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the device is poisoned, if it is.
    pub fn poisoned(&self) -> Option<String> {
        self.poisoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn poison(&self, why: String) -> Error {
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            tracing::error!(device = self.name(), "poisoned: {why}");
            *p = Some(why.clone());
        }
        Error::Poisoned { reason: why }
    }

    fn check_poison(&self) -> Result<()> {
        match self.poisoned() {
            Some(reason) => Err(Error::Poisoned { reason }),
            None => Ok(()),
        }
    }

    fn violation(&self, zone: u32, violation: WormViolation) -> Error {
        tracing::warn!(device = self.name(), zone, %violation, "write-once violation refused");
        Error::Worm {
            device: self.name().to_string(),
            zone,
            violation,
        }
    }

    /// Check one append against the zone rules, given the write pointer it would start at.
    fn check_append(
        &self,
        zones: &[ZoneState],
        zone: u32,
        offset: u64,
        len: u64,
        wp: u64,
    ) -> Result<()> {
        let g = self.geometry();
        let Some(state) = zones.get(zone as usize) else {
            return Err(self.no_such_zone(zone));
        };
        if matches!(
            state.condition,
            ZoneCondition::Sealed | ZoneCondition::Resetting
        ) {
            return Err(self.violation(zone, WormViolation::Sealed));
        }
        if !offset.is_multiple_of(BLOCK_SIZE as u64)
            || !len.is_multiple_of(BLOCK_SIZE as u64)
            || len == 0
        {
            return Err(self.violation(zone, WormViolation::Unaligned { offset, len }));
        }
        if offset < wp {
            return Err(self.violation(
                zone,
                WormViolation::BelowWritePointer {
                    offset,
                    write_pointer: wp,
                },
            ));
        }
        if offset > wp {
            return Err(self.violation(
                zone,
                WormViolation::AboveWritePointer {
                    offset,
                    write_pointer: wp,
                },
            ));
        }
        if offset + len > g.zone_size {
            return Err(self.violation(
                zone,
                WormViolation::PastZoneEnd {
                    end: offset + len,
                    zone_size: g.zone_size,
                },
            ));
        }
        Ok(())
    }

    /// Append `data` at `offset` of `zone` and make it durable. All writes are
    /// checked before any is issued; on an I/O error the device is poisoned.
    pub fn append_durable(&self, writes: &[ZoneWrite<'_>], first_seq: u64) -> Result<()> {
        self.check_poison()?;
        let mut zones = self.lock();
        let mut wps: Vec<(u32, u64)> = Vec::new();
        for w in writes {
            let wp = wps.iter().rev().find(|(z, _)| *z == w.zone).map_or_else(
                || zones.get(w.zone as usize).map_or(0, |z| z.write_pointer),
                |x| x.1,
            );
            self.check_append(&zones, w.zone, w.offset, w.data.len() as u64, wp)?;
            wps.push((w.zone, wp + w.data.len() as u64));
        }
        if let Err(e) = self.device.write_durable(writes) {
            let first = writes.first();
            return Err(self.poison(format!(
                "write+flush failed at zone {:?} offset {:?}: {e}",
                first.map(|w| w.zone),
                first.map(|w| w.offset)
            )));
        }
        for (zone, wp) in wps {
            let z = &mut zones[zone as usize];
            if z.condition == ZoneCondition::Empty {
                z.first_seq = first_seq;
            }
            z.condition = ZoneCondition::Open;
            assert!(wp > z.write_pointer, "write pointers only move forward");
            z.write_pointer = wp;
        }
        Ok(())
    }

    /// Append without flushing (the data is durable only after [`ZonedDevice::flush`]).
    pub fn append(&self, zone: u32, offset: u64, data: &[u8], first_seq: u64) -> Result<()> {
        self.check_poison()?;
        let mut zones = self.lock();
        let wp = zones.get(zone as usize).map_or(0, |z| z.write_pointer);
        self.check_append(&zones, zone, offset, data.len() as u64, wp)?;
        if let Err(e) = self.device.write_zone(zone, offset, data) {
            return Err(self.poison(format!("write failed at zone {zone} offset {offset}: {e}")));
        }
        let z = &mut zones[zone as usize];
        if z.condition == ZoneCondition::Empty {
            z.first_seq = first_seq;
        }
        z.condition = ZoneCondition::Open;
        let wp = offset + data.len() as u64;
        assert!(wp > z.write_pointer, "write pointers only move forward");
        z.write_pointer = wp;
        Ok(())
    }

    /// Make all appends durable. A failure poisons the device: the page cache
    /// can no longer be trusted, so nothing is retried.
    pub fn flush(&self) -> Result<()> {
        self.check_poison()?;
        self.device
            .flush()
            .map_err(|e| self.poison(format!("flush failed: {e}")))
    }

    /// Truncation moves a write pointer back, so it is always refused
    /// (a write pointer equal to the current one is a no-op).
    pub fn truncate(&self, zone: u32, to: u64) -> Result<()> {
        let wp = self.zone(zone)?.write_pointer;
        if to == wp {
            return Ok(());
        }
        Err(self.violation(
            zone,
            WormViolation::Truncate {
                to,
                write_pointer: wp,
            },
        ))
    }

    /// Seal `zone`: from now on it accepts no writes. Only a zone being
    /// written (open, or opened and still empty) is sealed, and only once.
    pub(crate) fn seal(&self, zone: u32) {
        let z = &mut self.lock()[zone as usize];
        assert!(
            matches!(z.condition, ZoneCondition::Open | ZoneCondition::Empty),
            "only a zone being written is sealed (zone {zone} is {:?})",
            z.condition
        );
        z.condition = ZoneCondition::Sealed;
    }

    /// Ask the medium to make a sealed zone immutable below the store (after the seal is checkpointed).
    pub(crate) fn make_immutable(&self, zone: u32) -> Result<Immutability> {
        assert_eq!(
            self.zone(zone)?.condition,
            ZoneCondition::Sealed,
            "only sealed zones become immutable"
        );
        self.device
            .seal_zone(zone)
            .map_err(|e| Error::io(self.name(), "mark zone immutable", Some(zone), None, e))
    }

    /// Begin a reset: a sealed zone becomes `Resetting` (checkpoint it before erasing).
    pub(crate) fn begin_reset(&self, zone: u32) -> Result<()> {
        let mut zones = self.lock();
        let Some(z) = zones.get_mut(zone as usize) else {
            return Err(self.no_such_zone(zone));
        };
        assert_eq!(
            z.condition,
            ZoneCondition::Sealed,
            "only a sealed zone is reset"
        );
        *z = ZoneState {
            condition: ZoneCondition::Resetting,
            write_pointer: 0,
            first_seq: 0,
        };
        Ok(())
    }

    /// Finish a reset: erase a `Resetting` zone on the medium and make it `Empty`.
    pub(crate) fn finish_reset(&self, zone: u32) -> Result<()> {
        assert_eq!(
            self.zone(zone)?.condition,
            ZoneCondition::Resetting,
            "the reset was begun"
        );
        self.device
            .reset_zone(zone, &crate::io::device::ResetAuthority::retention_engine())
            .map_err(|e| Error::io(self.name(), "reset zone", Some(zone), None, e))?;
        self.lock()[zone as usize] = ZoneState::EMPTY;
        Ok(())
    }

    /// Set the write pointer found by recovery, or open the next zone for
    /// the writer. A sealed zone is never restored, and a write pointer never
    /// moves back (nor past the zone's end).
    pub(crate) fn restore(&self, zone: u32, state: ZoneState) {
        let zone_size = self.geometry().zone_size;
        let z = &mut self.lock()[zone as usize];
        assert!(
            z.condition != ZoneCondition::Sealed,
            "a sealed zone keeps its state (zone {zone})"
        );
        assert!(
            state.write_pointer >= z.write_pointer && state.write_pointer <= zone_size,
            "a restored write pointer ({}) moves forward within the zone, from {}",
            state.write_pointer,
            z.write_pointer
        );
        *z = state;
    }

    /// Read `buf.len()` bytes at `offset` (block-aligned) of `zone`.
    pub fn read(&self, zone: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.device
            .read_zone(zone, offset, buf)
            .map_err(|e| Error::io(self.name(), "read", Some(zone), Some(offset), e))
    }
}

/// All zones of a store, numbered globally across its devices: device 0's
/// zones first, then device 1's, and so on.
pub struct ZoneSet {
    devices: Vec<ZonedDevice>,
    bases: Vec<u32>,
    total: u32,
    /// Zones found missing or short (global zone → what was found): never
    /// read, scanned or written; every other zone is served.
    damaged: std::sync::Mutex<std::collections::BTreeMap<u32, String>>,
}

/// A zone whose file is missing or shorter than the log wrote, and the
/// records it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedZone {
    pub zone: u32,
    /// `device … zone …`
    pub at: String,
    pub reason: String,
    /// The records it held: `first_seq..end_seq`.
    pub first_seq: u64,
    pub end_seq: u64,
}

impl ZoneSet {
    pub fn new(devices: Vec<ZonedDevice>) -> Self {
        let mut bases = Vec::with_capacity(devices.len());
        let mut total = 0u32;
        for d in &devices {
            bases.push(total);
            total += d.geometry().zone_count;
        }
        ZoneSet {
            devices,
            bases,
            total,
            damaged: Default::default(),
        }
    }

    pub fn devices(&self) -> &[ZonedDevice] {
        &self.devices
    }

    pub fn zone_count(&self) -> u32 {
        self.total
    }

    pub fn zone_size(&self) -> u64 {
        self.devices[0].geometry().zone_size
    }

    /// The device and device-local zone number of global zone `zone`.
    pub fn locate(&self, zone: u32) -> Result<(&ZonedDevice, u32)> {
        if zone >= self.total {
            return Err(Error::invalid(
                "zone",
                format!(
                    "zone {zone} does not exist (the store has {} zones)",
                    self.total
                ),
            ));
        }
        let i = self.bases.partition_point(|&b| b <= zone) - 1;
        Ok((&self.devices[i], zone - self.bases[i]))
    }

    /// Where a byte of the log lives, for error messages.
    pub fn location(&self, zone: u32, offset: u64) -> crate::error::Location {
        match self.locate(zone) {
            Ok((dev, local)) => crate::error::Location {
                device: dev.name().to_string(),
                zone: local,
                offset,
            },
            Err(_) => crate::error::Location {
                device: format!("(no device holds global zone {zone})"),
                zone,
                offset,
            },
        }
    }

    pub fn state(&self, zone: u32) -> Result<ZoneState> {
        let (dev, local) = self.locate(zone)?;
        dev.zone(local)
    }

    /// The zones that hold log data (open or sealed) and are not set aside
    /// as damaged, with their numbers, in sequence order.
    pub fn log_zones(&self) -> Vec<(u32, ZoneState)> {
        let mut zones: Vec<(u32, ZoneState)> = self
            .states()
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
            .filter(|(z, s)| {
                matches!(s.condition, ZoneCondition::Open | ZoneCondition::Sealed)
                    && self.damage(*z).is_none()
            })
            .collect();
        zones.sort_by_key(|(_, s)| s.first_seq);
        zones
    }

    pub fn states(&self) -> Vec<ZoneState> {
        self.devices.iter().flat_map(|d| d.zones()).collect()
    }

    /// The order in which empty zones are opened: zone 0 of every device, then
    /// zone 1 of every device, ... so that consecutive zones alternate devices.
    pub fn allocation_order(&self) -> Vec<u32> {
        let max = self
            .devices
            .iter()
            .map(|d| d.geometry().zone_count)
            .max()
            .unwrap_or(0);
        let mut order = Vec::with_capacity(self.total as usize);
        for local in 0..max {
            for (i, d) in self.devices.iter().enumerate() {
                if local < d.geometry().zone_count {
                    order.push(self.bases[i] + local);
                }
            }
        }
        order
    }

    pub fn read(&self, zone: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(reason) = self.damage(zone) {
            return Err(Error::ZoneDamaged {
                at: self.location(zone, offset),
                reason,
            });
        }
        let (dev, local) = self.locate(zone)?;
        dev.read(local, offset, buf)
    }

    /// Set zone `zone` aside as damaged (`reason`: what was found).
    pub(crate) fn mark_damaged(&self, zone: u32, reason: String) {
        tracing::error!(zone, "zone damaged: {reason}");
        self.damaged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(zone, reason);
    }

    /// Why zone `zone` is damaged, if it is.
    pub fn damage(&self, zone: u32) -> Option<String> {
        self.damaged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&zone)
            .cloned()
    }

    /// Every damaged zone with the records it held (`log_next`: the log's end).
    pub fn damaged_zones(&self, log_next: u64) -> Vec<DamagedZone> {
        let damaged = self
            .damaged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let states = self.states();
        damaged
            .into_iter()
            .map(|(zone, reason)| {
                let first_seq = states[zone as usize].first_seq;
                let end_seq = states
                    .iter()
                    .filter(|s| s.write_pointer > 0 && s.first_seq > first_seq)
                    .map(|s| s.first_seq)
                    .min()
                    .unwrap_or(log_next);
                let loc = self.location(zone, 0);
                DamagedZone {
                    zone,
                    at: format!("device {} zone {}", loc.device, loc.zone),
                    reason,
                    first_seq,
                    end_seq,
                }
            })
            .collect()
    }

    pub fn append_durable(
        &self,
        zone: u32,
        offset: u64,
        data: &[u8],
        first_seq: u64,
    ) -> Result<()> {
        let (dev, local) = self.locate(zone)?;
        dev.append_durable(
            &[ZoneWrite {
                zone: local,
                offset,
                data,
            }],
            first_seq,
        )
    }

    pub(crate) fn seal(&self, zone: u32) {
        let (dev, local) = self
            .locate(zone)
            .expect("the writer seals only zones it wrote");
        dev.seal(local)
    }

    pub(crate) fn make_immutable(&self, zone: u32) -> Result<Immutability> {
        let (dev, local) = self.locate(zone)?;
        dev.make_immutable(local)
    }

    pub(crate) fn restore(&self, zone: u32, state: ZoneState) {
        let (dev, local) = self
            .locate(zone)
            .expect("recovery and the writer restore only existing zones");
        dev.restore(local, state)
    }

    pub(crate) fn begin_reset(&self, zone: u32) -> Result<()> {
        let (dev, local) = self.locate(zone)?;
        dev.begin_reset(local)
    }

    pub(crate) fn finish_reset(&self, zone: u32) -> Result<()> {
        let (dev, local) = self.locate(zone)?;
        dev.finish_reset(local)
    }

    pub fn poisoned(&self) -> Option<String> {
        self.devices.iter().find_map(|d| d.poisoned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::WormViolation;
    use crate::io::device::{FaultConfig, FaultDevice, Geometry};

    const ZONE: u64 = 64 * 1024;

    fn zoned(zones: u32) -> ZonedDevice {
        let d = Arc::new(FaultDevice::new("t", FaultConfig::new(7)));
        d.attach(Geometry {
            zone_size: ZONE,
            zone_count: zones,
        })
        .unwrap();
        ZonedDevice::new(d, vec![ZoneState::EMPTY; zones as usize])
    }

    fn violation(r: Result<()>) -> WormViolation {
        match r {
            Err(Error::Worm { violation, .. }) => violation,
            other => panic!("expected a write-once violation, got {other:?}"),
        }
    }

    #[test]
    fn appends_go_exactly_at_the_write_pointer() {
        let z = zoned(2);
        let block = vec![1u8; 4096];
        z.append(0, 0, &block, 5).unwrap();
        assert_eq!(z.zone(0).unwrap().write_pointer, 4096);
        assert_eq!(z.zone(0).unwrap().first_seq, 5);
        assert_eq!(z.zone(0).unwrap().condition, ZoneCondition::Open);
        assert!(matches!(
            violation(z.append(0, 0, &block, 6)),
            WormViolation::BelowWritePointer { .. }
        ));
        assert!(matches!(
            violation(z.append(0, 8192, &block, 6)),
            WormViolation::AboveWritePointer { .. }
        ));
        assert!(matches!(
            violation(z.append(0, 4096, &block[..100], 6)),
            WormViolation::Unaligned { .. }
        ));
        let big = vec![0u8; ZONE as usize];
        assert!(matches!(
            violation(z.append(0, 4096, &big, 6)),
            WormViolation::PastZoneEnd { .. }
        ));
        assert_eq!(
            z.zone(0).unwrap().write_pointer,
            4096,
            "refused appends move nothing"
        );
        z.append(0, 4096, &block, 6).unwrap();
        assert_eq!(
            z.zone(0).unwrap().first_seq,
            5,
            "the first seq is the zone's first frame's"
        );
    }

    #[test]
    fn sealed_zones_take_no_writes_and_nothing_truncates() {
        let z = zoned(2);
        let block = vec![2u8; 4096];
        z.append(1, 0, &block, 0).unwrap();
        assert!(matches!(
            violation(z.truncate(1, 0)),
            WormViolation::Truncate { .. }
        ));
        z.truncate(1, 4096)
            .expect("truncating to the write pointer is a no-op");
        z.seal(1);
        assert!(matches!(
            violation(z.append(1, 4096, &block, 1)),
            WormViolation::Sealed
        ));
        let mut back = vec![0u8; 4096];
        z.read(1, 0, &mut back).unwrap();
        assert_eq!(back, block, "a sealed zone still reads");
    }

    #[test]
    fn a_reset_empties_a_sealed_zone_in_two_steps() {
        let z = zoned(1);
        z.append(0, 0, &[3u8; 4096], 9).unwrap();
        z.seal(0);
        z.begin_reset(0).unwrap();
        assert_eq!(z.zone(0).unwrap().condition, ZoneCondition::Resetting);
        z.finish_reset(0).unwrap();
        assert_eq!(z.zone(0).unwrap(), ZoneState::EMPTY);
        z.append(0, 0, &[4u8; 4096], 20)
            .expect("an empty zone takes new data from offset 0");
        assert_eq!(z.zone(0).unwrap().first_seq, 20);
    }

    #[test]
    fn a_durable_batch_is_checked_whole_before_any_byte_moves() {
        let z = zoned(2);
        let block = vec![5u8; 4096];
        let w = |zone, offset| ZoneWrite {
            zone,
            offset,
            data: &block,
        };
        // The second write leaves a hole after the first: nothing is written.
        assert!(matches!(
            violation(z.append_durable(&[w(0, 0), w(0, 8192)], 3)),
            WormViolation::AboveWritePointer { .. }
        ));
        assert_eq!(
            z.zone(0).unwrap(),
            ZoneState::EMPTY,
            "a refused batch moves nothing"
        );
        let mut back = vec![9u8; 4096];
        z.read(0, 0, &mut back).unwrap();
        assert_eq!(
            back,
            vec![0u8; 4096],
            "no byte of a refused batch reached the zone"
        );
        // Back to back, the writes of one batch each start at the pointer the one before left.
        z.append_durable(&[w(0, 0), w(0, 4096), w(1, 0)], 3)
            .unwrap();
        assert_eq!(z.zone(0).unwrap().write_pointer, 8192);
        assert_eq!(z.zone(1).unwrap().write_pointer, 4096);
        assert_eq!(z.zone(1).unwrap().first_seq, 3);
    }

    #[test]
    fn a_resetting_zone_takes_no_writes() {
        let z = zoned(1);
        z.append(0, 0, &[6u8; 4096], 0).unwrap();
        z.seal(0);
        z.begin_reset(0).unwrap();
        assert!(matches!(
            violation(z.append(0, 0, &[7u8; 4096], 1)),
            WormViolation::Sealed
        ));
        assert_eq!(z.zone(0).unwrap().condition, ZoneCondition::Resetting);
    }

    #[test]
    fn a_failed_write_poisons_the_device() {
        let d = Arc::new(FaultDevice::new("t", {
            let mut c = FaultConfig::new(7);
            c.fail_write_at = Some(1);
            c
        }));
        d.attach(Geometry {
            zone_size: ZONE,
            zone_count: 1,
        })
        .unwrap();
        let z = ZonedDevice::new(d, vec![ZoneState::EMPTY]);
        assert!(z.append(0, 0, &[1u8; 4096], 0).is_err());
        assert!(z.poisoned().is_some());
        assert_eq!(
            z.zone(0).unwrap().write_pointer,
            0,
            "a failed write moves nothing"
        );
        assert!(
            matches!(z.append(0, 0, &[1u8; 4096], 0), Err(Error::Poisoned { .. })),
            "nothing is retried on a poisoned device"
        );
    }

    #[test]
    #[should_panic(expected = "only a sealed zone is reset")]
    fn resetting_a_zone_that_is_not_sealed_is_a_bug() {
        let z = zoned(1);
        z.append(0, 0, &[1u8; 4096], 0).unwrap();
        let _ = z.begin_reset(0);
    }

    #[test]
    #[should_panic(expected = "the reset was begun")]
    fn finishing_a_reset_never_begun_is_a_bug() {
        let z = zoned(1);
        z.append(0, 0, &[1u8; 4096], 0).unwrap();
        z.seal(0);
        let _ = z.finish_reset(0);
    }

    #[test]
    #[should_panic(expected = "only a zone being written is sealed")]
    fn sealing_a_sealed_zone_again_is_a_bug() {
        let z = zoned(1);
        z.append(0, 0, &[1u8; 4096], 0).unwrap();
        z.seal(0);
        z.seal(0);
    }

    #[test]
    #[should_panic(expected = "moves forward within the zone")]
    fn restoring_never_moves_a_write_pointer_back() {
        let z = zoned(1);
        z.append(0, 0, &[1u8; 8192], 0).unwrap();
        z.restore(
            0,
            ZoneState {
                condition: ZoneCondition::Open,
                write_pointer: 4096,
                first_seq: 0,
            },
        );
    }

    #[test]
    fn zone_numbers_are_global_and_allocation_alternates_devices() {
        let set = ZoneSet::new(vec![zoned(3), zoned(2)]);
        assert_eq!(set.zone_count(), 5);
        assert_eq!(set.allocation_order(), vec![0, 3, 1, 4, 2]);
        let (dev, local) = set.locate(4).unwrap();
        assert_eq!(local, 1);
        assert_eq!(dev.geometry().zone_count, 2);
        assert!(set.locate(5).is_err(), "no zone past the last device's");
    }
}
