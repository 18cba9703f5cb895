//! The per-sandbox supervisor: a detached process (`hull` re-executed with a
//! hidden verb) that owns the VM for its whole life. It runs the VM in a private
//! mount namespace, records its pids in the state directory, serves the control
//! socket, notices at once when QEMU or a helper dies, and then stops everything
//! and removes the state directory. It also keeps the sandbox's containers
//! (records and shared root filesystems, see [`containers`]).
//!
//! Stopping (on request, when a `hold` owner goes away, on SIGTERM or SIGINT)
//! is graceful first: the agent is sent DestroySandbox and the guest gets
//! [`guest::POWER_OFF_GRACE`] to power off, then QEMU is quit, then killed.
//!
//! With the virtio-serial channel it also holds the one connection to the
//! agent's port and shares it between host processes ([`mux`]).
//!
//! Start-up is reported to the process that launched it through an inherited
//! pipe (fd [`READY_FD`]): a line `ok`, or `error: <message>`.

pub mod containers;
mod guest;
mod mounts;
pub mod mux;
mod server;

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

pub use self::mounts::GUEST_SHARED_DIR;
use crate::state::{SandboxState, StateDir};
use crate::vm::spec::{ChannelSpec, VmSpec};
use crate::vm::{Vm, VmExit};

/// The file descriptor on which the supervisor reports start-up.
pub const READY_FD: i32 = 3;
/// The hidden `hull` verb that runs a supervisor.
pub const VERB: &str = "_supervise";

/// Errors of the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Reading or writing state failed.
    #[error("sandbox state")]
    State(#[from] crate::state::StateError),
    /// Mount namespace set-up failed.
    #[error("mount namespace")]
    Mount(#[from] mounts::MountError),
    /// The VM did not start.
    #[error("VM start")]
    Vm(#[from] crate::vm::VmError),
    /// The control socket could not be created.
    #[error("control socket")]
    Control(#[source] std::io::Error),
    /// The async runtime could not be built.
    #[error("async runtime")]
    Runtime(#[source] std::io::Error),
    /// The agent socket of the serial channel could not be set up.
    #[error("agent multiplexer")]
    Mux(#[from] mux::MuxError),
}

/// Runs the supervisor of the sandbox in `dir`; returns when the VM has ended
/// and the state directory is gone. Must be called while single-threaded.
pub fn run(dir: &StateDir) -> Result<(), SupervisorError> {
    // SAFETY: READY_FD was set up by the launching process for us alone.
    let ready = unsafe { OwnedFd::from_raw_fd(READY_FD) };
    // Keep the report pipe out of QEMU and the helpers.
    let _ = nix::fcntl::fcntl(
        &ready,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let mut ready = std::fs::File::from(ready);
    let result = start_and_serve(dir, &mut ready);
    if let Err(e) = &result {
        let _ = writeln!(ready, "error: {}", error_chain(e));
    }
    drop(ready);
    let cleaned = cleanup(dir);
    result.and(cleaned)
}

/// Unmounts the shared directory and removes the state directory; the state
/// stays (for `hull rm -f`) if anything is still mounted under it.
fn cleanup(dir: &StateDir) -> Result<(), SupervisorError> {
    mounts::release(&dir.shared_dir(), dir.path())?;
    dir.remove()?;
    Ok(())
}

fn start_and_serve(dir: &StateDir, ready: &mut std::fs::File) -> Result<(), SupervisorError> {
    mounts::isolate(&dir.shared_dir())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SupervisorError::Runtime)?;
    runtime.block_on(supervise(dir, ready))
}

async fn supervise(dir: &StateDir, ready: &mut std::fs::File) -> Result<(), SupervisorError> {
    let spec = dir.read_spec()?;
    let mut vm = Vm::start(spec).await?;
    // Before the state: a sandbox recorded as running has its agent socket.
    let mux = start_mux(vm.spec())?;
    dir.write_state(&SandboxState {
        id: dir.id().to_string(),
        created: now(),
        supervisor: std::process::id(),
        pids: vm.pids(),
        qemu_started_ms: epoch_ms(vm.started_at()),
    })?;
    let (stop_tx, stop_rx) = mpsc::channel(4);
    let (exit_tx, exit_rx) = watch::channel(None);
    let server = server::Server::bind(dir, vm.spec().clone(), vm.qmp().clone(), stop_tx, exit_rx)
        .map_err(SupervisorError::Control)?;
    let _ = writeln!(ready, "ok");
    let exit = watch_vm(&mut vm, stop_rx).await;
    tracing::info!(sandbox = dir.id(), cause = %exit.cause, "VM ended");
    let _ = exit_tx.send(Some(exit));
    server.finish().await;
    if let Some(mux) = mux {
        mux.stop();
    }
    Ok(())
}

/// With the serial channel, shares the agent's port between host clients on
/// the sandbox's agent socket (see [`mux`]).
fn start_mux(spec: &VmSpec) -> Result<Option<mux::Mux>, SupervisorError> {
    if spec.channel != ChannelSpec::Serial {
        return Ok(None);
    }
    let paths = spec.paths();
    Ok(Some(mux::Mux::start(
        paths.serial_agent(),
        &paths.agent_mux(),
    )?))
}

/// Waits for the VM to end on its own, or stops it on request or signal.
async fn watch_vm(vm: &mut Vm, mut stop: mpsc::Receiver<()>) -> VmExit {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return shut_down(vm).await;
    };
    tokio::select! {
        exit = vm.wait() => return exit,
        _ = stop.recv() => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shut_down(vm).await
}

/// Asks the guest to power off, then quits or kills QEMU if it does not.
async fn shut_down(vm: &mut Vm) -> VmExit {
    let ask = guest::ask_power_off(vm.spec().clone());
    vm.shutdown(ask, guest::POWER_OFF_GRACE).await
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Seconds since the epoch.
pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `error: cause: cause...` on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.replace('\n', "\\n")
}

/// Whether `path` is a plausible state directory (used by the hidden verb to
/// refuse arbitrary paths).
pub fn is_state_dir(path: &Path) -> bool {
    path.join("spec.json").is_file()
}
