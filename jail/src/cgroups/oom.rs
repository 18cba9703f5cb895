//! OOM-kill detection for a container's memory cgroup.
//!
//! The kernel counts OOM kills per memory cgroup (`oom_kill` in `memory.events` on
//! v2, in `memory.oom_control` on v1). [`OomWatcher`] gives a descriptor that
//! becomes readable when that may have changed (an inotify watch on v2, an eventfd
//! registered through `cgroup.event_control` on v1); the caller polls it (the agent
//! wraps it in its event loop) and calls [`OomWatcher::new_kills`] to learn how
//! many processes were killed since the last call.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::CgroupError;

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |e| CgroupError::File(path, e)
}

/// Reads the OOM-kill counter of the memory cgroup at `dir`.
pub fn read_oom_kills(dir: &Path, v2: bool) -> Result<u64, CgroupError> {
    let file = dir.join(if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    });
    let text = std::fs::read_to_string(&file).map_err(file_err(&file))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}

/// Watches a memory cgroup for OOM kills.
#[derive(Debug)]
pub struct OomWatcher {
    fd: OwnedFd,
    dir: PathBuf,
    v2: bool,
    seen: u64,
}

impl OomWatcher {
    /// Starts watching the memory cgroup at `dir`.
    pub fn new(dir: &Path, v2: bool) -> Result<OomWatcher, CgroupError> {
        let fd = if v2 {
            inotify_on(&dir.join("memory.events"))?
        } else {
            eventfd_on(dir)?
        };
        let seen = read_oom_kills(dir, v2)?;
        Ok(OomWatcher {
            fd,
            dir: dir.to_path_buf(),
            v2,
            seen,
        })
    }

    /// Readable when OOM kills may have happened. Non-blocking.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Drains the notification and returns how many OOM kills happened since the
    /// last call (0 for a spurious wake-up).
    pub fn new_kills(&mut self) -> Result<u64, CgroupError> {
        let mut buf = [0u8; 4096];
        // Non-blocking: an empty read (EAGAIN) just means nothing queued.
        let _ = (&File::from(self.fd.try_clone().map_err(file_err(&self.dir))?)).read(&mut buf);
        let now = read_oom_kills(&self.dir, self.v2)?;
        let new = now.saturating_sub(self.seen);
        self.seen = now;
        Ok(new)
    }
}

fn inotify_on(file: &Path) -> Result<OwnedFd, CgroupError> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let err = |e: nix::Error| CgroupError::File(file.to_path_buf(), e.into());
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(err)?;
    ino.add_watch(file, AddWatchFlags::IN_MODIFY).map_err(err)?;
    Ok(OwnedFd::from(ino))
}

fn eventfd_on(dir: &Path) -> Result<OwnedFd, CgroupError> {
    let control = dir.join("memory.oom_control");
    let oom = File::open(&control).map_err(file_err(&control))?;
    // SAFETY: eventfd takes an initial value and flags and returns a new descriptor.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return Err(CgroupError::File(control, std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` was just returned by eventfd and has no other owner.
    let efd = unsafe { OwnedFd::from_raw_fd(raw) };
    let event_control = dir.join("cgroup.event_control");
    let line = format!("{} {}", efd.as_raw_fd(), oom.as_raw_fd());
    std::fs::write(&event_control, line).map_err(file_err(&event_control))?;
    Ok(efd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n",
        )
        .unwrap();
        assert_eq!(read_oom_kills(dir.path(), true).unwrap(), 2);
        assert_eq!(read_oom_kills(dir.path(), false).unwrap(), 5);
    }

    #[test]
    fn v2_watcher_counts_new_kills() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("memory.events");
        std::fs::write(&events, "oom_kill 1\n").unwrap();
        let mut w = OomWatcher::new(dir.path(), true).unwrap();
        assert_eq!(w.new_kills().unwrap(), 0);
        std::fs::write(&events, "oom_kill 4\n").unwrap();
        assert_eq!(w.new_kills().unwrap(), 3);
        assert_eq!(w.new_kills().unwrap(), 0);
    }
}
