//! Terminals for containers that ask for one: the child opens the pty pair in the
//! container's own devpts (so `tty` names it there), keeps the slave as its
//! controlling terminal and sends the master to the parent; window size changes
//! go to the master.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;

use nix::pty::Winsize;

/// Errors of terminal handling.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// Opening the pty pair failed.
    #[error("open pty (is /dev/pts mounted?)")]
    Open(#[source] nix::Error),
    /// Setting the window size failed.
    #[error("set terminal window size")]
    Resize(#[source] nix::Error),
}

/// Opens a pty pair through this process's /dev/ptmx (in the child: the
/// container's devpts instance, so the terminal has a name inside the container),
/// sized `rows` x `cols`. Returns (master, slave, slave path), close-on-exec.
pub fn open_here(rows: u16, cols: u16) -> Result<(OwnedFd, OwnedFd, PathBuf), TtyError> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::pty::posix_openpt(flags).map_err(TtyError::Open)?;
    nix::pty::grantpt(&master).map_err(TtyError::Open)?;
    nix::pty::unlockpt(&master).map_err(TtyError::Open)?;
    let path = PathBuf::from(nix::pty::ptsname_r(&master).map_err(TtyError::Open)?);
    let slave =
        nix::fcntl::open(&path, flags, nix::sys::stat::Mode::empty()).map_err(TtyError::Open)?;
    // SAFETY: PtyMaster owns a valid descriptor; into_raw_fd hands ownership over.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    resize(&master, rows, cols)?;
    Ok((master, slave, path))
}

/// Sets the window size seen through the terminal (and signals SIGWINCH to its
/// foreground process group).
pub fn resize(master: &impl AsRawFd, rows: u16, cols: u16) -> Result<(), TtyError> {
    let size = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one Winsize from the pointer, valid for the call.
    let ret = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSWINSZ,
            &size as *const Winsize,
        )
    };
    nix::errno::Errno::result(ret)
        .map(drop)
        .map_err(TtyError::Resize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_is_seen_on_the_slave() {
        let (master, slave, path) = open_here(24, 80).unwrap();
        assert!(path.starts_with("/dev/pts"), "{path:?}");
        resize(&master, 40, 120).unwrap();
        let mut size = Winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one Winsize to the pointer.
        let ret = unsafe {
            libc::ioctl(
                slave.as_raw_fd(),
                libc::TIOCGWINSZ,
                &mut size as *mut Winsize,
            )
        };
        assert_eq!(ret, 0);
        assert_eq!((size.ws_row, size.ws_col), (40, 120));
    }
}
