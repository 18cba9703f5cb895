//! `hull run`: a new sandbox with one container: boot, share the root
//! filesystem, CreateSandbox, CreateContainer, StartContainer, stream stdio,
//! exit with the container's status; `--rm` removes the sandbox afterwards
//! (and when hull is interrupted).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use hull_protocols::oci_convert::spec_to_proto;
use hull_protocols::oci_spec::runtime::{ProcessBuilder, RootBuilder, Spec, UserBuilder};
use hull_runtime::agent::{
    AgentClient, CreateContainerRequest, CreateSandboxRequest, StartContainerRequest, Storage,
};
use hull_runtime::agent_call;
use hull_runtime::control::Request;
use hull_runtime::sandbox::Sandbox;
use hull_runtime::supervisor::GUEST_SHARED_DIR;
use hull_runtime::vm::spec::{ShareKind, SHARE_TAG};

use super::stdio::{self, Process};
use super::VmArgs;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Options of the container process (shared with `exec`).
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessArgs {
    /// Keep stdin open and forward it.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Environment variable NAME=VALUE (repeatable).
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub envs: Vec<String>,
    /// Working directory in the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
}

impl ProcessArgs {
    /// The environment: PATH, TERM with a terminal, then the user's.
    pub fn env(&self) -> Vec<String> {
        let mut env = vec![DEFAULT_PATH.to_string()];
        if self.tty {
            env.push("TERM=xterm".into());
        }
        env.extend(self.envs.iter().cloned());
        env
    }

    /// `(uid, gid)` from `--user` (root by default; the gid defaults to the uid).
    pub fn user_ids(&self) -> (u32, u32) {
        parse_user(self.user.as_deref().unwrap_or("0")).unwrap_or((0, 0))
    }
}

fn parse_user(text: &str) -> anyhow::Result<(u32, u32)> {
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid: u32 = uid
        .parse()
        .with_context(|| format!("--user {text:?}: UID must be a number"))?;
    let gid = match gid {
        Some(g) => g
            .parse()
            .with_context(|| format!("--user {text:?}: GID must be a number"))?,
        None => uid,
    };
    Ok((uid, gid))
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    vm: VmArgs,
    #[command(flatten)]
    process: ProcessArgs,
    /// Container (and sandbox) id (default: random).
    #[arg(long)]
    name: Option<String>,
    /// Remove the sandbox when the container exits.
    #[arg(long)]
    rm: bool,
    /// A directory to use as the container's root filesystem.
    #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle")]
    rootfs: Option<PathBuf>,
    /// An OCI bundle (config.json and its root).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The command and its arguments (default: the bundle's).
    #[arg(last = true)]
    command: Vec<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(user) = &args.process.user {
        parse_user(user)?;
    }
    let (spec, rootfs) = container_spec(&args)?;
    let sandbox = super::boot::create(&args.vm, args.name.clone(), true, args.rm).await?;
    let outcome = tokio::select! {
        r = run_in(&sandbox, &args, spec, &rootfs) => r,
        _ = tokio::signal::ctrl_c() => Ok(130),
    };
    if args.rm || outcome.is_err() {
        sandbox.stop().await?;
    }
    Ok(exit_code(outcome?))
}

async fn run_in(
    sandbox: &Sandbox,
    args: &RunArgs,
    spec: Spec,
    rootfs: &Path,
) -> anyhow::Result<i32> {
    let wait = Duration::from_secs(args.vm.agent_timeout);
    let agent = sandbox.agent(wait).await?;
    let id = sandbox.id().to_string();
    create_sandbox(sandbox, &agent).await?;
    let share = Request::Share {
        container: id.clone(),
        rootfs: rootfs.to_path_buf(),
    };
    let guest_root = sandbox
        .control(&share)
        .await?
        .guest_path
        .unwrap_or_default();
    create_container(sandbox, &agent, spec, &guest_root).await?;
    let p = Process {
        agent,
        container: id,
        exec_id: String::new(),
    };
    let status = sandbox
        .race(
            "the container",
            stdio::attach(p, args.process.interactive, args.process.tty),
        )
        .await??;
    Ok(status)
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

async fn create_container(
    sandbox: &Sandbox,
    agent: &AgentClient,
    mut spec: Spec,
    guest_root: &str,
) -> anyhow::Result<()> {
    let id = sandbox.id().to_string();
    spec.set_root(Some(
        RootBuilder::default()
            .path(guest_root)
            .readonly(false)
            .build()?,
    ));
    spec.set_hostname(Some(id.clone()));
    let mut req = CreateContainerRequest::new();
    req.container_id = id.clone();
    req.exec_id = id.clone();
    req.OCI = hull_protocols::protobuf::MessageField::some(spec_to_proto(&spec)?);
    sandbox
        .race("CreateContainer", async {
            agent_call!(agent, create_container, "CreateContainer", &req)
        })
        .await??;
    let mut start = StartContainerRequest::new();
    start.container_id = id;
    sandbox
        .race("StartContainer", async {
            agent_call!(agent, start_container, "StartContainer", &start)
        })
        .await??;
    Ok(())
}

/// The OCI spec and host root directory: the bundle's, or a default spec around
/// `--rootfs`; the command line's process options applied on top.
fn container_spec(args: &RunArgs) -> anyhow::Result<(Spec, PathBuf)> {
    let (mut spec, rootfs) = match (&args.bundle, &args.rootfs) {
        (Some(bundle), _) => {
            let spec = Spec::load(bundle.join("config.json"))
                .with_context(|| format!("reading {}", bundle.join("config.json").display()))?;
            let root = spec
                .root()
                .as_ref()
                .map(|r| r.path().clone())
                .unwrap_or_else(|| "rootfs".into());
            (spec, bundle.join(root))
        }
        (None, Some(rootfs)) => (Spec::default(), rootfs.clone()),
        (None, None) => bail!("give --rootfs DIR or --bundle DIR"),
    };
    if !rootfs.is_dir() {
        bail!("container root {} is not a directory", rootfs.display());
    }
    apply_process(&mut spec, args)?;
    Ok((spec, rootfs))
}

fn apply_process(spec: &mut Spec, args: &RunArgs) -> anyhow::Result<()> {
    let base = spec.process().clone().unwrap_or_default();
    let command = if args.command.is_empty() {
        base.args().clone().unwrap_or_default()
    } else {
        args.command.clone()
    };
    if command.is_empty() {
        bail!("no command given (add -- CMD...)");
    }
    let mut env = base.env().clone().unwrap_or_default();
    let replaced =
        |e: &String| e.starts_with("PATH=") || (args.process.tty && e.starts_with("TERM="));
    env.retain(|e| !replaced(e));
    env.extend(args.process.env());
    let (uid, gid) = args.process.user_ids();
    let cwd = args
        .process
        .workdir
        .clone()
        .unwrap_or_else(|| base.cwd().display().to_string());
    let mut builder = ProcessBuilder::default()
        .args(command)
        .env(env)
        .cwd(cwd)
        .terminal(args.process.tty)
        .user(UserBuilder::default().uid(uid).gid(gid).build()?);
    if let Some(caps) = base.capabilities() {
        builder = builder.capabilities(caps.clone());
    }
    if let Some(rlimits) = base.rlimits() {
        builder = builder.rlimits(rlimits.clone());
    }
    spec.set_process(Some(
        builder
            .no_new_privileges(base.no_new_privileges().unwrap_or(true))
            .build()?,
    ));
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
    fn users_parse() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 1000));
        assert_eq!(parse_user("1:2").unwrap(), (1, 2));
        assert!(parse_user("bob").is_err());
    }

    #[test]
    fn nine_p_storage_has_the_kata_options() {
        let s = shared_storage(ShareKind::NineP);
        assert_eq!(s.source, "kataShared");
        assert_eq!(s.mount_point, "/run/kata-containers/shared/containers/");
        assert!(s.options.contains(&"trans=virtio".to_string()));
        assert_eq!(shared_storage(ShareKind::VirtioFs).fstype, "virtiofs");
    }
}
