//! The jail's child mode: the re-executed binary that turns itself into the
//! container's process.
//!
//! The agent's `main` calls [`main`] first thing when `argv[1] == "jail-init"`,
//! before it starts any thread; this module relies on running single-threaded (it
//! forks and keeps running Rust code in the fork). The control socket arrives as
//! standard input. Each step that fails is reported to the parent with its name
//! ("namespaces", "mounts", "seccomp" ...) and the child exits with status 1.
//!
//! Order, for a container's init: user namespace, other namespaces, fork into the
//! new pid namespace (a sibling of this process, so the parent owns it), hostname,
//! rootfs preparation, the spec's mounts, /dev, createRuntime hooks (by the
//! parent), createContainer hooks, pivot_root, sysctls, masked and readonly paths,
//! readonly root, process attributes, seccomp/user/capabilities, "ready", wait for
//! "start", startContainer hooks, stdio, exec.

pub mod devices;
pub mod mounts;
pub mod namespaces;
pub mod paths;
pub mod process;
pub mod rootfs;

use std::convert::Infallible;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::config::{ExecConfig, InitConfig};
use crate::protocol::{Channel, FromChild, ToChild};
use crate::sys::{self, Forked};

/// A failed step, as reported to the parent.
#[derive(Debug)]
pub struct Failure {
    step: &'static str,
    message: String,
}

/// Names the step a result belongs to.
pub trait Step<T> {
    /// Turns an error into a [`Failure`] of `step`, keeping its causes.
    fn step(self, step: &'static str) -> Result<T, Failure>;
}

impl<T, E: std::error::Error> Step<T> for Result<T, E> {
    fn step(self, step: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            message: error_chain(&e),
        })
    }
}

/// "outer: inner: innermost".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The child mode's entry point. Never returns: the process execs the container's
/// program or exits.
pub fn main() -> ! {
    let mut chan = match take_channel() {
        Ok(chan) => chan,
        Err(e) => {
            eprintln!("hull-jail child: no control socket on stdin: {e}");
            std::process::exit(1);
        }
    };
    let failure = match run(&mut chan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let msg = FromChild::Failed {
        step: failure.step.to_string(),
        message: failure.message,
    };
    // If the parent is gone there is nobody left to tell.
    let _ = chan.send(&msg, &[]);
    std::process::exit(1);
}

/// Moves the socket off stdin to a close-on-exec descriptor, and marks every other
/// inherited descriptor close-on-exec so none leaks into the container.
fn take_channel() -> std::io::Result<Channel> {
    sys::cloexec_from(3)?;
    // SAFETY: F_DUPFD_CLOEXEC on descriptor 0 returns a new descriptor or -1.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created by fcntl and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let null = std::fs::File::open("/dev/null")?;
    sys::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0)?;
    Ok(Channel::from_fd(sock))
}

fn run(chan: &mut Channel) -> Result<Infallible, Failure> {
    let (msg, fds) = chan.recv::<ToChild>().step("receive config")?;
    match msg {
        ToChild::Init(cfg) => run_init(chan, *cfg, fds),
        ToChild::Exec(cfg) => run_exec(chan, *cfg, fds),
        other => Err(Failure {
            step: "receive config",
            message: format!("unexpected message {other:?}"),
        }),
    }
}

fn run_init(chan: &mut Channel, cfg: InitConfig, fds: Vec<OwnedFd>) -> Result<Infallible, Failure> {
    let mut stdio = process::Stdio::new(cfg.terminal, fds).step("stdio")?;
    namespaces::enter_user(&cfg.spec, chan).step("user namespace")?;
    namespaces::enter_others(&cfg.spec).step("namespaces")?;
    fork_into_namespaces(chan)?;

    namespaces::set_names(&cfg.spec).step("hostname")?;
    rootfs::prepare(&cfg).step("rootfs")?;
    mounts::mount_all(&cfg).step("mounts")?;
    devices::setup(&cfg).step("devices")?;

    chan.send(&FromChild::CreateRuntimeHooks, &[])
        .step("createRuntime hooks")?;
    expect(chan, "createRuntime hooks", |m| {
        matches!(m, ToChild::HooksDone)
    })?;
    process::run_hooks(&cfg, HookKind::CreateContainer).step("createContainer hooks")?;

    rootfs::pivot(&cfg.rootfs).step("pivot_root")?;
    paths::sysctls(&cfg.spec).step("sysctl")?;
    paths::apply(&cfg.spec).step("masked and readonly paths")?;
    rootfs::finish(&cfg.spec).step("readonly rootfs")?;

    if let Some(p) = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.personality().as_ref())
    {
        let linux32 = p.domain() == oci_spec::runtime::LinuxPersonalityDomain::PerLinux32;
        process::set_personality(linux32).step("personality")?;
    }
    let proc_spec = cfg.spec.process().clone().unwrap_or_default();
    stdio.open_terminal(chan, &proc_spec).step("terminal")?;
    process::bind_console(&stdio).step("terminal")?;
    let plan = process::ExecPlan::new(&proc_spec).step("exec")?;
    process::confine(&proc_spec, cfg.seccomp.as_ref()).step("confine")?;

    chan.send(&FromChild::Ready, &[]).step("ready")?;
    expect(chan, "start", |m| matches!(m, ToChild::Start))?;
    process::run_hooks(&cfg, HookKind::StartContainer).step("startContainer hooks")?;
    stdio.install().step("stdio")?;
    Err(plan.exec()).step("exec")
}

fn run_exec(chan: &mut Channel, cfg: ExecConfig, fds: Vec<OwnedFd>) -> Result<Infallible, Failure> {
    let mut stdio = process::Stdio::new(cfg.terminal, fds).step("stdio")?;
    let root = namespaces::join_container(&cfg).step("namespaces")?;
    fork_into_namespaces(chan)?;
    namespaces::enter_root(root).step("chroot")?;
    stdio.open_terminal(chan, &cfg.process).step("terminal")?;

    let plan = process::ExecPlan::new(&cfg.process).step("exec")?;
    process::confine(&cfg.process, cfg.seccomp.as_ref()).step("confine")?;
    stdio.install().step("stdio")?;
    Err(plan.exec()).step("exec")
}

/// Which hooks the child itself runs.
#[derive(Debug, Clone, Copy)]
pub enum HookKind {
    /// After the mounts, before pivot_root, in the container's namespaces.
    CreateContainer,
    /// After "start", just before the program runs.
    StartContainer,
}

/// Forks the process that lives in the new pid namespace. The original reports its
/// id and exits; the fork waits until the parent has recorded it.
fn fork_into_namespaces(chan: &mut Channel) -> Result<(), Failure> {
    match sys::fork_sibling().step("fork")? {
        Forked::Parent(pid) => {
            let code = match chan.send(&FromChild::Pid(pid), &[]) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            std::process::exit(code);
        }
        Forked::Child => expect(chan, "fork", |m| matches!(m, ToChild::PidAck)),
    }
}

fn expect(
    chan: &mut Channel,
    step: &'static str,
    ok: impl Fn(&ToChild) -> bool,
) -> Result<(), Failure> {
    let (msg, _) = chan.recv::<ToChild>().step(step)?;
    if ok(&msg) {
        Ok(())
    } else {
        Err(Failure {
            step,
            message: format!("unexpected message {msg:?}"),
        })
    }
}
