//! One measured boot: the image under hull-runtime's VM launcher, timed from the
//! launch (vsock back end, then QEMU, resumed over QMP) to
//! - the agent's first console line, i.e. the kernel has handed over to `/init`
//!   (host clock; the guest console is watched as it is written), and
//! - agent ready: the first `Health.Check` answered over the host-guest channel;
//!
//! then the agent's `Version` and `GetMetrics` (memory, and the guest-clock time
//! at which `/init` started), and the VM is stopped.
//!
//! A boot that cannot reach the agent (a kernel without built-in vsock) is timed
//! to the first console line only.

use std::future::Future;
use std::time::{Duration, Instant};

use hull_protocols::agent::GetMetricsRequest;
use hull_runtime::agent::{AgentClient, AgentError};
use hull_runtime::image::{Image, RootKind};
use hull_runtime::plan::{plan, PlanError, VmOptions};
use hull_runtime::vm::spec::{Accel, VmSpec};
use hull_runtime::vm::{Vm, VmError};

use super::console::{ConsoleWatch, AGENT_FIRST_LINE};
use super::prometheus::Samples;

/// How often readiness is probed.
const READY_POLL: Duration = Duration::from_millis(10);
/// How long the first console line may lag behind readiness (console polling).
const CONSOLE_LAG: Duration = Duration::from_millis(500);

/// Errors of one boot.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The run directory could not be made.
    #[error("cannot create a run directory")]
    RunDir(#[source] std::io::Error),
    /// The VM cannot be planned.
    #[error("cannot plan the VM")]
    Plan(#[from] PlanError),
    /// The VM did not start.
    #[error("cannot start the VM")]
    Start(#[from] VmError),
    /// The guest stopped first.
    #[error("the guest ended before {what}: {exit}")]
    Ended { what: &'static str, exit: String },
    /// Nothing within the time limit.
    #[error("no {what} within {waited:?}; console (last lines):\n{console}")]
    Timeout {
        what: &'static str,
        waited: Duration,
        console: String,
    },
    /// The agent answered readiness but failed a later call.
    #[error("agent")]
    Agent(#[from] AgentError),
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Boot the initrd or the disk.
    pub root: RootKind,
    /// The accelerator.
    pub accel: Accel,
    /// Wait for the agent (false: only for the first console line).
    pub wait_agent: bool,
    /// Limit for each wait.
    pub timeout: Duration,
    /// Extra kernel parameters.
    pub kernel_params: Vec<String>,
}

/// What one boot showed.
#[derive(Debug, Clone, Default)]
pub struct BootRun {
    /// Launch to the agent's first console line.
    pub to_init: Option<Duration>,
    /// Launch to the first answered `Health.Check`.
    pub ready: Option<Duration>,
    /// The agent's version, as it reports it.
    pub agent_version: Option<String>,
    /// The agent's metrics right after readiness.
    pub metrics: Option<Samples>,
}

/// Boots `image` once and stops it again.
pub async fn boot_once(image: &Image, opts: &BootOptions) -> Result<BootRun, BootError> {
    let run_dir = tempfile::Builder::new()
        .prefix("hull-bench-")
        .tempdir()
        .map_err(BootError::RunDir)?;
    let mut vm_opts = VmOptions::new("bench");
    vm_opts.root = opts.root;
    vm_opts.accel = Some(opts.accel);
    vm_opts.kernel_params = opts.kernel_params.clone();
    let spec = plan(image, &vm_opts, run_dir.path())?.spec;

    let started = Instant::now();
    let console_log = spec.paths().console_log();
    let mut console = ConsoleWatch::spawn(console_log, AGENT_FIRST_LINE, started);
    let mut vm = Vm::start(spec).await?;
    let result = observe(&mut vm, &mut console, started, opts).await;
    vm.stop().await;
    result
}

async fn observe(
    vm: &mut Vm,
    console: &mut ConsoleWatch,
    started: Instant,
    opts: &BootOptions,
) -> Result<BootRun, BootError> {
    if !opts.wait_agent {
        let line = "the agent's first console line";
        let to_init = until(vm, line, opts.timeout, console.wait()).await?;
        return Ok(BootRun {
            to_init: Some(to_init),
            ..BootRun::default()
        });
    }
    let spec = vm.spec().clone();
    let client = until(vm, "agent ready", opts.timeout, wait_ready(&spec)).await?;
    let ready = started.elapsed();
    let agent_version = Some(client.version().await?);
    let metrics = Some(metrics(&client).await?);
    let to_init = tokio::time::timeout(CONSOLE_LAG, console.wait()).await.ok();
    Ok(BootRun {
        to_init,
        ready: Some(ready),
        agent_version,
        metrics,
    })
}

/// Runs `fut` unless the VM ends or `timeout` passes first.
pub async fn until<T>(
    vm: &mut Vm,
    what: &'static str,
    timeout: Duration,
    fut: impl Future<Output = T>,
) -> Result<T, BootError> {
    tokio::select! {
        value = tokio::time::timeout(timeout, fut) => value.map_err(|_| BootError::Timeout {
            what,
            waited: timeout,
            console: hull_runtime::vm::console::tail(&vm.spec().paths().console_log(), 15),
        }),
        exit = vm.wait() => Err(BootError::Ended { what, exit: exit.to_string() }),
    }
}

/// Probes the agent every [`READY_POLL`] until a `Health.Check` is answered.
pub async fn wait_ready(spec: &VmSpec) -> AgentClient {
    let paths = spec.paths();
    loop {
        if let Ok(client) = AgentClient::connect(spec.channel, &paths, Duration::ZERO).await {
            return client;
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// The agent's metrics.
pub async fn metrics(client: &AgentClient) -> Result<Samples, AgentError> {
    let reply =
        hull_runtime::agent_call!(client, get_metrics, "GetMetrics", &GetMetricsRequest::new())?;
    Ok(Samples::parse(&reply.metrics))
}
