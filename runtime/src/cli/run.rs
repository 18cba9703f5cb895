//! `hull run`: a container in a new sandbox (boot, CreateSandbox, share the
//! root filesystem, CreateContainer, StartContainer) or, with `--sandbox`, in
//! a running one (no boot); then stdio is streamed both ways and hull exits
//! with the container's status, or with `-d` prints the container id and
//! returns at once.
//!
//! `--rm` removes what this run made once the container exits or hull is
//! interrupted (Ctrl-C, SIGTERM): the new sandbox, or with `--sandbox` just the
//! container. If hull itself dies, the supervisor does it. Without `--rm` an
//! interrupted run leaves the container running and an exited one stays until
//! `hull rm`; a run that fails removes what it made either way.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use hull_protocols::oci_convert::spec_to_proto;
use hull_protocols::oci_spec::runtime::{RootBuilder, Spec};
use hull_runtime::agent::{
    AgentClient, CreateContainerRequest, CreateSandboxRequest, StartContainerRequest, Storage,
};
use hull_runtime::agent_call;
use hull_runtime::sandbox::Sandbox;
use hull_runtime::state;
use hull_runtime::supervisor::GUEST_SHARED_DIR;
use hull_runtime::vm::spec::{ShareKind, SHARE_TAG};
use tokio::signal::unix::{signal, SignalKind};

use super::spec::{self, ProcessArgs};
use super::stdio::{self, Process};
use super::VmArgs;

/// How long the agent of a running sandbox may take to answer.
const RUNNING_AGENT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    vm: VmArgs,
    #[command(flatten)]
    process: ProcessArgs,
    /// Container id (default: random); also the id of a sandbox booted for it.
    #[arg(long)]
    name: Option<String>,
    /// Run in this running sandbox instead of booting a new one.
    #[arg(long, value_name = "SANDBOX")]
    sandbox: Option<String>,
    /// Remove the container (and a sandbox booted for it) when it exits.
    #[arg(long)]
    rm: bool,
    /// Start the container, print its id and return.
    #[arg(short, long, conflicts_with_all = ["rm", "interactive"])]
    detach: bool,
    /// A directory to use as the container's root filesystem.
    #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle")]
    rootfs: Option<std::path::PathBuf>,
    /// An OCI bundle (config.json and its root).
    #[arg(long)]
    bundle: Option<std::path::PathBuf>,
    /// The command and its arguments (default: the bundle's).
    #[arg(last = true)]
    command: Vec<String>,
}

/// How a run ended.
enum Outcome {
    /// The container's process exited with this status.
    Exited(i32),
    /// Started and left running (`-d`).
    Detached,
    /// Hull was interrupted; the exit code to end with.
    Interrupted(i32),
}

impl Outcome {
    fn code(&self) -> ExitCode {
        match self {
            Outcome::Exited(status) | Outcome::Interrupted(status) => exit_code(*status),
            Outcome::Detached => ExitCode::SUCCESS,
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (spec, rootfs) = spec::container_spec(
        args.bundle.as_deref(),
        args.rootfs.as_deref(),
        &args.command,
        &args.process,
    )?;
    if let Some(id) = &args.name {
        state::validate_id(id)?;
    }
    match &args.sandbox {
        Some(sandbox) => {
            if let Some(option) = args.vm.given() {
                bail!("--{option} does not apply with --sandbox (the VM already runs)");
            }
            run_in_sandbox(&args, sandbox, spec, &rootfs).await
        }
        None => run_new(&args, spec, &rootfs).await,
    }
}

/// Boots a sandbox for the container; its id is the container's.
async fn run_new(args: &RunArgs, spec: Spec, rootfs: &Path) -> anyhow::Result<ExitCode> {
    let sandbox = super::boot::create(&args.vm, args.name.clone(), true, args.rm).await?;
    let outcome = interruptible(async {
        let agent = sandbox
            .agent(Duration::from_secs(args.vm.agent_timeout))
            .await?;
        create_sandbox(&sandbox, &agent).await?;
        let id = sandbox.id().to_string();
        let (guest_root, _owner) = sandbox.add_container(&id, rootfs, false).await?;
        start_container(&sandbox, &agent, &id, spec, &guest_root).await?;
        follow(&sandbox, agent, &id, args).await
    })
    .await;
    if args.rm || outcome.is_err() {
        let stopped = sandbox.stop().await;
        let outcome = outcome?;
        stopped?;
        return Ok(outcome.code());
    }
    Ok(outcome?.code())
}

/// Adds the container to the running sandbox `id`.
async fn run_in_sandbox(
    args: &RunArgs,
    id: &str,
    spec: Spec,
    rootfs: &Path,
) -> anyhow::Result<ExitCode> {
    let mut sandbox = Sandbox::open_running(id)?;
    sandbox.watch().await?;
    let container = args.name.clone().unwrap_or_else(state::new_id);
    let (guest_root, owner) = sandbox.add_container(&container, rootfs, args.rm).await?;
    let outcome = interruptible(async {
        let agent = sandbox.agent(RUNNING_AGENT_WAIT).await?;
        start_container(&sandbox, &agent, &container, spec, &guest_root).await?;
        follow(&sandbox, agent, &container, args).await
    })
    .await;
    if args.rm || outcome.is_err() {
        let removed = sandbox.remove_container(&container).await;
        drop(owner);
        let outcome = outcome?;
        removed?;
        return Ok(outcome.code());
    }
    Ok(outcome?.code())
}

/// Runs `fut` unless hull is interrupted first.
async fn interruptible(
    fut: impl std::future::Future<Output = anyhow::Result<Outcome>>,
) -> anyhow::Result<Outcome> {
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        outcome = fut => outcome,
        _ = tokio::signal::ctrl_c() => Ok(Outcome::Interrupted(130)),
        _ = term.recv() => Ok(Outcome::Interrupted(143)),
    }
}

/// Streams the started container's stdio until it exits, or with `-d` prints
/// its id.
async fn follow(
    sandbox: &Sandbox,
    agent: AgentClient,
    id: &str,
    args: &RunArgs,
) -> anyhow::Result<Outcome> {
    if args.detach {
        println!("{id}");
        return Ok(Outcome::Detached);
    }
    let p = Process {
        agent,
        container: id.to_string(),
        exec_id: String::new(),
    };
    let attached = stdio::attach(p, args.process.interactive, args.process.tty);
    let status = sandbox.race("the container", attached).await??;
    Ok(Outcome::Exited(status))
}

async fn create_sandbox(sandbox: &Sandbox, agent: &AgentClient) -> anyhow::Result<()> {
    let mut req = CreateSandboxRequest::new();
    req.hostname = sandbox.id().to_string();
    req.sandbox_id = sandbox.id().to_string();
    if let Some(share) = &sandbox.spec().share {
        req.storages.push(shared_storage(share.kind));
    }
    sandbox
        .race("CreateSandbox", async {
            agent_call!(agent, create_sandbox, "CreateSandbox", &req)
        })
        .await??;
    Ok(())
}

/// The storage that mounts the sandbox's shared directory in the guest.
fn shared_storage(kind: ShareKind) -> Storage {
    let mut s = Storage::new();
    s.source = SHARE_TAG.to_string();
    s.mount_point = format!("{GUEST_SHARED_DIR}/");
    match kind {
        ShareKind::VirtioFs => {
            s.driver = "virtio-fs".into();
            s.fstype = "virtiofs".into();
        }
        ShareKind::NineP => {
            s.driver = "9p".into();
            s.fstype = "9p".into();
            s.options = [
                "trans=virtio",
                "version=9p2000.L",
                "cache=mmap",
                "nodev",
                "msize=8192",
            ]
            .map(String::from)
            .to_vec();
        }
    }
    s
}

/// CreateContainer and StartContainer for container `id`, its root at
/// `guest_root`; the sandbox's id is its hostname.
async fn start_container(
    sandbox: &Sandbox,
    agent: &AgentClient,
    id: &str,
    mut spec: Spec,
    guest_root: &str,
) -> anyhow::Result<()> {
    spec.set_root(Some(
        RootBuilder::default()
            .path(guest_root)
            .readonly(false)
            .build()?,
    ));
    spec.set_hostname(Some(sandbox.id().to_string()));
    let mut req = CreateContainerRequest::new();
    req.container_id = id.to_string();
    req.exec_id = id.to_string();
    req.OCI = hull_protocols::protobuf::MessageField::some(spec_to_proto(&spec)?);
    sandbox
        .race("CreateContainer", async {
            agent_call!(agent, create_container, "CreateContainer", &req)
        })
        .await??;
    let mut start = StartContainerRequest::new();
    start.container_id = id.to_string();
    sandbox
        .race("StartContainer", async {
            agent_call!(agent, start_container, "StartContainer", &start)
        })
        .await??;
    Ok(())
}

/// The process's status as hull's exit code (0-255).
pub fn exit_code(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status.clamp(0, 255)).unwrap_or(255))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_p_storage_has_the_kata_options() {
        let s = shared_storage(ShareKind::NineP);
        assert_eq!(s.source, "kataShared");
        assert_eq!(s.mount_point, "/run/kata-containers/shared/containers/");
        assert!(s.options.contains(&"trans=virtio".to_string()));
        assert_eq!(shared_storage(ShareKind::VirtioFs).fstype, "virtiofs");
    }

    #[test]
    fn statuses_become_exit_codes() {
        assert_eq!(Outcome::Exited(137).code(), ExitCode::from(137));
        assert_eq!(Outcome::Interrupted(130).code(), ExitCode::from(130));
        assert_eq!(Outcome::Detached.code(), ExitCode::SUCCESS);
        assert_eq!(exit_code(300), ExitCode::from(255));
        assert_eq!(exit_code(-1), ExitCode::from(0));
    }
}
