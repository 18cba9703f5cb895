//! /dev inside the container: a tmpfs (unless the spec mounts one), the default
//! devices (null zero full random urandom tty), the spec's devices, the standard
//! links, and /dev/pts and /dev/shm when the spec has none.
//!
//! In a user namespace `mknod` is refused, so devices are bind-mounted from the
//! host's /dev instead. When the spec bind-mounts /dev itself, nothing is created.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::mounts::secure_join;
use crate::config::InitConfig;

/// Errors while populating /dev.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Creating a node, link or directory failed.
    #[error("create {0}")]
    Create(PathBuf, #[source] std::io::Error),
    /// A mount for /dev failed.
    #[error("mount {0}")]
    Mount(PathBuf, #[source] nix::Error),
    /// The device path does not resolve inside the rootfs.
    #[error("resolve device path")]
    Resolve(#[from] super::mounts::MountError),
    /// A device's type cannot be made with mknod.
    #[error("device {0}: type {1:?} cannot be created")]
    BadType(PathBuf, LinuxDeviceType),
}

/// (name, major, minor) of the devices every container gets.
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
    ("/proc/kcore", "core"),
];

fn spec_mounts_at<'a>(spec: &'a Spec, dest: &str) -> Option<&'a oci_spec::runtime::Mount> {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.destination() == Path::new(dest))
}

/// Populates the container's /dev.
pub fn setup(cfg: &InitConfig) -> Result<(), DeviceError> {
    let dev = secure_join(&cfg.rootfs, Path::new("/dev"))?;
    match spec_mounts_at(&cfg.spec, "/dev") {
        Some(m) if is_bind(m) => return Ok(()),
        Some(_) => {}
        None => mount_dev_tmpfs(&dev)?,
    }
    let userns = in_user_namespace(&cfg.spec);
    for (name, major, minor) in DEFAULT_DEVICES {
        let node = Node {
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
        };
        make_node(
            &dev.join(name),
            &node,
            &Path::new("/dev").join(name),
            userns,
        )?;
    }
    for d in cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        make_spec_device(&cfg.rootfs, d, userns)?;
    }
    for (target, name) in LINKS {
        make_link(target, &dev.join(name))?;
    }
    if spec_mounts_at(&cfg.spec, "/dev/pts").is_none() {
        mount_devpts(&dev.join("pts"), userns)?;
    }
    if spec_mounts_at(&cfg.spec, "/dev/shm").is_none() {
        let shm = dev.join("shm");
        mount_tmpfs(&shm, "mode=1777,size=65536k")?;
    }
    Ok(())
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

fn in_user_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
}

fn mount_dev_tmpfs(dev: &Path) -> Result<(), DeviceError> {
    fs::create_dir_all(dev).map_err(|e| DeviceError::Create(dev.into(), e))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| DeviceError::Mount(dev.into(), e))
}

fn mount_tmpfs(path: &Path, data: &str) -> Result<(), DeviceError> {
    fs::create_dir_all(path).map_err(|e| DeviceError::Create(path.into(), e))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("shm"), path, Some("tmpfs"), flags, Some(data))
        .map_err(|e| DeviceError::Mount(path.into(), e))
}

fn mount_devpts(path: &Path, userns: bool) -> Result<(), DeviceError> {
    fs::create_dir_all(path).map_err(|e| DeviceError::Create(path.into(), e))?;
    // The tty group (5) may not be mapped in a user namespace.
    let data = if userns {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(Some("devpts"), path, Some("devpts"), flags, Some(data))
        .map_err(|e| DeviceError::Mount(path.into(), e))
}

/// A device node to create.
struct Node {
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
}

/// Creates `path`; in a user namespace (where mknod is refused) binds `host`
/// (the same device in the runtime's /dev) instead.
fn make_node(path: &Path, node: &Node, host: &Path, userns: bool) -> Result<(), DeviceError> {
    let err = |e: std::io::Error| DeviceError::Create(path.into(), e);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let _ = fs::remove_file(path);
    if userns && node.kind != SFlag::S_IFIFO {
        return bind_host_device(path, host);
    }
    let perm = Mode::from_bits_truncate(node.mode & 0o7777);
    mknod(path, node.kind, perm, makedev(node.major, node.minor)).map_err(|e| err(e.into()))?;
    // mknod is subject to the umask; the spec's mode is exact.
    fs::set_permissions(path, fs::Permissions::from_mode(node.mode & 0o7777)).map_err(err)
}

/// In a user namespace: bind the host's node with the same numbers.
fn bind_host_device(path: &Path, host: &Path) -> Result<(), DeviceError> {
    fs::File::create(path).map_err(|e| DeviceError::Create(path.into(), e))?;
    let none: Option<&str> = None;
    mount(Some(host), path, none, MsFlags::MS_BIND, none)
        .map_err(|e| DeviceError::Mount(path.into(), e))
}

fn make_spec_device(rootfs: &Path, d: &LinuxDevice, userns: bool) -> Result<(), DeviceError> {
    let path = secure_join(rootfs, d.path())?;
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        other => return Err(DeviceError::BadType(d.path().clone(), other)),
    };
    let node = Node {
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666),
    };
    make_node(&path, &node, d.path(), userns)?;
    let (uid, gid) = (d.uid().unwrap_or(0), d.gid().unwrap_or(0));
    nix::unistd::chown(&path, Some(uid.into()), Some(gid.into()))
        .map_err(|e| DeviceError::Create(path.clone(), e.into()))
}

fn make_link(target: &str, link: &Path) -> Result<(), DeviceError> {
    if link.symlink_metadata().is_ok() {
        return Ok(());
    }
    symlink(target, link).map_err(|e| DeviceError::Create(link.into(), e))
}
