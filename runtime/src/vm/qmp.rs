//! A small QMP (QEMU Machine Protocol) client: the capabilities handshake,
//! commands one at a time, and the events that say why a guest stopped.
//!
//! Limitations: commands are serialised (one in flight); events other than
//! `SHUTDOWN` and `GUEST_PANICKED` are read and dropped.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch, Mutex};

/// How long a QMP command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a bound QMP socket may refuse connections before QEMU listens.
const LISTEN_WAIT: Duration = Duration::from_secs(2);

/// Errors talking QMP.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be reached.
    #[error("cannot connect to QMP socket {0}")]
    Connect(String, #[source] std::io::Error),
    /// Reading or writing the socket failed.
    #[error("QMP connection failed")]
    Io(#[from] std::io::Error),
    /// QEMU closed the connection.
    #[error("QMP connection closed by QEMU")]
    Closed,
    /// QEMU sent something that is not QMP.
    #[error("unexpected QMP message: {0}")]
    Protocol(String),
    /// QEMU answered a command with an error.
    #[error("QMP command {command} failed: {message}")]
    Command { command: String, message: String },
    /// No answer in time.
    #[error("QMP command {0} timed out")]
    Timeout(String),
}

/// What QEMU reported about the guest stopping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopEvents {
    /// The `reason` of the last `SHUTDOWN` event (`guest-shutdown`,
    /// `guest-reset`, `guest-panic`, `host-qmp-quit`, ...).
    pub shutdown_reason: Option<String>,
    /// Whether a `GUEST_PANICKED` event arrived.
    pub panicked: bool,
}

/// A connected QMP session.
pub struct Qmp {
    writer: Mutex<OwnedWriteHalf>,
    replies: Mutex<mpsc::Receiver<Value>>,
    events: watch::Receiver<StopEvents>,
}

impl Qmp {
    /// Connects to `socket` and negotiates capabilities.
    /// QEMU binds the socket a moment before it listens on it: a refused
    /// connection is retried for up to [`LISTEN_WAIT`].
    pub async fn connect(socket: &Path) -> Result<Arc<Self>, QmpError> {
        let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
        let stream = loop {
            match UnixStream::connect(socket).await {
                Ok(stream) => break stream,
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(QmpError::Connect(socket.display().to_string(), e)),
            }
        };
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = read_message(&mut lines).await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        let (reply_tx, reply_rx) = mpsc::channel(4);
        let (event_tx, event_rx) = watch::channel(StopEvents::default());
        tokio::spawn(dispatch(lines, reply_tx, event_tx));
        let qmp = Arc::new(Self {
            writer: Mutex::new(write),
            replies: Mutex::new(reply_rx),
            events: event_rx,
        });
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let mut replies = self.replies.lock().await;
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.lock().await.write_all(line.as_bytes()).await?;
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, replies.recv())
            .await
            .map_err(|_| QmpError::Timeout(command.to_string()))?
            .ok_or(QmpError::Closed)?;
        reply_value(command, reply)
    }

    /// What QEMU has reported so far about the guest stopping.
    pub fn stop_events(&self) -> StopEvents {
        self.events.borrow().clone()
    }

    /// The run state (`running`, `paused`, `shutdown`, ...).
    pub async fn status(&self) -> Result<String, QmpError> {
        let value = self.execute("query-status", None).await?;
        value["status"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| QmpError::Protocol(value.to_string()))
    }
}

fn reply_value(command: &str, reply: Value) -> Result<Value, QmpError> {
    if let Some(ret) = reply.get("return") {
        return Ok(ret.clone());
    }
    let message = reply["error"]["desc"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| reply.to_string());
    Err(QmpError::Command {
        command: command.to_string(),
        message,
    })
}

type Lines = tokio::io::Lines<BufReader<OwnedReadHalf>>;

async fn read_message(lines: &mut Lines) -> Result<Value, QmpError> {
    let line = lines.next_line().await?.ok_or(QmpError::Closed)?;
    serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line))
}

/// Routes replies to the waiting command and records stop events.
async fn dispatch(
    mut lines: Lines,
    replies: mpsc::Sender<Value>,
    events: watch::Sender<StopEvents>,
) {
    while let Ok(message) = read_message(&mut lines).await {
        match message.get("event").and_then(Value::as_str) {
            Some("SHUTDOWN") => {
                let reason = message["data"]["reason"].as_str().map(str::to_string);
                events.send_modify(|e| e.shutdown_reason = reason);
            }
            Some("GUEST_PANICKED") => events.send_modify(|e| e.panicked = true),
            Some(_) => {}
            None => {
                if replies.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A fake QEMU end: greets, answers each command from `answers`, and sends
    /// `events` after the first command.
    async fn fake_qemu(
        listener: UnixListener,
        answers: Vec<&'static str>,
        events: Vec<&'static str>,
    ) {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(b"{\"QMP\": {\"version\": {}}}\n")
            .await
            .unwrap();
        for (i, answer) in answers.iter().enumerate() {
            lines.next_line().await.unwrap().unwrap();
            if i == 1 {
                for e in &events {
                    write.write_all(format!("{e}\n").as_bytes()).await.unwrap();
                }
            }
            write
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn commands_events_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(fake_qemu(
            listener,
            vec![
                r#"{"return": {}}"#,
                r#"{"return": {"status": "running", "running": true}}"#,
                r#"{"error": {"class": "GenericError", "desc": "no such thing"}}"#,
            ],
            vec![r#"{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}"#],
        ));
        let qmp = Qmp::connect(&path).await.unwrap();
        assert_eq!(qmp.status().await.unwrap(), "running");
        assert_eq!(
            qmp.stop_events().shutdown_reason.as_deref(),
            Some("guest-reset")
        );
        let err = qmp.execute("bogus", None).await.unwrap_err();
        assert_eq!(err.to_string(), "QMP command bogus failed: no such thing");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_socket_is_named() {
        let err = Qmp::connect(Path::new("/nonexistent/qmp.sock"))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/qmp.sock"));
    }
}
