//! The ttrpc server: bind, serve until asked to stop, shut down cleanly.
//!
//! The listener is vsock (`vsock://-1:1024` in a guest), a Unix socket (tests), or a
//! virtio-serial port bridged to the server ([`serial`]). A stale Unix socket file from
//! an earlier run is replaced; the file is removed again on shutdown. The server stops
//! when DestroySandbox asks (as PID 1) or, as a normal process, on SIGTERM or SIGINT;
//! a serial bridge that fails stops it too.

pub mod serial;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hull_protocols::ttrpc::{self, r#async::Server};
use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use crate::config::ServerAddr;
use crate::rpc;
use crate::state::Agent;

/// Time given to in-flight replies (DestroySandbox's own) before connections close.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// Errors of the server.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Something other than a socket is in the way of the Unix socket.
    #[error("{0} exists and is not a socket")]
    NotASocket(String),
    /// The listener could not be created.
    #[error("cannot listen on {0}")]
    Bind(String, #[source] ttrpc::Error),
    /// The server did not start.
    #[error("cannot start the server")]
    Start(#[source] ttrpc::Error),
    /// Stop signals could not be watched.
    #[error("cannot watch stop signals")]
    Signals(#[source] std::io::Error),
    /// The serial port bridge failed.
    #[error("serial channel failed")]
    Serial(#[from] serial::SerialError),
}

/// A task bridging a serial port to the server, when serving on one.
type Bridge = Option<JoinHandle<Result<(), serial::SerialError>>>;

/// Serves the agent API until a stop is requested.
pub async fn serve(agent: Arc<Agent>) -> Result<(), ServerError> {
    let addr = agent.config.server_addr.clone();
    let uri = addr.uri();
    let (server, mut bridge) = listen(&agent, &addr)?;
    let mut server = server.register_service(rpc::services(agent.clone()));
    server.start().await.map_err(ServerError::Start)?;
    tracing::info!(addr = %uri, "serving");

    let stopped = tokio::select! {
        stopped = wait_for_stop(&agent) => stopped,
        failed = bridge_failure(&mut bridge) => Err(failed),
    };

    if stopped.is_ok() {
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    }
    let _ = server.shutdown().await;
    if let Some(bridge) = bridge {
        bridge.abort();
    }
    if let ServerAddr::Unix(path) = &addr {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("server stopped");
    stopped
}

/// A server with its listener for `addr`, and the serial bridge feeding it if any.
fn listen(agent: &Agent, addr: &ServerAddr) -> Result<(Server, Bridge), ServerError> {
    if let ServerAddr::Serial(path) = addr {
        let location = serial::PortLocation {
            path: path.clone(),
            sysfs: agent.config.sysfs_dir(),
            dev: agent.config.guest_path("/dev"),
        };
        let (listener, sessions) = serial::listener();
        let bridge = tokio::spawn(serial::bridge(location, sessions));
        return Ok((Server::new().add_listener(listener), Some(bridge)));
    }
    if let ServerAddr::Unix(path) = addr {
        remove_stale_socket(path)?;
    }
    let uri = addr.uri();
    let server = Server::new()
        .bind(&uri)
        .map_err(|e| ServerError::Bind(uri.clone(), e))?;
    Ok((server, None))
}

/// Resolves with the bridge's error if it fails; never resolves without a bridge
/// or while it runs.
async fn bridge_failure(bridge: &mut Bridge) -> ServerError {
    let Some(task) = bridge.as_mut() else {
        return std::future::pending().await;
    };
    match task.await {
        Ok(Err(e)) => {
            *bridge = None;
            ServerError::Serial(e)
        }
        // The bridge ends cleanly only once the server is gone.
        _ => std::future::pending().await,
    }
}

async fn wait_for_stop(agent: &Agent) -> Result<(), ServerError> {
    if agent.config.pid1 {
        agent.shutdown_requested().await;
        return Ok(());
    }
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
    tokio::select! {
        _ = agent.shutdown_requested() => {}
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    Ok(())
}

fn remove_stale_socket(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            let _ = std::fs::remove_file(path);
            Ok(())
        }
        Ok(_) => Err(ServerError::NotASocket(path.display().to_string())),
        Err(_) => Ok(()),
    }
}
