//! The generated server and client talking over a real Unix socket, and the
//! `grpc.AgentService` method table checked against the wire contract.

use std::sync::Arc;

use async_trait::async_trait;
use hull_protocols::protobuf::reflect::FileDescriptor;
use hull_protocols::ttrpc::r#async::{Client, Server, TtrpcContext};
use hull_protocols::ttrpc::{self, context, Code};
use hull_protocols::{agent, agent_ttrpc, empty, health, health_ttrpc};

struct TestHealth;

#[async_trait]
impl health_ttrpc::Health for TestHealth {
    async fn check(
        &self,
        _ctx: &TtrpcContext,
        req: health::CheckRequest,
    ) -> ttrpc::Result<health::HealthCheckResponse> {
        let status = if req.service.is_empty() {
            health::health_check_response::ServingStatus::SERVING
        } else {
            health::health_check_response::ServingStatus::NOT_SERVING
        };
        Ok(health::HealthCheckResponse {
            status: status.into(),
            ..Default::default()
        })
    }

    async fn version(
        &self,
        _ctx: &TtrpcContext,
        _req: health::CheckRequest,
    ) -> ttrpc::Result<health::VersionCheckResponse> {
        Ok(health::VersionCheckResponse {
            agent_version: "test-1".into(),
            ..Default::default()
        })
    }
}

struct TestAgent;

#[async_trait]
impl agent_ttrpc::AgentService for TestAgent {
    async fn start_container(
        &self,
        _ctx: &TtrpcContext,
        req: agent::StartContainerRequest,
    ) -> ttrpc::Result<empty::Empty> {
        if req.container_id == "known" {
            return Ok(empty::Empty::new());
        }
        Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
            Code::NOT_FOUND,
            format!("container {:?} not found", req.container_id),
        )))
    }
}

async fn start_server(path: &str) -> Server {
    let mut server = Server::new()
        .bind(path)
        .expect("bind a fresh socket in a temp dir")
        .register_service(health_ttrpc::create_health(Arc::new(TestHealth)))
        .register_service(agent_ttrpc::create_agent_service(Arc::new(TestAgent)));
    server.start().await.expect("server starts");
    server
}

fn rpc_code(err: ttrpc::Error) -> Code {
    match err {
        ttrpc::Error::RpcStatus(status) => status.code(),
        other => panic!("expected an RPC status, got {other:?}"),
    }
}

#[tokio::test]
async fn client_and_server_exchange_calls_over_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = format!("unix://{}", dir.path().join("agent.sock").display());
    let mut server = start_server(&addr).await;

    let client = Client::connect(&addr).await.expect("client connects");
    let health = health_ttrpc::HealthClient::new(client.clone());
    let agent = agent_ttrpc::AgentServiceClient::new(client);

    let reply = health
        .check(context::with_timeout(0), &health::CheckRequest::new())
        .await
        .expect("Check answers");
    assert_eq!(
        reply.status.enum_value(),
        Ok(health::health_check_response::ServingStatus::SERVING)
    );
    let version = health
        .version(context::with_timeout(0), &health::CheckRequest::new())
        .await
        .expect("Version answers");
    assert_eq!(version.agent_version, "test-1");

    let known = agent::StartContainerRequest {
        container_id: "known".into(),
        ..Default::default()
    };
    agent
        .start_container(context::with_timeout(0), &known)
        .await
        .expect("known container starts");
    let unknown = agent::StartContainerRequest {
        container_id: "other".into(),
        ..Default::default()
    };
    let err = agent
        .start_container(context::with_timeout(0), &unknown)
        .await
        .expect_err("unknown container is refused");
    assert_eq!(rpc_code(err), Code::NOT_FOUND);

    // A method the service does not override answers with the generated default,
    // which is NOT_FOUND: servers must override every method they want to report
    // as UNIMPLEMENTED.
    let err = agent
        .destroy_sandbox(
            context::with_timeout(0),
            &agent::DestroySandboxRequest::new(),
        )
        .await
        .expect_err("default method fails");
    assert_eq!(rpc_code(err), Code::NOT_FOUND);

    server.shutdown().await.expect("server shuts down");
}

#[test]
fn server_registers_the_wire_service_names() {
    let agent = agent_ttrpc::create_agent_service(Arc::new(TestAgent));
    let health = health_ttrpc::create_health(Arc::new(TestHealth));
    assert_eq!(agent.keys().collect::<Vec<_>>(), ["grpc.AgentService"]);
    assert_eq!(health.keys().collect::<Vec<_>>(), ["grpc.Health"]);
}

/// Every AgentService RPC with its request and response, as the wire contract lists them.
const AGENT_RPCS: &[(&str, &str, &str)] = &[
    (
        "CreateContainer",
        "CreateContainerRequest",
        "google.protobuf.Empty",
    ),
    (
        "StartContainer",
        "StartContainerRequest",
        "google.protobuf.Empty",
    ),
    (
        "RemoveContainer",
        "RemoveContainerRequest",
        "google.protobuf.Empty",
    ),
    ("ExecProcess", "ExecProcessRequest", "google.protobuf.Empty"),
    (
        "SignalProcess",
        "SignalProcessRequest",
        "google.protobuf.Empty",
    ),
    ("WaitProcess", "WaitProcessRequest", "WaitProcessResponse"),
    (
        "UpdateContainer",
        "UpdateContainerRequest",
        "google.protobuf.Empty",
    ),
    (
        "UpdateEphemeralMounts",
        "UpdateEphemeralMountsRequest",
        "google.protobuf.Empty",
    ),
    (
        "StatsContainer",
        "StatsContainerRequest",
        "StatsContainerResponse",
    ),
    (
        "PauseContainer",
        "PauseContainerRequest",
        "google.protobuf.Empty",
    ),
    (
        "ResumeContainer",
        "ResumeContainerRequest",
        "google.protobuf.Empty",
    ),
    (
        "RemoveStaleVirtiofsShareMounts",
        "RemoveStaleVirtiofsShareMountsRequest",
        "google.protobuf.Empty",
    ),
    (
        "GetDiagnosticData",
        "GetDiagnosticDataRequest",
        "GetDiagnosticDataResponse",
    ),
    ("WriteStdin", "WriteStreamRequest", "WriteStreamResponse"),
    ("ReadStdout", "ReadStreamRequest", "ReadStreamResponse"),
    ("ReadStderr", "ReadStreamRequest", "ReadStreamResponse"),
    ("CloseStdin", "CloseStdinRequest", "google.protobuf.Empty"),
    (
        "TtyWinResize",
        "TtyWinResizeRequest",
        "google.protobuf.Empty",
    ),
    (
        "UpdateInterface",
        "UpdateInterfaceRequest",
        "types.Interface",
    ),
    ("UpdateRoutes", "UpdateRoutesRequest", "Routes"),
    ("ListInterfaces", "ListInterfacesRequest", "Interfaces"),
    ("ListRoutes", "ListRoutesRequest", "Routes"),
    (
        "AddARPNeighbors",
        "AddARPNeighborsRequest",
        "google.protobuf.Empty",
    ),
    ("GetIPTables", "GetIPTablesRequest", "GetIPTablesResponse"),
    ("SetIPTables", "SetIPTablesRequest", "SetIPTablesResponse"),
    ("GetMetrics", "GetMetricsRequest", "Metrics"),
    (
        "MemAgentMemcgSet",
        "MemAgentMemcgConfig",
        "google.protobuf.Empty",
    ),
    (
        "MemAgentCompactSet",
        "MemAgentCompactConfig",
        "google.protobuf.Empty",
    ),
    (
        "CreateSandbox",
        "CreateSandboxRequest",
        "google.protobuf.Empty",
    ),
    (
        "DestroySandbox",
        "DestroySandboxRequest",
        "google.protobuf.Empty",
    ),
    (
        "OnlineCPUMem",
        "OnlineCPUMemRequest",
        "google.protobuf.Empty",
    ),
    (
        "ReseedRandomDev",
        "ReseedRandomDevRequest",
        "google.protobuf.Empty",
    ),
    (
        "GetGuestDetails",
        "GuestDetailsRequest",
        "GuestDetailsResponse",
    ),
    (
        "MemHotplugByProbe",
        "MemHotplugByProbeRequest",
        "google.protobuf.Empty",
    ),
    (
        "SetGuestDateTime",
        "SetGuestDateTimeRequest",
        "google.protobuf.Empty",
    ),
    ("CopyFile", "CopyFileRequest", "google.protobuf.Empty"),
    ("GetOOMEvent", "GetOOMEventRequest", "OOMEvent"),
    ("AddSwap", "AddSwapRequest", "google.protobuf.Empty"),
    ("AddSwapPath", "AddSwapPathRequest", "google.protobuf.Empty"),
    (
        "GetVolumeStats",
        "VolumeStatsRequest",
        "VolumeStatsResponse",
    ),
    (
        "ResizeVolume",
        "ResizeVolumeRequest",
        "google.protobuf.Empty",
    ),
    ("SetPolicy", "SetPolicyRequest", "google.protobuf.Empty"),
];

fn full_name(short: &str) -> String {
    if short.contains('.') {
        format!(".{short}")
    } else {
        format!(".grpc.{short}")
    }
}

#[test]
fn agent_service_methods_match_the_contract() {
    let file: &FileDescriptor = agent::file_descriptor();
    let services = &file.proto().service;
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].name(), "AgentService");
    assert_eq!(file.proto().package(), "grpc");

    let actual: Vec<(String, String, String)> = services[0]
        .method
        .iter()
        .map(|m| {
            let input = m.input_type().to_owned();
            let output = m.output_type().to_owned();
            (m.name().to_owned(), input, output)
        })
        .collect();
    let expected: Vec<(String, String, String)> = AGENT_RPCS
        .iter()
        .map(|(name, req, resp)| (name.to_string(), full_name(req), full_name(resp)))
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn health_service_methods_match_the_contract() {
    let file = health::file_descriptor();
    let service = &file.proto().service[0];
    assert_eq!(service.name(), "Health");
    let methods: Vec<_> = service
        .method
        .iter()
        .map(|m| (m.name(), m.input_type(), m.output_type()))
        .collect();
    assert_eq!(
        methods,
        [
            ("Check", ".grpc.CheckRequest", ".grpc.HealthCheckResponse"),
            (
                "Version",
                ".grpc.CheckRequest",
                ".grpc.VersionCheckResponse"
            ),
        ]
    );
}
