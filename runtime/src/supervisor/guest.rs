//! What the supervisor asks of the guest agent itself: to power the guest off
//! (DestroySandbox) before the VM is stopped, and to remove a container whose
//! owner went away.
//!
//! Each request opens its own agent connection: the supervisor talks to the
//! agent rarely, and a connection held for the VM's life would have to be
//! re-established after every channel hiccup anyway.

use std::time::Duration;

use hull_protocols::agent::{DestroySandboxRequest, RemoveContainerRequest};
use hull_protocols::ttrpc;

use crate::agent::{AgentClient, AgentError};
use crate::agent_call;
use crate::vm::spec::VmSpec;

/// How long the agent may take to answer a connection attempt.
const CONNECT_WAIT: Duration = Duration::from_secs(3);
/// How long asking the guest to power off may take in all.
pub const DESTROY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the guest may take to power off once it agreed to.
pub const POWER_OFF_GRACE: Duration = Duration::from_secs(15);
/// Seconds the agent may take to kill a removed container's processes.
const REMOVE_TIMEOUT_S: u32 = 10;

async fn connect(spec: &VmSpec) -> Result<AgentClient, AgentError> {
    AgentClient::connect(spec.channel, &spec.paths(), CONNECT_WAIT).await
}

/// Sends DestroySandbox; true when the guest took it and will power off. The
/// guest may power off before its reply arrives, so a connection lost during
/// the call counts as taken; a refusal or an unreachable agent does not.
pub async fn ask_power_off(spec: VmSpec) -> bool {
    let attempt = async {
        let agent = connect(&spec).await?;
        let req = DestroySandboxRequest::new();
        let timeout = Some(DESTROY_TIMEOUT);
        agent_call!(agent, destroy_sandbox, "DestroySandbox", &req, timeout)
    };
    let outcome = match tokio::time::timeout(DESTROY_TIMEOUT, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::debug!("no answer to DestroySandbox in time");
            return false;
        }
    };
    match outcome {
        Ok(_) => true,
        Err(AgentError::Rpc {
            source: ttrpc::Error::RpcStatus(status),
            ..
        }) => {
            tracing::warn!(error = %status.message, "the agent refused DestroySandbox");
            false
        }
        Err(e @ AgentError::Rpc { .. }) => {
            tracing::debug!(error = %e, "connection lost during DestroySandbox");
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, "agent unreachable for DestroySandbox");
            false
        }
    }
}

/// Removes container `id` in the guest; one the agent does not know counts as
/// removed.
pub async fn remove_container(spec: &VmSpec, id: &str) -> Result<(), AgentError> {
    let agent = connect(spec).await?;
    let mut req = RemoveContainerRequest::new();
    req.container_id = id.to_string();
    req.timeout = REMOVE_TIMEOUT_S;
    match agent_call!(agent, remove_container, "RemoveContainer", &req) {
        Err(AgentError::Rpc {
            source: ttrpc::Error::RpcStatus(status),
            ..
        }) if status.code.value() == ttrpc::Code::NOT_FOUND as i32 => Ok(()),
        other => other.map(|_| ()),
    }
}
