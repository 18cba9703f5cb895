//! The helper daemons a VM may need before QEMU starts: `vhost-device-vsock`
//! (vsock without `/dev/vhost-vsock`) and `virtiofsd` (virtio-fs).
//!
//! Each is started per VM, with its sockets in the VM's run directory, and is
//! killed with the VM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Child;

use crate::vm::process::{self, ProcessError};
use crate::vm::spec::{ChannelSpec, ShareKind, VmSpec};

/// The vhost-user vsock daemon's program name.
pub const VHOST_DEVICE_VSOCK: &str = "vhost-device-vsock";
/// The virtio-fs daemon's program name.
pub const VIRTIOFSD: &str = "virtiofsd";

/// How long a helper may take to create its socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors starting helpers.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The program is not installed.
    #[error("{0} is not installed (looked in PATH and ~/.cargo/bin); run `make deps`")]
    Missing(&'static str),
    /// It failed to start or to come up.
    #[error("{0} failed to start")]
    Start(&'static str, #[source] ProcessError),
}

/// A running helper.
pub struct Helper {
    /// Its program name.
    pub name: &'static str,
    /// The process.
    pub child: Child,
}

/// Starts the helpers `spec` needs, in order; all are killed if one fails.
pub async fn start(spec: &VmSpec) -> Result<Vec<Helper>, HelperError> {
    let mut helpers = Vec::new();
    if let ChannelSpec::HybridVsock { cid } = spec.channel {
        helpers.push(start_vsock(spec, cid).await?);
    }
    if let Some(share) = spec
        .share
        .as_ref()
        .filter(|s| s.kind == ShareKind::VirtioFs)
    {
        helpers.push(start_virtiofsd(spec, &share.dir).await?);
    }
    Ok(helpers)
}

fn program(name: &'static str) -> Result<PathBuf, HelperError> {
    process::find_program(name).ok_or(HelperError::Missing(name))
}

async fn start_vsock(spec: &VmSpec, cid: u32) -> Result<Helper, HelperError> {
    let paths = spec.paths();
    let socket = paths.vhost_vsock();
    let args = vec![
        "--guest-cid".to_string(),
        cid.to_string(),
        "--socket".to_string(),
        socket.display().to_string(),
        "--uds-path".to_string(),
        paths.hybrid_vsock().display().to_string(),
        // A group of its own: no guest-to-guest traffic between sandboxes.
        "--groups".to_string(),
        format!("hull-{}", spec.name),
    ];
    launch(VHOST_DEVICE_VSOCK, &args, &socket, &paths.helpers_log()).await
}

async fn start_virtiofsd(spec: &VmSpec, dir: &Path) -> Result<Helper, HelperError> {
    let paths = spec.paths();
    let socket = paths.virtiofsd();
    let args = vec![
        format!("--socket-path={}", socket.display()),
        format!("--shared-dir={}", dir.display()),
        "--cache=never".to_string(),
        "--sandbox=namespace".to_string(),
        "--announce-submounts".to_string(),
        "--log-level=warn".to_string(),
    ];
    launch(VIRTIOFSD, &args, &socket, &paths.helpers_log()).await
}

async fn launch(
    name: &'static str,
    args: &[String],
    socket: &Path,
    log: &Path,
) -> Result<Helper, HelperError> {
    let exe = program(name)?;
    let mut child = process::spawn(&exe, args, log).map_err(|e| HelperError::Start(name, e))?;
    process::wait_for_socket(&mut child, name, socket, SOCKET_TIMEOUT)
        .await
        .map_err(|e| HelperError::Start(name, e))?;
    Ok(Helper { name, child })
}
