//! The superblock: the store's identity, geometry, device list, zone table
//! and last checkpoint. Two copies (slots) sit at the start of every device;
//! each write goes to slot `generation % 2`, so a torn superblock write
//! leaves the previous generation intact in the other slot. Opening picks the
//! valid copy with the highest generation across all devices.
//!
//! The byte layout is specified in docs/FORMAT.md.

use crate::crypto::keys::Keys;
use crate::error::{Error, Result};
use crate::io::buffer::{align_up, AlignedBuf};
use crate::io::device::{Device, META_COPY_BYTES};
use crate::log::zone::{ZoneCondition, ZoneState};
use crate::time::clock::ClockReading;

pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"STELESB\0";
pub const FORMAT_VERSION: u32 = 4;
const HEADER_LEN: usize = 224;
const DEVICE_ENTRY_LEN: usize = 24;
const ZONE_ENTRY_LEN: usize = 24;
/// `active_zone` value when no zone has been opened yet.
pub const NO_ZONE: u32 = u32::MAX;

// The sizes docs/FORMAT.md states ("Superblock"): the fixed header ends at
// 224 (reserved 208..224); device entries are device_id 16 + zone_count 4 +
// reserved 4; zone entries condition 1 + reserved 7 + write_pointer 8 + first_seq 8.
const _: () = assert!(HEADER_LEN == 208 + 16);
const _: () = assert!(DEVICE_ENTRY_LEN == 16 + 4 + 4);
const _: () = assert!(ZONE_ENTRY_LEN == 1 + 7 + 8 + 8);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    pub device_id: [u8; 16],
    pub zone_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub generation: u64,
    pub store_id: [u8; 16],
    pub zone_size: u64,
    /// Which device this copy sits on (set when writing each device's copy).
    pub device_index: u16,
    /// Incremented at every open for writing; the first 4 bytes of every nonce.
    pub epoch: u32,
    pub key_id: u32,
    pub key_check: [u8; 16],
    /// Checkpoint: the sequence number of the next frame after the durable write pointer of the active zone.
    pub next_seq: u64,
    /// Checkpoint: SHA-256 of frame `next_seq - 1` (zero before the first frame).
    pub chain_head: [u8; 32],
    pub active_zone: u32,
    pub created_us: i64,
    pub checkpoint_us: i64,
    /// The compliance clock at the checkpoint ([`crate::time::clock`]).
    pub clock: ClockReading,
    /// HMAC (root-derived key) over the store id and `clock`, so the clock cannot be edited on disk.
    pub clock_mac: [u8; 16],
    /// HMAC (root-derived key) over every other byte of this copy: a
    /// checkpoint, zone table or write pointer edited on disk is caught even
    /// when its CRC was recomputed.
    pub state_mac: [u8; 16],
    pub devices: Vec<DeviceEntry>,
    /// One entry per global zone; the write pointer is the checkpointed (durable) one.
    pub zones: Vec<ZoneState>,
}

impl Superblock {
    pub fn encoded_len(device_count: usize, zone_count: usize) -> usize {
        HEADER_LEN + device_count * DEVICE_ENTRY_LEN + zone_count * ZONE_ENTRY_LEN + 4
    }

    /// The largest number of zones a superblock slot can describe for `device_count` devices.
    pub fn max_zones(device_count: usize) -> usize {
        (META_COPY_BYTES as usize - HEADER_LEN - device_count * DEVICE_ENTRY_LEN - 4)
            / ZONE_ENTRY_LEN
    }

    pub fn encode(&self) -> AlignedBuf {
        let len = Self::encoded_len(self.devices.len(), self.zones.len());
        assert!(len as u64 <= META_COPY_BYTES, "superblock fits its slot");
        let mut buf = AlignedBuf::zeroed(align_up(len as u64) as usize);
        let b = &mut buf[..len];
        b[0..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        b[24..40].copy_from_slice(&self.store_id);
        b[40..48].copy_from_slice(&self.zone_size.to_le_bytes());
        b[48..52].copy_from_slice(&(crate::io::buffer::BLOCK_SIZE as u32).to_le_bytes());
        b[52..54].copy_from_slice(&(self.devices.len() as u16).to_le_bytes());
        b[54..56].copy_from_slice(&self.device_index.to_le_bytes());
        b[56..60].copy_from_slice(&self.epoch.to_le_bytes());
        b[60..64].copy_from_slice(&self.key_id.to_le_bytes());
        b[64..80].copy_from_slice(&self.key_check);
        b[80..88].copy_from_slice(&self.next_seq.to_le_bytes());
        b[88..120].copy_from_slice(&self.chain_head);
        b[120..124].copy_from_slice(&self.active_zone.to_le_bytes());
        b[124..128].copy_from_slice(&(self.zones.len() as u32).to_le_bytes());
        b[128..136].copy_from_slice(&self.created_us.to_le_bytes());
        b[136..144].copy_from_slice(&self.checkpoint_us.to_le_bytes());
        b[144..176].copy_from_slice(&self.clock.to_bytes());
        b[176..192].copy_from_slice(&self.clock_mac);
        b[192..208].copy_from_slice(&self.state_mac);
        let mut p = HEADER_LEN;
        for d in &self.devices {
            b[p..p + 16].copy_from_slice(&d.device_id);
            b[p + 16..p + 20].copy_from_slice(&d.zone_count.to_le_bytes());
            p += DEVICE_ENTRY_LEN;
        }
        for z in &self.zones {
            b[p] = z.condition as u8;
            b[p + 8..p + 16].copy_from_slice(&z.write_pointer.to_le_bytes());
            b[p + 16..p + 24].copy_from_slice(&z.first_seq.to_le_bytes());
            p += ZONE_ENTRY_LEN;
        }
        let crc = crc32c::crc32c(&b[..p]);
        b[p..p + 4].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Decode one slot. `Ok(None)` means the slot holds no valid superblock
    /// (never written, or torn); errors are for valid copies this build cannot use.
    pub fn decode(path: &str, b: &[u8]) -> Result<Option<Superblock>> {
        if b.len() < HEADER_LEN + 4 || b[0..8] != SUPERBLOCK_MAGIC {
            return Ok(None);
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let len = u32_at(12) as usize;
        if !(HEADER_LEN + 4..=b.len()).contains(&len) {
            return Ok(None);
        }
        let stored = u32_at(len - 4);
        if crc32c::crc32c(&b[..len - 4]) != stored {
            return Ok(None);
        }
        let version = u32_at(8);
        if version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                path: path.to_string(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version < FORMAT_VERSION {
            return Err(Error::NotAStore {
                path: path.to_string(),
                reason: format!("store format version {version} predates this build's version {FORMAT_VERSION}, which it does not read"),
            });
        }
        let bad = |why: &str| Error::NotAStore {
            path: path.to_string(),
            reason: format!("superblock {why}"),
        };
        if u32_at(48) as usize != crate::io::buffer::BLOCK_SIZE {
            return Err(bad("has an unsupported block size"));
        }
        let device_count = u16::from_le_bytes([b[52], b[53]]) as usize;
        let zone_count = u32_at(124) as usize;
        if Self::encoded_len(device_count, zone_count) != len || device_count == 0 {
            return Err(bad("tables do not match its length"));
        }
        let mut p = HEADER_LEN;
        let mut devices = Vec::with_capacity(device_count);
        for _ in 0..device_count {
            devices.push(DeviceEntry {
                device_id: b[p..p + 16].try_into().expect("16 bytes"),
                zone_count: u32_at(p + 16),
            });
            p += DEVICE_ENTRY_LEN;
        }
        let mut zones = Vec::with_capacity(zone_count);
        for i in 0..zone_count {
            let condition = ZoneCondition::from_u8(b[p])
                .ok_or_else(|| bad(&format!("zone {i} has unknown state {}", b[p])))?;
            zones.push(ZoneState {
                condition,
                write_pointer: u64_at(p + 8),
                first_seq: u64_at(p + 16),
            });
            p += ZONE_ENTRY_LEN;
        }
        if devices.iter().map(|d| d.zone_count as usize).sum::<usize>() != zone_count {
            return Err(bad("device zone counts do not add up to the zone table"));
        }
        let zone_size = u64_at(40);
        if zone_size == 0 || zone_size % crate::io::buffer::BLOCK_SIZE as u64 != 0 {
            return Err(bad("has an invalid zone size"));
        }
        if zones.iter().any(|z| z.write_pointer > zone_size) {
            return Err(bad("has a write pointer past its zone"));
        }
        Ok(Some(Superblock {
            generation: u64_at(16),
            store_id: b[24..40].try_into().expect("16 bytes"),
            zone_size,
            device_index: u16::from_le_bytes([b[54], b[55]]),
            epoch: u32_at(56),
            key_id: u32_at(60),
            key_check: b[64..80].try_into().expect("16 bytes"),
            next_seq: u64_at(80),
            chain_head: b[88..120].try_into().expect("32 bytes"),
            active_zone: u32_at(120),
            created_us: u64_at(128) as i64,
            checkpoint_us: u64_at(136) as i64,
            clock: ClockReading {
                compliance_us: u64_at(144) as i64,
                boot_id: b[152..168].try_into().expect("16 bytes"),
                boottime_ns: u64_at(168),
            },
            clock_mac: b[176..192].try_into().expect("16 bytes"),
            state_mac: b[192..208].try_into().expect("16 bytes"),
            devices,
            zones,
        }))
    }

    /// The MAC this copy must carry: over its encoding with the MAC field
    /// zeroed (the CRC left out, as it is computed over the MAC).
    fn expected_mac(&self, keys: &Keys) -> [u8; 16] {
        let mut bare = self.clone();
        bare.state_mac = [0; 16];
        let len = Self::encoded_len(self.devices.len(), self.zones.len());
        keys.state_mac(b"stele/v4/superblock", &bare.encode()[..len - 4])
    }

    /// Whether this copy was written by a holder of the store's root key.
    pub fn authentic(&self, keys: &Keys) -> bool {
        crate::crypto::keys::equal_ct(&self.expected_mac(keys), &self.state_mac)
    }

    /// Read both slots of `device` and return the valid copies.
    pub fn read_copies(device: &dyn Device) -> Result<Vec<Superblock>> {
        let mut out = Vec::new();
        let mut buf = AlignedBuf::zeroed(META_COPY_BYTES as usize);
        for copy in 0..2u8 {
            match device.read_meta(copy, &mut buf) {
                Ok(()) => {
                    if let Some(sb) = Self::decode(device.name(), &buf)? {
                        out.push(sb);
                    }
                }
                Err(e) => tracing::warn!(
                    device = device.name(),
                    copy,
                    "superblock slot unreadable: {e}"
                ),
            }
        }
        Ok(out)
    }

    /// Write this superblock (generation already bumped) to its slot on every device, then flush them all.
    pub fn write_all(&mut self, devices: &[&dyn Device], keys: &Keys) -> Result<()> {
        let slot = (self.generation % 2) as u8;
        for (i, d) in devices.iter().enumerate() {
            self.device_index = i as u16;
            self.state_mac = self.expected_mac(keys);
            let buf = self.encode();
            assert!(
                self.authentic(keys),
                "a superblock is written authenticated"
            );
            d.write_meta(slot, &buf).map_err(|e| {
                Error::io(
                    d.name(),
                    "write superblock",
                    None,
                    Some(slot as u64 * META_COPY_BYTES),
                    e,
                )
            })?;
        }
        for d in devices {
            d.flush()
                .map_err(|e| Error::io(d.name(), "flush superblock", None, None, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            generation: 7,
            store_id: [1; 16],
            zone_size: 1 << 20,
            device_index: 0,
            epoch: 3,
            key_id: 1,
            key_check: [2; 16],
            next_seq: 42,
            chain_head: [3; 32],
            active_zone: 1,
            created_us: 5,
            checkpoint_us: 6,
            clock: ClockReading {
                compliance_us: 77,
                boot_id: [4; 16],
                boottime_ns: 88,
            },
            clock_mac: [5; 16],
            state_mac: [6; 16],
            devices: vec![DeviceEntry {
                device_id: [9; 16],
                zone_count: 3,
            }],
            zones: vec![
                ZoneState {
                    condition: ZoneCondition::Sealed,
                    write_pointer: 1 << 20,
                    first_seq: 0,
                },
                ZoneState {
                    condition: ZoneCondition::Open,
                    write_pointer: 8192,
                    first_seq: 30,
                },
                ZoneState::EMPTY,
            ],
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        let buf = sb.encode();
        assert_eq!(Superblock::decode("t", &buf).unwrap(), Some(sb));
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let sb = sample();
        let buf = sb.encode();
        let len = Superblock::encoded_len(1, 3);
        for byte in 0..len {
            let mut b = buf[..].to_vec();
            b[byte] ^= 0x10;
            let r = Superblock::decode("t", &b);
            assert!(
                matches!(r, Ok(None)) || r.is_err(),
                "flip at {byte} accepted"
            );
        }
    }

    #[test]
    fn newer_format_is_refused() {
        let sb = sample();
        let mut b = sb.encode()[..].to_vec();
        let len = Superblock::encoded_len(1, 3);
        b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..len].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Superblock::decode("t", &b),
            Err(Error::NewerFormat { found, .. }) if found == FORMAT_VERSION + 1
        ));
        // An older format is refused too, by name.
        b[8..12].copy_from_slice(&(FORMAT_VERSION - 1).to_le_bytes());
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..len].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Superblock::decode("t", &b),
            Err(Error::NotAStore { reason, .. }) if reason.contains("predates")
        ));
    }
}
