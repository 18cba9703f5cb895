//! A GUID Partition Table writer with fixed GUIDs, so the same layout always gives
//! the same bytes.
//!
//! Layout on 512-byte sectors: a protective MBR in LBA 0, the primary header in LBA 1,
//! 128 entries of 128 bytes in LBAs 2-33; the backup entries in the 32 sectors before
//! the last, and the backup header in the last sector. CRC-32 (IEEE) covers the header
//! and the entry array, as the UEFI specification defines.
//!
//! Limitation: 512-byte logical sectors only (what virtio-blk and NVDIMM present).

use std::fmt;
use std::str::FromStr;

/// Logical sector size.
pub const SECTOR: u64 = 512;
/// Sectors taken by the header and entries at each end (header + 32 entry sectors).
pub const TABLE_SECTORS: u64 = 33;
const ENTRIES: u32 = 128;
const ENTRY_LEN: u32 = 128;
const HEADER_LEN: u32 = 92;
const ENTRIES_SECTORS: u64 = (ENTRIES * ENTRY_LEN) as u64 / SECTOR;

/// Errors from the GPT writer.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// A GUID string is malformed.
    #[error("malformed GUID {0:?}")]
    Guid(String),
    /// A partition lies outside the usable area or overlaps another.
    #[error("partition {0} does not fit the disk's usable area")]
    Layout(String),
}

/// A GUID, stored as UEFI does (first three fields little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid([u8; 16]);

impl FromStr for Guid {
    type Err = GptError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GptError::Guid(s.to_owned());
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        let dashes: Vec<usize> = s.match_indices('-').map(|(i, _)| i).collect();
        if hex.len() != 32 || dashes != [8, 13, 18, 23] {
            return Err(bad());
        }
        let mut raw = [0u8; 16];
        for (i, byte) in raw.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        raw[0..4].reverse();
        raw[4..6].reverse();
        raw[6..8].reverse();
        Ok(Guid(raw))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]
        )?;
        b[8..10].iter().try_for_each(|x| write!(f, "{x:02x}"))?;
        f.write_str("-")?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02x}"))
    }
}

/// One partition.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Partition type GUID.
    pub type_guid: Guid,
    /// Unique partition GUID (`PARTUUID`).
    pub guid: Guid,
    /// Label (at most 36 UTF-16 units).
    pub name: String,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
}

/// The two tables of a disk: bytes for its start and for its end.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Protective MBR, primary header and entries: write at offset 0.
    pub primary: Vec<u8>,
    /// Backup entries and header: write at `disk_size - backup.len()`.
    pub backup: Vec<u8>,
}

/// Builds the tables for a disk of `sectors` sectors.
pub fn tables(sectors: u64, disk_guid: Guid, parts: &[Partition]) -> Result<Tables, GptError> {
    let last = sectors - 1;
    let (first_usable, last_usable) = (2 + ENTRIES_SECTORS, last - TABLE_SECTORS);
    check_layout(parts, first_usable, last_usable)?;
    let entries = entry_array(parts);
    let entries_crc = crc32(&entries);
    let header = |mine: u64, other: u64, entries_lba: u64| {
        let h = Header {
            mine,
            other,
            first_usable,
            last_usable,
            entries_lba,
            disk_guid,
            entries_crc,
        };
        h.encode()
    };

    let mut primary = protective_mbr(sectors);
    primary.extend(header(1, last, 2));
    primary.extend(&entries);
    let mut backup = entries;
    backup.extend(header(last, 1, last - ENTRIES_SECTORS));
    Ok(Tables { primary, backup })
}

fn check_layout(parts: &[Partition], first: u64, last: u64) -> Result<(), GptError> {
    let mut end = first;
    for part in parts {
        if part.first_lba < end || part.last_lba < part.first_lba || part.last_lba > last {
            return Err(GptError::Layout(part.name.clone()));
        }
        end = part.last_lba + 1;
    }
    Ok(())
}

/// LBA 0: an MBR with one partition of type 0xEE covering the disk.
fn protective_mbr(sectors: u64) -> Vec<u8> {
    let mut mbr = vec![0u8; SECTOR as usize];
    let size = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    let entry = &mut mbr[446..462];
    entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    entry[4] = 0xee;
    entry[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&1u32.to_le_bytes());
    entry[12..16].copy_from_slice(&size.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr
}

fn entry_array(parts: &[Partition]) -> Vec<u8> {
    let mut array = vec![0u8; (ENTRIES * ENTRY_LEN) as usize];
    for (part, slot) in parts.iter().zip(array.chunks_mut(ENTRY_LEN as usize)) {
        slot[0..16].copy_from_slice(&part.type_guid.0);
        slot[16..32].copy_from_slice(&part.guid.0);
        slot[32..40].copy_from_slice(&part.first_lba.to_le_bytes());
        slot[40..48].copy_from_slice(&part.last_lba.to_le_bytes());
        let name = part.name.encode_utf16().take(36).flat_map(u16::to_le_bytes);
        for (dst, src) in slot[56..128].iter_mut().zip(name) {
            *dst = src;
        }
    }
    array
}

struct Header {
    mine: u64,
    other: u64,
    first_usable: u64,
    last_usable: u64,
    entries_lba: u64,
    disk_guid: Guid,
    entries_crc: u32,
}

impl Header {
    /// One sector: the 92-byte header with its CRC, zero-filled.
    fn encode(&self) -> Vec<u8> {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_LEN.to_le_bytes());
        h[24..32].copy_from_slice(&self.mine.to_le_bytes());
        h[32..40].copy_from_slice(&self.other.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable.to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.0);
        h[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
        h[84..88].copy_from_slice(&ENTRY_LEN.to_le_bytes());
        h[88..92].copy_from_slice(&self.entries_crc.to_le_bytes());
        let crc = crc32(&h[..HEADER_LEN as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";

    fn part(first: u64, last: u64) -> Partition {
        Partition {
            type_guid: TYPE.parse().unwrap(),
            guid: "01234567-89ab-cdef-0123-456789abcdef".parse().unwrap(),
            name: "root".into(),
            first_lba: first,
            last_lba: last,
        }
    }

    #[test]
    fn guid_round_trips_in_mixed_endian() {
        let guid: Guid = TYPE.parse().unwrap();
        assert_eq!(guid.0[..4], [0xe3, 0xbc, 0x68, 0x4f]);
        assert_eq!(guid.to_string(), TYPE);
        assert!("not-a-guid".parse::<Guid>().is_err());
        assert!("4f68bce3e8cd-4db1-96e7-fbcaf984b709-"
            .parse::<Guid>()
            .is_err());
    }

    #[test]
    fn known_crc32() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn tables_have_valid_crcs_and_pointers() {
        let sectors = 8192;
        let disk = "11111111-2222-3333-4444-555555555555".parse().unwrap();
        let t = tables(sectors, disk, &[part(4096, 8000)]).unwrap();
        assert_eq!(t.primary.len() as u64, 34 * SECTOR);
        assert_eq!(t.backup.len() as u64, 33 * SECTOR);
        assert_eq!(&t.primary[510..512], &[0x55, 0xaa]);

        let header = &t.primary[512..1024];
        let mut zeroed = header[..92].to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(crc32(&zeroed).to_le_bytes(), header[16..20]);
        assert_eq!(crc32(&t.primary[1024..]).to_le_bytes(), header[88..92]);

        let backup_header = &t.backup[32 * 512..];
        assert_eq!(backup_header[24..32], 8191u64.to_le_bytes());
        assert_eq!(backup_header[72..80], (8191u64 - 32).to_le_bytes());
    }

    #[test]
    fn overlapping_or_outside_partitions_are_refused() {
        let disk = "11111111-2222-3333-4444-555555555555".parse().unwrap();
        assert!(tables(8192, disk, &[part(10, 100)]).is_err());
        assert!(tables(8192, disk, &[part(4096, 8190)]).is_err());
        assert!(tables(8192, disk, &[part(4096, 5000), part(5000, 6000)]).is_err());
    }
}
