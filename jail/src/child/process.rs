//! The container process itself: stdio, process attributes (rlimits,
//! oom_score_adj, I/O priority, personality), confinement (seccomp, user,
//! capabilities, no_new_privileges) and the final exec.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{PosixRlimitType, Process};

use super::HookKind;
use crate::config::InitConfig;
use crate::protocol::{Channel, FromChild};
use crate::reaper::WaitpidReaper;
use crate::seccomp::Program;

/// Errors while preparing or starting the container process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The parent sent the wrong number of stdio descriptors.
    #[error("expected {expected} stdio descriptors, got {got}")]
    Stdio {
        /// How many were expected.
        expected: usize,
        /// How many arrived.
        got: usize,
    },
    /// A system call on the process failed.
    #[error("{0}")]
    Sys(&'static str, #[source] std::io::Error),
    /// The program was not found.
    #[error("executable {0:?} not found in $PATH")]
    NotFound(String),
    /// An argument or variable holds a NUL byte.
    #[error("argument or environment variable contains a NUL byte")]
    Nul,
    /// The exec itself failed.
    #[error("exec {0}")]
    Exec(PathBuf, #[source] nix::Error),
    /// Capabilities or the user switch failed.
    #[error("capabilities")]
    Caps(#[from] crate::caps::CapsError),
    /// A hook failed.
    #[error("hook")]
    Hook(#[from] crate::hooks::HookError),
    /// The terminal could not be opened.
    #[error("terminal")]
    Tty(#[source] crate::tty::TtyError),
    /// /dev/console could not be bound to the terminal.
    #[error("bind /dev/console")]
    Console(#[source] nix::Error),
}

fn sys_err(what: &'static str) -> impl FnOnce(nix::Error) -> ProcessError {
    move |e| ProcessError::Sys(what, e.into())
}

/// The container's stdio as received from the parent.
#[derive(Debug)]
pub enum Stdio {
    /// stdin, stdout and stderr pipes.
    Pipes([OwnedFd; 3]),
    /// A terminal, to be opened once the container's /dev is in place.
    PendingTerminal,
    /// The terminal's slave side, and its path inside the container.
    Terminal(OwnedFd, PathBuf),
}

impl Stdio {
    /// Wraps the descriptors attached to the config message.
    pub fn new(terminal: bool, fds: Vec<OwnedFd>) -> Result<Stdio, ProcessError> {
        let expected = if terminal { 0 } else { 3 };
        if fds.len() != expected {
            return Err(ProcessError::Stdio {
                expected,
                got: fds.len(),
            });
        }
        let mut it = fds.into_iter();
        let mut next = || it.next().ok_or(ProcessError::Stdio { expected, got: 0 });
        Ok(if terminal {
            Stdio::PendingTerminal
        } else {
            Stdio::Pipes([next()?, next()?, next()?])
        })
    }

    /// Opens the terminal in the container's devpts (call after the root switch)
    /// and sends its master side to the parent.
    pub fn open_terminal(&mut self, chan: &mut Channel, p: &Process) -> Result<(), ProcessError> {
        if !matches!(self, Stdio::PendingTerminal) {
            return Ok(());
        }
        let (rows, cols) = p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16))
            .unwrap_or((24, 80));
        let (master, slave, path) = crate::tty::open_here(rows, cols).map_err(ProcessError::Tty)?;
        chan.send(&FromChild::Terminal, &[master.as_raw_fd()])
            .map_err(|e| {
                ProcessError::Sys("send terminal", std::io::Error::other(e.to_string()))
            })?;
        *self = Stdio::Terminal(slave, path);
        Ok(())
    }

    /// The terminal's path inside the container, once opened.
    pub fn terminal_path(&self) -> Option<&Path> {
        match self {
            Stdio::Terminal(_, path) => Some(path),
            _ => None,
        }
    }

    /// Puts the descriptors on 0, 1 and 2; a terminal becomes the controlling one
    /// of a new session.
    pub fn install(self) -> Result<(), ProcessError> {
        match self {
            Stdio::Pipes(fds) => {
                for (target, fd) in fds.iter().enumerate() {
                    crate::sys::dup2(fd.as_raw_fd(), target as i32)
                        .map_err(|e| ProcessError::Sys("dup2", e))?;
                }
            }
            Stdio::PendingTerminal => {
                return Err(ProcessError::Stdio {
                    expected: 1,
                    got: 0,
                })
            }
            Stdio::Terminal(fd, _) => {
                nix::unistd::setsid().map_err(sys_err("setsid"))?;
                // SAFETY: TIOCSCTTY takes an int argument; `fd` is an open terminal.
                let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
                nix::errno::Errno::result(ret).map_err(sys_err("set controlling terminal"))?;
                for target in 0..3 {
                    crate::sys::dup2(fd.as_raw_fd(), target)
                        .map_err(|e| ProcessError::Sys("dup2", e))?;
                }
            }
        }
        Ok(())
    }
}

/// Binds the container's terminal onto /dev/console (after the root switch).
pub fn bind_console(stdio: &Stdio) -> Result<(), ProcessError> {
    use nix::mount::{mount, MsFlags};
    let Some(terminal) = stdio.terminal_path() else {
        return Ok(());
    };
    let console = Path::new("/dev/console");
    if !console.exists() {
        std::fs::File::create(console).map_err(|e| ProcessError::Sys("create /dev/console", e))?;
    }
    let none: Option<&str> = None;
    mount(Some(terminal), console, none, MsFlags::MS_BIND, none).map_err(ProcessError::Console)
}

/// Everything `execve` needs, resolved before confinement (lookups may need
/// privileges the process is about to lose).
#[derive(Debug)]
pub struct ExecPlan {
    path: PathBuf,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ExecPlan {
    /// Resolves the program in the container's PATH and changes to its cwd.
    pub fn new(p: &Process) -> Result<ExecPlan, ProcessError> {
        let args = p.args().as_deref().unwrap_or_default();
        let env = p.env().as_deref().unwrap_or_default();
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let program = args.first().map(String::as_str).unwrap_or_default();
        let path = find_program(program, path_var)?;
        let cstr = |s: &String| CString::new(s.as_bytes()).map_err(|_| ProcessError::Nul);
        std::fs::create_dir_all(p.cwd()).map_err(|e| ProcessError::Sys("create cwd", e))?;
        nix::unistd::chdir(p.cwd()).map_err(sys_err("chdir to cwd"))?;
        Ok(ExecPlan {
            path,
            argv: args.iter().map(cstr).collect::<Result<_, _>>()?,
            envp: env.iter().map(cstr).collect::<Result<_, _>>()?,
        })
    }

    /// Replaces this process with the container's program; returns only on error.
    /// Signal dispositions and the mask are reset first: ignored signals survive
    /// exec, and the Rust runtime ignores SIGPIPE.
    pub fn exec(self) -> ProcessError {
        if let Err(e) = reset_signals() {
            return e;
        }
        let path = match CString::new(self.path.as_os_str().as_bytes()) {
            Ok(p) => p,
            Err(_) => return ProcessError::Nul,
        };
        match nix::unistd::execve(&path, &self.argv, &self.envp) {
            Err(e) => ProcessError::Exec(self.path, e),
            Ok(never) => match never {},
        }
    }
}

fn reset_signals() -> Result<(), ProcessError> {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        crate::sys::default_signal_action(sig).map_err(|e| ProcessError::Sys("reset signal", e))?;
    }
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(sys_err("unblock signals"))
}

fn find_program(program: &str, path_var: &str) -> Result<PathBuf, ProcessError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|c| is_executable(c))
        .ok_or_else(|| ProcessError::NotFound(program.to_string()))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Applies the process attributes and confinement. Without no_new_privileges the
/// filter goes on while still privileged (loading it then needs CAP_SYS_ADMIN);
/// with it, as late as possible.
pub fn confine(p: &Process, seccomp: Option<&Program>) -> Result<(), ProcessError> {
    set_rlimits(p)?;
    set_oom_score_adj(p)?;
    set_io_priority(p)?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    if let (Some(prog), false) = (seccomp, nnp) {
        prog.install()
            .map_err(|e| ProcessError::Sys("seccomp", e))?;
    }
    let caps = p.capabilities().clone().unwrap_or_default();
    crate::caps::drop_bounding(&crate::caps::to_capset(caps.bounding().as_ref())?)?;
    crate::caps::switch_user(p.user())?;
    crate::caps::apply_sets(&caps)?;
    if nnp {
        capctl::set_no_new_privs().map_err(|e| ProcessError::Sys("no_new_privileges", e.into()))?;
        if let Some(prog) = seccomp {
            prog.install()
                .map_err(|e| ProcessError::Sys("seccomp", e))?;
        }
    }
    Ok(())
}

fn set_rlimits(p: &Process) -> Result<(), ProcessError> {
    for r in p.rlimits().as_deref().unwrap_or_default() {
        let limit = libc::rlimit {
            rlim_cur: r.soft() as libc::rlim_t,
            rlim_max: r.hard() as libc::rlim_t,
        };
        // SAFETY: `limit` is a valid rlimit for the duration of the call.
        let ret = unsafe { libc::setrlimit(rlimit_resource(r.typ()) as _, &limit) };
        nix::errno::Errno::result(ret).map_err(sys_err("setrlimit"))?;
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> i32 {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as i32
}

fn set_oom_score_adj(p: &Process) -> Result<(), ProcessError> {
    let Some(adj) = p.oom_score_adj() else {
        return Ok(());
    };
    std::fs::write("/proc/self/oom_score_adj", adj.to_string())
        .map_err(|e| ProcessError::Sys("oom_score_adj", e))
}

fn set_io_priority(p: &Process) -> Result<(), ProcessError> {
    use oci_spec::runtime::IOPriorityClass;
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    crate::sys::ioprio_set(class, io.priority()).map_err(|e| ProcessError::Sys("ioprio_set", e))
}

/// Sets the execution domain from `linux.personality`.
pub fn set_personality(domain_linux32: bool) -> Result<(), ProcessError> {
    const PER_LINUX: u64 = 0;
    const PER_LINUX32: u64 = 8;
    let persona = if domain_linux32 {
        PER_LINUX32
    } else {
        PER_LINUX
    };
    crate::sys::personality(persona).map_err(|e| ProcessError::Sys("personality", e))
}

/// Runs the createContainer or startContainer hooks from inside the container.
pub fn run_hooks(cfg: &InitConfig, kind: HookKind) -> Result<(), ProcessError> {
    let Some(hooks) = cfg.spec.hooks() else {
        return Ok(());
    };
    let (name, list, status) = match kind {
        HookKind::CreateContainer => ("createContainer", hooks.create_container(), "created"),
        HookKind::StartContainer => ("startContainer", hooks.start_container(), "running"),
    };
    let list = list.as_deref().unwrap_or_default();
    if list.is_empty() {
        return Ok(());
    }
    let pid = std::process::id() as i32;
    let state = crate::hooks::state_json(&cfg.spec, &cfg.id, status, pid, &cfg.bundle);
    crate::hooks::run_all(name, list, &state, &WaitpidReaper)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_path() {
        assert_eq!(
            find_program("sh", "/nonexistent:/bin").unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert_eq!(find_program("/x/y", "").unwrap(), PathBuf::from("/x/y"));
        assert!(matches!(
            find_program("no-such-prog", "/bin"),
            Err(ProcessError::NotFound(_))
        ));
    }
}
