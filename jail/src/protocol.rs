//! The pipe protocol between the jail (parent) and its re-executed child.
//!
//! The two ends share a Unix stream socket. Every message is one frame: an 8-byte
//! header (body length and number of attached file descriptors, both little-endian
//! `u32`), sent with the descriptors attached as `SCM_RIGHTS`, then a JSON body. The
//! receiver reads the header with `recvmsg`, so descriptors are never dropped by a
//! plain `read`.
//!
//! The conversation, for a container's init process:
//! `Init` → (`UserNsReady` → `UserMapsWritten`) → `Pid` → `PidAck` →
//! `CreateRuntimeHooks` → `HooksDone` → `Ready` → `Start` → end of stream (the child
//! exec'd; the socket is close-on-exec) or `Failed`. For an exec into a running
//! container: `Exec` → `Pid` → `PidAck` → `Ready` → end of stream or `Failed`.
//! Any step may answer `Failed` with the step's name and message instead.
//!
//! Limitation: a body is limited to [`MAX_BODY`] bytes.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::config::{ExecConfig, InitConfig};

/// Largest accepted message body.
pub const MAX_BODY: usize = 16 << 20;
/// Most descriptors one message carries.
pub const MAX_FDS: usize = 4;
const HEADER_LEN: usize = 8;

/// Errors of the parent-child protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket failed.
    #[error("jail socket i/o")]
    Io(#[from] std::io::Error),
    /// The other end closed the socket.
    #[error("jail socket closed by the other end")]
    Closed,
    /// A message did not decode.
    #[error("malformed jail message")]
    Decode(#[from] serde_json::Error),
    /// A frame was larger than allowed or carried too many descriptors.
    #[error("jail message too large ({0} bytes)")]
    TooLarge(usize),
    /// A message other than the expected one arrived.
    #[error("unexpected jail message: expected {expected}, got {got}")]
    Unexpected {
        /// What the protocol expected at this point.
        expected: &'static str,
        /// What arrived instead.
        got: String,
    },
}

/// Messages from the parent to the child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// Set up a container and its init process (stdio descriptors attached).
    Init(Box<InitConfig>),
    /// Start a process in a running container (stdio descriptors attached).
    Exec(Box<ExecConfig>),
    /// The uid/gid maps of the child's new user namespace are written.
    UserMapsWritten,
    /// The parent has recorded the process id; the process may go on.
    PidAck,
    /// The createRuntime hooks ran.
    HooksDone,
    /// Execute the container's process now.
    Start,
}

/// Messages from the child to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// The child unshared a user namespace and waits for its id maps.
    UserNsReady,
    /// The container process, as a process id in the parent's pid namespace.
    Pid(i32),
    /// The namespaces and mounts exist: run the createRuntime hooks now.
    CreateRuntimeHooks,
    /// Everything is set up; the process waits for `Start` (init) or execs (exec).
    Ready,
    /// The terminal's master side (attached), opened in the container's devpts.
    Terminal,
    /// A step failed; the child exits.
    Failed {
        /// The step that failed ("namespaces", "mounts", "seccomp" ...).
        step: String,
        /// What went wrong, with its causes.
        message: String,
    },
}

impl FromChild {
    /// A short name for error messages.
    pub fn name(&self) -> String {
        match self {
            FromChild::Failed { step, message } => format!("failure in {step}: {message}"),
            other => format!("{other:?}"),
        }
    }
}

/// One end of the jail socket.
#[derive(Debug)]
pub struct Channel {
    sock: UnixStream,
}

impl Channel {
    /// A connected pair: (parent end, child end). Both are close-on-exec.
    pub fn pair() -> Result<(Channel, Channel), ProtocolError> {
        let (a, b) = UnixStream::pair()?;
        Ok((Channel { sock: a }, Channel { sock: b }))
    }

    /// Wraps an inherited socket descriptor.
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel {
            sock: UnixStream::from(fd),
        }
    }

    /// The socket, for handing to the child process.
    pub fn into_fd(self) -> OwnedFd {
        OwnedFd::from(self.sock)
    }

    /// Sends one message with `fds` attached.
    pub fn send<T: Serialize>(&mut self, msg: &T, fds: &[RawFd]) -> Result<(), ProtocolError> {
        let body = serde_json::to_vec(msg)?;
        if body.len() > MAX_BODY || fds.len() > MAX_FDS {
            return Err(ProtocolError::TooLarge(body.len()));
        }
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&(fds.len() as u32).to_le_bytes());
        self.send_header(&header, fds)?;
        self.sock.write_all(&body)?;
        Ok(())
    }

    fn send_header(&self, header: &[u8], fds: &[RawFd]) -> Result<(), ProtocolError> {
        let iov = [IoSlice::new(header)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        let sent = sendmsg::<()>(self.sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)
            .map_err(std::io::Error::from)?;
        if sent != header.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        Ok(())
    }

    /// Receives one message and the descriptors attached to it.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<(T, Vec<OwnedFd>), ProtocolError> {
        let (header, fds) = self.recv_header()?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_BODY {
            return Err(ProtocolError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        self.sock.read_exact(&mut body).map_err(eof_to_closed)?;
        Ok((serde_json::from_slice(&body)?, fds))
    }

    fn recv_header(&self) -> Result<([u8; HEADER_LEN], Vec<OwnedFd>), ProtocolError> {
        let mut header = [0u8; HEADER_LEN];
        let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut fds = Vec::new();
        let received = {
            let mut iov = [IoSliceMut::new(&mut header)];
            let msg = recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_buf),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    // SAFETY: the kernel installed these descriptors in this process
                    // for this message; nothing else owns them.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            msg.bytes
        };
        if received == 0 {
            return Err(ProtocolError::Closed);
        }
        if received < HEADER_LEN {
            self.read_rest(&mut header[received..])?;
        }
        Ok((header, fds))
    }

    fn read_rest(&self, buf: &mut [u8]) -> Result<(), ProtocolError> {
        (&self.sock).read_exact(buf).map_err(eof_to_closed)
    }

    /// Receives the next message, treating a closed socket as `None`.
    pub fn recv_or_eof<T: DeserializeOwned>(
        &mut self,
    ) -> Result<Option<(T, Vec<OwnedFd>)>, ProtocolError> {
        match self.recv() {
            Ok(m) => Ok(Some(m)),
            Err(ProtocolError::Closed) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn eof_to_closed(e: std::io::Error) -> ProtocolError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ProtocolError::Closed
    } else {
        ProtocolError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    #[test]
    fn messages_and_descriptors_cross_the_socket() {
        let (mut a, mut b) = Channel::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello").unwrap();
        a.send(&FromChild::Pid(42), &[file.as_raw_fd()]).unwrap();
        a.send(&FromChild::Ready, &[]).unwrap();

        let (msg, fds): (FromChild, _) = b.recv().unwrap();
        assert!(matches!(msg, FromChild::Pid(42)));
        assert_eq!(fds.len(), 1);
        let mut got = std::fs::File::from(fds.into_iter().next().unwrap());
        got.rewind().unwrap();
        let mut text = String::new();
        got.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");

        let (msg, fds): (FromChild, _) = b.recv().unwrap();
        assert!(matches!(msg, FromChild::Ready));
        assert!(fds.is_empty());
    }

    #[test]
    fn closed_socket_reads_as_closed() {
        let (a, mut b) = Channel::pair().unwrap();
        drop(a);
        assert!(matches!(b.recv::<FromChild>(), Err(ProtocolError::Closed)));
        assert!(b.recv_or_eof::<FromChild>().unwrap().is_none());
    }

    #[test]
    fn oversized_header_is_refused() {
        let (a, mut b) = Channel::pair().unwrap();
        let mut raw = a.sock;
        raw.write_all(&(u32::MAX).to_le_bytes()).unwrap();
        raw.write_all(&0u32.to_le_bytes()).unwrap();
        assert!(matches!(
            b.recv::<FromChild>(),
            Err(ProtocolError::TooLarge(_))
        ));
    }
}
