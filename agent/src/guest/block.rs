//! Finding a hot-plugged block device's kernel name (`vda`, `sdb`) from where the
//! host plugged it, through sysfs: a PCI path (virtio-blk on PCI), a SCSI address
//! (virtio-scsi) or a CCW bus id (virtio-blk on s390x).
//!
//! A PCI path is a list of slots from the root bus (`02/01`: the bridge in slot 2,
//! the device in slot 1 behind it). Each step looks the slot up on the current bus
//! under `bus/pci/devices/<domain:bus:slot.0>`, and a bridge's secondary bus is the
//! one entry of its `pci_bus/` directory.
//!
//! Every lookup answers `None` while the device is not there yet; the caller polls.
//!
//! Limitation: PCI domain 0 and function 0 only, as in the paths Kata runtimes send.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

/// The PCI domain and root bus every path starts from.
const ROOT_BUS: &str = "0000:00";
/// The highest PCI slot number.
const MAX_SLOT: u8 = 0x1f;

/// Errors of the block device lookups.
#[derive(Debug, Error)]
pub enum BlockError {
    /// A PCI path that does not parse.
    #[error("bad pci path {0:?}: {1}")]
    BadPciPath(String, &'static str),
    /// A SCSI address that is not `target:lun`.
    #[error("bad scsi address {0:?} (want target:lun)")]
    BadScsiAddress(String),
    /// A CCW bus id that is not `cssid.ssid.devno`.
    #[error("bad ccw device id {0:?} (want e.g. 0.0.0005)")]
    BadCcwId(String),
    /// A sysfs directory could not be read.
    #[error("cannot read {0}")]
    Sysfs(PathBuf, #[source] std::io::Error),
}

/// A PCI path: slots from the root bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciPath(Vec<u8>);

impl FromStr for PciPath {
    type Err = BlockError;

    fn from_str(s: &str) -> Result<Self, BlockError> {
        let bad = |why| BlockError::BadPciPath(s.to_string(), why);
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let slots = s
            .split('/')
            .map(|part| {
                if part.len() != 2 {
                    return Err(bad("each slot is two hex digits"));
                }
                match u8::from_str_radix(part, 16) {
                    Ok(slot) if slot <= MAX_SLOT => Ok(slot),
                    Ok(_) => Err(bad("slot above 1f")),
                    Err(_) => Err(bad("each slot is two hex digits")),
                }
            })
            .collect::<Result<Vec<u8>, BlockError>>()?;
        Ok(PciPath(slots))
    }
}

impl std::fmt::Display for PciPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots: Vec<String> = self.0.iter().map(|s| format!("{s:02x}")).collect();
        f.write_str(&slots.join("/"))
    }
}

/// The sysfs directory of the PCI device at `path`, once it and every bridge on the
/// way are there.
pub fn pci_device(sysfs: &Path, path: &PciPath) -> Result<Option<PathBuf>, BlockError> {
    let devices = sysfs.join("bus/pci/devices");
    let mut bus = ROOT_BUS.to_string();
    let mut slots = path.0.iter().peekable();
    while let Some(slot) = slots.next() {
        let dir = devices.join(format!("{bus}:{slot:02x}.0"));
        if !dir.exists() {
            return Ok(None);
        }
        if slots.peek().is_none() {
            return Ok(Some(dir));
        }
        match only_entry(&dir.join("pci_bus"))? {
            Some(secondary) => bus = secondary,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The disk name of the virtio-blk device at `path`.
pub fn virtio_blk_name(sysfs: &Path, path: &PciPath) -> Result<Option<String>, BlockError> {
    match pci_device(sysfs, path)? {
        Some(dir) => virtio_disk(&dir),
        None => Ok(None),
    }
}

/// The disk name of the SCSI device at `target:lun` (any host, channel 0).
pub fn scsi_name(sysfs: &Path, address: &str) -> Result<Option<String>, BlockError> {
    let bad = || BlockError::BadScsiAddress(address.to_string());
    let (target, lun) = address.split_once(':').ok_or_else(bad)?;
    let (target, lun): (u32, u64) = (
        target.parse().map_err(|_| bad())?,
        lun.parse().map_err(|_| bad())?,
    );
    let suffix = format!(":0:{target}:{lun}");
    for name in entries(&sysfs.join("bus/scsi/devices"))? {
        let host = name.strip_suffix(&suffix);
        if host.is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit())) {
            return only_entry(&sysfs.join("bus/scsi/devices").join(&name).join("block"));
        }
    }
    Ok(None)
}

/// The disk name of the virtio-blk CCW device `id` (`0.0.0005`).
pub fn ccw_blk_name(sysfs: &Path, id: &str) -> Result<Option<String>, BlockError> {
    let parts: Vec<&str> = id.split('.').collect();
    let valid = matches!(parts[..], [css, ss, devno]
        if [css, ss].iter().all(|p| p.len() == 1 && u8::from_str_radix(p, 16).is_ok())
            && devno.len() == 4 && u16::from_str_radix(devno, 16).is_ok());
    if !valid {
        return Err(BlockError::BadCcwId(id.to_string()));
    }
    let dir = sysfs.join("bus/ccw/devices").join(id);
    if !dir.exists() {
        return Ok(None);
    }
    virtio_disk(&dir)
}

/// The disk under `<dir>/virtioN/block/`.
fn virtio_disk(dir: &Path) -> Result<Option<String>, BlockError> {
    for name in entries(dir)? {
        if name.starts_with("virtio") {
            return only_entry(&dir.join(name).join("block"));
        }
    }
    Ok(None)
}

/// The first entry of `dir` by name, if it exists and has one.
fn only_entry(dir: &Path) -> Result<Option<String>, BlockError> {
    Ok(entries(dir)?.into_iter().next())
}

/// The sorted entry names of `dir`; none if it does not exist (yet).
fn entries(dir: &Path) -> Result<Vec<String>, BlockError> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BlockError::Sysfs(dir.to_path_buf(), e)),
    };
    let mut names: Vec<String> = read
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdirs(root: &Path, dirs: &[&str]) {
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
    }

    /// A bridge in slot 2 with bus 01 behind it, a virtio-blk disk in its slot 1,
    /// and a disk on the root bus in slot 3.
    fn fake_pci() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        mkdirs(
            root.path(),
            &[
                "bus/pci/devices/0000:00:02.0/pci_bus/0000:01",
                "bus/pci/devices/0000:01:01.0/virtio3/block/vdb",
                "bus/pci/devices/0000:00:03.0/driver",
                "bus/pci/devices/0000:00:03.0/virtio1/block/vda",
            ],
        );
        root
    }

    #[test]
    fn pci_paths_parse_and_bad_ones_say_why() {
        assert_eq!("02/01".parse::<PciPath>().unwrap(), PciPath(vec![2, 1]));
        assert_eq!("1f".parse::<PciPath>().unwrap(), PciPath(vec![0x1f]));
        assert_eq!("0a/1f".parse::<PciPath>().unwrap().to_string(), "0a/1f");
        for (bad, why) in [
            ("", "empty"),
            ("2/01", "each slot is two hex digits"),
            ("02/", "each slot is two hex digits"),
            ("zz", "each slot is two hex digits"),
            ("20", "slot above 1f"),
        ] {
            let err = bad.parse::<PciPath>().unwrap_err().to_string();
            assert_eq!(err, format!("bad pci path {bad:?}: {why}"));
        }
    }

    #[test]
    fn pci_paths_walk_bridges_to_the_disk() {
        let sys = fake_pci();
        let name = |p: &str| virtio_blk_name(sys.path(), &p.parse().unwrap()).unwrap();
        assert_eq!(name("02/01").as_deref(), Some("vdb"));
        assert_eq!(name("03").as_deref(), Some("vda"));
        assert_eq!(name("02/04"), None, "nothing in that slot yet");
        assert_eq!(name("03/01"), None, "slot 3 is no bridge");
        assert_eq!(name("02"), None, "a bridge has no disk");
        let dev = pci_device(sys.path(), &"02/01".parse().unwrap()).unwrap();
        assert_eq!(
            dev.unwrap(),
            sys.path().join("bus/pci/devices/0000:01:01.0")
        );
    }

    #[test]
    fn scsi_and_ccw_devices_are_found_by_address() {
        let sys = tempfile::tempdir().unwrap();
        mkdirs(
            sys.path(),
            &[
                "bus/scsi/devices/2:0:0:1/block/sdb",
                "bus/scsi/devices/2:0:1:0/block/sdc",
                "bus/ccw/devices/0.0.0005/virtio2/block/vdc",
            ],
        );
        let scsi = |a: &str| scsi_name(sys.path(), a).unwrap();
        assert_eq!(scsi("0:1").as_deref(), Some("sdb"));
        assert_eq!(scsi("1:0").as_deref(), Some("sdc"));
        assert_eq!(scsi("3:0"), None);
        assert!(scsi_name(sys.path(), "1").is_err());
        let ccw = ccw_blk_name(sys.path(), "0.0.0005").unwrap();
        assert_eq!(ccw.as_deref(), Some("vdc"));
        assert_eq!(ccw_blk_name(sys.path(), "0.0.0006").unwrap(), None);
        assert!(ccw_blk_name(sys.path(), "0.0.5").is_err());
    }
}
