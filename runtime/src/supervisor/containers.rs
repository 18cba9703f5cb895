//! The containers of a sandbox as the supervisor keeps them: a record in the
//! state directory plus the root filesystem bind-mounted into the shared
//! directory, added together and removed together.

use std::path::Path;

use super::{guest, mounts};
use crate::agent::AgentError;
use crate::state::{ContainerRecord, StateDir, StateError};
use crate::vm::spec::VmSpec;

/// Errors adding or removing a container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Its record could not be written or removed (or its id is taken).
    #[error("container record")]
    State(#[from] StateError),
    /// Its root filesystem could not be (un)shared.
    #[error("container root filesystem")]
    Mount(#[from] mounts::MountError),
    /// The sandbox does not hold it.
    #[error("sandbox {sandbox} has no container {container}")]
    Unknown { sandbox: String, container: String },
    /// The agent could not remove it.
    #[error("cannot remove container {0} in the guest")]
    Agent(String, #[source] AgentError),
}

/// Records container `id` and shares `rootfs` for it; returns where the guest
/// sees the root filesystem. Nothing is left when either step fails.
pub fn share(dir: &StateDir, id: &str, rootfs: &Path) -> Result<String, ContainerError> {
    let record = ContainerRecord {
        id: id.to_string(),
        sandbox: dir.id().to_string(),
        created: super::now(),
        rootfs: rootfs.to_path_buf(),
    };
    dir.add_container(&record)?;
    mounts::share_rootfs(&dir.shared_dir(), id, rootfs).map_err(|e| {
        let _ = dir.remove_container(id);
        ContainerError::from(e)
    })
}

/// Unmounts container `id`'s root filesystem and forgets it.
pub fn unshare(dir: &StateDir, id: &str) -> Result<(), ContainerError> {
    if dir.container(id)?.is_none() {
        return Err(unknown(dir, id));
    }
    mounts::unshare_rootfs(&dir.shared_dir(), id)?;
    dir.remove_container(id)?;
    Ok(())
}

/// Removes container `id` in the guest, then unshares it. The share goes even
/// when the guest fails to remove the container (whose error is returned).
pub async fn remove(dir: &StateDir, spec: &VmSpec, id: &str) -> Result<(), ContainerError> {
    if dir.container(id)?.is_none() {
        return Err(unknown(dir, id));
    }
    let removed = guest::remove_container(spec, id)
        .await
        .map_err(|e| ContainerError::Agent(id.to_string(), e));
    unshare(dir, id)?;
    tracing::info!(sandbox = dir.id(), container_id = id, "container removed");
    removed
}

fn unknown(dir: &StateDir, id: &str) -> ContainerError {
    ContainerError::Unknown {
        sandbox: dir.id().to_string(),
        container: id.to_string(),
    }
}
