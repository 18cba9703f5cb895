//! `grpc.Health`: liveness and version.

use async_trait::async_trait;
use hull_protocols::health::{
    health_check_response::ServingStatus, CheckRequest, HealthCheckResponse, VersionCheckResponse,
};
use hull_protocols::health_ttrpc::Health;
use hull_protocols::ttrpc::{self, r#async::TtrpcContext};

use crate::guest::AGENT_VERSION;

/// The agent protocol version reported by Version.
pub const API_VERSION: &str = "0.0.1";

pub struct HealthRpc;

#[async_trait]
impl Health for HealthRpc {
    async fn check(
        &self,
        _ctx: &TtrpcContext,
        _req: CheckRequest,
    ) -> ttrpc::Result<HealthCheckResponse> {
        Ok(HealthCheckResponse {
            status: ServingStatus::SERVING.into(),
            ..Default::default()
        })
    }

    async fn version(
        &self,
        _ctx: &TtrpcContext,
        _req: CheckRequest,
    ) -> ttrpc::Result<VersionCheckResponse> {
        Ok(VersionCheckResponse {
            grpc_version: API_VERSION.to_string(),
            agent_version: AGENT_VERSION.to_string(),
            ..Default::default()
        })
    }
}
