//! Logging setup: `tracing` to the console (stderr) or to a vsock port on the host.
//!
//! Text or JSON lines; the level comes from `agent.log`. If the log port cannot be
//! reached, logs go to the console and a warning says so.
//!
//! Limitation: writes to the log port block; a host that stops reading stalls logging.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, VsockAddr};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::{Config, LogFormat, LogLevel};

/// The host's vsock context id.
const HOST_CID: u32 = 2;

/// Installs the global subscriber. Returns an error message to log once logging is up
/// when the log port could not be used.
pub fn init(config: &Config) -> Option<String> {
    let (writer, problem) = match config.log_vport {
        0 => (BoxMakeWriter::new(io::stderr), None),
        port => match connect_host(port) {
            Ok(fd) => (
                BoxMakeWriter::new(Mutex::new(std::fs::File::from(fd))),
                None,
            ),
            Err(e) => (
                BoxMakeWriter::new(io::stderr),
                Some(format!(
                    "cannot reach log port {port} ({e}); logging to the console"
                )),
            ),
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level_filter(config.log_level))
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if installed.is_err() {
        return Some("a log subscriber was already installed".into());
    }
    problem
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Connects a stream socket to the host on vsock `port`.
pub fn connect_host(port: u32) -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &VsockAddr::new(HOST_CID, port),
    )?;
    Ok(fd)
}
