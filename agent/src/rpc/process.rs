//! ExecProcess, SignalProcess, WaitProcess.

use hull_protocols::agent::{
    ExecProcessRequest, SignalProcessRequest, WaitProcessRequest, WaitProcessResponse,
};
use hull_protocols::empty::Empty;

use crate::container::lifecycle;
use crate::state::Agent;
use crate::status::RpcError;

pub async fn exec(agent: &Agent, req: &ExecProcessRequest) -> Result<Empty, RpcError> {
    lifecycle::exec(agent, req).await?;
    Ok(Empty::new())
}

pub async fn signal(agent: &Agent, req: &SignalProcessRequest) -> Result<Empty, RpcError> {
    lifecycle::signal(agent, &req.container_id, &req.exec_id, req.signal).await?;
    Ok(Empty::new())
}

pub async fn wait(
    agent: &Agent,
    req: &WaitProcessRequest,
) -> Result<WaitProcessResponse, RpcError> {
    let status = lifecycle::wait(agent, &req.container_id, &req.exec_id).await?;
    Ok(WaitProcessResponse {
        status,
        ..Default::default()
    })
}
