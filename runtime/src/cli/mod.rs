//! The `hull` verbs: one file each. Every verb that talks to a VM runs on a
//! current-thread tokio runtime (child processes are tied to the thread that
//! started them).

mod boot;
mod check;
mod exec;
mod kill;
mod ps;
mod rm;
mod run;
mod spec;
mod stdio;
mod supervise;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hull_runtime::host::ChannelChoice;
use hull_runtime::image::RootKind;
use hull_runtime::plan::VmOptions;
use hull_runtime::vm::spec::{Accel, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};

/// Exit code of a failed `hull` command.
pub const FAILURE: u8 = 125;

/// Boot Hull images under QEMU and run containers in them.
#[derive(Debug, Parser)]
#[command(name = "hull", version, about)]
pub struct Cli {
    /// Log debug messages (or set HULL_LOG=<filter>).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Check what this host offers: KVM, vsock, QEMU, helpers, an image.
    Check(check::CheckArgs),
    /// Boot an image and wait for its agent.
    Boot(boot::BootArgs),
    /// Run a command in a container, in a new sandbox or (--sandbox) a running one.
    Run(run::RunArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// List sandboxes and their containers.
    Ps(ps::PsArgs),
    /// Send a signal to a container's process.
    Kill(kill::KillArgs),
    /// Stop and remove sandboxes, or remove containers from their sandbox.
    Rm(rm::RmArgs),
    /// Supervise a sandbox (started by hull itself).
    #[command(name = "_supervise", hide = true)]
    Supervise(supervise::SuperviseArgs),
}

/// Options shared by the verbs that boot a VM.
#[derive(Debug, Clone, Args)]
pub struct VmArgs {
    /// The image directory (default: $HULL_IMAGE_DIR, build/<arch>, <prefix>/share/hull/<arch>).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Boot the disk image instead of the initrd.
    #[arg(long)]
    disk: bool,
    /// The machine type from the QEMU profile (e.g. q35, microvm).
    #[arg(long)]
    machine: Option<String>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB)]
    memory: u32,
    /// Number of vCPUs.
    #[arg(long, default_value_t = DEFAULT_VCPUS)]
    cpus: u32,
    /// Extra kernel parameter (repeatable).
    #[arg(long = "kernel-param", value_name = "PARAM")]
    kernel_params: Vec<String>,
    /// Use TCG even when KVM works.
    #[arg(long)]
    tcg: bool,
    /// The host-guest channel: auto, vsock or serial (default: $HULL_CHANNEL, else auto).
    #[arg(long, value_name = "CHANNEL")]
    channel: Option<ChannelChoice>,
    /// Seconds to wait for the agent.
    #[arg(long, default_value_t = 120)]
    agent_timeout: u64,
}

impl VmArgs {
    /// The first option given that chooses how to boot (for verbs that may
    /// not boot). Memory and vCPUs have defaults and are not noticed.
    fn given(&self) -> Option<&'static str> {
        [
            ("image", self.image.is_some()),
            ("disk", self.disk),
            ("machine", self.machine.is_some()),
            ("kernel-param", !self.kernel_params.is_empty()),
            ("tcg", self.tcg),
            ("channel", self.channel.is_some()),
        ]
        .into_iter()
        .find_map(|(name, given)| given.then_some(name))
    }

    fn options(&self) -> VmOptions {
        let mut o = VmOptions::new("");
        o.machine = self.machine.clone();
        o.memory_mib = self.memory;
        o.vcpus = self.cpus;
        o.root = if self.disk {
            RootKind::Disk
        } else {
            RootKind::Initrd
        };
        o.kernel_params = self.kernel_params.clone();
        o.accel = self.tcg.then_some(Accel::Tcg);
        o.channel = self.channel;
        o
    }
}

/// Runs the chosen verb.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Verb::Check(a) => check::run(&a),
        Verb::Supervise(a) => supervise::run(&a),
        Verb::Boot(a) => block_on(boot::run(a)),
        Verb::Run(a) => block_on(run::run(a)),
        Verb::Exec(a) => block_on(exec::run(a)),
        Verb::Ps(a) => block_on(ps::run(a)),
        Verb::Kill(a) => block_on(kill::run(a)),
        Verb::Rm(a) => block_on(rm::run(a)),
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// This binary, for starting supervisors.
fn hull_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the hull binary itself")
}
