//! Starting the jail's child: re-executing a binary in its child mode with the
//! control socket as stdin, making the container process's stdio, writing user
//! namespace id maps, and the parent's side of the conversation.
//!
//! The child is started with `std::process::Command` (no `pre_exec`), so no Rust
//! code runs between fork and exec in the (multi-threaded) parent. Every process
//! the jail starts is waited for through the caller's [`Reaper`].

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use oci_spec::runtime::{Linux, LinuxIdMapping};

use crate::process::ProcessStdio;
use crate::protocol::{Channel, FromChild, ProtocolError};
use crate::reaper::{ExitStatus, Reaper};
use crate::JailError;

/// How the jail re-executes itself, and where containers' cgroups go.
#[derive(Debug, Clone)]
pub struct JailOptions {
    /// The binary to run in child mode (default `/proc/self/exe`: the agent).
    pub init_exe: PathBuf,
    /// Its arguments (default `["jail-init"]`).
    pub init_args: Vec<String>,
    /// The cgroup under which containers without an absolute `cgroupsPath` go.
    pub cgroup_parent: String,
}

/// The argument that selects the child mode of the agent binary.
pub const CHILD_ARG: &str = "jail-init";

impl Default for JailOptions {
    fn default() -> Self {
        JailOptions {
            init_exe: PathBuf::from("/proc/self/exe"),
            init_args: vec![CHILD_ARG.to_string()],
            cgroup_parent: "hull".to_string(),
        }
    }
}

/// A started jail child and the parent's end of its socket.
pub(crate) struct Child {
    pub id: String,
    pub chan: Channel,
    /// The first child, until it has been reaped.
    pub first: Option<i32>,
    /// The process in the container's namespaces, once reported.
    pub process: Option<i32>,
    /// The terminal's master side, once the child has sent it.
    pub terminal: Option<OwnedFd>,
    /// Its pidfd, opened while it is sure to be alive (it waits for `PidAck`), so a
    /// quick exit and an eager reaper cannot make it unreachable.
    pub pidfd: Option<OwnedFd>,
}

impl Child {
    /// Re-executes the jail binary in child mode.
    pub fn spawn(id: &str, opts: &JailOptions) -> Result<Child, JailError> {
        let (parent, child) = Channel::pair().map_err(|e| protocol(id, e))?;
        let mut cmd = Command::new(&opts.init_exe);
        cmd.args(&opts.init_args)
            .env_clear()
            .stdin(Stdio::from(child.into_fd()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let spawned = cmd.spawn().map_err(|source| JailError::Spawn {
            id: id.to_string(),
            exe: opts.init_exe.clone(),
            source,
        })?;
        // Dropping the command closes our copy of the child's end.
        drop(cmd);
        Ok(Child {
            id: id.to_string(),
            chan: parent,
            first: Some(spawned.id() as i32),
            process: None,
            terminal: None,
            pidfd: None,
        })
    }

    /// The first child's pid.
    pub fn first_pid(&self) -> i32 {
        self.first.unwrap_or_default()
    }

    /// The next message; a reported failure becomes an error. A terminal the
    /// child sends is kept in [`Child::terminal`] and the next message returned.
    pub fn recv(&mut self) -> Result<Option<FromChild>, JailError> {
        loop {
            match self.recv_one()? {
                Some((FromChild::Terminal, fds)) => self.terminal = fds.into_iter().next(),
                other => return Ok(other.map(|(m, _)| m)),
            }
        }
    }

    fn recv_one(&mut self) -> Result<Option<(FromChild, Vec<OwnedFd>)>, JailError> {
        match self.chan.recv_or_eof::<FromChild>() {
            Ok(Some((FromChild::Failed { step, message }, _))) => Err(JailError::Child {
                id: self.id.clone(),
                step,
                message,
            }),
            Ok(Some(msg)) => Ok(Some(msg)),
            Ok(None) => Ok(None),
            Err(e) => Err(protocol(&self.id, e)),
        }
    }

    /// Sends a message.
    pub fn send(&mut self, msg: &crate::protocol::ToChild, fds: &[i32]) -> Result<(), JailError> {
        self.chan.send(msg, fds).map_err(|e| protocol(&self.id, e))
    }

    /// Records the container process's pid and reaps the first child, which exits
    /// right after reporting it.
    pub fn got_pid(&mut self, pid: i32, reaper: &dyn Reaper) -> Result<(), JailError> {
        self.process = Some(pid);
        let pidfd = crate::sys::pidfd_open(pid).map_err(|source| JailError::Wait {
            id: self.id.clone(),
            pid,
            source,
        })?;
        self.pidfd = Some(pidfd);
        let first = self.first.take().unwrap_or_default();
        match wait(&self.id, reaper, first)? {
            ExitStatus::Exited(0) => Ok(()),
            other => Err(JailError::Child {
                id: self.id.clone(),
                step: "fork".into(),
                message: format!("jail child exited with status {}", other.code()),
            }),
        }
    }

    /// After a failure: kills the container process if there is one and reaps
    /// whatever is left, so no zombie stays behind.
    pub fn abandon(&mut self, reaper: &dyn Reaper) {
        if let Some(pid) = self.process.take() {
            // SAFETY: kill takes plain integers; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = reaper.wait(pid);
        }
        if let Some(pid) = self.first.take() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = reaper.wait(pid);
        }
    }
}

pub(crate) fn protocol(id: &str, source: ProtocolError) -> JailError {
    JailError::Protocol {
        id: id.to_string(),
        source,
    }
}

pub(crate) fn wait(id: &str, reaper: &dyn Reaper, pid: i32) -> Result<ExitStatus, JailError> {
    reaper.wait(pid).map_err(|source| JailError::Wait {
        id: id.to_string(),
        pid,
        source,
    })
}

/// Makes the stdio for a container process: the parent's ends, and the child's
/// (three pipe ends; none for a terminal, which the child opens itself).
pub(crate) fn make_stdio(
    id: &str,
    terminal: bool,
) -> Result<(ProcessStdio, Vec<OwnedFd>), JailError> {
    let stdio_err = |source| JailError::Stdio {
        id: id.to_string(),
        source,
    };
    if terminal {
        return Ok((ProcessStdio::default(), Vec::new()));
    }
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| stdio_err(e.into()));
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let parent = ProcessStdio {
        stdin: Some(File::from(in_w)),
        stdout: Some(File::from(out_r)),
        stderr: Some(File::from(err_r)),
        terminal: None,
    };
    Ok((parent, vec![in_r, out_w, err_w]))
}

/// Writes the uid/gid maps of the child's new user namespace.
pub(crate) fn write_id_maps(id: &str, pid: i32, linux: Option<&Linux>) -> Result<(), JailError> {
    let maps = [
        ("uid_map", linux.and_then(|l| l.uid_mappings().as_deref())),
        ("gid_map", linux.and_then(|l| l.gid_mappings().as_deref())),
    ];
    for (file, map) in maps {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, format_map(map.unwrap_or_default())).map_err(|source| {
            JailError::IdMap {
                id: id.to_string(),
                path,
                source,
            }
        })?;
    }
    Ok(())
}

fn format_map(map: &[LinuxIdMapping]) -> String {
    map.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_are_one_line_per_range() {
        let m: Vec<LinuxIdMapping> = serde_json::from_value(serde_json::json!([
            {"containerID": 0, "hostID": 100000, "size": 65536},
            {"containerID": 65536, "hostID": 5000, "size": 1}
        ]))
        .unwrap();
        assert_eq!(format_map(&m), "0 100000 65536\n65536 5000 1\n");
    }
}
