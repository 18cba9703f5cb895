//! Storage drivers: turning a `Storage` message into mounts (or a directory), each
//! change recorded in an [`UndoStack`] so teardown can reverse it.
//!
//! Drivers: `ephemeral` (tmpfs), `local` (a directory), `virtio-fs`, `9p`, `bind`.
//! Mount points and bind sources are guest paths, resolved under the configured root.
//! Options that name mount flags (`ro`, `nosuid`, ...) become flags; the rest
//! (`size=`, `mode=`, `trans=virtio`, ...) are passed to the filesystem.
//!
//! Limitations: block-device drivers (`blk`, `scsi`, `nvdimm`, `mmioblk`, `blk-ccw`),
//! `overlayfs` and `watchable-bind` answer UNIMPLEMENTED; `fs_group` only changes the
//! group of a `local` directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use hull_init::kernel::{Kernel, Mount};
use hull_protocols::agent::Storage;
use nix::mount::MsFlags;
use thiserror::Error;

use super::undo::{Undo, UndoStack};
use crate::config::Config;

/// The storage drivers this agent handles.
pub const DRIVERS: &[&str] = &["ephemeral", "local", "virtio-fs", "9p", "bind"];

/// Errors of the storage drivers.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The driver is not built in.
    #[error("storage driver {0:?} is not supported")]
    UnknownDriver(String),
    /// Mounting needs the agent's system mode.
    #[error("storage driver {0:?} mounts, which needs system mode")]
    NeedsSystem(String),
    /// The mount point is not an absolute, normal path.
    #[error("bad mount point {0:?}: must be absolute without '..'")]
    BadMountPoint(String),
    /// A driver that needs a source got none.
    #[error("storage driver {0:?} needs a source")]
    MissingSource(String),
    /// The filesystem type does not fit the driver.
    #[error("fstype {fstype:?} does not fit storage driver {driver:?}")]
    BadFsType { driver: String, fstype: String },
    /// The mount point could not be created.
    #[error("cannot create mount point {0}")]
    MountPoint(PathBuf, #[source] std::io::Error),
    /// The mount failed.
    #[error("cannot mount storage on {0}")]
    Mount(PathBuf, #[source] std::io::Error),
}

/// Sets up `storage`; returns the undo steps of what was done. On error, whatever was
/// done for this storage is already undone.
pub fn add(
    kernel: &dyn Kernel,
    config: &Config,
    storage: &Storage,
) -> Result<UndoStack, StorageError> {
    let mut undo = UndoStack::default();
    let result = add_steps(kernel, config, storage, &mut undo);
    if result.is_err() {
        undo.unwind(kernel);
    }
    result.map(|()| undo)
}

fn add_steps(
    kernel: &dyn Kernel,
    config: &Config,
    storage: &Storage,
    undo: &mut UndoStack,
) -> Result<(), StorageError> {
    let driver = storage.driver.as_str();
    if !DRIVERS.contains(&driver) {
        return Err(StorageError::UnknownDriver(driver.to_string()));
    }
    let target = guest_path(config, &storage.mount_point)?;
    if driver == "local" {
        return add_local(config, storage, &target, undo);
    }
    if !config.system {
        return Err(StorageError::NeedsSystem(driver.to_string()));
    }
    let mount = mount_for(config, storage, target)?;
    create_mount_point(kernel, &mount.target, undo)?;
    kernel
        .mount(&mount)
        .map_err(|e| StorageError::Mount(mount.target.clone(), e))?;
    undo.push(Undo::Unmount(mount.target.clone()));
    remount_read_only_bind(kernel, &mount)
}

/// The mount a storage asks for.
fn mount_for(config: &Config, storage: &Storage, target: PathBuf) -> Result<Mount, StorageError> {
    let driver = storage.driver.as_str();
    let (fstype, source) = match driver {
        "ephemeral" => (
            "tmpfs",
            non_empty(&storage.source).unwrap_or("tmpfs").to_string(),
        ),
        "virtio-fs" => ("virtiofs", required_source(storage)?.to_string()),
        "9p" => ("9p", required_source(storage)?.to_string()),
        _ => ("", bind_source(config, storage)?),
    };
    check_fstype(storage, fstype)?;
    let (mut flags, data) = split_options(&storage.options);
    if driver == "bind" {
        flags |= MsFlags::MS_BIND;
    }
    Ok(Mount {
        source,
        target,
        fstype: fstype.to_string(),
        flags,
        data,
    })
}

fn required_source(storage: &Storage) -> Result<&str, StorageError> {
    non_empty(&storage.source).ok_or_else(|| StorageError::MissingSource(storage.driver.clone()))
}

fn bind_source(config: &Config, storage: &Storage) -> Result<String, StorageError> {
    let source = required_source(storage)?;
    Ok(guest_path(config, source)?.display().to_string())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn check_fstype(storage: &Storage, expected: &str) -> Result<(), StorageError> {
    let given = storage.fstype.as_str();
    let fits = given.is_empty() || given == expected || (expected.is_empty() && given == "bind");
    if fits {
        return Ok(());
    }
    Err(StorageError::BadFsType {
        driver: storage.driver.clone(),
        fstype: given.to_string(),
    })
}

/// A read-only bind needs a second, remounting call to take effect.
fn remount_read_only_bind(kernel: &dyn Kernel, mount: &Mount) -> Result<(), StorageError> {
    let wants_ro = mount.flags.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY);
    if !wants_ro {
        return Ok(());
    }
    let remount = Mount {
        flags: mount.flags | MsFlags::MS_REMOUNT,
        data: String::new(),
        ..mount.clone()
    };
    kernel
        .mount(&remount)
        .map_err(|e| StorageError::Mount(mount.target.clone(), e))
}

fn add_local(
    config: &Config,
    storage: &Storage,
    target: &Path,
    undo: &mut UndoStack,
) -> Result<(), StorageError> {
    if !config.may_write_guest_files() {
        return Err(StorageError::NeedsSystem("local".into()));
    }
    let err = |e| StorageError::MountPoint(target.to_path_buf(), e);
    create_dirs(target, undo).map_err(err)?;
    let mode = option_value(&storage.options, "mode")
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(0o777);
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    if let Some(group) = storage.fs_group.as_ref() {
        std::os::unix::fs::chown(target, None, Some(group.group_id)).map_err(err)?;
    }
    Ok(())
}

fn create_mount_point(
    kernel: &dyn Kernel,
    target: &Path,
    undo: &mut UndoStack,
) -> Result<(), StorageError> {
    let missing = missing_dirs(target);
    kernel
        .create_dir_all(target, 0o755)
        .map_err(|e| StorageError::MountPoint(target.to_path_buf(), e))?;
    for dir in missing {
        undo.push(Undo::RemoveDir(dir));
    }
    Ok(())
}

fn create_dirs(target: &Path, undo: &mut UndoStack) -> std::io::Result<()> {
    let missing = missing_dirs(target);
    std::fs::create_dir_all(target)?;
    for dir in missing {
        undo.push(Undo::RemoveDir(dir));
    }
    Ok(())
}

/// The ancestors of `path` (and `path` itself) that do not exist yet, outermost first.
fn missing_dirs(path: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// A host-given absolute guest path, checked and resolved under the root.
pub fn guest_path(config: &Config, path: &str) -> Result<PathBuf, StorageError> {
    let p = Path::new(path);
    let normal = p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !normal || p == Path::new("/") {
        return Err(StorageError::BadMountPoint(path.to_string()));
    }
    Ok(config.guest_path(p))
}

/// Splits mount options into flags and filesystem data.
pub fn split_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in options.iter().flat_map(|o| o.split(',')) {
        match flag_of(option) {
            Some((flag, true)) => flags |= flag,
            Some((flag, false)) => flags &= !flag,
            None if option.is_empty() => {}
            None => data.push(option),
        }
    }
    (flags, data.join(","))
}

/// A mount flag named by `option`, and whether the option sets (true) or clears it.
fn flag_of(option: &str) -> Option<(MsFlags, bool)> {
    let flag = match option {
        "ro" => (MsFlags::MS_RDONLY, true),
        "rw" => (MsFlags::MS_RDONLY, false),
        "nosuid" => (MsFlags::MS_NOSUID, true),
        "suid" => (MsFlags::MS_NOSUID, false),
        "nodev" => (MsFlags::MS_NODEV, true),
        "dev" => (MsFlags::MS_NODEV, false),
        "noexec" => (MsFlags::MS_NOEXEC, true),
        "exec" => (MsFlags::MS_NOEXEC, false),
        "sync" => (MsFlags::MS_SYNCHRONOUS, true),
        "async" => (MsFlags::MS_SYNCHRONOUS, false),
        "dirsync" => (MsFlags::MS_DIRSYNC, true),
        "noatime" => (MsFlags::MS_NOATIME, true),
        "nodiratime" => (MsFlags::MS_NODIRATIME, true),
        "relatime" => (MsFlags::MS_RELATIME, true),
        "strictatime" => (MsFlags::MS_STRICTATIME, true),
        "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, true),
        "bind" => (MsFlags::MS_BIND, true),
        _ => return None,
    };
    Some(flag)
}

fn option_value<'a>(options: &'a [String], key: &str) -> Option<&'a str> {
    options
        .iter()
        .flat_map(|o| o.split(','))
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_init::kernel::fake::{Call, Recorder};

    fn config(root: &Path) -> Config {
        Config {
            system: true,
            root: root.to_path_buf(),
            ..Config::default()
        }
    }

    fn storage(driver: &str, source: &str, mount_point: &str, options: &[&str]) -> Storage {
        Storage {
            driver: driver.into(),
            source: source.into(),
            mount_point: mount_point.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let opts = [
            "noexec,nosuid",
            "nodev",
            "mode=1777",
            "size=65536k",
            "ro",
            "rw",
        ];
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        let (flags, data) = split_options(&opts);
        assert_eq!(
            flags,
            MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        );
        assert_eq!(data, "mode=1777,size=65536k");
    }

    #[test]
    fn ephemeral_shm_mounts_tmpfs_under_root_and_records_undo() {
        let root = tempfile::tempdir().unwrap();
        let k = Recorder::new();
        let s = storage(
            "ephemeral",
            "shm",
            "/run/kata-containers/sandbox/shm",
            &["noexec", "nosuid", "nodev", "mode=1777", "size=67108864"],
        );
        let undo = add(&k, &config(root.path()), &s).unwrap();
        let target = root.path().join("run/kata-containers/sandbox/shm");
        let expected = Mount {
            source: "shm".into(),
            target: target.clone(),
            fstype: "tmpfs".into(),
            flags: MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: "mode=1777,size=67108864".into(),
        };
        assert!(k.calls().contains(&Call::Mount(expected)));
        assert_eq!(undo.steps().last(), Some(&Undo::Unmount(target)));
        // The missing directories run, kata-containers, sandbox, shm are recorded.
        assert_eq!(undo.steps().len(), 5);
    }

    #[test]
    fn virtiofs_and_9p_need_a_source_and_fitting_fstype() {
        let root = tempfile::tempdir().unwrap();
        let c = config(root.path());
        let k = Recorder::new();
        let err = add(&k, &c, &storage("virtio-fs", "", "/run/x", &[])).unwrap_err();
        assert!(matches!(err, StorageError::MissingSource(_)));
        let mut s = storage("9p", "kataShared", "/run/x", &["trans=virtio", "nodev"]);
        s.fstype = "ext4".into();
        assert!(matches!(
            add(&k, &c, &s).unwrap_err(),
            StorageError::BadFsType { .. }
        ));
        s.fstype = "9p".into();
        add(&k, &c, &s).unwrap();
        assert_eq!(k.mount_targets(), vec![root.path().join("run/x")]);
    }

    #[test]
    fn read_only_bind_is_remounted() {
        let root = tempfile::tempdir().unwrap();
        let k = Recorder::new();
        let s = storage("bind", "/src", "/dst", &["ro"]);
        add(&k, &config(root.path()), &s).unwrap();
        let mounts: Vec<Mount> = k
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mount(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            mounts[0].source,
            root.path().join("src").display().to_string()
        );
        assert!(mounts[1]
            .flags
            .contains(MsFlags::MS_REMOUNT | MsFlags::MS_BIND));
    }

    #[test]
    fn failed_mount_leaves_no_directories() {
        let root = tempfile::tempdir().unwrap();
        let k = Recorder::new();
        let target = root.path().join("a/b");
        k.fail_at(&target);
        // The fake does not create directories; create them as the real kernel would.
        std::fs::create_dir_all(&target).unwrap();
        let err = add(
            &k,
            &config(root.path()),
            &storage("ephemeral", "", "/a/b", &[]),
        );
        assert!(matches!(err, Err(StorageError::Mount(..))));
        assert!(k.umount_targets().is_empty());
    }

    #[test]
    fn bad_drivers_paths_and_modes_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut c = config(root.path());
        let k = Recorder::new();
        let err = add(&k, &c, &storage("blk", "02/01", "/x", &[])).unwrap_err();
        assert_eq!(err.to_string(), "storage driver \"blk\" is not supported");
        for bad in ["relative", "/a/../b", "/"] {
            let err = add(&k, &c, &storage("ephemeral", "", bad, &[])).unwrap_err();
            assert!(matches!(err, StorageError::BadMountPoint(_)), "{bad}");
        }
        c.system = false;
        let err = add(&k, &c, &storage("ephemeral", "", "/x", &[])).unwrap_err();
        assert!(matches!(err, StorageError::NeedsSystem(_)));
        assert!(k.calls().is_empty());
    }

    #[test]
    fn local_creates_a_directory_with_mode_and_undoes_it() {
        let root = tempfile::tempdir().unwrap();
        let c = Config {
            root: root.path().to_path_buf(),
            ..Config::default()
        };
        let k = Recorder::new();
        let mut undo = add(&k, &c, &storage("local", "", "/vol/a", &["mode=0750"])).unwrap();
        let dir = root.path().join("vol/a");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        assert_eq!(undo.unwind(&k), 0);
        assert!(!root.path().join("vol").exists());
    }
}
