//! The devices of CreateContainer: each [`Device`] names a guest device (a node
//! path, or where the host plugged it) and the path the container sees it at.
//!
//! For each one the agent waits (up to `agent.hotplug_timeout`) for the guest's
//! node, reads its type and numbers, and rewrites the spec: the `linux.devices`
//! entry whose path is the device's `container_path` gets the guest's type, major
//! and minor, and so do the device cgroup rules that named the numbers the host
//! put there. The jail then makes the node and the rules from the spec.
//!
//! Where the device is: an absolute `vm_path` is the node itself (any type);
//! otherwise `blk` takes a PCI path (`vm_path` or `id`), `scsi` a `target:lun`
//! address and `blk-ccw` a CCW bus id (in `id`). `mmioblk` and `nvdimm` need the node
//! path. Guest paths resolve under the agent's root.
//!
//! Limitation: VFIO devices (`vfio-pci`, `vfio-pci-gk`, `vfio-ap`) and device
//! `options` are refused (UNIMPLEMENTED).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_protocols::agent::Device;
use hull_protocols::oci_spec::runtime::{LinuxDeviceType, Spec};
use thiserror::Error;

use crate::config::Config;
use crate::guest::block::{self, BlockError, PciPath};

/// Pause between looks for a device that is not there yet.
const RESCAN_INTERVAL: Duration = Duration::from_millis(50);

/// Device types Kata runtimes send that this agent does not pass through.
const UNSUPPORTED_TYPES: &[&str] = &["vfio-pci", "vfio-pci-gk", "vfio-ap"];

/// Errors of the container's devices.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// A field is missing or malformed.
    #[error("devices[{index}].{field}: {problem}")]
    BadField {
        index: usize,
        field: &'static str,
        problem: String,
    },
    /// A type no Kata runtime sends.
    #[error("devices[{0}].type: unknown device type {1:?}")]
    UnknownType(usize, String),
    /// A known type or field this agent does not handle.
    #[error("devices[{0}]: {1} is not supported by the Hull agent")]
    Unsupported(usize, String),
    /// The device did not show up in time.
    #[error("devices[{index}]: device {what} did not appear within {timeout:?}")]
    Timeout {
        index: usize,
        what: String,
        timeout: Duration,
    },
    /// The path exists but is no device node.
    #[error("devices[{0}]: {1} is not a device node")]
    NotANode(usize, PathBuf),
    /// Looking the device up failed.
    #[error("devices[{0}]: cannot look the device up")]
    Lookup(usize, #[source] BlockError),
    /// The spec has no device entry to rewrite.
    #[error("devices[{0}]: the spec's linux.devices has no entry for {1:?}")]
    NotInSpec(usize, String),
}

/// Where a requested device is to be found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Locator {
    /// The node's guest path.
    Node(PathBuf),
    Pci(PciPath),
    Scsi(String),
    Ccw(String),
}

/// A guest device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub typ: LinuxDeviceType,
    pub major: i64,
    pub minor: i64,
}

/// Waits for every requested device and rewrites the spec for them.
pub async fn apply_all(
    config: &Config,
    devices: &[Device],
    spec: &mut Spec,
) -> Result<(), DeviceError> {
    let mut rewritten = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        let container_path = check_container_path(index, device)?;
        let locator = locate(index, device)?;
        let node = wait_for(config, index, &locator).await?;
        rewrite_spec(spec, index, container_path, node, &mut rewritten)?;
        tracing::debug!(index, container_path, ?node, "device added to the spec");
    }
    Ok(())
}

fn check_container_path(index: usize, device: &Device) -> Result<&str, DeviceError> {
    if !device.options.is_empty() {
        return Err(DeviceError::Unsupported(index, "options".into()));
    }
    let path = device.container_path.as_str();
    if !path.starts_with('/') {
        return Err(DeviceError::BadField {
            index,
            field: "container_path",
            problem: "must be an absolute path".into(),
        });
    }
    Ok(path)
}

fn locate(index: usize, device: &Device) -> Result<Locator, DeviceError> {
    let typ = device.type_.as_str();
    if UNSUPPORTED_TYPES.contains(&typ) {
        return Err(DeviceError::Unsupported(index, format!("type {typ:?}")));
    }
    let known = ["", "blk", "mmioblk", "nvdimm", "scsi", "blk-ccw"];
    if !known.contains(&typ) {
        return Err(DeviceError::UnknownType(index, typ.to_string()));
    }
    if device.vm_path.starts_with('/') {
        return Ok(Locator::Node(PathBuf::from(&device.vm_path)));
    }
    let address = if device.vm_path.is_empty() {
        &device.id
    } else {
        &device.vm_path
    };
    let missing = |problem: &str| DeviceError::BadField {
        index,
        field: "vm_path",
        problem: problem.into(),
    };
    match typ {
        _ if address.is_empty() => Err(missing("missing (and no id)")),
        "blk" => address
            .parse()
            .map(Locator::Pci)
            .map_err(|e| DeviceError::Lookup(index, e)),
        "scsi" => Ok(Locator::Scsi(address.clone())),
        "blk-ccw" => Ok(Locator::Ccw(address.clone())),
        _ => Err(missing("must be the device node's absolute path")),
    }
}

/// Polls until the device's node exists, or the hot-plug timeout passes.
async fn wait_for(config: &Config, index: usize, locator: &Locator) -> Result<Node, DeviceError> {
    let deadline = tokio::time::Instant::now() + config.hotplug_timeout;
    loop {
        if let Some(path) = node_path(config, locator).map_err(|e| DeviceError::Lookup(index, e))? {
            if let Some(node) = read_node(index, &path)? {
                return Ok(node);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DeviceError::Timeout {
                index,
                what: describe(locator),
                timeout: config.hotplug_timeout,
            });
        }
        tokio::time::sleep(RESCAN_INTERVAL).await;
    }
}

/// The guest path of the node, once the kernel has named the device.
fn node_path(config: &Config, locator: &Locator) -> Result<Option<PathBuf>, BlockError> {
    let sysfs = config.sysfs_dir();
    let name = match locator {
        Locator::Node(path) => return Ok(Some(config.guest_path(path))),
        Locator::Pci(path) => block::virtio_blk_name(&sysfs, path)?,
        Locator::Scsi(address) => block::scsi_name(&sysfs, address)?,
        Locator::Ccw(id) => block::ccw_blk_name(&sysfs, id)?,
    };
    Ok(name.map(|n| config.guest_path(Path::new("/dev").join(n))))
}

fn describe(locator: &Locator) -> String {
    match locator {
        Locator::Node(path) => path.display().to_string(),
        Locator::Pci(path) => format!("at pci path {path}"),
        Locator::Scsi(address) => format!("at scsi address {address}"),
        Locator::Ccw(id) => format!("at ccw id {id}"),
    }
}

/// The node at `path`; `None` while it does not exist.
fn read_node(index: usize, path: &Path) -> Result<Option<Node>, DeviceError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(DeviceError::NotANode(index, path.to_path_buf())),
    };
    let typ = match meta.file_type() {
        t if t.is_block_device() => LinuxDeviceType::B,
        t if t.is_char_device() => LinuxDeviceType::C,
        _ => return Err(DeviceError::NotANode(index, path.to_path_buf())),
    };
    let rdev = meta.rdev();
    Ok(Some(Node {
        typ,
        major: nix::sys::stat::major(rdev) as i64,
        minor: nix::sys::stat::minor(rdev) as i64,
    }))
}

/// Gives the spec's entry for `container_path` the guest node's type and numbers,
/// and the cgroup rules that named the entry's old numbers the new ones. Rules
/// already rewritten for an earlier device (in `rewritten`) are left alone.
fn rewrite_spec(
    spec: &mut Spec,
    index: usize,
    container_path: &str,
    node: Node,
    rewritten: &mut Vec<usize>,
) -> Result<(), DeviceError> {
    let not_in_spec = || DeviceError::NotInSpec(index, container_path.to_string());
    let mut linux = spec.linux().clone().ok_or_else(not_in_spec)?;
    let mut devices = linux.devices().clone().unwrap_or_default();
    let entry = devices
        .iter_mut()
        .find(|d| d.path() == Path::new(container_path))
        .ok_or_else(not_in_spec)?;
    let old = (entry.typ(), entry.major(), entry.minor());
    entry.set_typ(node.typ);
    entry.set_major(node.major);
    entry.set_minor(node.minor);
    linux.set_devices(Some(devices));

    if let Some(mut resources) = linux.resources().clone() {
        let mut rules = resources.devices().clone().unwrap_or_default();
        for (i, rule) in rules.iter_mut().enumerate() {
            let same_type = rule
                .typ()
                .is_none_or(|t| t == old.0 || t == LinuxDeviceType::A);
            if rewritten.contains(&i) || !same_type {
                continue;
            }
            if rule.major() == Some(old.1) && rule.minor() == Some(old.2) {
                rule.set_major(Some(node.major));
                rule.set_minor(Some(node.minor));
                if rule.typ().is_some_and(|t| t != LinuxDeviceType::A) {
                    rule.set_typ(Some(node.typ));
                }
                rewritten.push(i);
            }
        }
        resources.set_devices(Some(rules));
        linux.set_resources(Some(resources));
    }
    spec.set_linux(Some(linux));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_protocols::oci_spec::runtime::{
        LinuxBuilder, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxResourcesBuilder,
    };

    fn device(typ: &str, vm_path: &str, id: &str) -> Device {
        Device {
            type_: typ.into(),
            vm_path: vm_path.into(),
            id: id.into(),
            container_path: "/dev/xdev".into(),
            ..Default::default()
        }
    }

    fn spec() -> Spec {
        let dev = |path: &str, major, minor| {
            LinuxDeviceBuilder::default()
                .path(path)
                .typ(LinuxDeviceType::B)
                .major(major)
                .minor(minor)
                .build()
                .unwrap()
        };
        let rule = |allow, major: Option<i64>, minor: Option<i64>| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(allow)
                .typ(LinuxDeviceType::B)
                .access("rwm");
            if let (Some(ma), Some(mi)) = (major, minor) {
                b = b.major(ma).minor(mi);
            }
            b.build().unwrap()
        };
        let resources = LinuxResourcesBuilder::default()
            .devices(vec![
                rule(false, None, None),
                rule(true, Some(8), Some(16)),
                rule(true, Some(8), Some(32)),
            ])
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .devices(vec![dev("/dev/xdev", 8, 16), dev("/dev/ydev", 8, 32)])
            .resources(resources)
            .build()
            .unwrap();
        let mut s = Spec::default();
        s.set_linux(Some(linux));
        s
    }

    type Numbers = Vec<(Option<i64>, Option<i64>)>;

    fn numbers(s: &Spec) -> (Vec<(i64, i64)>, Numbers) {
        let linux = s.linux().as_ref().unwrap();
        let devs = linux.devices().as_ref().unwrap();
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        (
            devs.iter().map(|d| (d.major(), d.minor())).collect(),
            rules.iter().map(|r| (r.major(), r.minor())).collect(),
        )
    }

    #[test]
    fn locators_follow_type_and_fields() {
        let at = |d: Device| locate(0, &d);
        assert_eq!(
            at(device("blk", "02/01", "")).unwrap(),
            Locator::Pci("02/01".parse().unwrap())
        );
        assert_eq!(
            at(device("blk", "", "03")).unwrap(),
            Locator::Pci("03".parse().unwrap())
        );
        assert_eq!(
            at(device("mmioblk", "/dev/vdc", "")).unwrap(),
            Locator::Node("/dev/vdc".into())
        );
        assert_eq!(
            at(device("scsi", "", "0:1")).unwrap(),
            Locator::Scsi("0:1".into())
        );
        assert_eq!(
            at(device("blk-ccw", "", "0.0.0005")).unwrap(),
            Locator::Ccw("0.0.0005".into())
        );
        let err = at(device("nvdimm", "pmem0", "")).unwrap_err().to_string();
        assert_eq!(
            err,
            "devices[0].vm_path: must be the device node's absolute path"
        );
        let err = at(device("floppy", "/dev/fd0", ""))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "devices[0].type: unknown device type \"floppy\"");
        let err = at(device("vfio-pci", "", "02")).unwrap_err().to_string();
        assert_eq!(
            err,
            "devices[0]: type \"vfio-pci\" is not supported by the Hull agent"
        );
        assert!(at(device("blk", "", "")).is_err());
    }

    #[test]
    fn the_entry_and_its_rule_get_the_guest_numbers() {
        let mut s = spec();
        let mut done = Vec::new();
        let vda = Node {
            typ: LinuxDeviceType::B,
            major: 8,
            minor: 32,
        };
        rewrite_spec(&mut s, 0, "/dev/xdev", vda, &mut done).unwrap();
        // The second device's guest numbers are the first's host numbers: the rule
        // rewritten for the first one stays.
        let vdb = Node {
            typ: LinuxDeviceType::B,
            major: 8,
            minor: 16,
        };
        rewrite_spec(&mut s, 1, "/dev/ydev", vdb, &mut done).unwrap();
        let (devs, rules) = numbers(&s);
        assert_eq!(devs, vec![(8, 32), (8, 16)]);
        assert_eq!(
            rules,
            vec![(None, None), (Some(8), Some(32)), (Some(8), Some(16))]
        );
        let err = rewrite_spec(&mut s, 2, "/dev/zdev", vda, &mut done).unwrap_err();
        assert_eq!(
            err.to_string(),
            "devices[2]: the spec's linux.devices has no entry for \"/dev/zdev\""
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pci_disk_is_found_once_it_appears_and_a_missing_one_times_out() {
        let root = tempfile::tempdir().unwrap();
        let config = Config {
            root: root.path().to_path_buf(),
            hotplug_timeout: Duration::from_millis(200),
            ..Config::default()
        };
        let pci = Locator::Pci("03".parse().unwrap());
        let err = wait_for(&config, 0, &pci).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "devices[0]: device at pci path 03 did not appear within 200ms"
        );
        let dir = root
            .path()
            .join("sys/bus/pci/devices/0000:00:03.0/virtio0/block/vda");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        // A regular file where the node should be is refused at once.
        std::fs::write(root.path().join("dev/vda"), "").unwrap();
        let err = wait_for(&config, 0, &pci).await.unwrap_err();
        assert!(matches!(err, DeviceError::NotANode(0, _)), "{err}");
    }
}
