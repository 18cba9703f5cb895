//! PID-1 duties for a guest init: early mounts, the console, the loopback link, the
//! hostname, reaping children and orphans, and powering off when the init exits or fails.
//!
//! The crate is independent of the agent: any Rust program that runs as `/init` in a
//! Hull guest can use it. Kernel-facing calls go through the [`kernel::Kernel`] trait so
//! the PID-1 logic is unit-tested without root against a recording fake.
//!
//! Design:
//! - [`boot::setup`] runs the early steps in order and is safe to call when not PID 1
//!   (it then only becomes a child subreaper).
//! - [`reaper::Reaper`] is the only code that calls `waitpid`; everyone else who starts a
//!   process registers with it and awaits the exit status it hands over.
//! - [`power`] holds the shutdown path and the panic hook: outside a contained scope a
//!   panic is fatal and, for PID 1, powers the machine off.
//!
//! Limitations: only cgroup v2 is mounted; no module loading or udev-like device
//! handling happens here.

pub mod boot;
pub mod cmdline;
pub mod console;
pub mod kernel;
pub mod mounts;
pub mod power;
pub mod random;
pub mod reaper;

/// Whether this process is the init of its PID namespace.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}
