//! Child processes of a VM (QEMU and its helper daemons): started so that they die
//! with their parent, and waited for.
//!
//! Limitation: the parent-death signal is tied to the thread that spawned the
//! child, so VMs must be started from a thread that lives as long as they do (the
//! runtime uses current-thread tokio runtimes for this reason).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Errors starting a child process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("cannot start {}", .0.display())]
    Spawn(PathBuf, #[source] std::io::Error),
    /// Its log file could not be opened.
    #[error("cannot open log file {}", .0.display())]
    Log(PathBuf, #[source] std::io::Error),
    /// It exited before its socket appeared.
    #[error("{name} exited ({status}) before creating {}", .socket.display())]
    ExitedEarly {
        name: String,
        status: String,
        socket: PathBuf,
    },
    /// Its socket did not appear in time.
    #[error("{name} did not create {} within {timeout:?}", .socket.display())]
    NoSocket {
        name: String,
        socket: PathBuf,
        timeout: Duration,
    },
}

/// How often to look for a socket a child is about to create.
const POLL: Duration = Duration::from_millis(10);

/// Starts `program` with `args`, stdin closed and stdout/stderr appended to `log`,
/// killed when dropped or when this thread exits.
pub fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Child, ProcessError> {
    let out = open_log(log)?;
    let err = out
        .try_clone()
        .map_err(|e| ProcessError::Log(log.to_path_buf(), e))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| ProcessError::Spawn(program.to_path_buf(), e))
}

fn open_log(log: &Path) -> Result<File, ProcessError> {
    File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| ProcessError::Log(log.to_path_buf(), e))
}

/// Waits until `socket` exists, failing if `child` exits first or `timeout` passes.
pub async fn wait_for_socket(
    child: &mut Child,
    name: &str,
    socket: &Path,
    timeout: Duration,
) -> Result<(), ProcessError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if socket.exists() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ProcessError::ExitedEarly {
                name: name.to_string(),
                status: status.to_string(),
                socket: socket.to_path_buf(),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProcessError::NoSocket {
                name: name.to_string(),
                socket: socket.to_path_buf(),
                timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Finds a helper program: in `PATH`, then in `~/.cargo/bin` (where
/// `cargo install` puts vhost-device-vsock and virtiofsd).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.push(PathBuf::from("/usr/libexec"));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn early_exit_is_reported_with_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let args = vec!["-c".to_string(), "exit 3".to_string()];
        let mut child = spawn(Path::new("/bin/sh"), &args, &dir.path().join("log")).unwrap();
        let sock = dir.path().join("never.sock");
        let err = wait_for_socket(&mut child, "sh", &sock, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }

    #[tokio::test]
    async fn output_goes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let args = vec!["-c".to_string(), "echo out; echo err >&2".to_string()];
        let mut child = spawn(Path::new("/bin/sh"), &args, &log).unwrap();
        child.wait().await.unwrap();
        assert_eq!(std::fs::read_to_string(log).unwrap(), "out\nerr\n");
    }

    #[test]
    fn sh_is_found_and_nonsense_is_not() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-hull-program").is_none());
    }
}
