//! The agent multiplexer of the serial channel: many host ttrpc connections
//! over the one byte stream of the agent's virtio-serial port.
//!
//! The port's host end is QEMU's Unix socket ([`RunPaths::serial_agent`]),
//! which takes a single client. The supervisor connects to it once, for the
//! VM's whole life, and listens on the sandbox's agent socket
//! ([`RunPaths::agent_mux`]) instead: each connection there is a complete
//! ttrpc client connection, as a vsock connection would be.
//!
//! Design: ttrpc frames are a 10-byte header (payload length u32 BE, stream
//! id u32 BE, type u8, flags u8) and the payload. Every client numbers its
//! streams 1, 3, 5..., so the mux gives each stream a fresh odd id on the link
//! and maps the agent's response and data frames back to the client and the
//! id it chose. A stream's mapping goes when its response (or a data frame
//! closing it) passes; a client's go when it closes. Frames for a stream
//! nobody waits for any more are dropped. A malformed frame from a client (a
//! length over ttrpc's 4 MiB limit, an unknown type, a response) closes that
//! client only; a malformed frame from the guest, or the link ending, closes
//! every client and ends the mux, since the stream can no longer be trusted.
//!
//! Limitations: link ids are not reused until 2^31 streams have been opened
//! (they then wrap around, skipping ids still in use). A client that lets
//! [`CLIENT_QUEUE`] frames pile up unread is closed rather than allowed to
//! stall the link for everyone. A stream the agent never answers (its client
//! timed out) keeps its mapping until the client closes. The link is not
//! re-established: QEMU drops it only when it exits. Requests sent before the
//! guest opened the port wait in QEMU's socket; their late answers find no
//! client and are dropped.
//!
//! [`RunPaths::serial_agent`]: crate::vm::spec::RunPaths::serial_agent
//! [`RunPaths::agent_mux`]: crate::vm::spec::RunPaths::agent_mux

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hull_protocols::ttrpc::proto::{
    MessageHeader, FLAG_REMOTE_CLOSED, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX,
    MESSAGE_TYPE_DATA, MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::{JoinHandle, JoinSet};

/// How long QEMU may take to listen on the serial port's socket.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How often the serial port's socket is tried meanwhile.
const CONNECT_RETRY: Duration = Duration::from_millis(50);
/// Frames queued towards the guest, from all clients together.
const LINK_QUEUE: usize = 64;
/// Frames queued towards one client before it counts as not reading.
pub const CLIENT_QUEUE: usize = 64;
/// The pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Errors starting the multiplexer.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The agent socket could not be created.
    #[error("cannot listen on the agent socket {}", .0.display())]
    Bind(PathBuf, #[source] io::Error),
    /// QEMU's socket for the serial port could not be reached.
    #[error("cannot connect to the serial port socket {}", .0.display())]
    Connect(PathBuf, #[source] io::Error),
}

/// What is wrong with a frame, or with reading one.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header announces more than ttrpc allows.
    #[error("frame of {0} bytes is over the ttrpc limit of {MESSAGE_LENGTH_MAX}")]
    TooLong(u32),
    /// The type is not request, response or data.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A client sent a response: clients only make requests.
    #[error("a client sent a response frame")]
    ResponseFromClient,
    /// The stream ended inside a frame, or reading failed.
    #[error("reading a frame failed")]
    Read(#[source] io::Error),
}

/// One ttrpc frame.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    header: MessageHeader,
    payload: Vec<u8>,
}

/// Reads one frame; `None` at a clean end of stream (between frames).
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut raw = [0u8; MESSAGE_HEADER_LENGTH];
    let first = reader.read(&mut raw).await.map_err(FrameError::Read)?;
    if first == 0 {
        return Ok(None);
    }
    reader
        .read_exact(&mut raw[first..])
        .await
        .map_err(FrameError::Read)?;
    let header = MessageHeader::from(raw);
    if header.length as usize > MESSAGE_LENGTH_MAX {
        return Err(FrameError::TooLong(header.length));
    }
    if !matches!(
        header.type_,
        MESSAGE_TYPE_REQUEST | MESSAGE_TYPE_RESPONSE | MESSAGE_TYPE_DATA
    ) {
        return Err(FrameError::UnknownType(header.type_));
    }
    let mut payload = vec![0u8; header.length as usize];
    reader
        .read_exact(&mut payload)
        .await
        .map_err(FrameError::Read)?;
    Ok(Some(Frame { header, payload }))
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &Frame) -> io::Result<()> {
    let mut bytes = Vec::<u8>::from(frame.header);
    bytes.extend_from_slice(&frame.payload);
    writer.write_all(&bytes).await
}

/// A client of the mux, numbered in order of arrival.
type ClientId = u64;

/// Where each stream on the link belongs.
#[derive(Debug)]
struct Routes {
    next_client: ClientId,
    /// The next stream id to hand out on the link (always odd).
    next_stream: u32,
    /// Link stream id to (client, the client's stream id).
    streams: HashMap<u32, (ClientId, u32)>,
    clients: HashMap<ClientId, ClientRoutes>,
}

#[derive(Debug)]
struct ClientRoutes {
    /// Frames for the client.
    tx: mpsc::Sender<Frame>,
    /// The client's stream id to the link stream id.
    streams: HashMap<u32, u32>,
}

impl Default for Routes {
    fn default() -> Self {
        Self {
            next_client: 0,
            next_stream: 1,
            streams: HashMap::new(),
            clients: HashMap::new(),
        }
    }
}

impl Routes {
    fn add_client(&mut self, tx: mpsc::Sender<Frame>) -> ClientId {
        let id = self.next_client;
        self.next_client += 1;
        let streams = HashMap::new();
        self.clients.insert(id, ClientRoutes { tx, streams });
        id
    }

    /// Forgets a client and its streams; drops its frame sender, which ends
    /// its session.
    fn remove_client(&mut self, id: ClientId) {
        if let Some(client) = self.clients.remove(&id) {
            for link_id in client.streams.values() {
                self.streams.remove(link_id);
            }
        }
    }

    /// Rewrites a frame of client `id` for the link; `None`: drop it (data for
    /// a stream that is not open).
    fn outbound(&mut self, id: ClientId, mut frame: Frame) -> Result<Option<Frame>, FrameError> {
        let own = frame.header.stream_id;
        let link_id = match frame.header.type_ {
            MESSAGE_TYPE_REQUEST => self.open_stream(id, own),
            MESSAGE_TYPE_DATA => match self.clients.get(&id).and_then(|c| c.streams.get(&own)) {
                Some(link_id) => *link_id,
                None => return Ok(None),
            },
            _ => return Err(FrameError::ResponseFromClient),
        };
        frame.header.stream_id = link_id;
        Ok(Some(frame))
    }

    /// Maps a new stream `own` of client `id` to a fresh link id.
    fn open_stream(&mut self, id: ClientId, own: u32) -> u32 {
        let link_id = self.fresh_link_id();
        if let Some(client) = self.clients.get_mut(&id) {
            if let Some(old) = client.streams.insert(own, link_id) {
                self.streams.remove(&old);
            }
        }
        self.streams.insert(link_id, (id, own));
        link_id
    }

    fn fresh_link_id(&mut self) -> u32 {
        loop {
            let id = self.next_stream;
            // Odd plus two stays odd, also when it wraps around.
            self.next_stream = self.next_stream.wrapping_add(2);
            if !self.streams.contains_key(&id) {
                return id;
            }
        }
    }

    /// Rewrites a frame from the link for its client; `None` when no client
    /// waits for it. A frame that ends its stream removes the mapping.
    fn inbound(&mut self, mut frame: Frame) -> Option<(ClientId, mpsc::Sender<Frame>, Frame)> {
        let header = frame.header;
        let last = match header.type_ {
            MESSAGE_TYPE_RESPONSE => true,
            MESSAGE_TYPE_DATA => header.flags & FLAG_REMOTE_CLOSED != 0,
            _ => return None, // The agent never makes requests.
        };
        let (id, own) = *self.streams.get(&header.stream_id)?;
        let client = self.clients.get_mut(&id)?;
        if last {
            client.streams.remove(&own);
            self.streams.remove(&header.stream_id);
        }
        frame.header.stream_id = own;
        Some((id, client.tx.clone(), frame))
    }
}

fn lock(routes: &Mutex<Routes>) -> MutexGuard<'_, Routes> {
    routes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the link, and with it the mux, ended.
#[derive(Debug)]
enum LinkEnd {
    /// The guest side closed (QEMU exited).
    Closed,
    /// The guest sent something that is not a ttrpc frame.
    Bad(FrameError),
    /// Writing to the link failed.
    WriteFailed(io::Error),
}

impl fmt::Display for LinkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkEnd::Closed => write!(f, "the serial link closed"),
            LinkEnd::Bad(e) => write!(f, "bad frame from the guest: {}", error_text(e)),
            LinkEnd::WriteFailed(e) => write!(f, "writing to the serial link failed: {e}"),
        }
    }
}

/// Why a client's session ended.
#[derive(Debug)]
enum ClientEnd {
    /// The client closed its connection, or reading or writing it failed.
    Closed,
    /// The client sent a malformed frame.
    Bad(FrameError),
    /// The mux dropped the client: it did not read its replies.
    Dropped,
    /// The link is gone.
    LinkGone,
}

impl fmt::Display for ClientEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEnd::Closed => write!(f, "closed"),
            ClientEnd::Bad(e) => write!(f, "bad frame: {}", error_text(e)),
            ClientEnd::Dropped => write!(f, "did not read its replies"),
            ClientEnd::LinkGone => write!(f, "the serial link is gone"),
        }
    }
}

fn error_text(e: &FrameError) -> String {
    super::error_chain(e)
}

/// The running multiplexer of one sandbox.
pub struct Mux {
    task: JoinHandle<()>,
}

impl Mux {
    /// Listens on the agent socket `socket`, connects to QEMU's socket
    /// `serial` for the port (retrying while QEMU does not listen yet), and
    /// serves clients until the link ends.
    pub fn start(serial: PathBuf, socket: &Path) -> Result<Self, MuxError> {
        let listener =
            UnixListener::bind(socket).map_err(|e| MuxError::Bind(socket.to_path_buf(), e))?;
        let task = tokio::spawn(run(serial, listener));
        Ok(Self { task })
    }

    /// Closes every client and the agent socket.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn run(serial: PathBuf, listener: UnixListener) {
    let link = match connect(&serial).await {
        Ok(link) => link,
        Err(e) => {
            let error = super::error_chain(&e);
            tracing::warn!(%error, "agent socket not served");
            return;
        }
    };
    tracing::debug!(path = %serial.display(), "serial link connected");
    let (clients, arrivals) = mpsc::channel(1);
    let end = tokio::select! {
        end = serve(link, arrivals) => end,
        () = accept(listener, clients) => return,
    };
    tracing::info!(end = %end, "agent clients closed");
}

/// Connects to QEMU's socket for the port, retrying for [`CONNECT_WAIT`].
async fn connect(serial: &Path) -> Result<UnixStream, MuxError> {
    let started = Instant::now();
    loop {
        match UnixStream::connect(serial).await {
            Ok(stream) => return Ok(stream),
            Err(e) if started.elapsed() >= CONNECT_WAIT => {
                return Err(MuxError::Connect(serial.to_path_buf(), e))
            }
            Err(_) => tokio::time::sleep(CONNECT_RETRY).await,
        }
    }
}

/// Hands accepted connections to the mux; returns when it takes no more.
async fn accept(listener: UnixListener, clients: mpsc::Sender<UnixStream>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if clients.send(stream).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept an agent client");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// Serves the clients arriving on `arrivals` over `link` until the link ends;
/// every client is closed then.
async fn serve<L, C>(link: L, mut arrivals: mpsc::Receiver<C>) -> LinkEnd
where
    L: AsyncRead + AsyncWrite + Send + 'static,
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let routes = Arc::new(Mutex::new(Routes::default()));
    let (link_rx, link_tx) = tokio::io::split(link);
    let (to_link, queue) = mpsc::channel(LINK_QUEUE);
    let reader = read_link(link_rx, routes.clone());
    let writer = write_link(link_tx, queue);
    tokio::pin!(reader, writer);
    // Dropping the set when the link ends aborts every session.
    let mut sessions = JoinSet::new();
    let mut accepting = true;
    loop {
        tokio::select! {
            end = &mut reader => return end,
            end = &mut writer => return end,
            client = arrivals.recv(), if accepting => match client {
                Some(conn) => {
                    sessions.spawn(serve_client(conn, routes.clone(), to_link.clone()));
                }
                None => accepting = false,
            },
            Some(_) = sessions.join_next() => {}
        }
    }
}

/// Routes the guest's frames to their clients.
async fn read_link<R: AsyncRead + Unpin>(mut link: R, routes: Arc<Mutex<Routes>>) -> LinkEnd {
    loop {
        let frame = match read_frame(&mut link).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return LinkEnd::Closed,
            Err(FrameError::Read(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return LinkEnd::Closed
            }
            Err(e) => return LinkEnd::Bad(e),
        };
        let Some((id, tx, frame)) = lock(&routes).inbound(frame) else {
            continue;
        };
        if let Err(TrySendError::Full(_)) = tx.try_send(frame) {
            lock(&routes).remove_client(id);
        }
    }
}

/// Writes the clients' frames to the link, in the order they were queued.
async fn write_link<W: AsyncWrite + Unpin>(
    mut link: W,
    mut queue: mpsc::Receiver<Frame>,
) -> LinkEnd {
    while let Some(frame) = queue.recv().await {
        if let Err(e) = write_frame(&mut link, &frame).await {
            return LinkEnd::WriteFailed(e);
        }
    }
    // The mux holds a sender as long as it runs.
    LinkEnd::Closed
}

/// One client's session: its frames go to the link, its replies come back.
async fn serve_client<C>(conn: C, routes: Arc<Mutex<Routes>>, to_link: mpsc::Sender<Frame>)
where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let id = lock(&routes).add_client(tx);
    let (read, write) = tokio::io::split(conn);
    let end = tokio::select! {
        end = client_requests(read, id, &routes, &to_link) => end,
        end = client_replies(write, rx) => end,
    };
    lock(&routes).remove_client(id);
    match end {
        ClientEnd::Closed => tracing::debug!(client = id, "agent client left"),
        end => tracing::warn!(client = id, %end, "agent client closed"),
    }
}

async fn client_requests<R: AsyncRead + Unpin>(
    mut read: R,
    id: ClientId,
    routes: &Mutex<Routes>,
    to_link: &mpsc::Sender<Frame>,
) -> ClientEnd {
    loop {
        let frame = match read_frame(&mut read).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return ClientEnd::Closed,
            Err(FrameError::Read(_)) => return ClientEnd::Closed,
            Err(e) => return ClientEnd::Bad(e),
        };
        let routed = lock(routes).outbound(id, frame);
        match routed {
            Ok(Some(frame)) => {
                if to_link.send(frame).await.is_err() {
                    return ClientEnd::LinkGone;
                }
            }
            Ok(None) => {}
            Err(e) => return ClientEnd::Bad(e),
        }
    }
}

async fn client_replies<W: AsyncWrite + Unpin>(
    mut write: W,
    mut rx: mpsc::Receiver<Frame>,
) -> ClientEnd {
    while let Some(frame) = rx.recv().await {
        if write_frame(&mut write, &frame).await.is_err() {
            return ClientEnd::Closed;
        }
    }
    ClientEnd::Dropped
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use hull_protocols::health::{
        health_check_response::ServingStatus, CheckRequest, HealthCheckResponse,
        VersionCheckResponse,
    };
    use hull_protocols::health_ttrpc::{create_health, Health, HealthClient};
    use hull_protocols::ttrpc::r#async::transport::Socket;
    use hull_protocols::ttrpc::r#async::{Client, Server, TtrpcContext};
    use hull_protocols::ttrpc::{self, context};
    use tokio::io::DuplexStream;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn frame(stream_id: u32, type_: u8, payload: &[u8]) -> Frame {
        let header = MessageHeader {
            length: payload.len() as u32,
            stream_id,
            type_,
            flags: 0,
        };
        Frame {
            header,
            payload: payload.to_vec(),
        }
    }

    fn request(stream_id: u32, payload: &[u8]) -> Frame {
        frame(stream_id, MESSAGE_TYPE_REQUEST, payload)
    }

    fn response(stream_id: u32, payload: &[u8]) -> Frame {
        frame(stream_id, MESSAGE_TYPE_RESPONSE, payload)
    }

    /// A mux over an in-memory link: the test plays the guest.
    struct Harness {
        guest: DuplexStream,
        arrivals: mpsc::Sender<DuplexStream>,
        mux: JoinHandle<LinkEnd>,
    }

    impl Harness {
        fn new() -> Self {
            let (guest, link) = tokio::io::duplex(1 << 16);
            let (arrivals, rx) = mpsc::channel(1);
            let mux = tokio::spawn(serve(link, rx));
            Self {
                guest,
                arrivals,
                mux,
            }
        }

        async fn client(&self) -> DuplexStream {
            let (ours, theirs) = tokio::io::duplex(1 << 16);
            self.arrivals.send(theirs).await.unwrap();
            ours
        }
    }

    async fn send(stream: &mut DuplexStream, frame: &Frame) {
        write_frame(stream, frame).await.unwrap();
    }

    async fn recv(stream: &mut DuplexStream) -> Frame {
        let read = tokio::time::timeout(WAIT, read_frame(stream));
        read.await
            .expect("a frame in time")
            .unwrap()
            .expect("a frame, not the end")
    }

    /// Waits for the end of `stream`, failing on any frame.
    async fn assert_closed(stream: &mut DuplexStream) {
        let read = tokio::time::timeout(WAIT, read_frame(stream));
        match read.await.expect("the end in time") {
            Ok(None) | Err(FrameError::Read(_)) => {}
            Ok(Some(frame)) => panic!("unexpected frame {frame:?}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stream_ids_are_rewritten_and_mapped_back() {
        let mut h = Harness::new();
        let mut a = h.client().await;
        send(&mut a, &request(7, b"one")).await;
        send(&mut a, &request(9, b"three")).await;
        let first = recv(&mut h.guest).await;
        let second = recv(&mut h.guest).await;
        assert_eq!(first.payload, b"one");
        assert_eq!(second.payload, b"three");
        let (one, three) = (first.header.stream_id, second.header.stream_id);
        assert_ne!(one, three);
        assert_ne!((one, three), (7, 9), "the link has its own numbering");
        assert_eq!((one % 2, three % 2), (1, 1), "link ids are odd");

        // Answers in the other order find their way back under the client's ids.
        send(&mut h.guest, &response(three, b"r3")).await;
        send(&mut h.guest, &response(one, b"r1")).await;
        assert_eq!(recv(&mut a).await, response(9, b"r3"));
        assert_eq!(recv(&mut a).await, response(7, b"r1"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn two_clients_using_the_same_ids_are_kept_apart() {
        let mut h = Harness::new();
        let mut a = h.client().await;
        let mut b = h.client().await;
        send(&mut a, &request(1, b"from a")).await;
        send(&mut b, &request(1, b"from b")).await;
        let mut link_ids = HashMap::new();
        for _ in 0..2 {
            let f = recv(&mut h.guest).await;
            link_ids.insert(f.payload.clone(), f.header.stream_id);
        }
        let (to_a, to_b) = (link_ids[&b"from a"[..]], link_ids[&b"from b"[..]]);
        assert_ne!(to_a, to_b);

        // Data on an open stream follows its request's link id.
        send(&mut b, &frame(1, MESSAGE_TYPE_DATA, b"more from b")).await;
        let data = recv(&mut h.guest).await;
        assert_eq!(data.header.stream_id, to_b);
        assert_eq!(data.header.type_, MESSAGE_TYPE_DATA);

        send(&mut h.guest, &response(to_b, b"to b")).await;
        send(&mut h.guest, &response(to_a, b"to a")).await;
        assert_eq!(recv(&mut a).await, response(1, b"to a"));
        assert_eq!(recv(&mut b).await, response(1, b"to b"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn frames_for_a_vanished_client_are_dropped() {
        let mut h = Harness::new();
        let mut a = h.client().await;
        send(&mut a, &request(1, b"a")).await;
        let gone = recv(&mut h.guest).await.header.stream_id;
        drop(a);

        let mut b = h.client().await;
        send(&mut b, &request(1, b"b")).await;
        let alive = recv(&mut h.guest).await.header.stream_id;
        send(&mut h.guest, &response(gone, b"to a")).await;
        send(&mut h.guest, &response(9999, b"to nobody")).await;
        send(&mut h.guest, &response(alive, b"to b")).await;
        assert_eq!(recv(&mut b).await, response(1, b"to b"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_malformed_frame_closes_only_its_client() {
        let mut h = Harness::new();
        let mut big = h.client().await;
        let mut odd = h.client().await;
        let mut b = h.client().await;
        let too_long = MessageHeader {
            length: MESSAGE_LENGTH_MAX as u32 + 1,
            stream_id: 1,
            type_: MESSAGE_TYPE_REQUEST,
            flags: 0,
        };
        big.write_all(&Vec::<u8>::from(too_long)).await.unwrap();
        send(&mut odd, &frame(1, 9, b"")).await;
        assert_closed(&mut big).await;
        assert_closed(&mut odd).await;

        send(&mut b, &request(1, b"b")).await;
        let f = recv(&mut h.guest).await;
        assert_eq!(
            f.payload, b"b",
            "nothing of the bad frames reached the guest"
        );
        send(&mut h.guest, &response(f.header.stream_id, b"to b")).await;
        assert_eq!(recv(&mut b).await, response(1, b"to b"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_end_of_the_link_closes_every_client() {
        let mut h = Harness::new();
        let mut a = h.client().await;
        let mut b = h.client().await;
        send(&mut a, &request(1, b"a")).await;
        send(&mut b, &request(1, b"b")).await;
        recv(&mut h.guest).await;
        recv(&mut h.guest).await;
        drop(h.guest);
        assert_closed(&mut a).await;
        assert_closed(&mut b).await;
        assert!(matches!(h.mux.await.unwrap(), LinkEnd::Closed));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_bad_frame_from_the_guest_ends_the_mux() {
        let mut h = Harness::new();
        let mut a = h.client().await;
        send(&mut a, &request(1, b"a")).await;
        recv(&mut h.guest).await;
        send(&mut h.guest, &frame(1, 7, b"")).await;
        assert_closed(&mut a).await;
        let end = h.mux.await.unwrap();
        assert!(
            matches!(end, LinkEnd::Bad(FrameError::UnknownType(7))),
            "{end}"
        );
    }

    #[test]
    fn a_response_or_closing_data_ends_a_stream() {
        let mut routes = Routes::default();
        let (tx, _rx) = mpsc::channel(1);
        let a = routes.add_client(tx);
        let sent = routes.outbound(a, request(5, b"")).unwrap().unwrap();
        let link_id = sent.header.stream_id;
        assert_eq!(link_id, 1);
        let (to, _, back) = routes.inbound(response(link_id, b"")).unwrap();
        assert_eq!((to, back.header.stream_id), (a, 5));
        assert!(routes.streams.is_empty());
        assert!(routes.inbound(response(link_id, b"")).is_none());
        let data = frame(5, MESSAGE_TYPE_DATA, b"late");
        assert!(
            routes.outbound(a, data).unwrap().is_none(),
            "stream 1 is over"
        );

        let link_id = routes.outbound(a, request(3, b"")).unwrap().unwrap();
        let mut closing = frame(link_id.header.stream_id, MESSAGE_TYPE_DATA, b"");
        closing.header.flags = FLAG_REMOTE_CLOSED;
        assert!(routes.inbound(closing).is_some());
        assert!(routes.streams.is_empty());
        let err = routes.outbound(a, response(5, b"")).unwrap_err();
        assert!(matches!(err, FrameError::ResponseFromClient));
    }

    #[test]
    fn link_ids_stay_odd_and_skip_ids_in_use_when_they_wrap() {
        let mut routes = Routes::default();
        let (tx, _rx) = mpsc::channel(1);
        let a = routes.add_client(tx);
        assert_eq!(routes.open_stream(a, 1), 1);
        routes.next_stream = u32::MAX;
        assert_eq!(routes.open_stream(a, 3), u32::MAX);
        assert_eq!(routes.open_stream(a, 5), 3, "1 is still in use");
        routes.remove_client(a);
        assert!(routes.streams.is_empty());
    }

    /// A health service whose Version echoes the service name asked about.
    struct Echo;

    #[async_trait]
    impl Health for Echo {
        async fn check(
            &self,
            _ctx: &TtrpcContext,
            _req: CheckRequest,
        ) -> ttrpc::Result<HealthCheckResponse> {
            Ok(HealthCheckResponse {
                status: ServingStatus::SERVING.into(),
                ..Default::default()
            })
        }

        async fn version(
            &self,
            _ctx: &TtrpcContext,
            req: CheckRequest,
        ) -> ttrpc::Result<VersionCheckResponse> {
            // Later requests overtake earlier ones on the link.
            let n: u64 = req.service.rsplit('-').next().unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_millis(20 - n % 20)).await;
            Ok(VersionCheckResponse {
                agent_version: req.service,
                ..Default::default()
            })
        }
    }

    /// Ten concurrent Version calls on one client, each answered in kind.
    async fn versions(client: HealthClient, name: &'static str) {
        let mut calls = JoinSet::new();
        for n in 0..10 {
            let client = client.clone();
            calls.spawn(async move {
                let mut req = CheckRequest::new();
                req.service = format!("{name}-{n}");
                let ctx = context::with_timeout(WAIT.as_nanos() as i64);
                let reply = client.version(ctx, &req).await.unwrap();
                assert_eq!(reply.agent_version, req.service);
            });
        }
        while let Some(call) = calls.join_next().await {
            call.unwrap();
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ttrpc_clients_share_one_server_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let mut server = Server::new()
            .bind(&format!("unix://{}", path.display()))
            .unwrap()
            .register_service(create_health(Arc::new(Echo)));
        server.start().await.unwrap();
        let link = UnixStream::connect(&path).await.unwrap();
        let (arrivals, rx) = mpsc::channel(1);
        let mux = tokio::spawn(serve(link, rx));

        let mut clients = Vec::new();
        for _ in 0..3 {
            let (ours, theirs) = tokio::io::duplex(1 << 16);
            arrivals.send(theirs).await.unwrap();
            clients.push(HealthClient::new(Client::new(Socket::new(ours))));
        }
        let ctx = context::with_timeout(WAIT.as_nanos() as i64);
        let check = clients[0].check(ctx, &CheckRequest::new()).await.unwrap();
        assert_eq!(check.status.enum_value(), Ok(ServingStatus::SERVING));
        tokio::join!(
            versions(clients[0].clone(), "a"),
            versions(clients[1].clone(), "b"),
            versions(clients[2].clone(), "c"),
        );

        // The server going away ends the mux.
        server.shutdown().await.unwrap();
        drop(clients);
        let end = tokio::time::timeout(WAIT, mux).await.expect("mux ended");
        assert!(matches!(end.unwrap(), LinkEnd::Closed));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn agent_clients_reach_the_serial_port_through_the_agent_socket() {
        use crate::agent::AgentClient;
        use crate::vm::spec::{ChannelSpec, RunPaths};

        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths::new(dir.path());
        // The mux starts before QEMU listens on the port's socket.
        let mux = Mux::start(paths.serial_agent(), &paths.agent_mux()).unwrap();
        tokio::time::sleep(CONNECT_RETRY * 3).await;
        let port = format!("unix://{}", paths.serial_agent().display());
        let mut server = Server::new()
            .bind(&port)
            .unwrap()
            .register_service(create_health(Arc::new(Echo)));
        server.start().await.unwrap();

        let connect = || AgentClient::connect(ChannelSpec::Serial, &paths, WAIT);
        let (first, second) = tokio::join!(connect(), connect());
        let (first, second) = (first.unwrap(), second.unwrap());
        first.check(WAIT).await.unwrap();
        second.check(WAIT).await.unwrap();
        mux.stop();
        server.shutdown().await.unwrap();
    }
}
