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
use crate::time::clock::{ClockReading, CLOCK_READING_LEN};

pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"STELESB\0";
pub const FORMAT_VERSION: u32 = 4;
// Where each field of the fixed header starts (docs/FORMAT.md,
// "Superblock"), each from the one before it; a field runs to where the
// next one starts.
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + SUPERBLOCK_MAGIC.len();
const TOTAL_LEN_AT: usize = VERSION_AT + 4;
const GENERATION_AT: usize = TOTAL_LEN_AT + 4;
const STORE_ID_AT: usize = GENERATION_AT + 8;
const ZONE_SIZE_AT: usize = STORE_ID_AT + 16;
const BLOCK_SIZE_AT: usize = ZONE_SIZE_AT + 8;
const DEVICE_COUNT_AT: usize = BLOCK_SIZE_AT + 4;
const DEVICE_INDEX_AT: usize = DEVICE_COUNT_AT + 2;
const EPOCH_AT: usize = DEVICE_INDEX_AT + 2;
const ROOT_KEY_GENERATION_AT: usize = EPOCH_AT + 4;
const KEY_CHECK_AT: usize = ROOT_KEY_GENERATION_AT + 4;
const NEXT_SEQ_AT: usize = KEY_CHECK_AT + 16;
const CHAIN_HEAD_AT: usize = NEXT_SEQ_AT + 8;
const ACTIVE_ZONE_AT: usize = CHAIN_HEAD_AT + 32;
const ZONE_COUNT_AT: usize = ACTIVE_ZONE_AT + 4;
const CREATED_AT: usize = ZONE_COUNT_AT + 4;
const CHECKPOINT_AT: usize = CREATED_AT + 8;
/// The compliance clock reading: compliance_us, boot id, boottime.
const CLOCK_AT: usize = CHECKPOINT_AT + 8;
const CLOCK_MAC_AT: usize = CLOCK_AT + CLOCK_READING_LEN;
const STATE_MAC_AT: usize = CLOCK_MAC_AT + 16;
const RESERVED_AT: usize = STATE_MAC_AT + 16;
/// The fixed header; the device table starts here.
const SUPERBLOCK_HEADER_LEN: usize = RESERVED_AT + 16;
const DEVICE_ENTRY_LEN: usize = 24;
const ZONE_ENTRY_LEN: usize = 24;
// A device entry: device_id[16], zone_count u32, reserved u32.
const DEVICE_ZONE_COUNT_AT: usize = 16;
// A zone entry: condition u8, reserved[7], write_pointer u64, first_seq u64.
const ZONE_WRITE_POINTER_AT: usize = 1 + 7;
const ZONE_FIRST_SEQ_AT: usize = ZONE_WRITE_POINTER_AT + 8;
/// The CRC32C after the tables.
const CRC_LEN: usize = 4;
/// `active_zone` value when no zone has been opened yet.
pub const NO_ZONE: u32 = u32::MAX;

// The offsets and sizes docs/FORMAT.md states ("Superblock").
const _: () = assert!(VERSION_AT == 8 && TOTAL_LEN_AT == 12 && GENERATION_AT == 16);
const _: () = assert!(STORE_ID_AT == 24 && ZONE_SIZE_AT == 40 && BLOCK_SIZE_AT == 48);
const _: () = assert!(DEVICE_COUNT_AT == 52 && DEVICE_INDEX_AT == 54 && EPOCH_AT == 56);
const _: () = assert!(ROOT_KEY_GENERATION_AT == 60 && KEY_CHECK_AT == 64);
const _: () = assert!(NEXT_SEQ_AT == 80 && CHAIN_HEAD_AT == 88 && ACTIVE_ZONE_AT == 120);
const _: () = assert!(ZONE_COUNT_AT == 124 && CREATED_AT == 128 && CHECKPOINT_AT == 136);
const _: () = assert!(CLOCK_AT == 144 && CLOCK_MAC_AT == 176 && STATE_MAC_AT == 192);
const _: () = assert!(RESERVED_AT == 208 && SUPERBLOCK_HEADER_LEN == 224);
const _: () = assert!(DEVICE_ENTRY_LEN == 16 + 4 + 4 && DEVICE_ZONE_COUNT_AT + 4 + 4 == 24);
const _: () = assert!(ZONE_ENTRY_LEN == 1 + 7 + 8 + 8 && ZONE_FIRST_SEQ_AT + 8 == ZONE_ENTRY_LEN);

/// The `N` bytes of `b` at `at` (the caller has checked `b` is long enough).
fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N]
        .try_into()
        .expect("field within the superblock")
}

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
    /// The root key's generation in the keystore (from 1): the store opens
    /// only with that root key, which `key_check` proves.
    pub root_key_generation: u32,
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
        SUPERBLOCK_HEADER_LEN
            + device_count * DEVICE_ENTRY_LEN
            + zone_count * ZONE_ENTRY_LEN
            + CRC_LEN
    }

    /// The largest number of zones a superblock slot can describe for `device_count` devices.
    pub fn max_zones(device_count: usize) -> usize {
        (META_COPY_BYTES as usize
            - SUPERBLOCK_HEADER_LEN
            - device_count * DEVICE_ENTRY_LEN
            - CRC_LEN)
            / ZONE_ENTRY_LEN
    }

    pub fn encode(&self) -> AlignedBuf {
        let len = Self::encoded_len(self.devices.len(), self.zones.len());
        assert!(len as u64 <= META_COPY_BYTES, "superblock fits its slot");
        let mut buf = AlignedBuf::zeroed(align_up(len as u64) as usize);
        let b = &mut buf[..len];
        b[MAGIC_AT..VERSION_AT].copy_from_slice(&SUPERBLOCK_MAGIC);
        b[VERSION_AT..TOTAL_LEN_AT].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[TOTAL_LEN_AT..GENERATION_AT].copy_from_slice(&(len as u32).to_le_bytes());
        b[GENERATION_AT..STORE_ID_AT].copy_from_slice(&self.generation.to_le_bytes());
        b[STORE_ID_AT..ZONE_SIZE_AT].copy_from_slice(&self.store_id);
        b[ZONE_SIZE_AT..BLOCK_SIZE_AT].copy_from_slice(&self.zone_size.to_le_bytes());
        b[BLOCK_SIZE_AT..DEVICE_COUNT_AT]
            .copy_from_slice(&(crate::io::buffer::BLOCK_SIZE as u32).to_le_bytes());
        b[DEVICE_COUNT_AT..DEVICE_INDEX_AT]
            .copy_from_slice(&(self.devices.len() as u16).to_le_bytes());
        b[DEVICE_INDEX_AT..EPOCH_AT].copy_from_slice(&self.device_index.to_le_bytes());
        b[EPOCH_AT..ROOT_KEY_GENERATION_AT].copy_from_slice(&self.epoch.to_le_bytes());
        b[ROOT_KEY_GENERATION_AT..KEY_CHECK_AT]
            .copy_from_slice(&self.root_key_generation.to_le_bytes());
        b[KEY_CHECK_AT..NEXT_SEQ_AT].copy_from_slice(&self.key_check);
        b[NEXT_SEQ_AT..CHAIN_HEAD_AT].copy_from_slice(&self.next_seq.to_le_bytes());
        b[CHAIN_HEAD_AT..ACTIVE_ZONE_AT].copy_from_slice(&self.chain_head);
        b[ACTIVE_ZONE_AT..ZONE_COUNT_AT].copy_from_slice(&self.active_zone.to_le_bytes());
        b[ZONE_COUNT_AT..CREATED_AT].copy_from_slice(&(self.zones.len() as u32).to_le_bytes());
        b[CREATED_AT..CHECKPOINT_AT].copy_from_slice(&self.created_us.to_le_bytes());
        b[CHECKPOINT_AT..CLOCK_AT].copy_from_slice(&self.checkpoint_us.to_le_bytes());
        b[CLOCK_AT..CLOCK_MAC_AT].copy_from_slice(&self.clock.to_bytes());
        b[CLOCK_MAC_AT..STATE_MAC_AT].copy_from_slice(&self.clock_mac);
        b[STATE_MAC_AT..RESERVED_AT].copy_from_slice(&self.state_mac);
        let mut p = SUPERBLOCK_HEADER_LEN;
        for d in &self.devices {
            b[p..p + DEVICE_ZONE_COUNT_AT].copy_from_slice(&d.device_id);
            b[p + DEVICE_ZONE_COUNT_AT..p + DEVICE_ZONE_COUNT_AT + 4]
                .copy_from_slice(&d.zone_count.to_le_bytes());
            p += DEVICE_ENTRY_LEN;
        }
        for z in &self.zones {
            b[p] = z.condition as u8;
            b[p + ZONE_WRITE_POINTER_AT..p + ZONE_FIRST_SEQ_AT]
                .copy_from_slice(&z.write_pointer.to_le_bytes());
            b[p + ZONE_FIRST_SEQ_AT..p + ZONE_ENTRY_LEN]
                .copy_from_slice(&z.first_seq.to_le_bytes());
            p += ZONE_ENTRY_LEN;
        }
        let crc = crc32c::crc32c(&b[..p]);
        b[p..p + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Decode one slot. `Ok(None)` means the slot holds no valid superblock
    /// (never written, or torn); errors are for valid copies this build cannot use.
    pub fn decode(path: &str, b: &[u8]) -> Result<Option<Superblock>> {
        if b.len() < SUPERBLOCK_HEADER_LEN + CRC_LEN || b[MAGIC_AT..VERSION_AT] != SUPERBLOCK_MAGIC
        {
            return Ok(None);
        }
        let u32_at = |o: usize| u32::from_le_bytes(field(b, o));
        let u64_at = |o: usize| u64::from_le_bytes(field(b, o));
        let len = u32_at(TOTAL_LEN_AT) as usize;
        if !(SUPERBLOCK_HEADER_LEN + CRC_LEN..=b.len()).contains(&len) {
            return Ok(None);
        }
        let stored = u32_at(len - CRC_LEN);
        if crc32c::crc32c(&b[..len - CRC_LEN]) != stored {
            return Ok(None);
        }
        let version = u32_at(VERSION_AT);
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
        if u32_at(BLOCK_SIZE_AT) as usize != crate::io::buffer::BLOCK_SIZE {
            return Err(bad("has an unsupported block size"));
        }
        let device_count = u16::from_le_bytes(field(b, DEVICE_COUNT_AT)) as usize;
        let zone_count = u32_at(ZONE_COUNT_AT) as usize;
        if Self::encoded_len(device_count, zone_count) != len || device_count == 0 {
            return Err(bad("tables do not match its length"));
        }
        let mut p = SUPERBLOCK_HEADER_LEN;
        let mut devices = Vec::with_capacity(device_count);
        for _ in 0..device_count {
            devices.push(DeviceEntry {
                device_id: field(b, p),
                zone_count: u32_at(p + DEVICE_ZONE_COUNT_AT),
            });
            p += DEVICE_ENTRY_LEN;
        }
        let mut zones = Vec::with_capacity(zone_count);
        for i in 0..zone_count {
            let condition = ZoneCondition::from_u8(b[p])
                .ok_or_else(|| bad(&format!("zone {i} has unknown state {}", b[p])))?;
            zones.push(ZoneState {
                condition,
                write_pointer: u64_at(p + ZONE_WRITE_POINTER_AT),
                first_seq: u64_at(p + ZONE_FIRST_SEQ_AT),
            });
            p += ZONE_ENTRY_LEN;
        }
        if devices.iter().map(|d| d.zone_count as usize).sum::<usize>() != zone_count {
            return Err(bad("device zone counts do not add up to the zone table"));
        }
        let zone_size = u64_at(ZONE_SIZE_AT);
        if zone_size == 0 || zone_size % crate::io::buffer::BLOCK_SIZE as u64 != 0 {
            return Err(bad("has an invalid zone size"));
        }
        if zones.iter().any(|z| z.write_pointer > zone_size) {
            return Err(bad("has a write pointer past its zone"));
        }
        Ok(Some(Superblock {
            generation: u64_at(GENERATION_AT),
            store_id: field(b, STORE_ID_AT),
            zone_size,
            device_index: u16::from_le_bytes(field(b, DEVICE_INDEX_AT)),
            epoch: u32_at(EPOCH_AT),
            root_key_generation: u32_at(ROOT_KEY_GENERATION_AT),
            key_check: field(b, KEY_CHECK_AT),
            next_seq: u64_at(NEXT_SEQ_AT),
            chain_head: field(b, CHAIN_HEAD_AT),
            active_zone: u32_at(ACTIVE_ZONE_AT),
            created_us: u64_at(CREATED_AT) as i64,
            checkpoint_us: u64_at(CHECKPOINT_AT) as i64,
            clock: ClockReading::from_bytes(&field(b, CLOCK_AT)),
            clock_mac: field(b, CLOCK_MAC_AT),
            state_mac: field(b, STATE_MAC_AT),
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
        keys.state_mac(b"stele/v4/superblock", &bare.encode()[..len - CRC_LEN])
    }

    /// Whether `keys` are the store's: the root key's generation and the key check match.
    pub fn opened_by(&self, keys: &Keys) -> bool {
        keys.root_key_generation == self.root_key_generation
            && keys.key_check(&self.store_id) == self.key_check
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
            root_key_generation: 1,
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
    fn fields_sit_where_format_md_puts_them() {
        let sb = sample();
        let b = sb.encode();
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(&b[0..8], b"STELESB\0");
        assert_eq!(u32_at(8), FORMAT_VERSION);
        assert_eq!(u32_at(12) as usize, Superblock::encoded_len(1, 3));
        assert_eq!(u64_at(16), 7, "generation");
        assert_eq!(&b[24..40], &[1; 16], "store_id");
        assert_eq!(u64_at(40), 1 << 20, "zone_size");
        assert_eq!(u32_at(56), 3, "epoch");
        assert_eq!(u32_at(60), 1, "root_key_generation");
        assert_eq!(&b[64..80], &[2; 16], "key_check");
        assert_eq!(u64_at(80), 42, "next_seq");
        assert_eq!(u32_at(120), 1, "active_zone");
        assert_eq!(u32_at(124), 3, "zone_count");
        assert_eq!(u64_at(144), 77, "compliance_us");
        assert_eq!(&b[152..168], &[4; 16], "boot id");
        assert_eq!(u64_at(168), 88, "boottime");
        assert_eq!(&b[176..192], &[5; 16], "clock_mac");
        assert_eq!(&b[192..208], &[6; 16], "state_mac");
        assert_eq!(&b[208..224], &[0; 16], "reserved");
        assert_eq!(&b[224..240], &[9; 16], "device 0 id");
        assert_eq!(u32_at(240), 3, "device 0 zone count");
        let zone1 = 224 + 24 + 24;
        assert_eq!(b[zone1], ZoneCondition::Open as u8);
        assert_eq!(u64_at(zone1 + 8), 8192, "zone 1 write pointer");
        assert_eq!(u64_at(zone1 + 16), 30, "zone 1 first seq");
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
        b[VERSION_AT..TOTAL_LEN_AT].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..len].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Superblock::decode("t", &b),
            Err(Error::NewerFormat { found, .. }) if found == FORMAT_VERSION + 1
        ));
        // An older format is refused too, by name.
        b[VERSION_AT..TOTAL_LEN_AT].copy_from_slice(&(FORMAT_VERSION - 1).to_le_bytes());
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..len].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Superblock::decode("t", &b),
            Err(Error::NotAStore { reason, .. }) if reason.contains("predates")
        ));
    }
}
