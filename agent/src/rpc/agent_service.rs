//! Routes each `grpc.AgentService` RPC to its family's module, or to UNIMPLEMENTED.
//!
//! Keep this file a table: one short method per RPC, no logic.

use std::sync::Arc;

use async_trait::async_trait;
use hull_protocols::agent::*;
use hull_protocols::agent_ttrpc::AgentService;
use hull_protocols::csi::VolumeStatsResponse;
use hull_protocols::empty::Empty;
use hull_protocols::ttrpc::{self, r#async::TtrpcContext};
use hull_protocols::types::Interface;

use super::unimplemented::unimplemented;
use super::{containers, copy_file, guest, metrics, oom, process, sandbox, stdio, storage};
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
        req: CreateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        reply(containers::create(&self.agent, &req).await)
    }

    async fn start_container(
        &self,
        _ctx: &TtrpcContext,
        req: StartContainerRequest,
    ) -> ttrpc::Result<Empty> {
        reply(containers::start(&self.agent, &req).await)
    }

    async fn remove_container(
        &self,
        _ctx: &TtrpcContext,
        req: RemoveContainerRequest,
    ) -> ttrpc::Result<Empty> {
        reply(containers::remove(&self.agent, &req).await)
    }

    async fn exec_process(
        &self,
        _ctx: &TtrpcContext,
        req: ExecProcessRequest,
    ) -> ttrpc::Result<Empty> {
        reply(process::exec(&self.agent, &req).await)
    }

    async fn signal_process(
        &self,
        _ctx: &TtrpcContext,
        req: SignalProcessRequest,
    ) -> ttrpc::Result<Empty> {
        reply(process::signal(&self.agent, &req).await)
    }

    async fn wait_process(
        &self,
        _ctx: &TtrpcContext,
        req: WaitProcessRequest,
    ) -> ttrpc::Result<WaitProcessResponse> {
        reply(process::wait(&self.agent, &req).await)
    }

    async fn update_container(
        &self,
        _ctx: &TtrpcContext,
        req: UpdateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        reply(containers::update(&self.agent, &req).await)
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
        req: StatsContainerRequest,
    ) -> ttrpc::Result<StatsContainerResponse> {
        reply(containers::stats(&self.agent, &req).await)
    }

    async fn pause_container(
        &self,
        _ctx: &TtrpcContext,
        req: PauseContainerRequest,
    ) -> ttrpc::Result<Empty> {
        reply(containers::pause(&self.agent, &req).await)
    }

    async fn resume_container(
        &self,
        _ctx: &TtrpcContext,
        req: ResumeContainerRequest,
    ) -> ttrpc::Result<Empty> {
        reply(containers::resume(&self.agent, &req).await)
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
        req: WriteStreamRequest,
    ) -> ttrpc::Result<WriteStreamResponse> {
        reply(stdio::write_stdin(&self.agent, &req).await)
    }

    async fn read_stdout(
        &self,
        _ctx: &TtrpcContext,
        req: ReadStreamRequest,
    ) -> ttrpc::Result<ReadStreamResponse> {
        reply(stdio::read_stdout(&self.agent, &req).await)
    }

    async fn read_stderr(
        &self,
        _ctx: &TtrpcContext,
        req: ReadStreamRequest,
    ) -> ttrpc::Result<ReadStreamResponse> {
        reply(stdio::read_stderr(&self.agent, &req).await)
    }

    async fn close_stdin(
        &self,
        _ctx: &TtrpcContext,
        req: CloseStdinRequest,
    ) -> ttrpc::Result<Empty> {
        reply(stdio::close_stdin(&self.agent, &req).await)
    }

    async fn tty_win_resize(
        &self,
        _ctx: &TtrpcContext,
        req: TtyWinResizeRequest,
    ) -> ttrpc::Result<Empty> {
        reply(stdio::resize(&self.agent, &req).await)
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
