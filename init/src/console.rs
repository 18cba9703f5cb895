//! The console as standard input, output and error.
//!
//! The kernel starts init with `/dev/console` on descriptors 0-2 only when the root
//! filesystem has that node; an initrd without it leaves them closed. Once devtmpfs is
//! mounted the node exists, and the missing descriptors are attached to it.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::Path;

/// Attaches `console` to whichever of descriptors 0, 1 and 2 are closed. Returns whether
/// any was attached.
pub fn attach_if_missing(console: &Path) -> io::Result<bool> {
    let missing: Vec<i32> = (0..3).filter(|fd| !is_open(*fd)).collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(console)?;
    for fd in missing {
        // SAFETY: dup2 onto a closed standard descriptor; `file` stays open meanwhile.
        if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // A console opened onto 0-2 is itself a standard descriptor now: keep it open.
    if file.as_raw_fd() <= 2 {
        let _stdio = file.into_raw_fd();
    }
    Ok(true)
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_stdio_is_left_alone() {
        // The test harness runs with descriptors 0-2 open.
        let attached = attach_if_missing(Path::new("/nonexistent/console")).unwrap();
        assert!(!attached);
    }
}
