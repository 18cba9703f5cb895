//! The VM launcher: starts a VM from a [`VmSpec`] (helper daemons, then QEMU,
//! paused, then QMP, then resume), watches every process of it, and stops it.
//!
//! A [`Vm`] owns its processes: dropping it kills them. [`Vm::wait`] returns as
//! soon as QEMU or a helper exits and says why the guest stopped (power-off,
//! reset, kernel panic, QEMU failure, a dead helper) with the console tail.
//!
//! Stopping: [`Vm::shutdown`] first asks the guest to power off (the caller
//! says how: the supervisor sends the agent DestroySandbox) and gives it a grace
//! period, then falls back to [`Vm::stop`]: QMP `quit`, then SIGKILL. The exit
//! cause says which happened: a guest that powered off is
//! [`ExitCause::PoweredOff`], one that had to be quit is [`ExitCause::Stopped`].
//!
//! Limitations: the request to power off goes through the agent, so a guest
//! whose agent is hung or not yet up is quit without a guest-side shutdown;
//! there is no ACPI power-button path; no hotplug yet.

pub mod args;
pub mod console;
pub mod helpers;
pub mod process;
pub mod qmp;
pub mod spec;

use std::fmt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Child;

use self::helpers::Helper;
use self::qmp::Qmp;
use self::spec::VmSpec;

/// How long QEMU may take to open its QMP socket.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long QEMU may take to exit after `quit`.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors starting a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The QEMU command line could not be built.
    #[error("invalid VM configuration")]
    Args(#[from] args::ArgsError),
    /// A helper daemon could not be started.
    #[error("cannot start the VM's helpers")]
    Helper(#[from] helpers::HelperError),
    /// QEMU could not be started.
    #[error("cannot start QEMU")]
    Spawn(#[source] process::ProcessError),
    /// QEMU exited or hung while starting.
    #[error("QEMU failed to start: {0}")]
    QemuStart(String),
    /// QMP failed.
    #[error("QMP failed")]
    Qmp(#[from] qmp::QmpError),
}

/// Why a VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitCause {
    /// Stopped on request from the host.
    Stopped,
    /// The guest powered off.
    PoweredOff,
    /// The guest rebooted (QEMU runs with -no-reboot, so a reboot ends it).
    Reset,
    /// The guest kernel panicked; the panic message.
    Panicked(String),
    /// QEMU exited on its own; status and the end of its log.
    QemuExited { status: String, log: String },
    /// A helper daemon died; QEMU was stopped.
    HelperDied { name: String, status: String },
}

impl fmt::Display for ExitCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitCause::Stopped => write!(f, "stopped by the host"),
            ExitCause::PoweredOff => write!(f, "the guest powered off"),
            ExitCause::Reset => write!(f, "the guest rebooted"),
            ExitCause::Panicked(msg) => write!(f, "the guest kernel panicked: {msg}"),
            ExitCause::QemuExited { status, log } if log.is_empty() => {
                write!(f, "QEMU exited ({status})")
            }
            ExitCause::QemuExited { status, log } => write!(f, "QEMU exited ({status}): {log}"),
            ExitCause::HelperDied { name, status } => write!(f, "{name} died ({status})"),
        }
    }
}

/// A stopped VM: why, and the end of its console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmExit {
    /// Why it stopped.
    pub cause: ExitCause,
    /// The last lines of the console.
    pub console_tail: String,
}

impl fmt::Display for VmExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cause)?;
        if !self.console_tail.is_empty() {
            write!(f, "\n--- console (last lines) ---\n{}", self.console_tail)?;
        }
        Ok(())
    }
}

/// Process ids of a running VM.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct VmPids {
    /// QEMU.
    pub qemu: Option<u32>,
    /// Helper daemons by name.
    pub helpers: Vec<(String, Option<u32>)>,
}

/// A running VM.
pub struct Vm {
    spec: VmSpec,
    qemu: Child,
    helpers: Vec<Helper>,
    qmp: Arc<Qmp>,
    started_at: std::time::SystemTime,
    stop_requested: bool,
}

impl Vm {
    /// Starts the VM described by `spec`; its run directory must exist.
    pub async fn start(spec: VmSpec) -> Result<Self, VmError> {
        let args = args::qemu_args(&spec)?;
        let helpers = helpers::start(&spec).await?;
        let paths = spec.paths();
        let started_at = std::time::SystemTime::now();
        let mut qemu =
            process::spawn(&spec.qemu, &args, &paths.qemu_log()).map_err(VmError::Spawn)?;
        tracing::debug!(qemu = %spec.qemu.display(), args = ?args, "started QEMU");
        if let Err(e) = process::wait_for_socket(&mut qemu, "QEMU", &paths.qmp(), QMP_TIMEOUT).await
        {
            let log = console::tail(&paths.qemu_log(), 10);
            let detail = if log.is_empty() { e.to_string() } else { log };
            return Err(VmError::QemuStart(detail));
        }
        let qmp = Qmp::connect(&paths.qmp()).await?;
        qmp.execute("cont", None).await?;
        Ok(Self {
            spec,
            qemu,
            helpers,
            qmp,
            started_at,
            stop_requested: false,
        })
    }

    /// The spec it was started from.
    pub fn spec(&self) -> &VmSpec {
        &self.spec
    }

    /// When QEMU was started.
    pub fn started_at(&self) -> std::time::SystemTime {
        self.started_at
    }

    /// The QMP session.
    pub fn qmp(&self) -> &Arc<Qmp> {
        &self.qmp
    }

    /// Process ids of QEMU and the helpers.
    pub fn pids(&self) -> VmPids {
        VmPids {
            qemu: self.qemu.id(),
            helpers: self
                .helpers
                .iter()
                .map(|h| (h.name.to_string(), h.child.id()))
                .collect(),
        }
    }

    /// Waits until QEMU or a helper exits, stops whatever still runs, and says
    /// why the VM ended.
    pub async fn wait(&mut self) -> VmExit {
        let cause = tokio::select! {
            status = self.qemu.wait() => self.qemu_cause(status),
            (name, status) = wait_any(&mut self.helpers) => {
                self.kill_qemu().await;
                ExitCause::HelperDied { name: name.to_string(), status }
            }
        };
        self.kill_helpers().await;
        VmExit {
            cause,
            console_tail: console::tail(&self.spec.paths().console_log(), console::TAIL_LINES),
        }
    }

    /// Stops the VM gracefully: `ask` requests a power-off from the guest and
    /// says whether the guest took the request; if it did, the guest has
    /// `grace` to power off before [`Vm::stop`] takes over (as it does at once
    /// when the guest did not take it). Returns how the VM ended.
    pub async fn shutdown(
        &mut self,
        ask: impl std::future::Future<Output = bool>,
        grace: Duration,
    ) -> VmExit {
        let asked = tokio::select! {
            exit = self.wait() => return exit,
            asked = ask => asked,
        };
        if asked {
            match tokio::time::timeout(grace, self.wait()).await {
                Ok(exit) => return exit,
                Err(_) => tracing::warn!(?grace, "the guest did not power off; quitting QEMU"),
            }
        }
        self.stop().await
    }

    /// Stops the VM: QMP `quit`, then SIGKILL if QEMU is still there after
    /// [`QUIT_TIMEOUT`]; returns how it ended.
    pub async fn stop(&mut self) -> VmExit {
        self.stop_requested = true;
        if let Err(e) = self.qmp.execute("quit", None).await {
            tracing::debug!(error = %e, "QMP quit failed; killing QEMU");
            self.kill_qemu().await;
        }
        match tokio::time::timeout(QUIT_TIMEOUT, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                self.kill_qemu().await;
                self.wait().await
            }
        }
    }

    fn qemu_cause(&self, status: std::io::Result<ExitStatus>) -> ExitCause {
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        if self.stop_requested {
            return ExitCause::Stopped;
        }
        let paths = self.spec.paths();
        // The panic line precedes a stack dump longer than the shown tail.
        let console = console::tail(&paths.console_log(), usize::MAX);
        let events = self.qmp.stop_events();
        if let Some(msg) = console::panic_message(&console) {
            return ExitCause::Panicked(msg);
        }
        if events.panicked || events.shutdown_reason.as_deref() == Some("guest-panic") {
            return ExitCause::Panicked("reported by the guest".into());
        }
        match events.shutdown_reason.as_deref() {
            Some("guest-shutdown") => ExitCause::PoweredOff,
            Some("guest-reset") => ExitCause::Reset,
            _ => ExitCause::QemuExited {
                status,
                log: console::tail(&paths.qemu_log(), 5),
            },
        }
    }

    async fn kill_qemu(&mut self) {
        let _ = self.qemu.start_kill();
        let _ = self.qemu.wait().await;
    }

    async fn kill_helpers(&mut self) {
        for helper in &mut self.helpers {
            let _ = helper.child.start_kill();
            let _ = helper.child.wait().await;
        }
    }
}

/// Waits for the first helper to exit; never returns when there is none.
async fn wait_any(helpers: &mut [Helper]) -> (&'static str, String) {
    let Some((first, rest)) = helpers.split_first_mut() else {
        return std::future::pending().await;
    };
    let name = first.name;
    tokio::select! {
        status = first.child.wait() => (name, status.map_or_else(|e| e.to_string(), |s| s.to_string())),
        other = Box::pin(wait_any(rest)) => other,
    }
}
