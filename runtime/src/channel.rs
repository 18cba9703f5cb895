//! The host end of the host-guest channel.
//!
//! - Hybrid vsock: a Unix socket exposed by the vsock back end (here
//!   vhost-device-vsock). The host writes `CONNECT <port>\n`, the back end
//!   answers `OK <host port>\n` once a guest process accepts on that port, and
//!   the socket then carries the guest connection. Before the guest listens the
//!   back end closes the socket instead; callers retry.
//! - Kernel vhost-vsock: an `AF_VSOCK` connection to the guest CID.
//! - Serial fallback: the sandbox supervisor's agent socket
//!   ([`RunPaths::agent_mux`]). The virtio-serial port carries a single stream,
//!   which the supervisor holds for the VM's life and shares between its
//!   clients (see `supervisor::mux`); every connection to its socket is a
//!   ttrpc connection of its own, with no handshake. A VM started without a
//!   supervisor (tests, benchmarks) has no agent socket: then QEMU's socket
//!   for the port is used directly.
//!
//! Limitations: the agent must be told to serve on the serial port
//! (`agent.server_addr` on the kernel command line). Without a supervisor,
//! only one connection at a time reaches the agent, and a new one should
//! wait a moment after the last closed (see the agent's `server::serial`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::vm::spec::{ChannelSpec, RunPaths};

/// The longest handshake reply accepted (`OK 4294967295\n` is 14 bytes).
const MAX_REPLY: usize = 64;
/// How long one handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors connecting to the guest.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The socket could not be reached.
    #[error("cannot connect to {}", .0.display())]
    Connect(PathBuf, #[source] std::io::Error),
    /// The back end closed the connection or answered something else than OK:
    /// usually nothing listens on the port in the guest yet.
    #[error("guest port {port} refused the connection{}", reply_suffix(.reply))]
    Refused { port: u32, reply: String },
    /// The handshake did not finish in time.
    #[error("handshake for guest port {0} timed out")]
    Timeout(u32),
    /// Reading or writing failed during the handshake.
    #[error("handshake for guest port {0} failed")]
    Io(u32, #[source] std::io::Error),
    /// Kernel vsock is not reachable through a Unix socket.
    #[error("the kernel vhost-vsock channel has no Unix socket")]
    NotUnix,
}

fn reply_suffix(reply: &str) -> String {
    if reply.is_empty() {
        String::new()
    } else {
        format!(" (back end said {reply:?})")
    }
}

impl ChannelError {
    /// Whether retrying may help (the guest is not listening yet).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ChannelError::Refused { .. } | ChannelError::Timeout(_)
        )
    }
}

/// Connects to guest `port` through the hybrid vsock socket at `socket`.
pub async fn connect_hybrid(socket: &Path, port: u32) -> Result<UnixStream, ChannelError> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|e| ChannelError::Connect(socket.to_path_buf(), e))?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, port))
        .await
        .map_err(|_| ChannelError::Timeout(port))??;
    Ok(stream)
}

async fn handshake(stream: &mut UnixStream, port: u32) -> Result<(), ChannelError> {
    let io_error = |e: std::io::Error| match e.kind() {
        // The back end hangs up when nothing listens on the port.
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
            ChannelError::Refused {
                port,
                reply: String::new(),
            }
        }
        _ => ChannelError::Io(port, e),
    };
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await
        .map_err(io_error)?;
    let reply = read_line(stream).await.map_err(io_error)?;
    if reply.starts_with("OK") {
        return Ok(());
    }
    Err(ChannelError::Refused { port, reply })
}

/// Reads one line byte by byte, so that nothing after it is consumed.
async fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    while line.len() < MAX_REPLY {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

/// The Unix socket through which `channel` reaches the guest, if it has one.
pub fn unix_socket(channel: ChannelSpec, paths: &RunPaths) -> Option<PathBuf> {
    match channel {
        ChannelSpec::HybridVsock { .. } => Some(paths.hybrid_vsock()),
        ChannelSpec::Serial => Some(serial_socket(paths)),
        ChannelSpec::VhostVsock { .. } => None,
    }
}

/// The supervisor's agent socket where there is one, else QEMU's socket for
/// the serial port. The supervisor creates its socket before it records the
/// sandbox as running, so a client of a running sandbox never bypasses it.
fn serial_socket(paths: &RunPaths) -> PathBuf {
    let mux = paths.agent_mux();
    if mux.exists() {
        mux
    } else {
        paths.serial_agent()
    }
}

/// Connects to guest `port` over `channel` and returns a stream (hybrid vsock
/// and serial only; see [`crate::agent`] for kernel vsock).
pub async fn connect_unix(
    channel: ChannelSpec,
    paths: &RunPaths,
    port: u32,
) -> Result<UnixStream, ChannelError> {
    match channel {
        ChannelSpec::HybridVsock { .. } => connect_hybrid(&paths.hybrid_vsock(), port).await,
        ChannelSpec::Serial => {
            let path = serial_socket(paths);
            UnixStream::connect(&path)
                .await
                .map_err(|e| ChannelError::Connect(path, e))
        }
        ChannelSpec::VhostVsock { .. } => Err(ChannelError::NotUnix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::UnixListener;

    /// A fake back end answering each connection with `reply` and then echoing.
    async fn backend(listener: UnixListener, reply: &'static str) {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = tokio::io::BufReader::new(read);
        let mut line = String::new();
        lines.read_line(&mut line).await.unwrap();
        assert_eq!(line, "CONNECT 1024\n");
        write.write_all(reply.as_bytes()).await.unwrap();
        let mut rest = String::new();
        lines.read_line(&mut rest).await.unwrap();
        write.write_all(rest.as_bytes()).await.unwrap();
    }

    #[tokio::test]
    async fn ok_reply_gives_a_clean_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vsock.sock");
        let server = tokio::spawn(backend(
            UnixListener::bind(&path).unwrap(),
            "OK 1073741824\n",
        ));
        let mut stream = connect_hybrid(&path, 1024).await.unwrap();
        stream.write_all(b"ping\n").await.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping\n");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn closed_socket_is_a_retryable_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vsock.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            drop(s);
        });
        let err = connect_hybrid(&path, 1024).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(err.to_string(), "guest port 1024 refused the connection");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn missing_socket_is_not_retryable() {
        let err = connect_hybrid(Path::new("/nonexistent/v.sock"), 1)
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("/nonexistent/v.sock"));
    }

    #[tokio::test]
    async fn serial_goes_through_the_agent_socket_where_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths::new(dir.path());
        let qemu = UnixListener::bind(paths.serial_agent()).unwrap();
        connect_unix(ChannelSpec::Serial, &paths, 1024)
            .await
            .unwrap();
        qemu.accept()
            .await
            .expect("without a supervisor, QEMU's socket");

        let mux = UnixListener::bind(paths.agent_mux()).unwrap();
        connect_unix(ChannelSpec::Serial, &paths, 1024)
            .await
            .unwrap();
        mux.accept().await.expect("the supervisor's agent socket");
        let direct = tokio::time::timeout(Duration::from_millis(50), qemu.accept()).await;
        assert!(direct.is_err(), "QEMU's socket was bypassed");
    }
}
