//! The agent API over a virtio-serial port, for machines and hosts without vsock.
//!
//! A virtio-serial port is a character device carrying one byte stream: there is no
//! `accept()`. The agent bridges it to the ordinary ttrpc server instead: whenever a
//! host end is connected to the port, a fresh in-memory connection is handed to the
//! server through a [`Listener`] fed by a channel, and bytes are copied between the
//! port and that connection until either side ends. The server code is the same as
//! for vsock, and a host end that goes away and comes back gets a clean ttrpc session.
//!
//! What the port does (Linux `virtio_console`): while no host end is connected (QEMU's
//! chardev has no client), `poll()` reports `POLLHUP`, `read()` returns 0 once the
//! buffered data is drained, and `write()` would block. A host end connecting raises no
//! event the agent can wait on, so it is polled for every [`HOST_POLL`]. Without udev
//! there is no `/dev/virtio-ports/<name>` link: the port is found by its name under
//! `/sys/class/virtio-ports`, and waited for if the device is not there yet.
//!
//! Limitations: one host connection at a time (the host runtime multiplexes its
//! clients onto it). If the host end closes and reconnects before the agent saw the
//! hang-up, the old session goes on with the new host's bytes, so a frame the old host
//! left half-written corrupts the stream; the host waits a moment before reconnecting.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hull_protocols::ttrpc::r#async::transport::Listener;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::fd_stream::FdStream;

/// How often the agent looks for a host end while none is connected.
pub const HOST_POLL: Duration = Duration::from_millis(100);
/// How often the agent looks for the port device while it is missing.
const PORT_POLL: Duration = Duration::from_millis(100);
/// Buffer of the in-memory connection between the bridge and the server.
const SESSION_BUFFER: usize = 64 * 1024;
/// Bytes moved per read.
const COPY_CHUNK: usize = 16 * 1024;
/// Where udev would link named ports.
const VIRTIO_PORTS_DIR: &str = "/dev/virtio-ports";

/// Errors of the serial bridge.
#[derive(Debug, Error)]
pub enum SerialError {
    /// The port device could not be opened.
    #[error("cannot open serial port {}", .0.display())]
    Open(PathBuf, #[source] io::Error),
    /// The port could not be polled or registered with the runtime.
    #[error("cannot watch serial port {}", .0.display())]
    Watch(PathBuf, #[source] io::Error),
}

/// Where the bridge looks for its port.
#[derive(Debug, Clone)]
pub struct PortLocation {
    /// The configured path (`/dev/virtio-ports/<name>` or a device node).
    pub path: PathBuf,
    /// The guest's `/sys`.
    pub sysfs: PathBuf,
    /// The guest's `/dev`.
    pub dev: PathBuf,
}

/// The listener handed to the ttrpc server, and the sender that feeds it one
/// connection per host session.
pub fn listener() -> (Listener, mpsc::Sender<DuplexStream>) {
    let (tx, rx) = mpsc::channel(1);
    let sessions = Sessions {
        next: rx,
        _open: tx.clone(),
    };
    (Listener::new(sessions), tx)
}

/// Connections for the server, one per host session. The stream never ends on its
/// own (it holds a sender itself): the ttrpc server expects its listener to run
/// until the server shuts it down, also after a bridge that failed.
struct Sessions {
    next: mpsc::Receiver<DuplexStream>,
    _open: mpsc::Sender<DuplexStream>,
}

impl futures_core::Stream for Sessions {
    type Item = io::Result<DuplexStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.next.poll_recv(cx).map(|next| next.map(Ok))
    }
}

/// Waits for the port, then bridges host sessions to the server until the server
/// stops taking connections.
pub async fn bridge(
    location: PortLocation,
    sessions: mpsc::Sender<DuplexStream>,
) -> Result<(), SerialError> {
    let port = SerialPort::open_when_present(&location).await?;
    tracing::info!(path = %port.path.display(), "serial port open");
    serve_sessions(port, sessions).await
}

/// The device end of a host link: waits until a host end is connected and gives a
/// stream for the length of that connection.
trait HostLink {
    type Stream: AsyncRead + AsyncWrite + Unpin;

    /// Waits for a host end and returns the stream to it.
    async fn connected(&mut self) -> Result<Self::Stream, SerialError>;

    /// Takes the stream back once the session ended.
    fn release(&mut self, stream: Self::Stream);
}

/// One session after another: each connected host end gets a new server connection.
async fn serve_sessions<L: HostLink>(
    mut link: L,
    sessions: mpsc::Sender<DuplexStream>,
) -> Result<(), SerialError> {
    loop {
        let mut stream = link.connected().await?;
        let (ours, theirs) = tokio::io::duplex(SESSION_BUFFER);
        if sessions.send(theirs).await.is_err() {
            return Ok(()); // The server stopped.
        }
        tracing::info!("serial session started");
        let end = pump(&mut stream, ours).await;
        tracing::info!(end = %end, "serial session ended");
        link.release(stream);
    }
}

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// The host end closed.
    HostGone,
    /// The server closed its connection.
    ServerClosed,
    /// Reading or writing the port failed.
    PortFailed(io::Error),
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::HostGone => write!(f, "host end closed"),
            SessionEnd::ServerClosed => write!(f, "server closed the connection"),
            SessionEnd::PortFailed(e) => write!(f, "port failed: {e}"),
        }
    }
}

/// Copies both ways between the port and the server connection until one ends.
/// The two directions run independently, so a host that does not read cannot stop
/// its requests from reaching the server.
async fn pump<S: AsyncRead + AsyncWrite + Unpin>(port: &mut S, conn: DuplexStream) -> SessionEnd {
    let (mut port_rx, mut port_tx) = tokio::io::split(port);
    let (mut conn_rx, mut conn_tx) = tokio::io::split(conn);
    let to_server = async {
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let n = match port_rx.read(&mut buf).await {
                Ok(0) => return SessionEnd::HostGone,
                Ok(n) => n,
                Err(e) => return SessionEnd::PortFailed(e),
            };
            if conn_tx.write_all(&buf[..n]).await.is_err() {
                return SessionEnd::ServerClosed;
            }
        }
    };
    let to_host = async {
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let n = match conn_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return SessionEnd::ServerClosed,
                Ok(n) => n,
            };
            if let Err(e) = port_tx.write_all(&buf[..n]).await {
                return SessionEnd::PortFailed(e);
            }
        }
    };
    tokio::select! {
        end = to_server => end,
        end = to_host => end,
    }
}

/// The port device, open for the agent's whole life (reopening it would tell the
/// host end that the guest closed it).
struct SerialPort {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

impl SerialPort {
    /// Opens the port once it exists.
    async fn open_when_present(location: &PortLocation) -> Result<Self, SerialError> {
        let mut waiting = false;
        let path = loop {
            if let Some(path) = locate(location) {
                break path;
            }
            if !waiting {
                tracing::info!(path = %location.path.display(), "waiting for the serial port");
                waiting = true;
            }
            tokio::time::sleep(PORT_POLL).await;
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| SerialError::Open(path.clone(), e))?;
        Ok(Self {
            path,
            fd: Some(file.into()),
        })
    }

    fn watch_error(&self, e: impl Into<io::Error>) -> SerialError {
        SerialError::Watch(self.path.clone(), e.into())
    }
}

impl HostLink for SerialPort {
    type Stream = FdStream;

    async fn connected(&mut self) -> Result<FdStream, SerialError> {
        let fd = self
            .fd
            .take()
            .ok_or_else(|| self.watch_error(io::Error::other("port already in a session")))?;
        loop {
            match host_connected(&fd) {
                Ok(true) => break,
                Ok(false) => tokio::time::sleep(HOST_POLL).await,
                Err(e) => {
                    self.fd = Some(fd);
                    return Err(self.watch_error(e));
                }
            }
        }
        FdStream::new(fd).map_err(|(fd, error)| {
            self.fd = Some(fd);
            self.watch_error(error)
        })
    }

    fn release(&mut self, stream: FdStream) {
        self.fd = Some(stream.into_inner());
    }
}

/// Whether a host end is connected: the port reports `POLLHUP` while none is.
fn host_connected(fd: &OwnedFd) -> io::Result<bool> {
    let mut fds = [PollFd::new(
        fd.as_fd(),
        PollFlags::POLLIN | PollFlags::POLLOUT,
    )];
    poll(&mut fds, PollTimeout::ZERO)?;
    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
    if revents.contains(PollFlags::POLLNVAL) || revents.contains(PollFlags::POLLERR) {
        return Err(io::Error::other("port reports an error"));
    }
    Ok(!revents.contains(PollFlags::POLLHUP))
}

/// The device node for `location`: the configured path if it exists, else the
/// `vportNpM` node whose sysfs name matches `/dev/virtio-ports/<name>`.
fn locate(location: &PortLocation) -> Option<PathBuf> {
    if location.path.exists() {
        return Some(location.path.clone());
    }
    let name = location
        .path
        .strip_prefix(VIRTIO_PORTS_DIR)
        .ok()?
        .to_str()?;
    let ports = location.sysfs.join("class/virtio-ports");
    std::fs::read_dir(ports)
        .ok()?
        .flatten()
        .find(|entry| {
            std::fs::read_to_string(entry.path().join("name"))
                .is_ok_and(|found| found.trim_end() == name)
        })
        .map(|entry| location.dev.join(entry.file_name()))
        .filter(|node| node.exists())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use hull_protocols::health::{health_check_response::ServingStatus, CheckRequest};
    use hull_protocols::health_ttrpc::{create_health, HealthClient};
    use hull_protocols::ttrpc::{self, context, r#async::Client, r#async::Server};

    use super::*;
    use crate::rpc::health::HealthRpc;

    /// Host ends handed over by the test, one per session.
    struct FakeLink(mpsc::Receiver<DuplexStream>);

    impl HostLink for FakeLink {
        type Stream = DuplexStream;

        async fn connected(&mut self) -> Result<DuplexStream, SerialError> {
            self.0
                .recv()
                .await
                .ok_or_else(|| SerialError::Watch("fake".into(), io::Error::other("no more hosts")))
        }

        fn release(&mut self, _stream: DuplexStream) {}
    }

    async fn check(host: DuplexStream) -> ServingStatus {
        let client = HealthClient::new(Client::new(ttrpc::r#async::transport::Socket::new(host)));
        let reply = client
            .check(context::with_timeout(5_000_000_000), &CheckRequest::new())
            .await
            .unwrap();
        reply.status.enum_value().unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_host_connection_gets_a_fresh_session() {
        let (listener, sessions) = listener();
        let mut server = Server::new()
            .add_listener(listener)
            .register_service(create_health(Arc::new(HealthRpc)));
        server.start().await.unwrap();
        let (hosts_tx, hosts_rx) = mpsc::channel(1);
        let bridge = tokio::spawn(serve_sessions(FakeLink(hosts_rx), sessions));

        // A first host: a call, then it goes away in the middle of a frame.
        let (host, device) = tokio::io::duplex(4096);
        hosts_tx.send(device).await.unwrap();
        assert_eq!(check(host).await, ServingStatus::SERVING);
        let (mut host, device) = tokio::io::duplex(4096);
        hosts_tx.send(device).await.unwrap();
        host.write_all(&[0, 0, 0, 9, 0, 0]).await.unwrap();
        drop(host);

        // The next host starts clean: the half frame is gone with its session.
        let (host, device) = tokio::io::duplex(4096);
        hosts_tx.send(device).await.unwrap();
        assert_eq!(check(host).await, ServingStatus::SERVING);

        drop(hosts_tx);
        assert!(bridge.await.unwrap().is_err(), "the fake link ran out");
        server.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_bridge_ends_when_the_server_is_gone() {
        let (listener, sessions) = listener();
        drop(listener);
        let (hosts_tx, hosts_rx) = mpsc::channel(1);
        let (_host, device) = tokio::io::duplex(64);
        hosts_tx.send(device).await.unwrap();
        serve_sessions(FakeLink(hosts_rx), sessions).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pump_names_the_side_that_ended() {
        let (mut port, device) = tokio::io::duplex(64);
        let (conn, mut server) = tokio::io::duplex(64);
        let session = tokio::spawn(async move {
            let mut device = device;
            pump(&mut device, conn).await
        });
        port.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        port.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        drop(port);
        assert!(matches!(session.await.unwrap(), SessionEnd::HostGone));

        let (_port, device) = tokio::io::duplex(64);
        let (conn, server) = tokio::io::duplex(64);
        drop(server);
        let mut device = device;
        assert!(matches!(
            pump(&mut device, conn).await,
            SessionEnd::ServerClosed
        ));
    }

    fn fake_sysfs(dir: &Path) -> PortLocation {
        let port = dir.join("sys/class/virtio-ports/vport1p1");
        std::fs::create_dir_all(&port).unwrap();
        std::fs::write(port.join("name"), "agent.channel.0\n").unwrap();
        let other = dir.join("sys/class/virtio-ports/vport1p2");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("name"), "other\n").unwrap();
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        PortLocation {
            path: "/dev/virtio-ports/agent.channel.0".into(),
            sysfs: dir.join("sys"),
            dev: dir.join("dev"),
        }
    }

    #[test]
    fn ports_are_found_by_name_without_udev() {
        let dir = tempfile::tempdir().unwrap();
        let mut location = fake_sysfs(dir.path());
        assert_eq!(locate(&location), None, "no device node yet");
        std::fs::write(dir.path().join("dev/vport1p1"), b"").unwrap();
        assert_eq!(locate(&location), Some(dir.path().join("dev/vport1p1")));

        location.path = "/dev/virtio-ports/missing".into();
        assert_eq!(locate(&location), None);
        location.path = dir.path().join("dev/vport1p1");
        assert_eq!(locate(&location), Some(location.path.clone()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_port_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let location = fake_sysfs(dir.path());
        let node = dir.path().join("dev/vport1p1");
        let open = tokio::spawn(async move { SerialPort::open_when_present(&location).await });
        tokio::time::sleep(PORT_POLL * 2).await;
        assert!(!open.is_finished());
        std::fs::write(&node, b"").unwrap();
        let port = open.await.unwrap().unwrap();
        assert_eq!(port.path, node);
    }
}
