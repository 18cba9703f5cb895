//! One process of a container as the RPCs see it: its buffered output, its stdin, its
//! terminal (for resizes) and its exit status.
//!
//! The exit status comes from the agent's reaper (an async watch registered when the
//! process is recorded) and is published on a `watch` channel, so any number of
//! WaitProcess calls, early or late, get it.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use hull_init::reaper::{ExitStatus, Reaper};
use hull_jail::ProcessStdio;
use tokio::sync::watch;

use super::stdio::{set_pipe_size, Output, Stdin};
use super::ContainerError;

/// A process the agent started in a container: the init process or an exec'd one.
#[derive(Debug)]
pub struct ProcessEntry {
    /// The id the host addresses it by (the container id for the init process).
    pub exec_id: String,
    /// Its pid in the agent's PID namespace.
    pub pid: i32,
    /// The jail's handle of an exec'd process (the init's lives in its container).
    pub exec: Option<Mutex<hull_jail::Process>>,
    stdin: tokio::sync::Mutex<Option<Stdin>>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
    /// A handle on the pty master, for resizes.
    tty: Option<OwnedFd>,
    exit: watch::Receiver<Option<ExitStatus>>,
}

impl ProcessEntry {
    /// Takes over `stdio` (pumping the output right away) and watches `pid` exit.
    pub fn new(
        exec_id: &str,
        pid: i32,
        stdio: &mut ProcessStdio,
        pipe_size: u32,
        reaper: &Reaper,
    ) -> Result<ProcessEntry, ContainerError> {
        let stdio_err = |e| ContainerError::Stdio(exec_id.to_string(), e);
        let (stdin, stdout, stderr, tty) = match stdio.terminal.take() {
            Some(term) => {
                let input = term.try_clone().map_err(stdio_err)?;
                let tty = OwnedFd::from(term.try_clone().map_err(stdio_err)?);
                let stdin = Stdin::new(input, true).map_err(stdio_err)?;
                let stdout = Output::pump(term).map_err(stdio_err)?;
                (Some(stdin), stdout, Output::ended(), Some(tty))
            }
            None => {
                let stdin = stdio
                    .stdin
                    .take()
                    .map(|f| Stdin::new(f, false))
                    .transpose()
                    .map_err(stdio_err)?;
                let stdout = pump(stdio.stdout.take(), pipe_size).map_err(stdio_err)?;
                let stderr = pump(stdio.stderr.take(), pipe_size).map_err(stdio_err)?;
                (stdin, stdout, stderr, None)
            }
        };
        Ok(ProcessEntry {
            exec_id: exec_id.to_string(),
            pid,
            exec: None,
            stdin: tokio::sync::Mutex::new(stdin),
            stdout,
            stderr,
            tty,
            exit: watch_exit(reaper, pid),
        })
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits for the exit. `None` if the reaper stopped first.
    pub async fn wait(&self) -> Option<ExitStatus> {
        let mut rx = self.exit.clone();
        let status = rx.wait_for(Option::is_some).await.ok()?;
        *status
    }

    /// Up to `max` bytes of stdout (or of the terminal); empty at its end.
    pub async fn read_stdout(&self, max: usize) -> Vec<u8> {
        self.stdout.read(max).await
    }

    /// Up to `max` bytes of stderr; empty at its end (at once with a terminal).
    pub async fn read_stderr(&self, max: usize) -> Vec<u8> {
        self.stderr.read(max).await
    }

    /// Writes `data` to stdin; empty data closes it (runtime-rs's end-of-input).
    pub async fn write_stdin(&self, data: &[u8]) -> Result<usize, ContainerError> {
        if data.is_empty() {
            self.close_stdin().await?;
            return Ok(0);
        }
        let stdin = self.stdin.lock().await;
        let stdin = stdin
            .as_ref()
            .ok_or_else(|| ContainerError::StdinClosed(self.exec_id.clone()))?;
        stdin
            .write_all(data)
            .await
            .map_err(|e| self.stdin_error(e))?;
        Ok(data.len())
    }

    /// Closes stdin; closing it again is not an error.
    pub async fn close_stdin(&self) -> Result<(), ContainerError> {
        let stdin = self.stdin.lock().await.take();
        match stdin {
            Some(stdin) => stdin.close().await.map_err(|e| self.stdin_error(e)),
            None => Ok(()),
        }
    }

    fn stdin_error(&self, e: std::io::Error) -> ContainerError {
        if e.raw_os_error() == Some(libc::EPIPE) {
            ContainerError::Exited(self.exec_id.clone())
        } else {
            ContainerError::Stdio(self.exec_id.clone(), e)
        }
    }

    /// Sets the terminal's window size.
    pub fn resize(&self, rows: u32, cols: u32) -> Result<(), ContainerError> {
        let tty = self
            .tty
            .as_ref()
            .ok_or_else(|| ContainerError::NoTerminal(self.exec_id.clone()))?;
        let (Ok(rows), Ok(cols)) = (u16::try_from(rows), u16::try_from(cols)) else {
            return Err(ContainerError::BadWindowSize(rows, cols));
        };
        hull_jail::tty::resize(tty, rows, cols)
            .map_err(|e| ContainerError::Resize(self.exec_id.clone(), e))
    }
}

fn pump(file: Option<File>, pipe_size: u32) -> std::io::Result<Arc<Output>> {
    match file {
        Some(f) => {
            if let Err(e) = set_pipe_size(&f, pipe_size) {
                tracing::warn!(error = %e, pipe_size, "cannot set the container pipe size");
            }
            Output::pump(f)
        }
        None => Ok(Output::ended()),
    }
}

/// Publishes `pid`'s exit status once the reaper has it.
fn watch_exit(reaper: &Reaper, pid: i32) -> watch::Receiver<Option<ExitStatus>> {
    let (tx, rx) = watch::channel(None);
    let exit = reaper.watch(pid);
    tokio::spawn(async move {
        match exit.await {
            Ok(status) => {
                tracing::debug!(pid, code = status.code(), "container process exited");
                let _ = tx.send(Some(status));
            }
            Err(e) => tracing::warn!(pid, error = %e, "lost a container process's exit"),
        }
    });
    rx
}
