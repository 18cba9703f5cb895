//! CreateSandbox and DestroySandbox.

use hull_protocols::agent::CreateSandboxRequest;
use hull_protocols::empty::Empty;

use crate::state::Agent;
use crate::status::RpcError;

/// Sets the sandbox up, then its shared namespaces (started from the runtime's
/// thread, which outlives the sandbox); a failure leaves nothing behind.
pub fn create(agent: &Agent, req: &CreateSandboxRequest) -> Result<Empty, RpcError> {
    let mut sandbox = agent.sandbox();
    sandbox.create(agent.kernel.as_ref(), &agent.config, req)?;
    if let Err(e) = sandbox.share_namespaces(&agent.reaper, &req.hostname) {
        sandbox.destroy(agent.kernel.as_ref());
        return Err(e.into());
    }
    Ok(Empty::new())
}

/// Tears the sandbox down; as PID 1 the agent then stops serving and powers off.
pub fn destroy(agent: &Agent) -> Result<Empty, RpcError> {
    agent.sandbox().destroy(agent.kernel.as_ref());
    if agent.config.pid1 {
        agent.request_shutdown();
    }
    Ok(Empty::new())
}
