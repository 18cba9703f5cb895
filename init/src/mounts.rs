//! The early mounts of a guest init: the pseudo filesystems every Linux userland expects.
//!
//! A mount point that already carries the expected filesystem type is left alone (the
//! kernel or an earlier stage may have mounted it), except `/proc`, which is always
//! mounted fresh so it matches the caller's PID namespace.
//!
//! Limitations: cgroup v2 only; `/dev/ptmx` relies on the kernel (4.7+) resolving it
//! through the `pts` directory next to it, so it is not replaced by a link.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use thiserror::Error;

use crate::kernel::{Kernel, Mount};

/// Errors of the early mounts.
#[derive(Debug, Error)]
pub enum EarlyMountError {
    /// A mount point could not be created.
    #[error("cannot create mount point {0}")]
    MountPoint(PathBuf, #[source] std::io::Error),
    /// A filesystem could not be mounted.
    #[error("cannot mount {fstype} on {target}")]
    Mount {
        fstype: String,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One row of the early mount table.
#[derive(Clone, Copy, Debug)]
pub struct EarlyMount {
    pub fstype: &'static str,
    pub target: &'static str,
    pub flags: MsFlags,
    pub data: &'static str,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);
const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// The early mounts, parents before children.
pub const EARLY_MOUNTS: &[EarlyMount] = &[
    EarlyMount {
        fstype: "proc",
        target: "/proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    EarlyMount {
        fstype: "sysfs",
        target: "/sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    EarlyMount {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    EarlyMount {
        fstype: "devpts",
        target: "/dev/pts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "newinstance,gid=5,mode=620,ptmxmode=666",
    },
    EarlyMount {
        fstype: "tmpfs",
        target: "/dev/shm",
        flags: NOSUID_NODEV,
        data: "mode=1777",
    },
    EarlyMount {
        fstype: "tmpfs",
        target: "/run",
        flags: NOSUID_NODEV,
        data: "mode=0755",
    },
    EarlyMount {
        fstype: "tmpfs",
        target: "/tmp",
        flags: NOSUID_NODEV,
        data: "mode=1777",
    },
    EarlyMount {
        fstype: "cgroup2",
        target: "/sys/fs/cgroup",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
];

/// Links every /dev is expected to have; devtmpfs does not create them.
const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
];

/// Mounts [`EARLY_MOUNTS`] below `root` (`/` for a real init) and adds the /dev links.
/// Returns the targets actually mounted.
pub fn mount_early(kernel: &dyn Kernel, root: &Path) -> Result<Vec<PathBuf>, EarlyMountError> {
    let mut mounted = Vec::new();
    for row in EARLY_MOUNTS {
        let target = rebase(root, row.target);
        if row.fstype != "proc" && already_mounted(kernel, &target, row.fstype) {
            tracing::debug!(target = %target.display(), "already mounted");
            continue;
        }
        mount_row(kernel, row, &target)?;
        mounted.push(target);
    }
    add_dev_links(kernel, root);
    Ok(mounted)
}

fn already_mounted(kernel: &dyn Kernel, target: &Path, fstype: &str) -> bool {
    kernel.mounted_fstype(target).as_deref() == Some(fstype)
}

fn mount_row(kernel: &dyn Kernel, row: &EarlyMount, target: &Path) -> Result<(), EarlyMountError> {
    kernel
        .create_dir_all(target, 0o755)
        .map_err(|e| EarlyMountError::MountPoint(target.to_path_buf(), e))?;
    let mount = Mount {
        source: row.fstype.to_string(),
        target: target.to_path_buf(),
        fstype: row.fstype.to_string(),
        flags: row.flags,
        data: row.data.to_string(),
    };
    kernel
        .mount(&mount)
        .map_err(|source| EarlyMountError::Mount {
            fstype: row.fstype.to_string(),
            target: target.to_path_buf(),
            source,
        })
}

fn add_dev_links(kernel: &dyn Kernel, root: &Path) {
    for (target, link) in DEV_LINKS {
        let link = rebase(root, link);
        match kernel.symlink(Path::new(target), &link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => tracing::warn!(link = %link.display(), error = %e, "cannot create link"),
        }
    }
}

fn rebase(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::{Call, Recorder};

    #[test]
    fn mounts_every_row_in_order_with_flags() {
        let k = Recorder::new();
        let done = mount_early(&k, Path::new("/")).unwrap();
        let targets: Vec<_> = EARLY_MOUNTS
            .iter()
            .map(|r| PathBuf::from(r.target))
            .collect();
        assert_eq!(done, targets);
        assert_eq!(k.mount_targets(), targets);
        let pts = k.calls().into_iter().find_map(|c| match c {
            Call::Mount(m) if m.fstype == "devpts" => Some(m),
            _ => None,
        });
        let pts = pts.unwrap();
        assert!(pts.data.contains("newinstance") && pts.data.contains("ptmxmode=666"));
        assert!(pts.flags.contains(MsFlags::MS_NOEXEC));
        assert!(!pts.flags.contains(MsFlags::MS_NODEV));
    }

    #[test]
    fn proc_sys_and_cgroup_are_noexec() {
        for row in EARLY_MOUNTS {
            let noexec = row.flags.contains(MsFlags::MS_NOEXEC);
            let expect = matches!(row.fstype, "proc" | "sysfs" | "cgroup2" | "devpts");
            assert_eq!(noexec, expect, "{}", row.target);
            assert!(row.flags.contains(MsFlags::MS_NOSUID), "{}", row.target);
        }
    }

    #[test]
    fn skips_points_already_mounted_but_not_proc() {
        let k = Recorder::new();
        k.premount("/dev", "devtmpfs");
        k.premount("/proc", "proc");
        k.premount("/tmp", "ext4");
        let done = mount_early(&k, Path::new("/")).unwrap();
        assert!(!done.contains(&PathBuf::from("/dev")));
        assert!(done.contains(&PathBuf::from("/proc")));
        assert!(done.contains(&PathBuf::from("/tmp")));
    }

    #[test]
    fn rebases_below_a_root_and_links_dev() {
        let k = Recorder::new();
        mount_early(&k, Path::new("/x")).unwrap();
        assert_eq!(k.mount_targets()[0], PathBuf::from("/x/proc"));
        let link = Call::Symlink("/proc/self/fd".into(), "/x/dev/fd".into());
        assert!(k.calls().contains(&link));
    }

    #[test]
    fn failure_names_the_mount() {
        let k = Recorder::new();
        k.fail_at(Path::new("/run"));
        let err = mount_early(&k, Path::new("/")).unwrap_err();
        assert_eq!(err.to_string(), "cannot mount tmpfs on /run");
        assert!(!k.mount_targets().contains(&PathBuf::from("/tmp")));
    }
}
