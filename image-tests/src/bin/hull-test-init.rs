//! A minimal static PID 1 for kernel boot checks on any architecture: mounts
//! `/proc`, prints the boot marker with `/proc/uptime` on the console, and powers
//! the machine off. Built for the guest's target (`aarch64-unknown-linux-musl`, ...)
//! by the boot tests and packed alone into an initrd.
//!
//! Limitation: Linux only, and it never returns (PID 1 must not exit).

use std::io::Write;

/// The line the boot check looks for; `uptime=` and `/proc/uptime` follow it.
const MARKER: &str = "HULL-BOOT-MARKER";

fn main() {
    mount("proc", "/proc", "proc");
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_else(|e| format!("? ({e})"));
    let line = format!("{MARKER} uptime={}\n", uptime.trim());
    if std::io::stdout().write_all(line.as_bytes()).is_err() {
        write_console(&line);
    }
    let _ = std::io::stdout().flush();
    power_off();
}

/// Writes to `/dev/console` when the kernel gave PID 1 no usable stdout.
fn write_console(line: &str) {
    mount("devtmpfs", "/dev", "devtmpfs");
    if let Ok(mut console) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = console.write_all(line.as_bytes());
    }
}

/// Mounts a pseudo file system, creating the mount point; failures are reported
/// on stderr and otherwise ignored (the marker line shows what was missing).
fn mount(source: &str, target: &str, fstype: &str) {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (source, target_c, fstype) = (c(source), c(target), c(fstype));
    // SAFETY: all pointers are valid NUL-terminated strings for the call; no data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        eprintln!(
            "hull-test-init: mount {target}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Syncs and powers off; if that fails, waits forever rather than exiting.
fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; reboot only returns on failure.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    eprintln!(
        "hull-test-init: power off failed: {}",
        std::io::Error::last_os_error()
    );
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
