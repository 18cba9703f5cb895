//! Storage RPCs beyond the sandbox's own.

use hull_protocols::empty::Empty;

use crate::status::RpcError;

/// Nothing to clean: shared-directory mounts are made per sandbox and undone with it.
pub fn remove_stale_virtiofs_share_mounts() -> Result<Empty, RpcError> {
    Ok(Empty::new())
}
