//! The container's root: propagation, the bind mount of the rootfs on itself,
//! `pivot_root` (or, on an initramfs where `pivot_root` is refused, a move mount and
//! `chroot`), and the final read-only remount.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use super::mounts::propagation_flag;
use crate::config::InitConfig;

/// Errors while setting up the root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A mount call failed.
    #[error("{what} {path}")]
    Mount {
        /// What the mount was for.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// Switching the root failed.
    #[error("switch root to {0}")]
    Switch(PathBuf, #[source] nix::Error),
    /// The mount table could not be read.
    #[error("read /proc/self/mountinfo")]
    MountInfo(#[source] std::io::Error),
}

fn mnt(what: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> RootfsError {
    let path = path.to_path_buf();
    move |source| RootfsError::Mount { what, path, source }
}

/// Sets the propagation of the whole tree, and bind-mounts the rootfs on itself so
/// it is a mount point `pivot_root` accepts.
pub fn prepare(cfg: &InitConfig) -> Result<(), RootfsError> {
    let requested = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag);
    let flag = requested.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    let none: Option<&str> = None;
    mount(none, "/", none, flag, none).map_err(mnt("set propagation of", Path::new("/")))?;
    make_parent_private(&cfg.rootfs)?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(&cfg.rootfs), &cfg.rootfs, none, flags, none)
        .map_err(mnt("bind rootfs", &cfg.rootfs))
}

/// `pivot_root` refuses a new root whose parent mount is shared: make that mount
/// private (in this mount namespace only).
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(RootfsError::MountInfo)?;
    let parent = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|m| rootfs.starts_with(m))
        .max_by_key(|m| m.as_os_str().len());
    let Some(parent) = parent else {
        return Ok(());
    };
    let none: Option<&str> = None;
    mount(none, &parent, none, MsFlags::MS_PRIVATE, none).map_err(mnt("make private", &parent))
}

/// Mountinfo escapes spaces and the like as `\ooo`.
fn unescape(s: &str) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// Makes `rootfs` the root of this mount namespace.
pub fn pivot(rootfs: &Path) -> Result<(), RootfsError> {
    nix::unistd::chdir(rootfs).map_err(|e| RootfsError::Switch(rootfs.into(), e))?;
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => detach_old_root(),
        // An initramfs root cannot be pivoted away from.
        Err(nix::Error::EINVAL) => move_and_chroot(rootfs),
        Err(e) => Err(RootfsError::Switch(rootfs.into(), e)),
    }
}

/// After `pivot_root(".", ".")` the old root is stacked on the new one: stop its
/// events reaching the host, then detach it.
fn detach_old_root() -> Result<(), RootfsError> {
    let none: Option<&str> = None;
    let flags = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    mount(none, ".", none, flags, none).map_err(mnt("make old root a slave", Path::new(".")))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(mnt("detach old root", Path::new(".")))?;
    nix::unistd::chdir("/").map_err(|e| RootfsError::Switch("/".into(), e))
}

fn move_and_chroot(rootfs: &Path) -> Result<(), RootfsError> {
    let none: Option<&str> = None;
    mount(Some(rootfs), "/", none, MsFlags::MS_MOVE, none)
        .map_err(mnt("move rootfs to", Path::new("/")))?;
    nix::unistd::chroot(".").map_err(|e| RootfsError::Switch(rootfs.into(), e))?;
    nix::unistd::chdir("/").map_err(|e| RootfsError::Switch("/".into(), e))
}

/// Remounts the root read-only when the spec asks.
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    if !readonly {
        return Ok(());
    }
    remount_readonly(Path::new("/")).map_err(mnt("remount read-only", Path::new("/")))
}

/// Remounts a bind mount read-only, keeping the flags the kernel locked on it.
pub fn remount_readonly(path: &Path) -> Result<(), nix::Error> {
    let locked = current_flags(path)?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked;
    let none: Option<&str> = None;
    mount(none, path, none, flags, none)
}

/// The mount flags of `path` that a bind remount must repeat.
pub fn current_flags(path: &Path) -> Result<MsFlags, nix::Error> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs(path)?;
    let f = st.flags();
    let pairs = [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
    ];
    let flags = pairs
        .iter()
        .filter(|(s, _)| f.contains(*s))
        .fold(MsFlags::empty(), |acc, (_, m)| acc | *m);
    // ST_RELATIME (0x1000) is missing from some libc bindings (musl).
    const ST_RELATIME: u64 = 0x1000;
    if f.bits() as u64 & ST_RELATIME != 0 {
        return Ok(flags | MsFlags::MS_RELATIME);
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
    }
}
