//! The supervisor's private mount namespace and the container root filesystems
//! bind-mounted into the shared directory.
//!
//! The supervisor unshares its mount namespace before anything else and makes
//! every mount in it private, so nothing it mounts is seen by the host and all
//! of it disappears with the supervisor and its children (QEMU, virtiofsd), even
//! if they are killed. The shared directory is made a shared mount inside that
//! namespace, so binds added later propagate into virtiofsd's own namespace.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Where the guest mounts the shared directory.
pub const GUEST_SHARED_DIR: &str = "/run/kata-containers/shared/containers";

/// Errors setting up mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A mount operation failed.
    #[error("{op} {}", .path.display())]
    Mount {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// A directory could not be created or removed.
    #[error("cannot prepare {}", .0.display())]
    Dir(PathBuf, #[source] std::io::Error),
    /// The container id would escape the shared directory.
    #[error("invalid container id {0:?}")]
    BadId(String),
    /// The root filesystem is not a directory.
    #[error("container rootfs {} is not a directory", .0.display())]
    NotDir(PathBuf),
}

fn failed<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> MountError + 'a {
    move |source| MountError::Mount {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Moves this (single-threaded) process into a private mount namespace and
/// makes `shared` a shared mount point of itself.
pub fn isolate(shared: &Path) -> Result<(), MountError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(failed("unshare mount namespace for", shared))?;
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(failed("make private", Path::new("/")))?;
    std::fs::create_dir_all(shared).map_err(|e| MountError::Dir(shared.to_path_buf(), e))?;
    mount(Some(shared), shared, none, MsFlags::MS_BIND, none).map_err(failed("bind", shared))?;
    mount(none, shared, none, MsFlags::MS_SHARED, none).map_err(failed("make shared", shared))
}

/// Bind-mounts `rootfs` at `<shared>/<container>/rootfs`; returns the guest path.
pub fn share_rootfs(shared: &Path, container: &str, rootfs: &Path) -> Result<String, MountError> {
    crate::state::validate_id(container).map_err(|_| MountError::BadId(container.to_string()))?;
    if !rootfs.is_dir() {
        return Err(MountError::NotDir(rootfs.to_path_buf()));
    }
    let target = shared.join(container).join("rootfs");
    std::fs::create_dir_all(&target).map_err(|e| MountError::Dir(target.clone(), e))?;
    let none: Option<&str> = None;
    mount(
        Some(rootfs),
        &target,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(failed("bind", &target))?;
    Ok(format!("{GUEST_SHARED_DIR}/{container}/rootfs"))
}

/// Undoes [`share_rootfs`].
pub fn unshare_rootfs(shared: &Path, container: &str) -> Result<(), MountError> {
    crate::state::validate_id(container).map_err(|_| MountError::BadId(container.to_string()))?;
    let dir = shared.join(container);
    let target = dir.join("rootfs");
    match umount2(&target, MntFlags::MNT_DETACH) {
        // Not mounted (any more): there is only the directory to remove.
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(failed("unmount", &target)(e)),
    }
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(MountError::Dir(dir, e)),
        _ => Ok(()),
    }
}

/// Detaches the shared directory and everything mounted below it, then checks
/// that nothing is mounted under `dir` any more (so removing `dir` can never
/// reach into a container's root filesystem).
pub fn release(shared: &Path, dir: &Path) -> Result<(), MountError> {
    if let Err(e) = umount2(shared, MntFlags::MNT_DETACH) {
        if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
            return Err(MountError::Mount {
                op: "unmount",
                path: shared.to_path_buf(),
                source: e,
            });
        }
    }
    match mounts_below(dir).first() {
        Some(left) => Err(MountError::Mount {
            op: "still mounted:",
            path: PathBuf::from(left),
            source: nix::errno::Errno::EBUSY,
        }),
        None => Ok(()),
    }
}

/// Mount points at or below `dir` in this namespace.
fn mounts_below(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(&prefix))
        .map(str::to_string)
        .collect()
}
