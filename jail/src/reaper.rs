//! Exit statuses, and the seam through which the jail waits for its processes.
//!
//! Only one owner may reap children in a process (PID 1 in the guest reaps orphans;
//! a second `waitpid` would race it). The jail therefore never calls `waitpid` itself
//! on the caller's side: it asks a [`Reaper`] supplied by the caller. Tests and tools
//! that own all their children use [`WaitpidReaper`].

use std::io;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited(i32),
    /// A signal with this number killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(sig) => 128 + sig,
        }
    }

    /// Decodes a raw `wait(2)` status.
    pub fn from_raw(status: i32) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }
}

/// Waits for the exit of a child process of the caller.
pub trait Reaper: Send + Sync {
    /// Blocks until `pid` has exited and returns how it ended. The status must be
    /// delivered even when the process ended before this call.
    fn wait(&self, pid: i32) -> io::Result<ExitStatus>;
}

/// A reaper for processes that own all their children: plain `waitpid(pid)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct WaitpidReaper;

impl Reaper for WaitpidReaper {
    fn wait(&self, pid: i32) -> io::Result<ExitStatus> {
        loop {
            match waitpid(Pid::from_raw(pid), None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig as i32)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_shell_convention() {
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::from_raw(7 << 8), ExitStatus::Exited(7));
        assert_eq!(ExitStatus::from_raw(15), ExitStatus::Signaled(15));
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped through the reaper under test
    fn waitpid_reaper_reports_exit_codes() {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let status = WaitpidReaper.wait(child.id() as i32).unwrap();
        assert_eq!(status, ExitStatus::Exited(7));
    }
}
