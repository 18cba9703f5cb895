//! Streams a container process's stdio through the agent's pull model
//! (ReadStdout/ReadStderr loops, WriteStdin, CloseStdin), and waits for it.
//! With a terminal, the host terminal is put in raw mode meanwhile.

use std::io::Write;

use hull_protocols::agent::{CloseStdinRequest, TtyWinResizeRequest};
use hull_runtime::agent::{
    AgentClient, AgentError, ReadStreamRequest, WaitProcessRequest, WriteStreamRequest,
};
use hull_runtime::agent_call;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::AsyncReadExt;

/// How much one ReadStdout/ReadStderr asks for.
const READ_LEN: u32 = 32 * 1024;

/// A process to stream.
#[derive(Clone)]
pub struct Process {
    pub agent: AgentClient,
    pub container: String,
    pub exec_id: String,
}

/// Streams stdio until the process exits; returns its status (exit code, or
/// 128 + signal).
pub async fn attach(p: Process, stdin: bool, tty: bool) -> Result<i32, AgentError> {
    let _raw = tty.then(RawTerminal::enter).flatten();
    if tty {
        resize(&p).await;
    }
    let out = tokio::spawn(pump(p.clone(), false));
    let err = (!tty).then(|| tokio::spawn(pump(p.clone(), true)));
    let input = stdin.then(|| tokio::spawn(feed(p.clone())));
    let mut wait = WaitProcessRequest::new();
    wait.container_id = p.container.clone();
    wait.exec_id = p.exec_id.clone();
    let status = agent_call!(p.agent, wait_process, "WaitProcess", &wait, None)?.status;
    let _ = out.await;
    if let Some(err) = err {
        let _ = err.await;
    }
    if let Some(input) = input {
        input.abort();
    }
    Ok(status)
}

async fn pump(p: Process, stderr: bool) {
    let mut req = ReadStreamRequest::new();
    req.container_id = p.container.clone();
    req.exec_id = p.exec_id.clone();
    req.len = READ_LEN;
    loop {
        let reply = if stderr {
            agent_call!(p.agent, read_stderr, "ReadStderr", &req, None)
        } else {
            agent_call!(p.agent, read_stdout, "ReadStdout", &req, None)
        };
        let Ok(reply) = reply else { return };
        if reply.data.is_empty() {
            return;
        }
        let written = if stderr {
            std::io::stderr()
                .write_all(&reply.data)
                .and_then(|_| std::io::stderr().flush())
        } else {
            std::io::stdout()
                .write_all(&reply.data)
                .and_then(|_| std::io::stdout().flush())
        };
        if written.is_err() {
            return;
        }
    }
}

async fn feed(p: Process) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; READ_LEN as usize];
    loop {
        let n = stdin.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        let mut req = WriteStreamRequest::new();
        req.container_id = p.container.clone();
        req.exec_id = p.exec_id.clone();
        req.data = buf[..n].to_vec();
        if agent_call!(p.agent, write_stdin, "WriteStdin", &req).is_err() {
            return;
        }
    }
    let mut req = CloseStdinRequest::new();
    req.container_id = p.container.clone();
    req.exec_id = p.exec_id.clone();
    let _ = agent_call!(p.agent, close_stdin, "CloseStdin", &req);
}

async fn resize(p: &Process) {
    let Some((rows, cols)) = terminal_size() else {
        return;
    };
    let mut req = TtyWinResizeRequest::new();
    req.container_id = p.container.clone();
    req.exec_id = p.exec_id.clone();
    req.row = rows;
    req.column = cols;
    let _ = agent_call!(p.agent, tty_win_resize, "TtyWinResize", &req);
}

/// The host terminal's size, if stdin is one.
pub fn terminal_size() -> Option<(u32, u32)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl on fd 0 with a pointer to a live winsize.
    let rc = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then(|| (u32::from(ws.ws_row), u32::from(ws.ws_col)))
}

/// Raw mode on the host terminal, restored on drop.
struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}
