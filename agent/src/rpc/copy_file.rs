//! CopyFile.

use hull_protocols::agent::CopyFileRequest;
use hull_protocols::empty::Empty;

use crate::state::Agent;
use crate::status::RpcError;

pub fn copy(agent: &Agent, req: &CopyFileRequest) -> Result<Empty, RpcError> {
    crate::copy_file::copy(&agent.config, req)?;
    Ok(Empty::new())
}
