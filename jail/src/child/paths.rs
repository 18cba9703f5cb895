//! After `pivot_root`: masked paths, read-only paths and sysctls.
//!
//! A masked file gets /dev/null bound over it, a masked directory an empty
//! read-only tmpfs. A path that does not exist in the container is skipped (the
//! usual default lists name /proc files that not every kernel has).

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;

/// Errors of masked paths, read-only paths and sysctls.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    /// Masking a path failed.
    #[error("mask {0}")]
    Mask(PathBuf, #[source] nix::Error),
    /// Making a path read-only failed.
    #[error("make {0} read-only")]
    Readonly(PathBuf, #[source] nix::Error),
    /// Writing a sysctl failed.
    #[error("sysctl {0}")]
    Sysctl(String, #[source] std::io::Error),
}

/// Applies `linux.maskedPaths` and `linux.readonlyPaths`.
pub fn apply(spec: &Spec) -> Result<(), PathsError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for p in linux.readonly_paths().as_deref().unwrap_or_default() {
        readonly(Path::new(p))?;
    }
    for p in linux.masked_paths().as_deref().unwrap_or_default() {
        mask(Path::new(p))?;
    }
    Ok(())
}

fn mask(path: &Path) -> Result<(), PathsError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let none: Option<&str> = None;
    let result = if meta.is_dir() {
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some("size=0"))
    } else {
        mount(Some("/dev/null"), path, none, MsFlags::MS_BIND, none)
    };
    result.map_err(|e| PathsError::Mask(path.into(), e))
}

fn readonly(path: &Path) -> Result<(), PathsError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let none: Option<&str> = None;
    let err = |e| PathsError::Readonly(path.into(), e);
    mount(
        Some(path),
        path,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(err)?;
    super::rootfs::remount_readonly(path).map_err(err)
}

/// Writes `linux.sysctl` (already checked to be namespaced) under /proc/sys.
pub fn sysctls(spec: &Spec) -> Result<(), PathsError> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in map {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| PathsError::Sysctl(key.clone(), e))?;
    }
    Ok(())
}

/// Whether a sysctl only affects the container's own namespaces. `net_ns` and
/// `ipc_ns`/`uts_ns` say which namespaces the container has of its own.
pub fn sysctl_is_namespaced(key: &str, net_ns: bool, ipc_ns: bool, uts_ns: bool) -> bool {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
        return false;
    }
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        return ipc_ns;
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return uts_ns;
    }
    key.starts_with("net.") && net_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls_pass() {
        assert!(sysctl_is_namespaced(
            "net.ipv4.ip_forward",
            true,
            false,
            false
        ));
        assert!(!sysctl_is_namespaced(
            "net.ipv4.ip_forward",
            false,
            true,
            true
        ));
        assert!(sysctl_is_namespaced("kernel.shmmax", false, true, false));
        assert!(sysctl_is_namespaced(
            "fs.mqueue.msg_max",
            false,
            true,
            false
        ));
        assert!(!sysctl_is_namespaced("kernel.pid_max", true, true, true));
        assert!(!sysctl_is_namespaced("vm.swappiness", true, true, true));
        assert!(!sysctl_is_namespaced("net..x", true, true, true));
    }
}
