//! The host's client of the guest agent: the generated ttrpc clients over the
//! host-guest channel, with connect retries until `Health.Check` answers, a
//! timeout on every call but the long polls, and errors naming the RPC.
//!
//! Over the virtio-serial channel the connection goes to the sandbox
//! supervisor's agent socket, which multiplexes it with the other host
//! processes' connections onto the one serial port (`supervisor::mux`); each
//! client is still an ordinary ttrpc connection.

use std::time::{Duration, Instant};

use hull_protocols::agent;
use hull_protocols::agent_ttrpc::AgentServiceClient;
use hull_protocols::health::{health_check_response::ServingStatus, CheckRequest};
use hull_protocols::health_ttrpc::HealthClient;
use hull_protocols::ttrpc;
use hull_protocols::ttrpc::asynchronous::transport::Socket;

use crate::channel::{self, ChannelError};
use crate::vm::spec::{ChannelSpec, RunPaths};

/// The vsock port the agent serves on.
pub const AGENT_PORT: u32 = 1024;
/// Timeout of an ordinary call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one health check while connecting.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Errors talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent did not answer a health check in time.
    #[error("agent did not answer within {waited:?} (last attempt: {last})")]
    Unreachable { waited: Duration, last: String },
    /// The agent answered the health check with another status.
    #[error("agent reports {0:?} instead of SERVING")]
    NotServing(String),
    /// An RPC failed.
    #[error("agent call {rpc} failed")]
    Rpc {
        rpc: &'static str,
        #[source]
        source: ttrpc::Error,
    },
}

/// A connection to the agent.
#[derive(Clone)]
pub struct AgentClient {
    agent: AgentServiceClient,
    health: HealthClient,
}

impl AgentClient {
    /// Connects and retries, with backoff, until `Health.Check` says SERVING or
    /// `wait` has passed.
    pub async fn connect(
        channel: ChannelSpec,
        paths: &RunPaths,
        wait: Duration,
    ) -> Result<Self, AgentError> {
        let started = Instant::now();
        let mut backoff = BACKOFF_START;
        loop {
            let last = match Self::try_connect(channel, paths).await {
                Ok(client) => return Ok(client),
                Err(e @ AgentError::NotServing(_)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= wait {
                return Err(AgentError::Unreachable { waited: wait, last });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn try_connect(channel: ChannelSpec, paths: &RunPaths) -> Result<Self, AgentError> {
        let socket = open_socket(channel, paths)
            .await
            .map_err(|e| AgentError::Unreachable {
                waited: Duration::ZERO,
                last: e,
            })?;
        let client = ttrpc::r#async::Client::new(socket);
        let me = Self {
            agent: AgentServiceClient::new(client.clone()),
            health: HealthClient::new(client),
        };
        me.check(CHECK_TIMEOUT).await?;
        Ok(me)
    }

    /// One `Health.Check`.
    pub async fn check(&self, timeout: Duration) -> Result<(), AgentError> {
        let reply = self
            .health
            .check(ctx(Some(timeout)), &CheckRequest::new())
            .await
            .map_err(|source| AgentError::Rpc {
                rpc: "Check",
                source,
            })?;
        match reply.status.enum_value() {
            Ok(ServingStatus::SERVING) => Ok(()),
            other => Err(AgentError::NotServing(format!("{other:?}"))),
        }
    }

    /// The agent's version.
    pub async fn version(&self) -> Result<String, AgentError> {
        let reply = self
            .health
            .version(ctx(Some(CALL_TIMEOUT)), &CheckRequest::new())
            .await
            .map_err(|source| AgentError::Rpc {
                rpc: "Version",
                source,
            })?;
        Ok(reply.agent_version)
    }

    /// The generated AgentService client, for calls without a wrapper here.
    pub fn service(&self) -> &AgentServiceClient {
        &self.agent
    }
}

/// A call context with a timeout (`None`: wait forever, for long polls).
pub fn ctx(timeout: Option<Duration>) -> ttrpc::context::Context {
    match timeout {
        Some(t) => ttrpc::context::with_timeout(t.as_nanos().min(i64::MAX as u128) as i64),
        None => ttrpc::context::Context::default(),
    }
}

/// Runs one AgentService RPC with [`CALL_TIMEOUT`] (or none for long polls),
/// naming it in the error.
#[macro_export]
macro_rules! agent_call {
    ($client:expr, $method:ident, $rpc:literal, $req:expr) => {
        $crate::agent_call!(
            $client,
            $method,
            $rpc,
            $req,
            Some($crate::agent::CALL_TIMEOUT)
        )
    };
    ($client:expr, $method:ident, $rpc:literal, $req:expr, $timeout:expr) => {
        $client
            .service()
            .$method($crate::agent::ctx($timeout), $req)
            .await
            .map_err(|source| $crate::agent::AgentError::Rpc { rpc: $rpc, source })
    };
}

async fn open_socket(channel: ChannelSpec, paths: &RunPaths) -> Result<Socket, String> {
    match channel {
        ChannelSpec::VhostVsock { cid } => {
            Socket::connect_vsock(format!("vsock://{cid}:{AGENT_PORT}"))
                .await
                .map_err(|e| format!("vsock CID {cid}: {e}"))
        }
        _ => channel::connect_unix(channel, paths, AGENT_PORT)
            .await
            .map(Socket::from)
            .map_err(|e: ChannelError| e.to_string()),
    }
}

/// Re-exported request types used by the command line.
pub use agent::{
    CreateContainerRequest, CreateSandboxRequest, ExecProcessRequest, ReadStreamRequest,
    RemoveContainerRequest, SignalProcessRequest, StartContainerRequest, Storage,
    WaitProcessRequest, WriteStreamRequest,
};
