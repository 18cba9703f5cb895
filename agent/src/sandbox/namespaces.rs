//! The sandbox's shared namespaces: one pid, ipc and uts namespace for all of the
//! sandbox's containers, held by a small pause process.
//!
//! Design: CreateSandbox re-executes the agent in pause mode ([`PAUSE_ARG`]) from the
//! runtime's thread. That process, the holder, asks to be killed when the agent dies,
//! unshares the pid, ipc and uts namespaces, sets the sandbox's hostname in the new uts
//! namespace and forks the pause process: PID 1 of the new pid namespace, which reaps
//! the orphans re-parented to it and otherwise sleeps, and which is killed when the
//! holder dies. The holder reports the pause's pid on stdout and waits for it; killing
//! the pause (DestroySandbox) ends the holder, which the agent's reaper collects.
//!
//! Containers join through `/proc/<pause>/ns/{pid,ipc,uts}`; the pid namespace's
//! identity (device and inode) recorded at start is checked before each use, so a
//! recycled pid is never joined.
//!
//! Limitations: only root can hold the namespaces (an agent that is not root shares
//! none, and cannot create containers anyway); if the pause process dies, the pid
//! namespace dies with every process in it, and later containers are refused.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hull_init::reaper::Reaper;
use hull_protocols::oci_spec::runtime::LinuxNamespaceType;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use thiserror::Error;

/// The argument that selects the agent's pause mode.
pub const PAUSE_ARG: &str = "sandbox-pause";

/// Errors of the shared namespaces.
#[derive(Debug, Error)]
pub enum NamespacesError {
    /// The holder process could not be started.
    #[error("cannot start the sandbox pause process")]
    Spawn(#[source] hull_init::reaper::ReaperError),
    /// The holder failed before reporting the pause process.
    #[error("sandbox pause process failed: {0}")]
    Failed(String),
    /// The pause process's namespaces could not be opened.
    #[error("cannot open the sandbox namespaces of pid {0}")]
    Open(i32, #[source] std::io::Error),
    /// The pause process is gone.
    #[error("the sandbox's shared namespaces are gone (pause process {0} exited)")]
    Gone(i32),
}

/// The running pause process and the namespaces it holds.
#[derive(Debug)]
pub struct SharedNamespaces {
    pause: i32,
    pidfd: OwnedFd,
    /// (device, inode) of its pid namespace.
    identity: (u64, u64),
    hostname: String,
}

impl SharedNamespaces {
    /// Starts the pause process in new pid, ipc and uts namespaces with `hostname`
    /// (empty: the agent's). Call it from the thread that outlives the sandbox (the
    /// runtime's): the holder dies with the thread that started it.
    pub fn start(reaper: &Reaper, hostname: &str) -> Result<SharedNamespaces, NamespacesError> {
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(PAUSE_ARG)
            .arg(hostname)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let spawned = reaper.spawn(&mut cmd).map_err(NamespacesError::Spawn)?;
        let stdout = spawned.stdout.ok_or_else(|| failed("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| failed(&e.to_string()))?;
        let pause = parse_report(&line)?;
        let ns = pause_ns(pause, LinuxNamespaceType::Pid);
        let opened = hull_jail::sys::pidfd_open(pause).and_then(|fd| Ok((fd, identity(&ns)?)));
        let (pidfd, identity) = opened.map_err(|e| NamespacesError::Open(pause, e))?;
        let hostname = match hostname {
            "" => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            h => h.to_string(),
        };
        tracing::info!(pid = pause, "sandbox namespaces held");
        Ok(SharedNamespaces {
            pause,
            pidfd,
            identity,
            hostname,
        })
    }

    /// The path a container joins for namespace `typ` (pid, ipc or uts), after
    /// checking that the pause process still holds it.
    pub fn path(&self, typ: LinuxNamespaceType) -> Result<PathBuf, NamespacesError> {
        let pid_ns = pause_ns(self.pause, LinuxNamespaceType::Pid);
        match identity(&pid_ns) {
            Ok(id) if id == self.identity => Ok(pause_ns(self.pause, typ)),
            _ => Err(NamespacesError::Gone(self.pause)),
        }
    }

    /// The hostname of the shared uts namespace.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }
}

impl Drop for SharedNamespaces {
    /// Kills the pause process, and with it every process in the pid namespace.
    fn drop(&mut self) {
        if let Err(e) = hull_jail::sys::pidfd_send_signal(&self.pidfd, libc::SIGKILL) {
            if e.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!(pid = self.pause, error = %e, "cannot kill the pause process");
            }
        }
    }
}

fn failed(message: &str) -> NamespacesError {
    NamespacesError::Failed(message.to_string())
}

fn pause_ns(pid: i32, typ: LinuxNamespaceType) -> PathBuf {
    let name = hull_jail::child::namespaces::proc_name(typ);
    PathBuf::from(format!("/proc/{pid}/ns/{name}"))
}

fn identity(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// The holder's report: `ok <pid>` or `error <message>`; nothing means it died.
fn parse_report(line: &str) -> Result<i32, NamespacesError> {
    let line = line.trim_end();
    if let Some(pid) = line.strip_prefix("ok ") {
        return match pid.parse() {
            Ok(pid) if pid > 0 => Ok(pid),
            _ => Err(failed(&format!("bad report {line:?}"))),
        };
    }
    match line.strip_prefix("error ") {
        Some(message) => Err(failed(message)),
        None if line.is_empty() => Err(failed("exited without a report")),
        None => Err(failed(&format!("bad report {line:?}"))),
    }
}

/// The pause mode's entry point (the holder): `hostname` is the sandbox's, or empty.
/// Runs single-threaded, before the agent starts anything.
pub fn pause_main(hostname: &str) -> ! {
    let mut out = std::io::stdout();
    let code = match hold(hostname) {
        Ok((pause, ready)) => {
            let _ = writeln!(out, "ok {pause}");
            drop(ready);
            wait_for(pause)
        }
        Err(message) => {
            let _ = writeln!(out, "error {message}");
            1
        }
    };
    std::process::exit(code);
}

/// Sets up the namespaces and forks the pause process; returns its pid once it is
/// sure to die with the holder.
fn hold(hostname: &str) -> Result<(Pid, OwnedFd), String> {
    let agent = nix::unistd::getppid();
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
    if nix::unistd::getppid() != agent {
        return Err("the agent exited".into());
    }
    let flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    unshare(flags).map_err(|e| format!("unshare pid, ipc and uts namespaces: {e}"))?;
    if !hostname.is_empty() {
        nix::unistd::sethostname(hostname).map_err(|e| format!("set hostname: {e}"))?;
    }
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the holder is single-threaded (a fresh exec of the agent that started
    // no thread), so the child may keep running Rust code.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(ready_r);
            pause(ready_w)
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            let mut byte = [0u8; 1];
            match nix::unistd::read(&ready_r, &mut byte) {
                Ok(1) => Ok((child, ready_r)),
                _ => Err("the pause process did not start".into()),
            }
        }
    }
}

/// The holder waits for the pause process and exits with it.
fn wait_for(pause: Pid) -> i32 {
    loop {
        match waitpid(pause, None) {
            Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => return 0,
            Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
            Err(_) => return 1,
        }
    }
}

/// PID 1 of the sandbox's pid namespace: dies with the holder, reaps orphans.
fn pause(ready: OwnedFd) -> ! {
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    let armed = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok()
        && sigchld.thread_block().is_ok()
        && quiet_stdio().is_ok();
    // If the holder already died, nobody reads the pipe and the write fails.
    if !armed || nix::unistd::write(&ready, b"r") != Ok(1) {
        std::process::exit(1);
    }
    drop(ready);
    loop {
        let _ = sigchld.wait();
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
    }
}

fn quiet_stdio() -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        hull_jail::sys::dup2(null.as_raw_fd(), fd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse() {
        assert_eq!(parse_report("ok 42\n").unwrap(), 42);
        for (line, want) in [
            ("error unshare: EPERM\n", "unshare: EPERM"),
            ("", "exited without a report"),
            ("ok -3\n", "bad report \"ok -3\""),
            ("hello\n", "bad report \"hello\""),
        ] {
            match parse_report(line) {
                Err(NamespacesError::Failed(m)) => assert_eq!(m, want),
                other => panic!("{line:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn paths_name_the_pause_process() {
        assert_eq!(
            pause_ns(7, LinuxNamespaceType::Ipc),
            PathBuf::from("/proc/7/ns/ipc")
        );
    }
}
