//! Turns an OCI runtime spec into a running, confined process: namespaces, mounts,
//! pivot_root, /dev, cgroups, capabilities, seccomp, hooks and terminals.
//!
//! Design: the jail never runs Rust code after `fork()` in its (multi-threaded)
//! caller. It re-executes a binary in a child mode ([`child::main`]; the agent
//! calls it when `argv[1] == "jail-init"`), which sets itself up step by step and
//! talks to the parent over a socket ([`protocol`]). The container process is a
//! direct child of the caller, so the caller's single reaper ([`Reaper`]) gets its
//! exit status. Every spec field is either honoured or refused with an error that
//! names it ([`spec`]).
//!
//! Entry points: [`Container::create`], then [`Container::start`],
//! [`Container::exec`], [`Container::pause`] / [`Container::resume`],
//! [`Container::update`], [`Container::stats`], [`Container::oom_watcher`],
//! [`Container::signal_all`], [`Container::destroy`]. Processes are
//! [`Process`] handles (stdio, resize, signal, wait).
//!
//! Limitations: Linux only; calls block (async callers use a blocking thread, and
//! a reaper that can be waited on from it); AppArmor, SELinux, id-mapped mounts,
//! time namespaces, seccomp notify and scheduler settings are refused.

pub mod caps;
pub mod cgroups;
pub mod child;
pub mod config;
pub mod container;
pub mod hooks;
pub mod process;
pub mod protocol;
pub mod reaper;
pub mod seccomp;
pub mod spawn;
pub mod spec;
pub mod sys;
pub mod tty;

use std::path::PathBuf;

pub use cgroups::oom::OomWatcher;
pub use cgroups_rs::stats as cgroups_stats;
pub use cgroups_rs::CgroupStats;
pub use container::{Container, Status};
pub use process::{Output, Process, ProcessStdio};
pub use reaper::{ExitStatus, Reaper, WaitpidReaper};
pub use spawn::{JailOptions, CHILD_ARG};
pub use spec::SpecError;

/// Errors of the jail's public operations.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// The spec is invalid or asks for something unsupported.
    #[error("invalid spec")]
    Spec(#[from] SpecError),
    /// A setup step in the container failed.
    #[error("container {id}: {step}: {message}")]
    Child {
        /// The container.
        id: String,
        /// The step that failed.
        step: String,
        /// What went wrong.
        message: String,
    },
    /// The jail binary could not be started.
    #[error("container {id}: start {exe}")]
    Spawn {
        /// The container.
        id: String,
        /// The binary.
        exe: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The conversation with the child broke.
    #[error("container {id}: jail child")]
    Protocol {
        /// The container.
        id: String,
        /// Why.
        #[source]
        source: protocol::ProtocolError,
    },
    /// Cgroup handling failed.
    #[error("container {id}")]
    Cgroup {
        /// The container.
        id: String,
        /// Why.
        #[source]
        source: cgroups::CgroupError,
    },
    /// A hook failed.
    #[error("container {id}")]
    Hook {
        /// The container.
        id: String,
        /// Why.
        #[source]
        source: hooks::HookError,
    },
    /// Making the process's stdio failed.
    #[error("container {id}: stdio")]
    Stdio {
        /// The container.
        id: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing a user namespace map failed.
    #[error("container {id}: write {path}")]
    IdMap {
        /// The container.
        id: String,
        /// The map file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for a process failed.
    #[error("container {id}: wait for process {pid}")]
    Wait {
        /// The container.
        id: String,
        /// The process.
        pid: i32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The container is not in the state the operation needs.
    #[error("container {id} is {status:?}, not {expected:?}")]
    State {
        /// The container.
        id: String,
        /// Where it is.
        status: Status,
        /// Where it should be.
        expected: Status,
    },
}
