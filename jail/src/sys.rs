//! Raw system calls the `nix` crate does not wrap, each fenced in a small safe function.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The kernel's `struct clone_args`, first version (64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Where a fork-like call returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Forked {
    /// In the caller, with the new process's id.
    Parent(i32),
    /// In the new process.
    Child,
}

/// Forks a process whose parent is the caller's parent (`CLONE_PARENT`), so the
/// container process is a direct child of the jail's user, in the pid namespace
/// the caller prepared with `unshare`/`setns`.
///
/// Only for single-threaded callers: the child continues running Rust code.
/// Limitation: libc's cached thread id in the child still names the caller.
pub fn fork_sibling() -> io::Result<Forked> {
    // With CLONE_PARENT the kernel wants exit_signal 0: the child inherits the
    // caller's own (SIGCHLD, as the caller was started by fork/exec).
    let mut args = CloneArgs {
        flags: libc::CLONE_PARENT as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no stack and no CLONE_VM behaves like fork(); `args` is a
    // valid, initialised struct of the size passed; the jail child is single-threaded
    // so the copy of its address space is consistent.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Duplicates `old` onto `new` (clearing close-on-exec on `new`).
pub fn dup2(old: std::os::fd::RawFd, new: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates this process's descriptor table; `new` is a
    // small fixed number the caller means to replace.
    let ret = unsafe { libc::dup2(old, new) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the disposition of `signal` to the default, through the raw system call
/// (libc refuses the signals it reserves for itself, which may still arrive
/// ignored from whoever started this process).
pub fn default_signal_action(signal: i32) -> io::Result<()> {
    // An all-zero kernel sigaction is SIG_DFL with no flags and an empty mask,
    // whatever the architecture's field order.
    let action = [0u64; 4];
    // SAFETY: `action` is a readable, zeroed kernel sigaction for the call; the old
    // action is not requested; the mask size is the kernel's (8 bytes).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            action.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until the process behind `pidfd` exits (without reaping it), or until
/// `timeout` passes. Returns whether it exited.
pub fn pidfd_wait_exit(pidfd: &OwnedFd, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => d
                .saturating_duration_since(std::time::Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
        };
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        match n {
            1.. => return Ok(true),
            0 => return Ok(false),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Sends `signal` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: the descriptor is a valid pidfd; info NULL and flags 0 are allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range only changes descriptor flags in this process.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs a classic BPF seccomp filter on the calling thread.
pub fn seccomp_set_filter(flags: u32, program: &[libc::sock_filter]) -> io::Result<()> {
    const SECCOMP_SET_MODE_FILTER: u32 = 1;
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies
    // the filter.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the I/O scheduling class and priority of the calling process.
pub fn ioprio_set(class: i64, priority: i64) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    let value = (class << IOPRIO_CLASS_SHIFT) | priority;
    // SAFETY: ioprio_set takes plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the execution domain (personality) of the calling process.
pub fn personality(persona: u64) -> io::Result<()> {
    // SAFETY: personality takes one integer.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::zombie_processes)] // reaped through the reaper under test
    fn pidfd_sees_exit_without_reaping() {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let fd = pidfd_open(pid).unwrap();
        assert!(pidfd_wait_exit(&fd, None).unwrap());
        // Still a zombie: the status is there for whoever reaps.
        let status = crate::reaper::Reaper::wait(&crate::reaper::WaitpidReaper, pid).unwrap();
        assert_eq!(status.code(), 3);
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped through the reaper under test
    fn pidfd_wait_times_out_on_a_live_process() {
        let child = std::process::Command::new("/bin/sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let fd = pidfd_open(pid).unwrap();
        assert!(!pidfd_wait_exit(&fd, Some(Duration::from_millis(20))).unwrap());
        pidfd_send_signal(&fd, libc::SIGKILL).unwrap();
        let status = crate::reaper::Reaper::wait(&crate::reaper::WaitpidReaper, pid).unwrap();
        assert_eq!(status, crate::reaper::ExitStatus::Signaled(9));
    }
}
