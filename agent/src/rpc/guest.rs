//! GetGuestDetails, SetGuestDateTime, ReseedRandomDev, OnlineCPUMem.

use hull_protocols::agent::{
    GuestDetailsRequest, GuestDetailsResponse, OnlineCPUMemRequest, ReseedRandomDevRequest,
    SetGuestDateTimeRequest,
};
use hull_protocols::empty::Empty;

use crate::guest;
use crate::state::Agent;
use crate::status::RpcError;

pub fn details(agent: &Agent, req: &GuestDetailsRequest) -> Result<GuestDetailsResponse, RpcError> {
    Ok(guest::details(&agent.config, req)?)
}

pub fn set_time(agent: &Agent, req: &SetGuestDateTimeRequest) -> Result<Empty, RpcError> {
    guest::set_time(&agent.config, req.Sec, req.Usec)?;
    Ok(Empty::new())
}

pub fn reseed(agent: &Agent, req: &ReseedRandomDevRequest) -> Result<Empty, RpcError> {
    guest::reseed(&agent.config, &req.data)?;
    Ok(Empty::new())
}

pub async fn online_cpu_mem(agent: &Agent, req: &OnlineCPUMemRequest) -> Result<Empty, RpcError> {
    guest::hotplug::online(&agent.config, req).await?;
    Ok(Empty::new())
}
