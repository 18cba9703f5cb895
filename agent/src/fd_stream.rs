//! A non-blocking character device descriptor (a pty master, a virtio-serial
//! port) as a tokio stream.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::{AsyncFd, AsyncFdRegisterError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The stream; flush and shutdown are no-ops (writes go straight to the device).
pub struct FdStream {
    fd: AsyncFd<OwnedFd>,
    /// Whether EIO on read is the end of the stream (a pty master whose slave
    /// side closed) rather than an error.
    eio_ends: bool,
}

impl FdStream {
    /// Registers `fd`, which must be non-blocking, with the runtime; on failure
    /// the descriptor comes back with the error.
    pub fn new(fd: OwnedFd) -> Result<Self, (OwnedFd, io::Error)> {
        Self::register(fd, false).map_err(AsyncFdRegisterError::into_parts)
    }

    /// A pty master (made non-blocking here): once the slave side is closed,
    /// reads end the stream.
    pub fn pty_master(fd: OwnedFd) -> io::Result<Self> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Self::register(fd, true).map_err(|e| e.into_parts().1)
    }

    fn register(fd: OwnedFd, eio_ends: bool) -> Result<Self, AsyncFdRegisterError<OwnedFd>> {
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged until it is
        // dropped, and the AsyncFd owns it until `into_inner` gives it back.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(Self { fd, eio_ends })
    }

    /// The descriptor, no longer registered.
    pub fn into_inner(self) -> OwnedFd {
        self.fd.into_inner()
    }
}

impl AsyncRead for FdStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if self.eio_ends && e.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| {
                nix::unistd::write(fd.get_ref().as_fd(), data).map_err(io::Error::from)
            }) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
