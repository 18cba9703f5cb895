//! GetOOMEvent: a long poll on the OOM queue.

use hull_protocols::agent::OOMEvent;

use crate::state::Agent;
use crate::status::RpcError;

pub async fn next(agent: &Agent) -> Result<OOMEvent, RpcError> {
    Ok(OOMEvent {
        container_id: agent.oom.next().await,
        ..Default::default()
    })
}
