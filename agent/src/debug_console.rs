//! The debug console: a shell for a person debugging the guest, off unless
//! `agent.debug_console` is on the command line.
//!
//! With `agent.debug_console_vport=N` each vsock connection to port N gets its own
//! shell on a fresh pty; with port 0 the shell runs on the console and is restarted when
//! it exits. The shell is `/bin/sh` of the image; without one there is no console.
//!
//! Limitation: no window-size propagation over vsock (the stream carries bytes only).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hull_init::reaper::Reaper;
use nix::pty::openpty;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::fd_stream::FdStream;
use crate::state::Agent;

/// Pause before restarting a console shell that exited.
const RESPAWN_DELAY: Duration = Duration::from_secs(1);

/// Starts the debug console if the configuration asks for it.
pub fn start(agent: &Arc<Agent>) {
    let config = &agent.config;
    if !config.debug_console {
        return;
    }
    let shell = config.guest_path("/bin/sh");
    if !shell.exists() {
        tracing::warn!(shell = %shell.display(), "debug console asked for, but no shell");
        return;
    }
    let reaper = agent.reaper.clone();
    match config.debug_console_vport {
        0 => {
            let console = config.guest_path("/dev/console");
            tokio::spawn(console_loop(shell, console, reaper));
        }
        port => {
            tokio::spawn(vsock_loop(shell, port, reaper));
        }
    }
    tracing::warn!("debug console enabled");
}

async fn console_loop(shell: PathBuf, console: PathBuf, reaper: Reaper) {
    loop {
        if let Err(e) = console_shell(&shell, &console, &reaper).await {
            tracing::warn!(error = %e, "debug console shell failed");
        }
        tokio::time::sleep(RESPAWN_DELAY).await;
    }
}

async fn console_shell(shell: &Path, console: &Path, reaper: &Reaper) -> io::Result<()> {
    let tty: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(console)?
        .into();
    let spawned = reaper
        .spawn(&mut shell_command(shell, &tty)?)
        .map_err(io::Error::other)?;
    drop(tty);
    spawned.exit.await.map_err(io::Error::other)?;
    Ok(())
}

async fn vsock_loop(shell: PathBuf, port: u32, reaper: Reaper) {
    let addr = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port);
    let listener = match tokio_vsock::VsockListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot listen for the debug console");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let (shell, reaper) = (shell.clone(), reaper.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve_shell(stream, &shell, &reaper).await {
                        tracing::warn!(error = %e, "debug console session failed");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "debug console accept failed"),
        }
    }
}

/// Runs `shell` on a new pty and relays it to `conn` until the shell exits.
pub async fn serve_shell<S>(conn: S, shell: &Path, reaper: &Reaper) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let pty = openpty(None, None)?;
    let spawned = reaper
        .spawn(&mut shell_command(shell, &pty.slave)?)
        .map_err(io::Error::other)?;
    drop(pty.slave);
    let master = FdStream::pty_master(pty.master)?;
    relay(conn, master).await?;
    spawned.exit.await.map_err(io::Error::other)?;
    Ok(())
}

/// Copies both ways until the shell side ends (the pty reports EIO when it exits).
async fn relay<S>(conn: S, master: FdStream) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut conn_rx, mut conn_tx) = tokio::io::split(conn);
    let (mut pty_rx, mut pty_tx) = tokio::io::split(master);
    let to_pty = async {
        let _ = tokio::io::copy(&mut conn_rx, &mut pty_tx).await;
        std::future::pending::<()>().await;
    };
    let from_pty = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = pty_rx.read(&mut buf).await?;
            if n == 0 {
                return conn_tx.shutdown().await;
            }
            conn_tx.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        result = from_pty => result,
        () = to_pty => Ok(()),
    }
}

/// The shell with `tty` as stdio, its controlling terminal, in a new session.
fn shell_command(shell: &Path, tty: &OwnedFd) -> io::Result<Command> {
    let mut cmd = Command::new(shell);
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("TERM", "vt100")
        .env("HOME", "/")
        .stdin(Stdio::from(tty.try_clone()?))
        .stdout(Stdio::from(tty.try_clone()?))
        .stderr(Stdio::from(tty.try_clone()?));
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // setsid(2) and ioctl(2), which are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn shell_runs_on_a_pty_and_sees_a_terminal() {
        let reaper = Reaper::new();
        reaper.start().unwrap();
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let session =
            tokio::spawn(async move { serve_shell(theirs, Path::new("/bin/sh"), &reaper).await });
        let (mut rx, mut tx) = tokio::io::split(ours);
        tx.write_all(b"test -t 0 && echo tty-$((40+2)); exit\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        rx.read_to_end(&mut seen).await.unwrap();
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("tty-42"), "{text}");
        session.await.unwrap().unwrap();
    }
}
