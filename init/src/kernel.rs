//! The seam between PID-1 logic and the kernel.
//!
//! [`Kernel`] wraps the few system calls that change machine-wide state (mounts, the
//! hostname, links, power). [`Host`] performs them for real; with the `fake` feature (and
//! in this crate's tests) [`fake::Recorder`] records them, so callers can assert on what
//! would have happened without root.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// One mount to perform: the arguments of mount(2), owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Device, tag or directory; for pseudo filesystems, their name.
    pub source: String,
    /// Where to mount.
    pub target: PathBuf,
    /// Filesystem type; empty for bind mounts.
    pub fstype: String,
    /// Generic mount flags.
    pub flags: MsFlags,
    /// Filesystem-specific options, comma separated; empty for none.
    pub data: String,
}

/// The kernel calls PID-1 logic needs.
pub trait Kernel: Send + Sync {
    /// Mounts `m`.
    fn mount(&self, m: &Mount) -> io::Result<()>;
    /// Unmounts `target`; `detach` makes it lazy (MNT_DETACH).
    fn umount(&self, target: &Path, detach: bool) -> io::Result<()>;
    /// Creates `path` and its missing parents with `mode`.
    fn create_dir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Creates the symbolic link `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// The filesystem type mounted exactly at `path`, if `path` is a mount point.
    fn mounted_fstype(&self, path: &Path) -> Option<String>;
    /// Sets the hostname of the current UTS namespace.
    fn set_hostname(&self, name: &str) -> io::Result<()>;
    /// Sets the network link `name` up.
    fn link_up(&self, name: &str) -> io::Result<()>;
    /// Makes this process adopt orphaned descendants (PR_SET_CHILD_SUBREAPER).
    fn set_child_subreaper(&self) -> io::Result<()>;
    /// Flushes filesystem buffers.
    fn sync(&self);
    /// Powers the machine off; returns only on failure.
    fn power_off(&self) -> io::Result<()>;
}

/// The real kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Host;

impl Kernel for Host {
    fn mount(&self, m: &Mount) -> io::Result<()> {
        let fstype = (!m.fstype.is_empty()).then_some(m.fstype.as_str());
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        nix::mount::mount(Some(m.source.as_str()), &m.target, fstype, m.flags, data)?;
        Ok(())
    }

    fn umount(&self, target: &Path, detach: bool) -> io::Result<()> {
        let flags = if detach {
            MntFlags::MNT_DETACH
        } else {
            MntFlags::empty()
        };
        nix::mount::umount2(target, flags)?;
        Ok(())
    }

    fn create_dir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        symlink(target, link)
    }

    fn mounted_fstype(&self, path: &Path) -> Option<String> {
        let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        fstype_in_mountinfo(&table, path)
    }

    fn set_hostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name)?;
        Ok(())
    }

    fn link_up(&self, name: &str) -> io::Result<()> {
        set_link_up(name)
    }

    fn set_child_subreaper(&self) -> io::Result<()> {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn sync(&self) {
        nix::unistd::sync();
    }

    fn power_off(&self) -> io::Result<()> {
        nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF)?;
        Ok(())
    }
}

/// Finds the filesystem type of the last mount exactly at `path` in a mountinfo table.
pub fn fstype_in_mountinfo(table: &str, path: &Path) -> Option<String> {
    let wanted = path.to_str()?;
    table
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            (unescape_octal(mount_point) == wanted).then(|| fstype.to_string())
        })
        .next_back()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        let code = digits
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sets IFF_UP on a link with the SIOCGIFFLAGS/SIOCSIFFLAGS ioctls.
fn set_link_up(name: &str) -> io::Result<()> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    if cname.as_bytes_with_nul().len() > libc::IFNAMSIZ {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: socket(2) with constant arguments; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    ifflags_up(std::os::fd::AsRawFd::as_raw_fd(&sock), &cname)
}

fn ifflags_up(fd: libc::c_int, name: &CString) -> io::Result<()> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming the link; the kernel fills ifru_flags.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: `req` is a valid ifreq with the link name and the new flags.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(any(test, feature = "fake"))]
pub mod fake {
    //! A recording [`Kernel`](super::Kernel) for unit tests.

    use std::collections::{HashMap, HashSet};
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use super::{Kernel, Mount};

    /// One recorded kernel call.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Call {
        Mount(Mount),
        Umount(PathBuf),
        CreateDir(PathBuf),
        Symlink(PathBuf, PathBuf),
        SetHostname(String),
        LinkUp(String),
        ChildSubreaper,
        Sync,
        PowerOff,
    }

    /// Records every call; mounts update a table so `mounted_fstype` answers like the
    /// kernel would. Calls on paths marked with [`Recorder::fail_at`] fail with EPERM.
    #[derive(Default)]
    pub struct Recorder {
        calls: Mutex<Vec<Call>>,
        mounted: Mutex<HashMap<PathBuf, String>>,
        failing: Mutex<HashSet<PathBuf>>,
    }

    impl Recorder {
        /// A recorder with nothing mounted.
        pub fn new() -> Self {
            Self::default()
        }

        /// Pretends `fstype` is already mounted at `path`.
        pub fn premount(&self, path: &str, fstype: &str) {
            let mut mounted = self.mounted.lock().unwrap_or_else(|e| e.into_inner());
            mounted.insert(PathBuf::from(path), fstype.to_string());
        }

        /// Makes mounts and unmounts at `path` fail.
        pub fn fail_at(&self, path: &Path) {
            let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
            failing.insert(path.to_path_buf());
        }

        /// The calls so far, in order.
        pub fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        /// The targets mounted so far, in order.
        pub fn mount_targets(&self) -> Vec<PathBuf> {
            let calls = self.calls();
            calls
                .into_iter()
                .filter_map(|c| match c {
                    Call::Mount(m) => Some(m.target),
                    _ => None,
                })
                .collect()
        }

        /// The targets unmounted so far, in order.
        pub fn umount_targets(&self) -> Vec<PathBuf> {
            let calls = self.calls();
            calls
                .into_iter()
                .filter_map(|c| match c {
                    Call::Umount(p) => Some(p),
                    _ => None,
                })
                .collect()
        }

        fn record(&self, call: Call) {
            self.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(call);
        }

        fn check(&self, path: &Path) -> io::Result<()> {
            let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
            if failing.contains(path) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }
    }

    impl Kernel for Recorder {
        fn mount(&self, m: &Mount) -> io::Result<()> {
            self.check(&m.target)?;
            self.record(Call::Mount(m.clone()));
            let mut mounted = self.mounted.lock().unwrap_or_else(|e| e.into_inner());
            mounted.insert(m.target.clone(), m.fstype.clone());
            Ok(())
        }

        fn umount(&self, target: &Path, _detach: bool) -> io::Result<()> {
            self.check(target)?;
            self.record(Call::Umount(target.to_path_buf()));
            let mut mounted = self.mounted.lock().unwrap_or_else(|e| e.into_inner());
            mounted.remove(target);
            Ok(())
        }

        fn create_dir_all(&self, path: &Path, _mode: u32) -> io::Result<()> {
            self.record(Call::CreateDir(path.to_path_buf()));
            Ok(())
        }

        fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
            self.record(Call::Symlink(target.to_path_buf(), link.to_path_buf()));
            Ok(())
        }

        fn mounted_fstype(&self, path: &Path) -> Option<String> {
            let mounted = self.mounted.lock().unwrap_or_else(|e| e.into_inner());
            mounted.get(path).cloned()
        }

        fn set_hostname(&self, name: &str) -> io::Result<()> {
            self.record(Call::SetHostname(name.to_string()));
            Ok(())
        }

        fn link_up(&self, name: &str) -> io::Result<()> {
            self.record(Call::LinkUp(name.to_string()));
            Ok(())
        }

        fn set_child_subreaper(&self) -> io::Result<()> {
            self.record(Call::ChildSubreaper);
            Ok(())
        }

        fn sync(&self) {
            self.record(Call::Sync);
        }

        fn power_off(&self) -> io::Result<()> {
            self.record(Call::PowerOff);
            Err(io::Error::from_raw_os_error(libc::EPERM))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec - proc proc rw
23 1 0:5 / /dev rw,nosuid - devtmpfs udev rw,mode=755
40 23 0:30 / /dev/shm rw - tmpfs tmpfs rw
41 1 0:31 / /a\\040b rw - tmpfs tmpfs rw
42 23 0:32 / /dev/shm rw - ramfs none rw
";

    #[test]
    fn finds_fstype_of_exact_mount_point() {
        assert_eq!(
            fstype_in_mountinfo(TABLE, Path::new("/proc")).as_deref(),
            Some("proc")
        );
        assert_eq!(
            fstype_in_mountinfo(TABLE, Path::new("/dev")).as_deref(),
            Some("devtmpfs")
        );
        assert_eq!(fstype_in_mountinfo(TABLE, Path::new("/de")), None);
    }

    #[test]
    fn last_mount_on_a_point_wins() {
        assert_eq!(
            fstype_in_mountinfo(TABLE, Path::new("/dev/shm")).as_deref(),
            Some("ramfs")
        );
    }

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(
            fstype_in_mountinfo(TABLE, Path::new("/a b")).as_deref(),
            Some("tmpfs")
        );
    }

    /// Moves the calling test thread into fresh namespaces (network and UTS namespaces
    /// are per thread, and the harness runs each test on its own thread); `false` when
    /// not root.
    fn own_namespaces(flags: nix::sched::CloneFlags) -> bool {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for namespaces");
            return false;
        }
        nix::sched::unshare(flags).unwrap();
        true
    }

    #[test]
    fn loopback_comes_up_in_a_fresh_netns() {
        if !own_namespaces(nix::sched::CloneFlags::CLONE_NEWNET) {
            return;
        }
        assert!(!lo_is_up());
        Host.link_up("lo").unwrap();
        assert!(lo_is_up());
    }

    fn lo_is_up() -> bool {
        // SAFETY: socket(2) with constant arguments; checked below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        assert!(fd >= 0);
        // SAFETY: ifreq is plain old data.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        // SAFETY: valid ifreq and socket.
        assert!(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) } >= 0);
        // SAFETY: closing the socket opened above.
        unsafe { libc::close(fd) };
        // SAFETY: SIOCGIFFLAGS filled the flags.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        flags & libc::IFF_UP as libc::c_short != 0
    }

    #[test]
    fn hostname_is_set_in_a_fresh_uts_ns() {
        if !own_namespaces(nix::sched::CloneFlags::CLONE_NEWUTS) {
            return;
        }
        Host.set_hostname("hull-test").unwrap();
        assert_eq!(nix::unistd::gethostname().unwrap(), "hull-test");
    }

    #[test]
    fn link_up_rejects_bad_names() {
        assert!(set_link_up("a\0b").is_err());
        assert!(set_link_up("a-name-longer-than-ifnamsiz").is_err());
    }
}
