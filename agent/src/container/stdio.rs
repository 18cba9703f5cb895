//! Container process stdio for the pull model: the host calls ReadStdout/ReadStderr
//! in a loop and WriteStdin when it has input.
//!
//! Each output pipe (or pty master) is drained by a task into an [`Output`] buffer as
//! soon as the process writes, so a process that writes and exits at once loses
//! nothing, however late the host asks; a read answers end-of-stream (empty data) only
//! once every byte has been handed out. The buffer is bounded ([`OUTPUT_BUFFER`]):
//! when the host does not read, the pump stops reading and the process blocks on its
//! full pipe, as it would with no agent in between.
//!
//! Limitation: on a terminal, closing stdin sends the end-of-file character (^D)
//! instead of closing anything, since the pty master also carries the output.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// Bytes buffered per output stream before the pump waits for the host to read.
pub const OUTPUT_BUFFER: usize = 1 << 20;
/// Bytes read from a pipe at once.
const CHUNK: usize = 64 * 1024;
/// The terminal's end-of-file character.
const VEOF: u8 = 0x04;

#[derive(Debug, Default)]
struct OutputState {
    data: VecDeque<u8>,
    eof: bool,
}

/// The buffered output of one stream of one process.
#[derive(Debug, Default)]
pub struct Output {
    state: Mutex<OutputState>,
    changed: Notify,
}

impl Output {
    /// Starts draining `file` (a pipe or pty master) into a new buffer. Reading stops
    /// at end-of-file, or at EIO, which is how a pty master reports its slave closed.
    pub fn pump(file: File) -> io::Result<Arc<Output>> {
        set_nonblocking(&file)?;
        // SAFETY: `file` owns its descriptor and moves into the AsyncFd, which never
        // closes or replaces it while registered.
        let fd = unsafe { AsyncFd::register(file)? };
        let output = Arc::new(Output::default());
        let pumped = output.clone();
        tokio::spawn(async move { pumped.fill_from(fd).await });
        Ok(output)
    }

    /// A stream that is already at its end (stderr of a process with a terminal).
    pub fn ended() -> Arc<Output> {
        let output = Output::default();
        output.lock().eof = true;
        Arc::new(output)
    }

    async fn fill_from(&self, fd: AsyncFd<File>) {
        let mut buf = vec![0u8; CHUNK];
        loop {
            self.wait_for_room().await;
            match read_ready(&fd, &mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    self.lock().data.extend(&buf[..n]);
                    self.changed.notify_waiters();
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reading container output failed");
                    break;
                }
            }
        }
        self.lock().eof = true;
        self.changed.notify_waiters();
    }

    async fn wait_for_room(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().data.len() < OUTPUT_BUFFER {
                return;
            }
            notified.await;
        }
    }

    /// Up to `max` bytes, waiting until there are some; empty once the stream ended
    /// and everything was read.
    pub async fn read(&self, max: usize) -> Vec<u8> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if !state.data.is_empty() {
                    let n = max.min(state.data.len());
                    let out: Vec<u8> = state.data.drain(..n).collect();
                    drop(state);
                    self.changed.notify_waiters();
                    return out;
                }
                if state.eof {
                    return Vec::new();
                }
            }
            notified.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutputState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn read_ready(fd: &AsyncFd<File>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| inner.get_ref().read(buf)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// The write side of a process's stdin (a pipe, or a second handle on its pty).
#[derive(Debug)]
pub struct Stdin {
    fd: AsyncFd<File>,
    terminal: bool,
}

impl Stdin {
    /// Wraps a pipe's write end or a pty master.
    pub fn new(file: File, terminal: bool) -> io::Result<Stdin> {
        set_nonblocking(&file)?;
        // SAFETY: as in `Output::pump`: the descriptor moves in with its owner.
        let fd = unsafe { AsyncFd::register(file)? };
        Ok(Stdin { fd, terminal })
    }

    /// Writes all of `data`, waiting while the pipe is full.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|inner| inner.get_ref().write(data)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Signals end of input: the pipe is closed by dropping this; a terminal gets ^D.
    pub async fn close(self) -> io::Result<()> {
        if self.terminal {
            self.write_all(&[VEOF]).await?;
        }
        Ok(())
    }
}

fn set_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL on a descriptor `file` owns; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL with an integer flag set on the same open descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets a pipe's capacity (`agent.container_pipe_size`); 0 keeps the kernel default.
pub fn set_pipe_size(file: &File, size: u32) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    let size = i32::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: F_SETPIPE_SZ takes an integer; `file` owns the descriptor.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETPIPE_SZ, size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (File, File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn everything_written_before_close_is_read_then_eof() {
        let (r, mut w) = pipe();
        let out = Output::pump(r).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let writer = {
            let data = data.clone();
            tokio::task::spawn_blocking(move || {
                w.write_all(&data).unwrap();
            })
        };
        let mut got = Vec::new();
        loop {
            let chunk = out.read(32768).await;
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 32768);
            got.extend(chunk);
        }
        writer.await.unwrap();
        assert_eq!(got, data);
        assert!(out.read(10).await.is_empty(), "eof stays eof");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_late_reader_still_gets_the_output() {
        let (r, mut w) = pipe();
        w.write_all(b"early\n").unwrap();
        drop(w);
        let out = Output::pump(r).unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(out.read(100).await, b"early\n");
        assert!(out.read(100).await.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stdin_writes_reach_the_pipe() {
        let (mut r, w) = pipe();
        let stdin = Stdin::new(w, false).unwrap();
        stdin.write_all(b"abc").await.unwrap();
        stdin.close().await.unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "abc");
        assert!(Output::ended().read(1).await.is_empty());
    }
}
