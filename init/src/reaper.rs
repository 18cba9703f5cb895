//! The one owner of `waitpid`: reaps every child and orphan and hands exit statuses to
//! whoever waits for them.
//!
//! A PID 1 (or child subreaper) must reap orphans with `waitpid(-1)`, which would steal
//! the statuses of children that other code waits for. So nothing else in the process
//! may wait for children: start processes through [`Reaper::spawn`] or
//! [`Reaper::spawn_with`] and await the returned [`ExitWatch`]. Both hold the reaper's
//! lock while the process starts, so it cannot be reaped before its watch exists.
//!
//! Statuses of processes nobody registered (orphans, or a pid watched too late with
//! [`Reaper::watch`]) are kept for the last [`UNCLAIMED_KEPT`] exits only; registering a
//! pid drops any stale kept status of an earlier process with the same pid.
//!
//! For synchronous code (such as a jail waiting for a helper process from a blocking
//! thread) there is [`Reaper::wait_blocking`].
//!
//! Limitation: do not use `tokio::process` or `std::process::Child::wait` in a process
//! with a running reaper; their children are reaped here and they would see `ECHILD`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// How many statuses of unregistered processes are kept for late watchers.
pub const UNCLAIMED_KEPT: usize = 1024;

/// Errors of the reaper.
#[derive(Debug, Error)]
pub enum ReaperError {
    /// The SIGCHLD handler could not be installed.
    #[error("cannot watch SIGCHLD")]
    Signal(#[source] io::Error),
    /// The process could not be started.
    #[error("cannot start process")]
    Spawn(#[source] io::Error),
    /// The reaper stopped before the process exited.
    #[error("reaper stopped before pid {0} exited")]
    Gone(i32),
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }
}

/// A started process and the future of its exit.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    pub exit: ExitWatch,
}

/// Resolves to the exit status of one process.
#[derive(Debug)]
pub struct ExitWatch {
    pid: i32,
    rx: oneshot::Receiver<ExitStatus>,
}

impl ExitWatch {
    /// The process watched.
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Future for ExitWatch {
    type Output = Result<ExitStatus, ReaperError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pid = self.pid;
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| ReaperError::Gone(pid)))
    }
}

#[derive(Default)]
struct Table {
    waiters: HashMap<i32, Vec<oneshot::Sender<ExitStatus>>>,
    unclaimed: VecDeque<(i32, ExitStatus)>,
}

/// Reaps children and delivers their statuses; cheap to clone.
#[derive(Clone, Default)]
pub struct Reaper {
    table: Arc<Mutex<Table>>,
}

impl Reaper {
    /// A reaper that reaps only when [`Reaper::reap`] is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts reaping on every SIGCHLD in a task of the current tokio runtime.
    pub fn start(&self) -> Result<(), ReaperError> {
        let mut sigchld = signal(SignalKind::child()).map_err(ReaperError::Signal)?;
        let reaper = self.clone();
        reaper.reap();
        tokio::spawn(async move {
            while sigchld.recv().await.is_some() {
                reaper.reap();
            }
        });
        Ok(())
    }

    /// Starts `command` and registers it before it can be reaped.
    pub fn spawn(&self, command: &mut Command) -> Result<Spawned, ReaperError> {
        let mut table = self.lock();
        let mut child = command.spawn().map_err(ReaperError::Spawn)?;
        let pid = child.id() as i32;
        let exit = Self::register(&mut table, pid);
        Ok(Spawned {
            pid,
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            exit,
        })
    }

    /// Runs `start`, which starts a process some other way and returns its pid, and
    /// registers that pid before it can be reaped.
    pub fn spawn_with(
        &self,
        start: impl FnOnce() -> io::Result<i32>,
    ) -> Result<ExitWatch, ReaperError> {
        let mut table = self.lock();
        let pid = start().map_err(ReaperError::Spawn)?;
        Ok(Self::register(&mut table, pid))
    }

    /// Watches a process started without the reaper's lock. If it was already reaped,
    /// the watch resolves from the recent unclaimed statuses, if still kept there.
    pub fn watch(&self, pid: i32) -> ExitWatch {
        let mut table = self.lock();
        if let Some(i) = table.unclaimed.iter().position(|(p, _)| *p == pid) {
            let (tx, rx) = oneshot::channel();
            if let Some((_, status)) = table.unclaimed.remove(i) {
                let _ = tx.send(status);
            }
            return ExitWatch { pid, rx };
        }
        Self::register(&mut table, pid)
    }

    /// Blocks the calling thread until `pid` exits, like [`Reaper::watch`]. Must not be
    /// called from the runtime's own thread (the reaper task would never run).
    pub fn wait_blocking(&self, pid: i32) -> Result<ExitStatus, ReaperError> {
        let watch = self.watch(pid);
        watch.rx.blocking_recv().map_err(|_| ReaperError::Gone(pid))
    }

    /// Reaps every child that has exited and delivers the statuses. Returns how many.
    pub fn reap(&self) -> usize {
        let mut table = self.lock();
        let mut count = 0;
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    deliver(&mut table, pid.as_raw(), ExitStatus::Exited(code));
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    deliver(&mut table, pid.as_raw(), ExitStatus::Signaled(sig as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    break;
                }
            }
            count += 1;
        }
        count
    }

    fn register(table: &mut Table, pid: i32) -> ExitWatch {
        table.unclaimed.retain(|(p, _)| *p != pid);
        let (tx, rx) = oneshot::channel();
        table.waiters.entry(pid).or_default().push(tx);
        ExitWatch { pid, rx }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn deliver(table: &mut Table, pid: i32, status: ExitStatus) {
    let waiters = table.waiters.remove(&pid).unwrap_or_default();
    // Every waiter gets the status; count the ones still listening.
    let listening = waiters
        .into_iter()
        .filter_map(|tx| tx.send(status).ok())
        .count();
    let delivered = listening > 0;
    if delivered {
        return;
    }
    tracing::debug!(pid, code = status.code(), "reaped unclaimed process");
    if table.unclaimed.len() == UNCLAIMED_KEPT {
        table.unclaimed.pop_front();
    }
    table.unclaimed.push_back((pid, status));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    /// Reapers in one process reap each other's children: tests take turns.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script).stdin(Stdio::null());
        c
    }

    #[tokio::test(flavor = "current_thread")]
    async fn delivers_exit_codes_and_signals() {
        let _turn = SERIAL.lock().await;
        let reaper = Reaper::new();
        reaper.start().unwrap();
        let a = reaper.spawn(&mut sh("exit 7")).unwrap();
        let b = reaper.spawn(&mut sh("kill -9 $$")).unwrap();
        assert_eq!(a.exit.await.unwrap(), ExitStatus::Exited(7));
        let b = b.exit.await.unwrap();
        assert_eq!(b, ExitStatus::Signaled(9));
        assert_eq!(b.code(), 137);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn spawn_with_registers_before_reaping() {
        let _turn = SERIAL.lock().await;
        let reaper = Reaper::new();
        reaper.start().unwrap();
        let watch = reaper
            .spawn_with(|| {
                let child = sh("exit 3").spawn()?;
                // The child may exit now; the reaper cannot take it before registration.
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(child.id() as i32)
            })
            .unwrap();
        assert_eq!(watch.await.unwrap(), ExitStatus::Exited(3));
    }

    #[tokio::test(flavor = "current_thread")]
    #[allow(clippy::zombie_processes)] // the reaper, not the Child, waits for it
    async fn late_watch_finds_an_unclaimed_status() {
        let _turn = SERIAL.lock().await;
        let reaper = Reaper::new();
        let child = sh("exit 5").spawn().unwrap();
        let pid = child.id() as i32;
        while reaper.reap() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(reaper.watch(pid).await.unwrap(), ExitStatus::Exited(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    #[allow(clippy::zombie_processes)] // the reaper, not the Child, waits for it
    async fn blocking_wait_from_another_thread() {
        let _turn = SERIAL.lock().await;
        let reaper = Reaper::new();
        reaper.start().unwrap();
        // Started without the reaper: it may be reaped before or after the watch.
        let pid = sh("exit 9").spawn().unwrap().id() as i32;
        let r = reaper.clone();
        let status = tokio::task::spawn_blocking(move || r.wait_blocking(pid))
            .await
            .unwrap();
        assert_eq!(status.unwrap(), ExitStatus::Exited(9));
    }

    #[test]
    fn spawn_error_names_the_step() {
        let _turn = SERIAL.blocking_lock();
        let reaper = Reaper::new();
        let err = reaper
            .spawn(&mut Command::new("/nonexistent/binary"))
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot start process");
    }
}
