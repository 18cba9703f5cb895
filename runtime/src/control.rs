//! The supervisor's control protocol: JSON lines over the Unix socket
//! `<state>/control.sock`, one request per line, one reply line per request.
//!
//! `wait` and `hold` are answered only when the VM ends, with why it ended;
//! closing a `hold` connection early stops the sandbox (the owner of a `--rm`
//! sandbox holds it, so the sandbox never outlives its owner). In the same way,
//! a container shared with `owned` is removed when the connection that shared
//! it closes (the owner of a `--rm` container in a running sandbox).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// A request to the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// The VM's run state.
    Status,
    /// Answer when the VM ends.
    Wait,
    /// Answer when the VM ends; stop the VM if this connection closes first.
    Hold,
    /// Stop the VM (asking the guest to power off first) and answer when it
    /// has ended.
    Stop,
    /// Record a container (its id must be unused) and bind-mount its root
    /// filesystem into the shared directory.
    Share {
        /// The container id.
        container: String,
        /// The host directory.
        rootfs: PathBuf,
        /// Remove the container when this connection closes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        owned: bool,
    },
    /// Undo [`Request::Share`]: unmount the root filesystem, forget the record.
    Unshare {
        /// The container id.
        container: String,
    },
    /// Remove a container: RemoveContainer in the guest, then unshare it.
    Remove {
        /// The container id.
        container: String,
    },
}

/// The supervisor's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    /// Whether the request succeeded.
    pub ok: bool,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// QEMU's run state (`status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why the VM ended, with the console tail (`wait`, `hold`, `stop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    /// Where the guest sees a shared root filesystem (`share`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_path: Option<String>,
}

impl Reply {
    /// A failure reply.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            ..Self::default()
        }
    }
}

/// Errors talking to a supervisor.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be reached (the supervisor is gone).
    #[error("cannot reach the sandbox supervisor at {}", .0.display())]
    Connect(PathBuf, #[source] std::io::Error),
    /// The connection failed.
    #[error("sandbox supervisor connection failed")]
    Io(#[from] std::io::Error),
    /// The supervisor hung up without answering.
    #[error("the sandbox supervisor exited without answering")]
    Closed,
    /// The supervisor answered something unreadable.
    #[error("unreadable reply from the sandbox supervisor")]
    Parse(#[from] serde_json::Error),
    /// The supervisor refused the request.
    #[error("{0}")]
    Refused(String),
}

/// A connection to a supervisor.
pub struct ControlClient {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl ControlClient {
    /// Connects to the control socket at `socket`.
    pub async fn connect(socket: &Path) -> Result<Self, ControlError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| ControlError::Connect(socket.to_path_buf(), e))?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            lines: BufReader::new(read).lines(),
            writer,
        })
    }

    /// Sends `request` and waits for its reply; a refusal becomes an error.
    pub async fn call(&mut self, request: &Request) -> Result<Reply, ControlError> {
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        let answer = self.lines.next_line().await?.ok_or(ControlError::Closed)?;
        let reply: Reply = serde_json::from_str(&answer)?;
        if !reply.ok {
            return Err(ControlError::Refused(reply.error.unwrap_or_default()));
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        let share = Request::Share {
            container: "c1".into(),
            rootfs: "/srv/rootfs".into(),
            owned: false,
        };
        let text = serde_json::to_string(&share).unwrap();
        assert_eq!(
            text,
            r#"{"op":"share","container":"c1","rootfs":"/srv/rootfs"}"#
        );
        let owned = r#"{"op":"share","container":"c1","rootfs":"/r","owned":true}"#;
        assert!(matches!(
            serde_json::from_str::<Request>(owned).unwrap(),
            Request::Share { owned: true, .. }
        ));
        assert_eq!(
            serde_json::to_string(&Request::Remove {
                container: "c1".into()
            })
            .unwrap(),
            r#"{"op":"remove","container":"c1"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"hold"}"#).unwrap(),
            Request::Hold
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
    }

    #[test]
    fn replies_omit_empty_fields() {
        let text = serde_json::to_string(&Reply::error("no")).unwrap();
        assert_eq!(text, r#"{"ok":false,"error":"no"}"#);
    }
}
