//! CreateContainer, StartContainer, RemoveContainer, PauseContainer, ResumeContainer,
//! UpdateContainer, StatsContainer.

use hull_protocols::agent::{
    CreateContainerRequest, PauseContainerRequest, RemoveContainerRequest, ResumeContainerRequest,
    StartContainerRequest, StatsContainerRequest, StatsContainerResponse, UpdateContainerRequest,
};
use hull_protocols::empty::Empty;
use hull_protocols::oci_convert::resources_from_proto;

use crate::container::{lifecycle, stats, ContainerError};
use crate::state::Agent;
use crate::status::RpcError;

pub async fn create(agent: &Agent, req: &CreateContainerRequest) -> Result<Empty, RpcError> {
    lifecycle::create(agent, req).await?;
    Ok(Empty::new())
}

pub async fn start(agent: &Agent, req: &StartContainerRequest) -> Result<Empty, RpcError> {
    lifecycle::start(agent, &req.container_id).await?;
    Ok(Empty::new())
}

pub async fn remove(agent: &Agent, req: &RemoveContainerRequest) -> Result<Empty, RpcError> {
    lifecycle::remove(agent, &req.container_id, req.timeout).await?;
    Ok(Empty::new())
}

pub async fn pause(agent: &Agent, req: &PauseContainerRequest) -> Result<Empty, RpcError> {
    lifecycle::pause(agent, &req.container_id).await?;
    Ok(Empty::new())
}

pub async fn resume(agent: &Agent, req: &ResumeContainerRequest) -> Result<Empty, RpcError> {
    lifecycle::resume(agent, &req.container_id).await?;
    Ok(Empty::new())
}

pub async fn update(agent: &Agent, req: &UpdateContainerRequest) -> Result<Empty, RpcError> {
    let proto = req
        .resources
        .as_ref()
        .ok_or_else(|| ContainerError::BadField {
            field: "resources".into(),
            problem: "missing".into(),
        })?;
    let resources =
        resources_from_proto(proto).map_err(|e| ContainerError::Spec(e.within("resources")))?;
    lifecycle::update(agent, &req.container_id, resources).await?;
    Ok(Empty::new())
}

pub async fn stats(
    agent: &Agent,
    req: &StatsContainerRequest,
) -> Result<StatsContainerResponse, RpcError> {
    let cgroup = lifecycle::stats(agent, &req.container_id).await?;
    Ok(StatsContainerResponse {
        cgroup_stats: Some(stats::to_proto(&cgroup)).into(),
        ..Default::default()
    })
}
