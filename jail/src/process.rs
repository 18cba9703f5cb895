//! A running container process, as the caller sees it: its pid and pidfd, the
//! parent ends of its stdio, window resize, signals, and its exit status.
//!
//! Output is never lost: stdout and stderr are pipes (or the pty master) whose
//! read ends belong to the caller. A pipe reports end-of-file only after every
//! byte written before the last writer closed has been read, however late the
//! reader comes, so a reader that reads to end-of-file gets everything even when
//! the exit status arrived first. On a pty, end-of-file shows as EIO once the
//! buffered output has been read; [`read_to_end`] treats it so.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::reaper::{ExitStatus, Reaper};
use crate::sys;

/// Errors of process handling.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The process has no terminal to resize.
    #[error("process {0} has no terminal")]
    NoTerminal(i32),
    /// The process has already exited and been reaped.
    #[error("process {0} has exited")]
    Exited(i32),
    /// A system call on the process failed.
    #[error("process {pid}: {what}")]
    Sys {
        /// The process.
        pid: i32,
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The window size could not be set.
    #[error("process {0}: resize terminal")]
    Resize(i32, #[source] crate::tty::TtyError),
}

/// The parent ends of a process's stdio.
#[derive(Debug, Default)]
pub struct ProcessStdio {
    /// Write end of stdin (pipes only).
    pub stdin: Option<File>,
    /// Read end of stdout (pipes only).
    pub stdout: Option<File>,
    /// Read end of stderr (pipes only).
    pub stderr: Option<File>,
    /// The pty master (terminal only): stdin and output together.
    pub terminal: Option<File>,
}

/// A process the jail started in a container.
pub struct Process {
    pid: i32,
    pidfd: OwnedFd,
    stdio: ProcessStdio,
    /// A second handle on the pty master, so resizing works after the caller took
    /// the terminal.
    tty_control: Option<OwnedFd>,
    reaper: Arc<dyn Reaper>,
    status: Option<ExitStatus>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish()
    }
}

/// What [`Process::wait_with_output`] collected.
#[derive(Debug)]
pub struct Output {
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything written to stdout (or the terminal).
    pub stdout: Vec<u8>,
    /// Everything written to stderr (empty with a terminal).
    pub stderr: Vec<u8>,
}

impl Process {
    pub(crate) fn new(
        pid: i32,
        pidfd: OwnedFd,
        stdio: ProcessStdio,
        reaper: Arc<dyn Reaper>,
    ) -> io::Result<Process> {
        let tty_control = match &stdio.terminal {
            Some(t) => Some(OwnedFd::from(t.try_clone()?)),
            None => None,
        };
        Ok(Process {
            pid,
            pidfd,
            stdio,
            tty_control,
            reaper,
            status: None,
        })
    }

    /// The process id, in the caller's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A pidfd: readable once the process has exited (it stays a zombie until
    /// [`Process::wait`]).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The stdio ends, for the caller to take.
    pub fn stdio(&mut self) -> &mut ProcessStdio {
        &mut self.stdio
    }

    /// Sends `signal`. Uses the pidfd, so a recycled pid is never hit.
    pub fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        if self.status.is_some() {
            return Err(ProcessError::Exited(self.pid));
        }
        sys::pidfd_send_signal(&self.pidfd, signal).map_err(|source| ProcessError::Sys {
            pid: self.pid,
            what: "send signal",
            source,
        })
    }

    /// Whether the process has a handler for `signal` (SigCgt in its status). A
    /// container's init ignores signals it has no handler for, except SIGKILL and
    /// SIGSTOP; a caller can turn SIGTERM into SIGKILL when this is false.
    pub fn catches(&self, signal: i32) -> Result<bool, ProcessError> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).map_err(|source| ProcessError::Sys {
            pid: self.pid,
            what: "read status",
            source,
        })?;
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0);
        Ok(signal > 0 && signal <= 64 && mask & (1u64 << (signal - 1)) != 0)
    }

    /// Sets the terminal's window size.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), ProcessError> {
        let term = self
            .tty_control
            .as_ref()
            .ok_or(ProcessError::NoTerminal(self.pid))?;
        crate::tty::resize(term, rows, cols).map_err(|e| ProcessError::Resize(self.pid, e))
    }

    /// Waits for the process to exit (through the caller's reaper) and returns how
    /// it ended; later calls return the same status.
    pub fn wait(&mut self) -> Result<ExitStatus, ProcessError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self
            .reaper
            .wait(self.pid)
            .map_err(|source| ProcessError::Sys {
                pid: self.pid,
                what: "wait",
                source,
            })?;
        self.status = Some(status);
        Ok(status)
    }

    /// Records an exit status the caller obtained through its own reaper (for
    /// example an async watch on [`Process::pid`]), so that [`Process::wait`] and
    /// [`crate::Container::destroy`] do not wait for it a second time.
    pub fn record_exit(&mut self, status: ExitStatus) {
        self.status = Some(status);
    }

    /// The exit status, if [`Process::wait`] has returned it.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Closes stdin, reads stdout and stderr to their end (on threads, so neither
    /// pipe fills up), and waits for the exit.
    pub fn wait_with_output(&mut self) -> Result<Output, ProcessError> {
        drop(self.stdio.stdin.take());
        let out = self
            .stdio
            .stdout
            .take()
            .or_else(|| self.stdio.terminal.take());
        let err = self.stdio.stderr.take();
        let reader =
            |f: Option<File>| std::thread::spawn(move || f.map(read_to_end).unwrap_or_default());
        let (out, err) = (reader(out), reader(err));
        let status = self.wait()?;
        let pid = self.pid;
        let sys_err = |what| {
            move |_| ProcessError::Sys {
                pid,
                what,
                source: io::Error::other("reader thread panicked"),
            }
        };
        let stdout = out.join().map_err(sys_err("read stdout"))?;
        let stderr = err.join().map_err(sys_err("read stderr"))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Reads a pipe or pty master to its end; a pty's EIO after its slave closed
/// counts as the end.
pub fn read_to_end(mut f: File) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    out
}
