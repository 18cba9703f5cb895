//! Routes each `grpc.AgentService` RPC to its family's module, or to UNIMPLEMENTED.
//!
//! Keep this file a table: one short method per RPC, no logic. The container and
//! process RPCs are routed to UNIMPLEMENTED until the container API lands.

use std::sync::Arc;

use async_trait::async_trait;
use hull_protocols::agent::*;
use hull_protocols::agent_ttrpc::AgentService;
use hull_protocols::csi::VolumeStatsResponse;
use hull_protocols::empty::Empty;
use hull_protocols::ttrpc::{self, r#async::TtrpcContext};
use hull_protocols::types::Interface;

use super::unimplemented::unimplemented;
use super::{copy_file, guest, metrics, oom, sandbox, storage};
use crate::state::Agent;
use crate::status::reply;

/// The `grpc.AgentService` implementation.
pub struct AgentRpc {
    pub agent: Arc<Agent>,
}

#[async_trait]
impl AgentService for AgentRpc {
    async fn create_container(
        &self,
        _ctx: &TtrpcContext,
        _req: CreateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("CreateContainer")
    }

    async fn start_container(
        &self,
        _ctx: &TtrpcContext,
        _req: StartContainerRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("StartContainer")
    }

    async fn remove_container(
        &self,
        _ctx: &TtrpcContext,
        _req: RemoveContainerRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("RemoveContainer")
    }

    async fn exec_process(
        &self,
        _ctx: &TtrpcContext,
        _req: ExecProcessRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("ExecProcess")
    }

    async fn signal_process(
        &self,
        _ctx: &TtrpcContext,
        _req: SignalProcessRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("SignalProcess")
    }

    async fn wait_process(
        &self,
        _ctx: &TtrpcContext,
        _req: WaitProcessRequest,
    ) -> ttrpc::Result<WaitProcessResponse> {
        unimplemented("WaitProcess")
    }

    async fn update_container(
        &self,
        _ctx: &TtrpcContext,
        _req: UpdateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("UpdateContainer")
    }

    async fn update_ephemeral_mounts(
        &self,
        _ctx: &TtrpcContext,
        _req: UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("UpdateEphemeralMounts")
    }

    async fn stats_container(
        &self,
        _ctx: &TtrpcContext,
        _req: StatsContainerRequest,
    ) -> ttrpc::Result<StatsContainerResponse> {
        unimplemented("StatsContainer")
    }

    async fn pause_container(
        &self,
        _ctx: &TtrpcContext,
        _req: PauseContainerRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("PauseContainer")
    }

    async fn resume_container(
        &self,
        _ctx: &TtrpcContext,
        _req: ResumeContainerRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("ResumeContainer")
    }

    async fn remove_stale_virtiofs_share_mounts(
        &self,
        _ctx: &TtrpcContext,
        _req: RemoveStaleVirtiofsShareMountsRequest,
    ) -> ttrpc::Result<Empty> {
        reply(storage::remove_stale_virtiofs_share_mounts())
    }

    async fn get_diagnostic_data(
        &self,
        _ctx: &TtrpcContext,
        _req: GetDiagnosticDataRequest,
    ) -> ttrpc::Result<GetDiagnosticDataResponse> {
        unimplemented("GetDiagnosticData")
    }

    async fn write_stdin(
        &self,
        _ctx: &TtrpcContext,
        _req: WriteStreamRequest,
    ) -> ttrpc::Result<WriteStreamResponse> {
        unimplemented("WriteStdin")
    }

    async fn read_stdout(
        &self,
        _ctx: &TtrpcContext,
        _req: ReadStreamRequest,
    ) -> ttrpc::Result<ReadStreamResponse> {
        unimplemented("ReadStdout")
    }

    async fn read_stderr(
        &self,
        _ctx: &TtrpcContext,
        _req: ReadStreamRequest,
    ) -> ttrpc::Result<ReadStreamResponse> {
        unimplemented("ReadStderr")
    }

    async fn close_stdin(
        &self,
        _ctx: &TtrpcContext,
        _req: CloseStdinRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("CloseStdin")
    }

    async fn tty_win_resize(
        &self,
        _ctx: &TtrpcContext,
        _req: TtyWinResizeRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("TtyWinResize")
    }

    async fn update_interface(
        &self,
        _ctx: &TtrpcContext,
        _req: UpdateInterfaceRequest,
    ) -> ttrpc::Result<Interface> {
        unimplemented("UpdateInterface")
    }

    async fn update_routes(
        &self,
        _ctx: &TtrpcContext,
        _req: UpdateRoutesRequest,
    ) -> ttrpc::Result<Routes> {
        unimplemented("UpdateRoutes")
    }

    async fn list_interfaces(
        &self,
        _ctx: &TtrpcContext,
        _req: ListInterfacesRequest,
    ) -> ttrpc::Result<Interfaces> {
        unimplemented("ListInterfaces")
    }

    async fn list_routes(
        &self,
        _ctx: &TtrpcContext,
        _req: ListRoutesRequest,
    ) -> ttrpc::Result<Routes> {
        unimplemented("ListRoutes")
    }

    async fn add_arp_neighbors(
        &self,
        _ctx: &TtrpcContext,
        _req: AddARPNeighborsRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("AddARPNeighbors")
    }

    async fn get_ip_tables(
        &self,
        _ctx: &TtrpcContext,
        _req: GetIPTablesRequest,
    ) -> ttrpc::Result<GetIPTablesResponse> {
        unimplemented("GetIPTables")
    }

    async fn set_ip_tables(
        &self,
        _ctx: &TtrpcContext,
        _req: SetIPTablesRequest,
    ) -> ttrpc::Result<SetIPTablesResponse> {
        unimplemented("SetIPTables")
    }

    async fn get_metrics(
        &self,
        _ctx: &TtrpcContext,
        _req: GetMetricsRequest,
    ) -> ttrpc::Result<Metrics> {
        reply(metrics::get(&self.agent))
    }

    async fn mem_agent_memcg_set(
        &self,
        _ctx: &TtrpcContext,
        _req: MemAgentMemcgConfig,
    ) -> ttrpc::Result<Empty> {
        unimplemented("MemAgentMemcgSet")
    }

    async fn mem_agent_compact_set(
        &self,
        _ctx: &TtrpcContext,
        _req: MemAgentCompactConfig,
    ) -> ttrpc::Result<Empty> {
        unimplemented("MemAgentCompactSet")
    }

    async fn create_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: CreateSandboxRequest,
    ) -> ttrpc::Result<Empty> {
        reply(sandbox::create(&self.agent, &req))
    }

    async fn destroy_sandbox(
        &self,
        _ctx: &TtrpcContext,
        _req: DestroySandboxRequest,
    ) -> ttrpc::Result<Empty> {
        reply(sandbox::destroy(&self.agent))
    }

    async fn online_cpu_mem(
        &self,
        _ctx: &TtrpcContext,
        req: OnlineCPUMemRequest,
    ) -> ttrpc::Result<Empty> {
        reply(guest::online_cpu_mem(&self.agent, &req).await)
    }

    async fn reseed_random_dev(
        &self,
        _ctx: &TtrpcContext,
        req: ReseedRandomDevRequest,
    ) -> ttrpc::Result<Empty> {
        reply(guest::reseed(&self.agent, &req))
    }

    async fn get_guest_details(
        &self,
        _ctx: &TtrpcContext,
        req: GuestDetailsRequest,
    ) -> ttrpc::Result<GuestDetailsResponse> {
        reply(guest::details(&self.agent, &req))
    }

    async fn mem_hotplug_by_probe(
        &self,
        _ctx: &TtrpcContext,
        _req: MemHotplugByProbeRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("MemHotplugByProbe")
    }

    async fn set_guest_date_time(
        &self,
        _ctx: &TtrpcContext,
        req: SetGuestDateTimeRequest,
    ) -> ttrpc::Result<Empty> {
        reply(guest::set_time(&self.agent, &req))
    }

    async fn copy_file(&self, _ctx: &TtrpcContext, req: CopyFileRequest) -> ttrpc::Result<Empty> {
        reply(copy_file::copy(&self.agent, &req))
    }

    async fn get_oom_event(
        &self,
        _ctx: &TtrpcContext,
        _req: GetOOMEventRequest,
    ) -> ttrpc::Result<OOMEvent> {
        reply(oom::next(&self.agent).await)
    }

    async fn add_swap(&self, _ctx: &TtrpcContext, _req: AddSwapRequest) -> ttrpc::Result<Empty> {
        unimplemented("AddSwap")
    }

    async fn add_swap_path(
        &self,
        _ctx: &TtrpcContext,
        _req: AddSwapPathRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("AddSwapPath")
    }

    async fn get_volume_stats(
        &self,
        _ctx: &TtrpcContext,
        _req: VolumeStatsRequest,
    ) -> ttrpc::Result<VolumeStatsResponse> {
        unimplemented("GetVolumeStats")
    }

    async fn resize_volume(
        &self,
        _ctx: &TtrpcContext,
        _req: ResizeVolumeRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("ResizeVolume")
    }

    async fn set_policy(
        &self,
        _ctx: &TtrpcContext,
        _req: SetPolicyRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("SetPolicy")
    }
}
