//! The supervisor's control socket server (see [`crate::control`]).
//!
//! Each connection is served in its own task, one request at a time. Containers
//! a connection shared with `owned` are removed when it closes, unless the VM
//! has ended by then (the whole state goes with it anyway).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::containers;
use crate::control::{Reply, Request};
use crate::state::StateDir;
use crate::vm::qmp::Qmp;
use crate::vm::spec::VmSpec;
use crate::vm::VmExit;

/// How long pending `wait` replies may take to be written once the VM ended.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

struct Shared {
    dir: StateDir,
    spec: VmSpec,
    qmp: Arc<Qmp>,
    stop: mpsc::Sender<()>,
    exit: watch::Receiver<Option<VmExit>>,
}

/// The running server.
pub struct Server {
    accept: tokio::task::JoinHandle<JoinSet<()>>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Listens on the sandbox's control socket.
    pub fn bind(
        dir: &StateDir,
        spec: VmSpec,
        qmp: Arc<Qmp>,
        stop: mpsc::Sender<()>,
        exit: watch::Receiver<Option<VmExit>>,
    ) -> std::io::Result<Self> {
        let listener = UnixListener::bind(dir.control_socket())?;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            spec,
            qmp,
            stop,
            exit,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, shared, shutdown_rx));
        Ok(Self { accept, shutdown })
    }

    /// Stops accepting and gives open connections time to receive the exit.
    pub async fn finish(self) {
        let _ = self.shutdown.send(true);
        if let Ok(mut tasks) = self.accept.await {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            tasks.abort_all();
        }
    }
}

async fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            conn = listener.accept() => {
                if let Ok((stream, _)) = conn {
                    tasks.spawn(serve(stream, shared.clone()));
                }
            }
            _ = shutdown.changed() => return tasks,
        }
    }
}

async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let mut owned = Vec::new();
    serve_requests(stream, &shared, &mut owned).await;
    if shared.exit.borrow().is_some() {
        return;
    }
    for container in owned {
        remove_owned(&shared, &container).await;
    }
}

/// Answers requests until the client closes, a final request was answered or
/// the VM ended; collects the containers shared with `owned`.
async fn serve_requests(stream: UnixStream, shared: &Shared, owned: &mut Vec<String>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut exit = shared.exit.clone();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = exit.wait_for(Option::is_some) => return,
        };
        let Ok(Some(line)) = line else { return };
        let request = serde_json::from_str::<Request>(&line);
        // After these the VM is gone and there is nothing left to serve.
        let last = matches!(request, Ok(Request::Hold | Request::Wait | Request::Stop));
        let reply = match request {
            Ok(Request::Hold) => hold(&mut lines, shared).await,
            Ok(request) => handle(request, shared, owned).await,
            Err(e) => Reply::error(format!("bad request: {e}")),
        };
        let Ok(mut text) = serde_json::to_string(&reply) else {
            return;
        };
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() || last {
            return;
        }
    }
}

/// Removes a container whose owner went away, if it is still there.
async fn remove_owned(shared: &Shared, container: &str) {
    if !matches!(shared.dir.container(container), Ok(Some(_))) {
        return;
    }
    tracing::info!(
        container_id = container,
        "owner went away; removing the container"
    );
    if let Err(e) = containers::remove(&shared.dir, &shared.spec, container).await {
        let error = super::error_chain(&e);
        tracing::warn!(container_id = container, %error, "cannot remove the container");
    }
}

async fn handle(request: Request, shared: &Shared, owned: &mut Vec<String>) -> Reply {
    match request {
        Request::Status => match shared.qmp.status().await {
            Ok(status) => ok_with(|r| r.status = Some(status)),
            Err(e) => Reply::error(e.to_string()),
        },
        Request::Wait | Request::Hold => wait_exit(shared).await,
        Request::Stop => {
            let _ = shared.stop.send(()).await;
            wait_exit(shared).await
        }
        Request::Share {
            container,
            rootfs,
            owned: owner,
        } => match containers::share(&shared.dir, &container, &rootfs) {
            Ok(path) => {
                if owner {
                    owned.push(container);
                }
                ok_with(|r| r.guest_path = Some(path))
            }
            Err(e) => Reply::error(super::error_chain(&e)),
        },
        Request::Unshare { container } => done(containers::unshare(&shared.dir, &container)),
        Request::Remove { container } => {
            done(containers::remove(&shared.dir, &shared.spec, &container).await)
        }
    }
}

fn done(result: Result<(), containers::ContainerError>) -> Reply {
    match result {
        Ok(()) => ok_with(|_| ()),
        Err(e) => Reply::error(super::error_chain(&e)),
    }
}

/// Like `wait`, but a client that goes away first stops the sandbox.
async fn hold(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    shared: &Shared,
) -> Reply {
    tokio::select! {
        reply = wait_exit(shared) => reply,
        _ = lines.next_line() => {
            tracing::info!(sandbox = shared.dir.id(), "owner went away; stopping");
            let _ = shared.stop.send(()).await;
            wait_exit(shared).await
        }
    }
}

async fn wait_exit(shared: &Shared) -> Reply {
    let mut exit = shared.exit.clone();
    let Ok(done) = exit.wait_for(Option::is_some).await else {
        return Reply::error("supervisor is shutting down");
    };
    let text = done.as_ref().map(ToString::to_string);
    ok_with(|r| r.exit = text)
}

fn ok_with(fill: impl FnOnce(&mut Reply)) -> Reply {
    let mut reply = Reply {
        ok: true,
        ..Reply::default()
    };
    fill(&mut reply);
    reply
}
