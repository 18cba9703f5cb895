//! The Hull guest agent: PID 1 of a Hull guest, serving the Kata-compatible agent API
//! (`grpc.AgentService`, `grpc.Health`) over ttrpc on vsock.
//!
//! Layout:
//! - [`config`]: the typed configuration (kernel command line or flags);
//! - [`pid1`]: the PID-1 entry (boot steps, then serve, then power off);
//! - [`server`], [`rpc`], [`status`]: the ttrpc server, one module per RPC family, the
//!   error-to-status mapping;
//! - [`state`]: what the RPCs share; [`sandbox`], [`container`], [`guest`],
//!   [`copy_file`]: the logic;
//! - [`metrics`], [`oom`], [`logging`], [`debug_console`].
//!
//! The runtime is tokio's single-threaded one: the agent is I/O-bound and ships in every
//! VM, so it stays small.
//!
//! Limitations: networking, device hot-plug and block storage answer UNIMPLEMENTED.

pub mod config;
pub mod container;
pub mod copy_file;
pub mod debug_console;
pub mod fd_stream;
pub mod files;
pub mod guest;
pub mod logging;
pub mod metrics;
pub mod oom;
pub mod pid1;
pub mod rpc;
pub mod sandbox;
pub mod server;
pub mod state;
pub mod status;

use std::sync::Arc;

use hull_init::kernel::{Host, Kernel};
use hull_init::power::{install_panic_hook, OnFatal};
use hull_init::reaper::Reaper;
use thiserror::Error;

use crate::config::Config;
use crate::state::Agent;

/// The OOM-killer score the agent gives itself: never pick the agent.
const OOM_SCORE_ADJ: &str = "-1000";

/// Errors that end the agent.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The tokio runtime could not be built.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The reaper could not start.
    #[error("cannot start the reaper")]
    Reaper(#[from] hull_init::reaper::ReaperError),
    /// The early boot steps failed.
    #[error("boot failed")]
    Boot(#[from] hull_init::boot::BootError),
    /// The server failed.
    #[error("server failed")]
    Server(#[from] server::ServerError),
}

/// Runs the agent as a normal process (not PID 1) until SIGTERM or SIGINT.
pub fn run_process(config: Config) -> Result<(), AgentError> {
    install_panic_hook(OnFatal::Exit);
    if let Some(problem) = logging::init(&config) {
        tracing::warn!("{problem}");
    }
    let kernel: Arc<dyn Kernel> = Arc::new(Host);
    let options = hull_init::boot::BootOptions {
        pid1: false,
        root: "/".into(),
        hostname: None,
    };
    hull_init::boot::setup(kernel.as_ref(), &options)?;
    serve(config, kernel)
}

/// Builds the runtime and serves until stopped; the sandbox is torn down on the way out.
pub fn serve(config: Config, kernel: Arc<dyn Kernel>) -> Result<(), AgentError> {
    if config.system {
        shield_from_oom_killer();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(async move {
        let reaper = Reaper::new();
        reaper.start()?;
        let agent = Arc::new(Agent::new(config, kernel, reaper));
        debug_console::start(&agent);
        let result = server::serve(agent.clone()).await;
        container::lifecycle::remove_all(&agent).await;
        agent.sandbox().destroy(agent.kernel.as_ref());
        Ok(result?)
    })
}

fn shield_from_oom_killer() {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", OOM_SCORE_ADJ) {
        tracing::warn!(error = %e, "cannot set oom_score_adj");
    }
}
