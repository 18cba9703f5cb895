//! GetMetrics.

use hull_protocols::agent::Metrics;

use crate::state::Agent;
use crate::status::RpcError;

pub fn get(agent: &Agent) -> Result<Metrics, RpcError> {
    Ok(Metrics {
        metrics: agent.metrics.render(),
        ..Default::default()
    })
}
