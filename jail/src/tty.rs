//! Terminals for containers that ask for one: a pty pair opened by the parent (the
//! slave goes to the child, which makes it its controlling terminal), and window
//! size changes on the master.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::pty::{openpty, Winsize};

/// Errors of terminal handling.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// Opening the pty pair failed.
    #[error("open pty (is /dev/pts mounted?)")]
    Open(#[source] nix::Error),
    /// Setting the window size failed.
    #[error("set terminal window size")]
    Resize(#[source] nix::Error),
    /// Setting close-on-exec failed.
    #[error("set close-on-exec on the pty")]
    Cloexec(#[source] nix::Error),
}

/// A pty pair: (master, slave), both close-on-exec.
pub fn open(rows: u16, cols: u16) -> Result<(OwnedFd, OwnedFd), TtyError> {
    let size = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).map_err(TtyError::Open)?;
    for fd in [&pty.master, &pty.slave] {
        let flags = nix::fcntl::FdFlag::FD_CLOEXEC;
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags)).map_err(TtyError::Cloexec)?;
    }
    Ok((pty.master, pty.slave))
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
        let (master, slave) = open(24, 80).unwrap();
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
